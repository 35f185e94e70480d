"""Attachment storage: one contract suite run against LocalStorage (a temporary folder) and
S3Storage (a real S3-compatible HTTP server, moto's, on 127.0.0.1), plus keys and sniffing."""

from __future__ import annotations

import hashlib
import io
import os
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote

import pytest
import requests
from flask import Flask
from hypothesis import given
from hypothesis import strategies as st
from moto.server import ThreadedMotoServer

from cass.storage import (
    ALLOWED_TYPES,
    LocalStorage,
    S3Storage,
    Storage,
    check_key,
    content_disposition,
    get_storage,
    new_key,
    sniff_allowed,
    storage_from_url,
)

MB = 1024 * 1024


class OneWayStream:
    """A readable, non-seekable stream, like a request body read straight off the socket."""

    def __init__(self, data: bytes, chunk: int = 64 * 1024) -> None:
        self._buf = io.BytesIO(data)
        self._chunk = chunk

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def read(self, n: int = -1) -> bytes:
        # Short reads, as sockets give them.
        return self._buf.read(self._chunk if n is None or n < 0 else min(n, self._chunk))


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """Run moto's S3-compatible server on a free loopback port for the whole session."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """Point boto3's standard environment at the local server with dummy credentials."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    # A developer's ~/.aws must not leak real credentials or endpoints into the test.
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    return s3_endpoint


@pytest.fixture
def s3_storage(s3_env: str) -> S3Storage:
    """An S3Storage built from its URL, on a fresh bucket (so tests never share objects)."""
    storage = storage_from_url(f"s3://cass-test-{uuid.uuid4().hex[:12]}/attachments")
    assert isinstance(storage, S3Storage)
    storage.client.create_bucket(Bucket=storage.bucket)
    return storage


@pytest.fixture
def local_storage(tmp_path: Path) -> LocalStorage:
    """A LocalStorage in a folder of its own inside the test's temporary folder."""
    return LocalStorage(tmp_path / "files")


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest) -> Storage:
    """Each backend in turn, for the contract tests."""
    return request.getfixturevalue(f"{request.param}_storage")


def read_all(stream, chunk: int = 64 * 1024) -> bytes:
    """Read a storage stream to the end in bounded chunks, then close it."""
    parts = []
    try:
        while piece := stream.read(chunk):
            assert len(piece) <= chunk
            parts.append(piece)
    finally:
        stream.close()
    return b"".join(parts)


def put_bytes(storage: Storage, key: str, data: bytes, content_type: str = "text/plain") -> None:
    """Store `data` under `key` from an in-memory stream."""
    storage.put(key, io.BytesIO(data), content_type, len(data))


# --- the contract, on both backends ---------------------------------------------------------


def test_backend_satisfies_the_protocol(storage: Storage) -> None:
    assert isinstance(storage, Storage)


def test_round_trip_of_a_3_mb_file(storage: Storage) -> None:
    data = os.urandom(3 * MB)
    key = new_key(7, "site photo.jpg")
    storage.put(key, io.BytesIO(data), "image/jpeg", len(data))
    assert storage.exists(key)
    got = read_all(storage.open(key))
    assert len(got) == len(data)
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()


def test_put_from_a_non_seekable_stream(storage: Storage) -> None:
    data = os.urandom(MB + 123)
    storage.put("t1/stream.bin", OneWayStream(data), "application/pdf", len(data))
    assert read_all(storage.open("t1/stream.bin")) == data


def test_empty_file_round_trips(storage: Storage) -> None:
    put_bytes(storage, "t1/empty.txt", b"")
    assert storage.exists("t1/empty.txt")
    assert read_all(storage.open("t1/empty.txt")) == b""


def test_exists_and_delete(storage: Storage) -> None:
    key = "t1/2025/01/abc/report.pdf"
    assert not storage.exists(key)
    put_bytes(storage, key, b"%PDF-1.7 hello", "application/pdf")
    assert storage.exists(key)
    storage.delete(key)
    assert not storage.exists(key)
    with pytest.raises(FileNotFoundError):
        storage.open(key)
    storage.delete(key)  # deleting twice is not an error


