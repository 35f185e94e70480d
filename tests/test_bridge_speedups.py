"""The bridge's faster paths through the ocpp library give the library's answers: compiled
schema checks never pass what jsonschema rejects (differential fuzzing over every OCPP 1.6 and
2.0.1 schema), key conversion and handler signatures are the library's."""

from __future__ import annotations

import copy
import inspect
import json
import random
from pathlib import Path
from typing import Any

import ocpp
import pytest
from jsonschema import Draft4Validator
from ocpp.charge_point import snake_to_camel_case

from ocpp_bridge import speedups

SCHEMAS = sorted(
    path
    for version in ("v16", "v201")
    for path in (Path(ocpp.__file__).parent / version / "schemas").glob("*.json")
)
# The messages the bridge handles most must take the fast path.
HOT = [
    "v16/schemas/MeterValues.json",
    "v16/schemas/StatusNotification.json",
    "v16/schemas/Heartbeat.json",
    "v16/schemas/BootNotification.json",
    "v16/schemas/StartTransaction.json",
    "v16/schemas/StopTransaction.json",
    "v16/schemas/MeterValuesResponse.json",
    "v16/schemas/BootNotificationResponse.json",
    "v201/schemas/TransactionEventRequest.json",
    "v201/schemas/StatusNotificationRequest.json",
    "v201/schemas/MeterValuesRequest.json",
]
ODD_VALUES = [None, True, False, 0, -1, 1.0, 1.5, "", "x", "Nope", [], [None], {}, {"a": 1}]


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8-sig"))


def resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = root["definitions"][schema["$ref"].split("/")[-1]]
    return schema


def sample(schema: dict[str, Any], root: dict[str, Any], rng: random.Random, depth: int = 0):
    """A (usually) valid instance of `schema`."""
    schema = resolve(schema, root)
    if "enum" in schema:
        return rng.choice(schema["enum"])
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = rng.choice(kind)
    if kind == "object" or (kind is None and "properties" in schema):
        properties = schema.get("properties", {})
        required = set(schema.get("required", []))
        return {
            name: sample(sub, root, rng, depth + 1)
            for name, sub in properties.items()
            if name in required or (depth < 4 and rng.random() < 0.6)
        }
    if kind == "array":
        low = schema.get("minItems", 0)
        high = min(schema.get("maxItems", low + 2), low + 2)
        items = schema.get("items", {})
        if isinstance(items, list) or depth > 5:
            return []
        return [sample(items, root, rng, depth + 1) for _ in range(rng.randint(low, high))]
    if kind == "string":
        return "s" * rng.randint(0, min(schema.get("maxLength", 8), 8))
    low, high = int(schema.get("minimum", 0)), int(schema.get("maximum", 99))
    if kind == "integer":
        return rng.randint(low, high)
    if kind == "number":
        return float(rng.randint(low, high))
    if kind == "boolean":
        return rng.random() < 0.5
    return None


def containers(value: Any, found: list) -> list:
    if isinstance(value, dict | list):
        found.append(value)
        for item in value.values() if isinstance(value, dict) else value:
            containers(item, found)
    return found


def mutate(instance: Any, rng: random.Random) -> Any:
    """Break the instance somewhere: a wrong value, an extra or missing key, a long string."""
    instance = copy.deepcopy(instance)
    nodes = containers(instance, [])
    if not nodes:
        return rng.choice(ODD_VALUES)
    node = rng.choice(nodes)
    if isinstance(node, list):
        if node and rng.random() < 0.7:
            node[rng.randrange(len(node))] = rng.choice(ODD_VALUES)
        elif node:
            node.clear()
        else:
            node.append(rng.choice(ODD_VALUES))
        return instance
    roll = rng.random()
    if node and roll < 0.5:
        key = rng.choice(list(node))
        value = node[key]
        if isinstance(value, str) and rng.random() < 0.5:
            node[key] = value + "x" * rng.choice([1, 5, 30, 300, 2600])
        else:
            node[key] = rng.choice(ODD_VALUES)
    elif node and roll < 0.75:
        del node[rng.choice(list(node))]
    else:
        node[rng.choice(["extra", "zzz", "connectorId", "status"])] = rng.choice(ODD_VALUES)
    return instance


