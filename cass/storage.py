"""Attachment storage: the bytes of uploaded files, kept outside the database.

One interface, `Storage`, with two backends chosen by `CASS_STORAGE_URL`:

- `file://instance/files` (relative to the working folder) or `file:///abs/path` → `LocalStorage`
- `s3://bucket/prefix` → `S3Storage` (boto3; `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_S3` point it at
  an S3-compatible server such as MinIO; credentials come from boto3's usual chain)

Keys are opaque, `/`-separated strings made by `new_key()`; both backends accept and reject the
same keys, so the data can move from one backend to the other unchanged. The database keeps the
key, the original filename, the size and the sniffed content type (`sniff_allowed()`).
"""

from __future__ import annotations

import codecs
import contextlib
import os
import re
import shutil
import tempfile
import unicodedata
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, cast, runtime_checkable
from urllib.parse import quote, urlsplit

if TYPE_CHECKING:
    from flask import Flask

CHUNK_SIZE = 1024 * 1024
# How many leading bytes callers should hand to sniff_allowed(); enough for every magic number
# below and for a meaningful "is this UTF-8 text" check.
SNIFF_BYTES = 2048
# S3 refuses keys over 1024 bytes; the same limit keeps both backends interchangeable.
MAX_KEY_BYTES = 1024
# The longest lifetime of a presigned URL that SigV4 allows (7 days).
MAX_URL_EXPIRES = 7 * 24 * 3600

# Extension (lower case, with the dot) → the content type it may carry. The type itself is always
# decided by the bytes (see sniff_allowed); the extension only has to be one of these.
ALLOWED_TYPES: dict[str, str] = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".pdf": "application/pdf",
    ".txt": "text/plain",
    ".log": "text/plain",
    ".csv": "text/csv",
}
TEXT_TYPES = frozenset({"text/plain", "text/csv"})

_S3_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]")


@runtime_checkable
class Storage(Protocol):
    """Where attachment bytes live; keys are `/`-separated and validated by every backend."""

    def put(self, key: str, data: BinaryIO, content_type: str, size: int) -> None:
        """Store exactly `size` bytes read from `data` under `key`, replacing any old object."""
        ...

    def open(self, key: str) -> BinaryIO:
        """Return a readable stream of the object; raise FileNotFoundError when it is missing."""
        ...

    def delete(self, key: str) -> None:
        """Remove the object; a missing object is not an error."""
        ...

    def exists(self, key: str) -> bool:
        """Tell whether an object is stored under `key`."""
        ...

    def download_url(
        self, key: str, filename: str, content_type: str, expires: int = 300
    ) -> str | None:
        """Return a short-lived URL serving the object as a download, or None to stream it."""
        ...


def check_key(key: str) -> str:
    """Return `key` unchanged if it is a safe relative key, else raise ValueError."""
    if not isinstance(key, str) or not key:
        raise ValueError("storage key must be a non-empty string")
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise ValueError(f"storage key longer than {MAX_KEY_BYTES} bytes")
    if "\\" in key or "\x00" in key:
        raise ValueError(f"storage key has a backslash or NUL: {key!r}")
    if key.startswith("/"):
        raise ValueError(f"storage key must be relative: {key!r}")
    # Empty, "." and ".." segments could climb out of the root (or alias another key).
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise ValueError(f"storage key has an empty, '.' or '..' segment: {key!r}")
    return key


class _SizedReader:
    """A read-only stream that fails unless exactly `size` bytes come out of `raw`."""

    def __init__(self, raw: BinaryIO, size: int) -> None:
        self._raw = raw
        self._size = size
        self._seen = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def read(self, n: int = -1) -> bytes:
        # Fill the request like a buffered file does: boto3's uploader takes a short read for
        # the end of the stream. Never ask `raw` for more than one byte past the promise, which
        # is enough to notice an oversize body without pulling an endless stream into memory.
        want = self._size - self._seen + 1 if n is None or n < 0 else n
        parts: list[bytes] = []
        got = 0
        while got < want:
            chunk = self._raw.read(min(want - got, self._size - self._seen + 1))
            if not chunk:
                if self._seen < self._size:
                    raise ValueError(f"stream ended after {self._seen} of {self._size} bytes")
                break
            self._seen += len(chunk)
            if self._seen > self._size:
                raise ValueError(f"stream is longer than the declared size {self._size}")
            got += len(chunk)
            parts.append(chunk)
        return b"".join(parts)


def _sized(data: BinaryIO, size: int) -> BinaryIO:
    """Return a stream of `data` that raises ValueError unless it holds exactly `size` bytes."""
    if size < 0:
        raise ValueError("size must not be negative")
    return cast(BinaryIO, _SizedReader(data, size))