def test_open_of_a_missing_key_raises_file_not_found(storage: Storage) -> None:
    with pytest.raises(FileNotFoundError):
        storage.open("t1/never/stored.txt")
    put_bytes(storage, "t1/dir/file.txt", b"x")
    # A "folder" that only exists as a prefix of another key is not an object.
    assert not storage.exists("t1/dir")
    with pytest.raises(FileNotFoundError):
        storage.open("t1/dir")


def test_overwrite_replaces_the_content(storage: Storage) -> None:
    put_bytes(storage, "t1/notes.txt", b"first version, longer than the second")
    put_bytes(storage, "t1/notes.txt", b"second")
    assert read_all(storage.open("t1/notes.txt")) == b"second"


UNSAFE_KEYS = [
    "t1/a b.txt",
    "t1/a+b.txt",
    "t1/a%20b.txt",
    "t1/100%.txt",
    "t1/what?.txt",
    "t1/hash#tag.txt",
    "t1/a&b=c;d.txt",
    "t1/quote'\"s.txt",
    "t1/Prüfbericht März.pdf",
    "t1/日本語/写真.jpg",
    "t1/emoji-🔌.txt",
    "t1/..hidden..",
    "t1/trailing.",
]


def test_keys_with_unsafe_characters_round_trip_separately(storage: Storage) -> None:
    # Each key gets its own content: "a b", "a+b" and "a%20b" are classic aliases in URLs.
    for i, key in enumerate(UNSAFE_KEYS):
        put_bytes(storage, key, f"content {i}".encode())
    for i, key in enumerate(UNSAFE_KEYS):
        assert storage.exists(key), key
        assert read_all(storage.open(key)) == f"content {i}".encode(), key
    storage.delete("t1/a+b.txt")
    assert storage.exists("t1/a b.txt")
    assert not storage.exists("t1/a+b.txt")


ESCAPING_KEYS = [
    "",
    "../outside.txt",
    "t1/../../outside.txt",
    "t1/..",
    "..",
    "/etc/passwd",
    "/abs/key",
    "t1\\..\\..\\outside.txt",
    "t1\\file.txt",
    "t1//file.txt",
    "t1/./file.txt",
    "./file.txt",
    "t1/",
    "t1/nul\x00.txt",
    "k" * 1025,
]


def test_path_escaping_keys_are_rejected(storage: Storage) -> None:
    for key in ESCAPING_KEYS:
        for name, call in [
            ("put", lambda k: put_bytes(storage, k, b"escape")),
            ("open", storage.open),
            ("exists", storage.exists),
            ("delete", storage.delete),
            ("download_url", lambda k: storage.download_url(k, "x.txt", "text/plain")),
        ]:
            with pytest.raises(ValueError):
                call(key)
                pytest.fail(f"{name}({key!r}) was accepted")


def test_local_escaping_keys_write_nothing_outside_the_root(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "a" / "files")
    for key in ESCAPING_KEYS:
        with pytest.raises(ValueError):
            put_bytes(storage, key, b"escape")
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written == []


@pytest.mark.parametrize("stream_kind", ["seekable", "one-way"])
def test_a_size_mismatch_stores_nothing_and_keeps_the_old_file(
    storage: Storage, stream_kind: str
) -> None:
    data = b"n" * 100
    put_bytes(storage, "t1/keep.txt", b"old content")
    for declared in (0, 99, 101, 10 * MB):
        for key in ("t1/keep.txt", "t1/new.txt"):
            stream = io.BytesIO(data) if stream_kind == "seekable" else OneWayStream(data, chunk=7)
            with pytest.raises(ValueError, match=r"size|bytes"):
                storage.put(key, stream, "text/plain", declared)
                pytest.fail(f"{declared} bytes declared for 100 were accepted")
        assert read_all(storage.open("t1/keep.txt")) == b"old content"
        assert not storage.exists("t1/new.txt")