@pytest.mark.parametrize("path", SCHEMAS, ids=lambda p: f"{p.parent.parent.name}/{p.stem}")
def test_compiled_checks_never_pass_what_jsonschema_rejects(path: Path) -> None:
    schema = load(path)
    fast = speedups.FastValidator(schema).fast
    slow = Draft4Validator(schema)
    if fast is None:
        return  # not compiled: jsonschema decides everything, as before
    rng = random.Random(path.name)
    for _ in range(25):
        instance = sample(schema, schema, rng)
        if slow.is_valid(instance):
            assert fast(instance), f"a valid instance missed the fast path: {instance}"
        for _ in range(8):
            broken = mutate(instance, rng)
            if fast(broken):
                assert slow.is_valid(broken), f"fast path passed an invalid instance: {broken}"


@pytest.mark.parametrize("name", HOT)
def test_the_hot_messages_are_compiled(name: str) -> None:
    schema = load(Path(ocpp.__file__).parent / name)
    assert speedups.FastValidator(schema).fast is not None


def test_draft_4_details_are_kept() -> None:
    schema = {
        "type": "object",
        "properties": {
            "n": {"type": "integer"},
            "x": {"type": "number", "minimum": 0, "maximum": 10},
            "s": {"type": "string", "maxLength": 3, "enum": ["ab", "abc"]},
            "a": {"type": "array", "minItems": 1, "items": {"type": "boolean"}},
        },
        "additionalProperties": False,
        "required": ["n"],
    }
    fast = speedups.FastValidator(schema).fast
    assert fast is not None
    cases = [
        {"n": 1},
        {"n": 1.0},  # Draft 4: a float is never an integer
        {"n": True},
        {"n": 1, "x": 10.5},
        {"n": 1, "x": True},
        {"n": 1, "s": "abc"},
        {"n": 1, "s": "abcd"},
        {"n": 1, "a": []},
        {"n": 1, "a": [1]},
        {"n": 1, "other": 1},
        {},
        [],
    ]
    for case in cases:
        assert fast(case) == Draft4Validator(schema).is_valid(case), case
    # Draft 4 whatever the schema declares (OCPP 2.0.1's say draft-06, where 1.0 is an integer).
    declared_6 = {"$schema": "http://json-schema.org/draft-06/schema#", "type": "integer"}
    assert speedups.FastValidator(declared_6).fast(1.0) is False
    # Formats are not checked (the library gives jsonschema no format checker), defaults are
    # not filled in, and other keywords agree with jsonschema.
    others = [
        ({"type": "string", "format": "date-time"}, ["nope", "2026-11-28T12:00:00Z"]),
        ({"type": "number", "multipleOf": 0.5}, [1.5, 1.25, 2, True]),
        ({"items": [{"type": "string"}]}, [["a"], [1], ["a", 1], "x"]),
        ({"type": "integer", "exclusiveMinimum": True, "minimum": 0}, [0, 1, -1]),
    ]
    for other, instances in others:
        check = speedups.FastValidator(other).fast
        assert check is not None
        for instance in instances:
            assert check(instance) == Draft4Validator(other).is_valid(instance), (other, instance)
    with_default = {"type": "object", "properties": {"a": {"type": "string", "default": "x"}}}
    payload: dict[str, Any] = {}
    assert speedups.FastValidator(with_default).fast(payload) and payload == {}
    # Remote references are never fetched: jsonschema decides, as before.
    assert speedups.FastValidator({"$ref": "http://example.com/x"}).fast is None


def test_invalid_payloads_get_the_librarys_errors() -> None:
    from ocpp.exceptions import FormatViolationError, TypeConstraintViolationError
    from ocpp.messages import _validate_payload, unpack

    speedups.install()
    bad_type = unpack('[2,"1","StatusNotification",{"connectorId":"1","errorCode":"NoError",'
                      '"status":"Available"}]')  # fmt: skip
    with pytest.raises(TypeConstraintViolationError):
        _validate_payload(bad_type, "1.6")
    extra = unpack('[2,"1","Heartbeat",{"extra":1}]')
    with pytest.raises(FormatViolationError):
        _validate_payload(extra, "1.6")


def test_key_conversion_matches_the_library() -> None:
    library = speedups._library_camel_to_snake
    payload = {
        "chargePointVendor": "v",
        "meterValue": [{"sampledValue": [{"value": "1", "measurand": "Energy"}]}],
        "ocppCSMSURL": "x",
        "evseV2XId": 1,
        "SoC": 2,
        "connectorId": 1,
        "idTagInfo": {"expiryDate": "d"},
    }
    assert speedups.camel_to_snake_case(payload) == library(payload)
    assert snake_to_camel_case(speedups.camel_to_snake_case(payload)) == snake_to_camel_case(
        library(payload)
    )