class LocalStorage:
    """Files under one folder on the local disk (one host, or a shared mount)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        """Return the file path of `key`, refusing anything that resolves outside the root."""
        path = (self.root / check_key(key)).resolve()
        # check_key already refuses "..", but a symlink inside the root could still point out.
        if not path.is_relative_to(self.root) or path == self.root:
            raise ValueError(f"storage key escapes the storage root: {key!r}")
        return path

    def put(self, key: str, data: BinaryIO, content_type: str, size: int) -> None:
        """Write the file atomically: a temporary file in the same folder, then os.replace."""
        path = self._path(key)
        stream = _sized(data, size)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name[:40]}.", suffix=".tmp"
        )
        try:
            with os.fdopen(fd, "wb") as tmp:
                shutil.copyfileobj(stream, tmp, CHUNK_SIZE)
                tmp.flush()
                # Readers must never see a renamed-but-empty file after a crash.
                os.fsync(tmp.fileno())
            os.replace(tmp_name, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
            raise

    def open(self, key: str) -> BinaryIO:
        """Open the file for buffered reading; nothing is read ahead of the caller."""
        path = self._path(key)
        if not path.is_file():
            raise FileNotFoundError(key)
        return path.open("rb")

    def delete(self, key: str) -> None:
        """Remove the file, and its folder when that is left empty."""
        path = self._path(key)
        path.unlink(missing_ok=True)
        # new_key() gives every file a folder of its own; pruning only that one level cannot race
        # with a put() that is creating the shared year/month folders.
        if path.parent != self.root:
            with contextlib.suppress(OSError):
                path.parent.rmdir()

    def exists(self, key: str) -> bool:
        """Tell whether a file is stored under `key`."""
        return self._path(key).is_file()

    def download_url(
        self, key: str, filename: str, content_type: str, expires: int = 300
    ) -> str | None:
        """Return None: local files have no URL of their own, so the web streams them."""
        self._path(key)
        return None


class S3Storage:
    """Objects in an S3 (or S3-compatible) bucket, under an optional key prefix."""

    def __init__(self, bucket: str, prefix: str, client: Any) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = client

    def __repr__(self) -> str:
        return f"S3Storage({self.bucket!r}, {self.prefix!r})"

    def _key(self, key: str) -> str:
        """Return the object key of `key` in the bucket."""
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, key: str, data: BinaryIO, content_type: str, size: int) -> None:
        """Upload the stream (multipart when large); S3 makes the new object visible at once."""
        self.client.upload_fileobj(
            _sized(data, size),
            self.bucket,
            self._key(key),
            ExtraArgs={"ContentType": content_type},
        )

    def open(self, key: str) -> BinaryIO:
        """Return the object's streaming body; it reads from the network as the caller reads."""
        from botocore.exceptions import ClientError

        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if _error_code(exc) in ("NoSuchKey", "404"):
                raise FileNotFoundError(key) from exc
            raise
        return cast(BinaryIO, response["Body"])

    def delete(self, key: str) -> None:
        """Delete the object; S3 answers a missing key with success too."""
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def exists(self, key: str) -> bool:
        """Tell whether an object is stored under `key` (a HEAD request)."""
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if _error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def download_url(
        self, key: str, filename: str, content_type: str, expires: int = 300
    ) -> str | None:
        """Return a presigned GET URL that downloads the object as `filename`."""
        if not 0 < expires <= MAX_URL_EXPIRES:
            raise ValueError(f"expires must be between 1 and {MAX_URL_EXPIRES} seconds")
        return cast(
            str,
            self.client.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self.bucket,
                    "Key": self._key(key),
                    # The stored type came from sniffing; S3 echoes these back as headers.
                    "ResponseContentDisposition": content_disposition(filename),
                    "ResponseContentType": content_type,
                },
                ExpiresIn=expires,
            ),
        )