def test_negative_size_is_rejected(storage: Storage) -> None:
    with pytest.raises(ValueError):
        storage.put("t1/neg.txt", io.BytesIO(b""), "text/plain", -1)


# --- LocalStorage -----------------------------------------------------------------------------


def test_local_download_url_is_none(local_storage: LocalStorage) -> None:
    put_bytes(local_storage, "t1/a.pdf", b"%PDF-1.4", "application/pdf")
    assert local_storage.download_url("t1/a.pdf", "a.pdf", "application/pdf") is None


def test_local_files_live_under_the_root_at_their_key(local_storage: LocalStorage) -> None:
    put_bytes(local_storage, "t3/2025/02/xyz/photo.jpg", b"\xff\xd8\xffjpeg")
    path = local_storage.root / "t3" / "2025" / "02" / "xyz" / "photo.jpg"
    assert path.read_bytes() == b"\xff\xd8\xffjpeg"


def test_local_put_leaves_no_temporary_files(local_storage: LocalStorage) -> None:
    put_bytes(local_storage, "t1/f/a.txt", b"ok")
    with pytest.raises(ValueError):
        local_storage.put("t1/f/a.txt", OneWayStream(b"partial"), "text/plain", 1000)
    assert sorted(p.name for p in (local_storage.root / "t1" / "f").iterdir()) == ["a.txt"]
    assert (local_storage.root / "t1" / "f" / "a.txt").read_bytes() == b"ok"


def test_local_delete_removes_the_file_folder_when_empty(local_storage: LocalStorage) -> None:
    key = new_key(1, "a.txt")
    put_bytes(local_storage, key, b"x")
    folder = (local_storage.root / key).parent
    assert folder.is_dir()
    local_storage.delete(key)
    assert not folder.exists()
    # The shared year/month folders stay: another upload may be creating a sibling right now.
    assert folder.parent.is_dir()


def test_local_refuses_a_symlink_out_of_the_root(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    storage = LocalStorage(tmp_path / "files")
    storage.root.mkdir()
    (storage.root / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ValueError):
        put_bytes(storage, "link/evil.txt", b"escape")
    assert list(outside.iterdir()) == []


def test_local_open_streams_from_disk(local_storage: LocalStorage) -> None:
    put_bytes(local_storage, "t1/big.bin", b"z" * (2 * MB))
    stream = local_storage.open("t1/big.bin")
    try:
        # A real file object positioned at 0, not a copy of the whole file in memory.
        assert isinstance(stream, io.BufferedReader)
        assert stream.read(10) == b"z" * 10
        assert stream.tell() == 10
    finally:
        stream.close()


# --- S3Storage ----------------------------------------------------------------------------------


def test_s3_objects_live_under_the_prefix(s3_storage: S3Storage) -> None:
    put_bytes(s3_storage, "t1/a.txt", b"prefixed", "text/plain")
    raw = s3_storage.client.get_object(Bucket=s3_storage.bucket, Key="attachments/t1/a.txt")
    assert raw["Body"].read() == b"prefixed"
    assert raw["ContentType"] == "text/plain"


def test_s3_multipart_upload_round_trips(s3_storage: S3Storage) -> None:
    # Above boto3's 8 MB threshold, so the upload goes in parts.
    data = os.urandom(9 * MB)
    s3_storage.put("t1/big.bin", io.BytesIO(data), "application/pdf", len(data))
    assert hashlib.sha256(read_all(s3_storage.open("t1/big.bin"))).digest() == (
        hashlib.sha256(data).digest()
    )


@pytest.mark.parametrize(
    ("filename", "expected_name"),
    [("Site report.pdf", "Site report.pdf"), ("Prüfbericht März 2025.pdf", None)],
)
def test_s3_download_url_serves_the_file_as_an_attachment(
    s3_storage: S3Storage, filename: str, expected_name: str | None
) -> None:
    data = b"%PDF-1.7\n" + os.urandom(50_000)
    key = new_key(1, filename)
    s3_storage.put(key, io.BytesIO(data), "application/pdf", len(data))
    url = s3_storage.download_url(key, filename, "application/pdf", expires=60)
    assert url is not None
    assert url.startswith(s3_storage.client.meta.endpoint_url)
    response = requests.get(url, timeout=10)
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["Content-Type"] == "application/pdf"
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment;")
    if expected_name is not None:
        assert f'filename="{expected_name}"' in disposition
    else:
        encoded = re.search(r"filename\*=UTF-8''(\S+)", disposition)
        assert encoded is not None
        assert unquote(encoded.group(1)) == filename


def test_s3_download_url_is_signed(s3_storage: S3Storage) -> None:
    put_bytes(s3_storage, "t1/a.txt", b"secret")
    url = s3_storage.download_url("t1/a.txt", "a.txt", "text/plain", expires=120)
    assert url is not None
    assert "X-Amz-Signature=" in url
    assert "X-Amz-Expires=120" in url


@pytest.mark.parametrize("expires", [0, -5, 7 * 24 * 3600 + 1])
def test_s3_download_url_refuses_bad_lifetimes(s3_storage: S3Storage, expires: int) -> None:
    with pytest.raises(ValueError):
        s3_storage.download_url("t1/a.txt", "a.txt", "text/plain", expires=expires)


def test_s3_missing_bucket_is_an_error_not_a_missing_file(s3_env: str) -> None:
    storage = storage_from_url(f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}")
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError):
        put_bytes(storage, "t1/a.txt", b"x")