def test_signatures_are_the_methods_own() -> None:
    shim = speedups._InspectWithSignatures()

    class Handler:
        def on_thing(self, connector_id: int, call_unique_id: str | None = None) -> None: ...

    first, second = Handler(), Handler()
    assert shim.signature(first.on_thing) == inspect.signature(first.on_thing)
    assert shim.signature(second.on_thing) is shim.signature(first.on_thing)
    assert "call_unique_id" in shim.signature(first.on_thing).parameters
    assert shim.isawaitable is inspect.isawaitable


def test_a_failing_job_in_a_pipelined_batch_fails_alone(database_url, demo):
    """Jobs of one group commit run pipelined; one that fails is retried alone and fails
    alone, and its batch-mates get their own results."""
    import asyncio

    from ocpp_bridge.store import Store

    charger = demo["DEMO-CP-0001"]

    async def scenario() -> list:
        store = Store(database_url)
        await store.open()

        async def touch(conn):
            await conn.execute("UPDATE charger SET last_seen = now() WHERE id = %s", (charger,))
            return "touched"

        async def read(conn):
            cursor = await conn.execute("SELECT ocpp_id FROM charger WHERE id = %s", (charger,))
            return (await cursor.fetchone())[0]

        async def bad(conn):
            await conn.execute(
                "UPDATE charger SET registration = 'bogus' WHERE id = %s", (charger,)
            )

        try:
            return await asyncio.gather(
                *(store.run(job) for job in (touch, bad, read, touch)), return_exceptions=True
            )
        finally:
            await store.close()

    touched, failed, read_back, touched_again = asyncio.run(scenario())
    assert (touched, read_back, touched_again) == ("touched", "DEMO-CP-0001", "touched")
    assert type(failed).__name__ == "CheckViolation"


def test_the_bridge_runs_on_uvloop_when_installed():
    from ocpp_bridge.__main__ import loop_factory

    uvloop = pytest.importorskip("uvloop")
    assert loop_factory() is uvloop.new_event_loop


def test_row_jobs_are_copied_together_and_a_bad_one_fails_alone(database_url, demo):
    """Meter values go in by COPY with the batch; rows that cannot go in fail only their job."""
    import asyncio
    from datetime import UTC, datetime

    from ocpp_bridge import records
    from ocpp_bridge.records import Charger
    from ocpp_bridge.store import Rows, Store

    tenant = demo["demo"]
    good = Charger(demo["DEMO-CP-0001"], tenant, "DEMO-CP-0001", "accepted", False)
    ghost = Charger(10**9, tenant, "GHOST", "accepted", False)  # no such charger: FK fails
    at = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    samples = [(at, {"value": "12.5", "unit": "kWh"}), (at, {"value": "n/a", "phase": "L1"})]

    def job(charger: Charger) -> Rows:
        rows = records.meter_rows(charger, 1, 7, samples)
        return Rows("meter_value", records.METER_COLUMNS, rows)

    async def scenario() -> list:
        store = Store(database_url)
        await store.open()
        try:
            return await asyncio.gather(
                store.run(job(good)), store.run(job(ghost)), store.run(job(good)),
                return_exceptions=True,
            )  # fmt: skip
        finally:
            await store.close()

    first, failed, second = asyncio.run(scenario())
    assert first is None and second is None
    assert type(failed).__name__ == "ForeignKeyViolation"
    from tests.ocpp_support import query

    stored = query(
        database_url,
        "SELECT measurand, value, raw, unit, phase, transaction_id FROM meter_value ORDER BY id",
    )
    assert (
        stored
        == [
            ("Energy.Active.Import.Register", 12.5, None, "kWh", None, 7),
            ("Energy.Active.Import.Register", None, "n/a", None, "L1", 7),
        ]
        * 2
    )


def test_closing_waits_for_a_batch_being_written(database_url, demo):
    """A batch a writer has already taken (its log rows with it) is committed before close()
    stops the writers: the last frames of a bridge going down are not lost. Before, close()
    saw nothing queued and cancelled the write halfway."""
    import asyncio
    from datetime import UTC, datetime

    from ocpp_bridge.store import Store
    from tests.ocpp_support import query

    charger = demo["DEMO-CP-0001"]

    async def scenario() -> None:
        store = Store(database_url)
        await store.open()

        async def slow(conn):
            await conn.execute("SELECT pg_sleep(0.3)")

        row = (datetime.now(UTC), demo["demo"], charger, "out", 3, "m-1", "Heartbeat", "{}")
        store.log((*row, None, None))
        pending = asyncio.ensure_future(store.run(slow))
        await asyncio.sleep(0.05)  # the writer has taken the job and the row
        await store.close()
        assert pending.done() and pending.exception() is None

    asyncio.run(scenario())
    assert query(database_url, "SELECT message_id FROM ocpp_message") == [("m-1",)]