def _error_code(exc: Exception) -> str:
    """Return the S3 error code of a botocore ClientError."""
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def content_disposition(filename: str) -> str:
    """Return an `attachment` Content-Disposition naming `filename` (RFC 6266, any script)."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1] or "download"
    # The quoted form is for old clients; quotes, backslashes and controls would break it.
    fallback = re.sub(r"[^A-Za-z0-9 ._()+-]", "_", _strip_accents(name)).strip() or "download"
    value = f'attachment; filename="{fallback}"'
    if fallback != name:
        value += f"; filename*=UTF-8''{quote(name, safe='')}"
    return value


def _s3_client() -> Any:
    """Return a boto3 S3 client configured from the standard AWS environment."""
    import boto3
    from botocore.config import Config as BotoConfig

    custom_endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    # S3-compatible servers (MinIO, Ceph, moto) are usually reached by host name without per-bucket
    # DNS, so with a custom endpoint ask for path-style URLs; SigV4 is what they all accept.
    s3_options = {"addressing_style": "path"} if custom_endpoint else {}
    config = BotoConfig(signature_version="s3v4", s3=s3_options)
    # boto3 reads AWS_ENDPOINT_URL(_S3), the region and the credentials itself.
    return boto3.session.Session().client("s3", config=config)


def storage_from_url(url: str) -> Storage:
    """Build the storage named by a `file://…` or `s3://bucket/prefix` URL."""
    if url.startswith("file://"):
        rest = url[len("file://") :]
        if not rest or "?" in rest or "#" in rest:
            raise ValueError(
                f"CASS_STORAGE_URL file:// needs a folder, e.g. file://instance/files: {url!r}"
            )
        # file:///abs is absolute; file://instance/files is relative to the working folder, and
        # is fixed now so that a later chdir cannot move the files.
        return LocalStorage(Path(rest) if rest.startswith("/") else Path.cwd() / rest)
    if url.startswith("s3://"):
        parts = urlsplit(url)
        bucket = parts.netloc
        if not _S3_BUCKET_RE.match(bucket) or ".." in bucket:
            raise ValueError(f"CASS_STORAGE_URL has no valid S3 bucket name: {url!r}")
        if parts.query or parts.fragment:
            raise ValueError(f"CASS_STORAGE_URL s3:// takes no query or fragment: {url!r}")
        prefix = parts.path.strip("/")
        if prefix:
            check_key(prefix)
        return S3Storage(bucket, prefix, _s3_client())
    scheme = url.split("://", 1)[0] if "://" in url else url
    raise ValueError(
        f"CASS_STORAGE_URL must be file://folder or s3://bucket/prefix, got {scheme!r}"
    )


def get_storage(app: Flask) -> Storage:
    """Return the app's storage, built once from CASS_STORAGE_URL."""
    storage = app.extensions.get("cass_storage")
    if storage is None:
        storage = storage_from_url(app.config["CASS_STORAGE_URL"])
        app.extensions["cass_storage"] = storage
    return cast(Storage, storage)


def _strip_accents(text: str) -> str:
    """Return `text` with accents removed, so that "é" becomes "e" rather than "_"."""
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def safe_filename(filename: str, max_length: int = 100) -> str:
    """Return `filename` reduced to ASCII letters, digits, '.', '-', '_'; never empty."""
    # Browsers on Windows have sent whole paths; keep only the last part.
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE_NAME_CHARS.sub("_", _strip_accents(name))
    # A leading dot would make a hidden file, and "." or ".." a path segment.
    name = name.lstrip(".")
    if len(name) > max_length:
        stem, dot, ext = name.rpartition(".")
        if dot and 0 < len(ext) <= 10 and stem:
            name = stem[: max_length - len(ext) - 1] + "." + ext
        else:
            name = name[:max_length]
    return name or "file"


def new_key(tenant_id: int, filename: str) -> str:
    """Return a fresh key `t{tenant}/{yyyy}/{mm}/{uuid}/{safe filename}` for an upload."""
    if isinstance(tenant_id, bool) or not isinstance(tenant_id, int) or tenant_id < 0:
        raise ValueError(f"tenant_id must be a non-negative int, got {tenant_id!r}")
    now = datetime.now(UTC)
    return f"t{tenant_id}/{now:%Y}/{now:%m}/{uuid.uuid4().hex}/{safe_filename(filename)}"


def _sniff_binary(head: bytes) -> str | None:
    """Return the content type announced by the magic number at the start of `head`."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    # PDF readers tolerate junk before the header, but polyglot files live in that tolerance.
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    return None


def _looks_like_text(head: bytes) -> bool:
    """Tell whether `head` is UTF-8 without NUL bytes (a cut multi-byte tail is fine)."""
    if b"\x00" in head:
        return False
    try:
        # final=False: the caller's prefix may end in the middle of a multi-byte character.
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return False
    return True


def sniff_allowed(first_bytes: bytes, filename: str, allowed: dict[str, str]) -> str | None:
    """Return the content type of an upload if its bytes and extension are allowed, else None.

    `allowed` maps a lower-case extension (".jpg") to a content type, like ALLOWED_TYPES; pass
    the first SNIFF_BYTES bytes of the file. The client's content type is never consulted.

    - The extension of `filename` must be a key of `allowed` (so no "photo.exe" is stored).
    - Bytes win over the extension: a file whose magic number is a known binary type gets that
      type, if it is one of the allowed types, whatever allowed extension it carries (a PNG named
      "scan.pdf" → "image/png"; phones and browsers mislabel images often, and serving the real
      type is what keeps a download harmless). Bytes of an unknown or not-allowed kind → None,
      so "MZ…" (a Windows program) named "photo.jpg" is refused.
    - Text has no magic number: when no binary type matched, the extension's type is returned
      if it is a text type and the bytes are UTF-8 with no NUL.
    """
    ext = os.path.splitext(filename)[1].lower()
    if ext not in allowed:
        return None
    allowed_types = set(allowed.values())
    binary = _sniff_binary(first_bytes)
    if binary is not None:
        return binary if binary in allowed_types else None
    declared = allowed[ext]
    if declared in TEXT_TYPES and _looks_like_text(first_bytes):
        return declared
    return None