# --- storage_from_url and get_storage -----------------------------------------------------------


def test_file_url_relative_to_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    storage = storage_from_url("file://instance/files")
    assert isinstance(storage, LocalStorage)
    assert storage.root == (tmp_path / "instance" / "files").resolve()
    # Fixed when built: a later chdir does not move the files.
    monkeypatch.chdir(tmp_path.parent)
    put_bytes(storage, "t1/a.txt", b"here")
    assert (tmp_path / "instance" / "files" / "t1" / "a.txt").read_bytes() == b"here"


def test_file_url_absolute(tmp_path: Path) -> None:
    storage = storage_from_url(f"file://{tmp_path}/abs/files")
    assert isinstance(storage, LocalStorage)
    assert storage.root == (tmp_path / "abs" / "files").resolve()


@pytest.mark.parametrize(
    ("url", "bucket", "prefix"),
    [
        ("s3://cass-files/attachments", "cass-files", "attachments"),
        ("s3://cass-files/a/b/", "cass-files", "a/b"),
        ("s3://cass-files", "cass-files", ""),
        ("s3://cass-files/", "cass-files", ""),
    ],
)
def test_s3_url(s3_env: str, url: str, bucket: str, prefix: str) -> None:
    storage = storage_from_url(url)
    assert isinstance(storage, S3Storage)
    assert (storage.bucket, storage.prefix) == (bucket, prefix)
    # The standard AWS_ENDPOINT_URL variable reached boto3.
    assert storage.client.meta.endpoint_url == s3_env


@pytest.mark.parametrize(
    "url",
    [
        "",
        "instance/files",
        "/var/files",
        "file://",
        "file:/instance",
        "http://example.test/files",
        "ftp://host/files",
        "gs://bucket/prefix",
        "s3://",
        "s3:///prefix",
        "s3://Bad_Bucket/x",
        "s3://a/x",
        "s3://bucket..name/x",
        "s3://bucket/a/../b",
        "s3://bucket/prefix?versioning=1",
        "S3://bucket/prefix",
    ],
)
def test_bad_storage_urls_are_refused(s3_env: str, url: str) -> None:
    with pytest.raises(ValueError, match=r"CASS_STORAGE_URL|storage key"):
        storage_from_url(url)


def test_get_storage_builds_once_per_app(tmp_path: Path) -> None:
    app = Flask(__name__)
    app.config["CASS_STORAGE_URL"] = f"file://{tmp_path}/files"
    first = get_storage(app)
    assert isinstance(first, LocalStorage)
    assert first.root == (tmp_path / "files").resolve()
    assert get_storage(app) is first
    assert app.extensions["cass_storage"] is first
    other = Flask(__name__)
    other.config["CASS_STORAGE_URL"] = f"file://{tmp_path}/other"
    assert get_storage(other) is not first


def test_get_storage_refuses_a_bad_url() -> None:
    app = Flask(__name__)
    app.config["CASS_STORAGE_URL"] = "ftp://nope"
    with pytest.raises(ValueError):
        get_storage(app)
    assert "cass_storage" not in app.extensions


# --- new_key ------------------------------------------------------------------------------------

KEY_RE = re.compile(r"^t(\d+)/(\d{4})/(\d{2})/([0-9a-f]{32})/([A-Za-z0-9._-]{1,100})$")


def test_new_key_shape() -> None:
    before = datetime.now(UTC)
    key = new_key(42, "Charger photo (1).jpg")
    match = KEY_RE.match(key)
    assert match, key
    assert match.group(1) == "42"
    assert (int(match.group(2)), int(match.group(3))) in {
        (before.year, before.month),
        (datetime.now(UTC).year, datetime.now(UTC).month),
    }
    assert match.group(5) == "Charger_photo__1_.jpg"


def test_new_key_is_unique() -> None:
    keys = {new_key(1, "same.txt") for _ in range(500)}
    assert len(keys) == 500


@pytest.mark.parametrize(
    ("filename", "safe"),
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\eng\\photo 1.jpg", "photo_1.jpg"),
        ("..", "file"),
        (".", "file"),
        ("", "file"),
        ("/", "file"),
        (".bashrc", "bashrc"),
        ("Prüfbericht März.pdf", "Prufbericht_Marz.pdf"),
        ("日本.png", "__.png"),
        ("a\x00b\r\n.txt", "a_b__.txt"),
        ("x" * 300 + ".pdf", "x" * 96 + ".pdf"),
        ("y" * 300, "y" * 100),
    ],
)
def test_new_key_makes_filenames_safe(filename: str, safe: str) -> None:
    key = new_key(5, filename)
    assert key.rsplit("/", 1)[1] == safe
    assert check_key(key) == key


@given(st.text(max_size=400))
def test_new_key_is_always_a_valid_key(filename: str) -> None:
    key = new_key(3, filename)
    match = KEY_RE.match(key)
    assert match, key
    assert not match.group(5).startswith(".")
    assert check_key(key) == key


@pytest.mark.parametrize("tenant_id", [-1, True, "1", 1.0])
def test_new_key_refuses_odd_tenant_ids(tenant_id: object) -> None:
    with pytest.raises(ValueError):
        new_key(tenant_id, "a.txt")  # type: ignore[arg-type]


def test_new_key_is_storable(local_storage: LocalStorage) -> None:
    key = new_key(9, "../weird name?.txt")
    put_bytes(local_storage, key, b"ok")
    assert read_all(local_storage.open(key)) == b"ok"


# --- content_disposition ------------------------------------------------------------------------


def test_content_disposition_plain_name() -> None:
    assert content_disposition("report.pdf") == 'attachment; filename="report.pdf"'


def test_content_disposition_cannot_be_broken_out_of() -> None:
    value = content_disposition('evil"; filename="x.exe\r\nSet-Cookie: a=b')
    assert "\r" not in value
    assert "\n" not in value
    # Only the two parameters we wrote: the quoted fallback and the encoded name.
    fallback = re.fullmatch(r'attachment; filename="([^"]*)"; filename\*=UTF-8\'\'(\S+)', value)
    assert fallback, value


def test_content_disposition_keeps_non_ascii_names() -> None:
    value = content_disposition("Prüfbericht März.pdf")
    assert 'filename="Prufbericht Marz.pdf"' in value
    encoded = re.search(r"filename\*=UTF-8''(\S+)", value)
    assert encoded is not None
    assert unquote(encoded.group(1)) == "Prüfbericht März.pdf"


# --- sniff_allowed ------------------------------------------------------------------------------

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06"
GIF87 = b"GIF87a\x01\x00\x01\x00\x80\x00\x00"
GIF89 = b"GIF89a\x01\x00\x01\x00\x80\x00\x00"
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 \x18\x00\x00\x00"
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n"
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 40
ZIP = b"PK\x03\x04\x14\x00\x00\x00\x08\x00\x1c\x7b\x5a\x5a"
ELF = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 8


def test_allowed_types_are_the_documented_list() -> None:
    assert set(ALLOWED_TYPES.values()) == {
        "image/jpeg",
        "image/png",
        "image/gif",
        "image/webp",
        "application/pdf",
        "text/plain",
        "text/csv",
    }
    assert all(ext.startswith(".") and ext == ext.lower() for ext in ALLOWED_TYPES)


@pytest.mark.parametrize(
    ("head", "filename", "expected"),
    [
        (JPEG, "photo.jpg", "image/jpeg"),
        (JPEG, "photo.JPEG", "image/jpeg"),
        (PNG, "screen.png", "image/png"),
        (GIF87, "anim.gif", "image/gif"),
        (GIF89, "anim.gif", "image/gif"),
        (WEBP, "photo.webp", "image/webp"),
        (PDF, "report.pdf", "application/pdf"),
        (b"Charger DEMO-CP-0001 rebooted\n", "notes.txt", "text/plain"),
        ("Fehler: Ladepunkt außer Betrieb\n".encode(), "charger.log", "text/plain"),
        (b"\xef\xbb\xbfocpp_id,site\nDEMO-CP-0001,Depot\n", "chargers.csv", "text/csv"),
        (b"", "empty.txt", "text/plain"),
        # The caller's prefix may cut a multi-byte character in half.
        ("Prüf".encode()[:3], "cut.txt", "text/plain"),
    ],
)
def test_sniff_accepts_each_allowed_type(head: bytes, filename: str, expected: str) -> None:
    assert sniff_allowed(head, filename, ALLOWED_TYPES) == expected


@pytest.mark.parametrize(
    ("head", "filename"),
    [
        (EXE, "photo.jpg"),  # a Windows program in disguise
        (EXE, "notes.txt"),  # ... and its NULs make it non-text
        (ELF, "report.pdf"),
        (b"<html><script>alert(1)</script>", "page.html"),  # extension not allowed
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "icon.svg"),
        (PNG, "photo.exe"),  # bytes are fine, but the name is not
        (PNG, "noextension"),
        (b"plain text", "photo.jpg"),  # text is no JPEG
        (b"plain text", "report.pdf"),
        (b"text with a \x00 NUL", "notes.txt"),
        (b"\xff\xfe\x00not utf8", "data.csv"),
        (b"bad \xc3\x28 utf-8", "notes.txt"),
        (ZIP, "archive.csv"),
    ],
)
def test_sniff_refuses_disguised_and_unknown_files(head: bytes, filename: str) -> None:
    assert sniff_allowed(head, filename, ALLOWED_TYPES) is None


def test_sniff_bytes_win_over_the_extension() -> None:
    assert sniff_allowed(PNG, "scan.pdf", ALLOWED_TYPES) == "image/png"
    assert sniff_allowed(PDF, "notes.txt", ALLOWED_TYPES) == "application/pdf"
    assert sniff_allowed(WEBP, "downloaded.jpg", ALLOWED_TYPES) == "image/webp"


def test_sniff_respects_a_narrower_allow_list() -> None:
    only_pdf = {".pdf": "application/pdf"}
    assert sniff_allowed(PDF, "a.pdf", only_pdf) == "application/pdf"
    assert sniff_allowed(PNG, "a.pdf", only_pdf) is None
    assert sniff_allowed(JPEG, "a.jpg", only_pdf) is None
    assert sniff_allowed(b"text", "a.txt", only_pdf) is None
