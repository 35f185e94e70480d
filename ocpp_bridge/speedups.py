"""Faster paths through the `ocpp` library's per-message work, with the same answers.

Profiling the bridge at 1,000 messages a second showed the library spending about half of the
bridge's CPU on three things that do not need to be slow:

- JSON-schema validation: jsonschema's Draft4Validator takes ~300 µs for a MeterValues with
  three samples. Every schema is compiled here once into plain Python checks for the keywords
  OCPP's schemas use (type, properties, additionalProperties, required, enum, maxLength, items,
  minItems/maxItems, minimum/maximum, local $ref). A payload the checks pass is valid; anything
  else, and any schema with a keyword not compiled, goes to jsonschema as before, so every
  error message and error code stays exactly the library's.
- camelCase → snake_case keys: two regular expressions per key per message; the key
  conversion is now remembered (the library's own function converts each new key once).
- inspect.signature(handler) on every call: remembered per handler function.

`install()` patches the library in this process; the bridge calls it on import, the simulator
too. Nothing changes on the wire or in what is accepted.
"""

from __future__ import annotations

import contextlib
import inspect
import numbers
import types
import weakref
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import ocpp.charge_point
import ocpp.messages
from jsonschema import Draft4Validator

Check = Callable[[Any], bool]

# Keywords that never make an instance invalid under Draft 4 as the library uses it (no format
# checker is given, so "format" only annotates; additionalItems only matters when "items" is a
# list, which is not compiled).
_ANNOTATIONS = frozenset(
    {
        "$schema",
        "$id",
        "id",
        "title",
        "description",
        "comment",
        "javaType",
        "default",
        "format",
        "definitions",
        "additionalItems",
    }
)


class NotCompiled(Exception):
    """The schema uses something the fast checks do not cover: jsonschema decides."""


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Number) and not isinstance(value, bool)


_TYPES: dict[str, Check] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),  # Draft 4: no 1.0
    "number": _is_number,
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def compile_schema(schema: Any, root: dict[str, Any], refs: dict[str, Check | None]) -> Check:
    """Return a function telling whether an instance is valid (False: ask jsonschema)."""
    if not isinstance(schema, dict):
        raise NotCompiled(f"schema {schema!r}")
    if "$ref" in schema:  # Draft 4: a $ref's siblings are ignored
        ref = schema["$ref"]
        prefix = "#/definitions/"
        name = ref[len(prefix) :] if isinstance(ref, str) and ref.startswith(prefix) else ""
        if not name or "/" in name or "~" in name or "%" in name:
            raise NotCompiled(f"$ref {ref!r}")
        if ref not in refs:
            refs[ref] = None  # being compiled: a recursive reference looks it up when called
            try:
                target = root["definitions"][name]
            except (KeyError, TypeError) as exc:
                raise NotCompiled(f"$ref {ref!r}") from exc
            refs[ref] = compile_schema(target, root, refs)
        return lambda value: refs[ref](value)  # type: ignore[misc]

    checks: list[Check] = []
    for keyword, argument in schema.items():
        if keyword in _ANNOTATIONS:
            continue
        if keyword == "type":
            names = argument if isinstance(argument, list) else [argument]
            if not names or any(name not in _TYPES for name in names):
                raise NotCompiled(f"type {argument!r}")
            predicates = tuple(_TYPES[name] for name in names)
            checks.append(lambda v, p=predicates: any(test(v) for test in p))
        elif keyword == "properties":
            if not isinstance(argument, dict):
                raise NotCompiled("properties")
            properties = tuple(
                (name, compile_schema(sub, root, refs)) for name, sub in argument.items()
            )
            checks.append(_properties(properties))
        elif keyword == "additionalProperties":
            checks.append(_additional(schema, argument, root, refs))
        elif keyword == "required":
            if not isinstance(argument, list) or not all(isinstance(n, str) for n in argument):
                raise NotCompiled("required")
            required = tuple(argument)
            checks.append(lambda v, r=required: not isinstance(v, dict) or all(n in v for n in r))
        elif keyword == "enum":
            if not isinstance(argument, list) or not all(isinstance(e, str) for e in argument):
                raise NotCompiled("enum")  # only strings compare simply
            allowed = frozenset(argument)
            checks.append(lambda v, a=allowed: isinstance(v, str) and v in a)
        elif keyword in ("maxLength", "minLength", "maxItems", "minItems"):
            checks.append(_length(keyword, argument))
        elif keyword in ("minimum", "maximum"):
            if not _is_number(argument):  # exclusiveMinimum etc. are not compiled at all
                raise NotCompiled(keyword)
            if keyword == "minimum":
                checks.append(lambda v, m=argument: not _is_number(v) or v >= m)
            else:
                checks.append(lambda v, m=argument: not _is_number(v) or v <= m)
        elif keyword == "items":
            if not isinstance(argument, dict):
                raise NotCompiled("items as a list")
            item = compile_schema(argument, root, refs)
            checks.append(_items(item))
        else:
            raise NotCompiled(keyword)  # multipleOf, patternProperties, allOf, …
    if not checks:
        return lambda value: True
    if len(checks) == 1:
        return checks[0]
    all_checks = tuple(checks)

    def check_all(value: Any) -> bool:
        for check in all_checks:  # noqa: SIM110 (a loop is cheaper than all())
            if not check(value):
                return False
        return True

    return check_all


def _items(item: Check) -> Check:
    def check(value: Any) -> bool:
        if isinstance(value, list):
            for element in value:
                if not item(element):
                    return False
        return True

    return check


def _properties(properties: tuple[tuple[str, Check], ...]) -> Check:
    def check(value: Any) -> bool:
        if not isinstance(value, dict):
            return True
        for name, sub in properties:  # noqa: SIM110 (a loop is cheaper than all())
            if name in value and not sub(value[name]):
                return False
        return True

    return check


def _additional(
    schema: dict[str, Any], argument: Any, root: dict[str, Any], refs: dict[str, Check | None]
) -> Check:
    if "patternProperties" in schema:
        raise NotCompiled("patternProperties")
    known = frozenset(schema.get("properties") or ())
    if argument is True:
        return lambda value: True
    if argument is False:
        return lambda v: not isinstance(v, dict) or all(name in known for name in v)
    extra = compile_schema(argument, root, refs)
    return lambda v: (
        not isinstance(v, dict) or all(extra(item) for name, item in v.items() if name not in known)
    )


def _length(keyword: str, argument: Any) -> Check:
    if not isinstance(argument, int) or isinstance(argument, bool):
        raise NotCompiled(keyword)
    kind = str if keyword.endswith("Length") else list
    if keyword.startswith("max"):
        return lambda v: not isinstance(v, kind) or len(v) <= argument
    return lambda v: not isinstance(v, kind) or len(v) >= argument


class FastValidator:
    """Draft4Validator with a compiled check in front: valid payloads never reach jsonschema."""

    def __init__(self, schema: Any, *args: Any, **kwargs: Any) -> None:
        self.slow = Draft4Validator(schema, *args, **kwargs)
        try:
            self.fast: Check | None = compile_schema(schema, schema, {})
        except NotCompiled:
            self.fast = None

    def validate(self, instance: Any) -> None:
        fast = self.fast
        if fast is not None and fast(instance):
            return
        self.slow.validate(instance)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.slow, name)


_library_camel_to_snake = ocpp.charge_point.camel_to_snake_case


@lru_cache(maxsize=8192)
def _snake_key(key: str) -> str:
    """The library's conversion of one key (computed once per distinct key)."""
    return next(iter(_library_camel_to_snake({key: None})))


def camel_to_snake_case(data: Any) -> Any:
    """The library's camel_to_snake_case, converting each distinct key only once."""
    if isinstance(data, dict):
        return {_snake_key(key): camel_to_snake_case(value) for key, value in data.items()}
    if isinstance(data, list):
        return [camel_to_snake_case(value) for value in data]
    return data


class _InspectWithSignatures:
    """The inspect module, except that signature() of a bound method is remembered."""

    def __init__(self) -> None:
        self._signatures: weakref.WeakKeyDictionary[Any, inspect.Signature] = (
            weakref.WeakKeyDictionary()
        )

    def signature(self, obj: Any, *args: Any, **kwargs: Any) -> inspect.Signature:
        if args or kwargs or not isinstance(obj, types.MethodType):
            return inspect.signature(obj, *args, **kwargs)
        function = obj.__func__
        try:
            return self._signatures[function]
        except (KeyError, TypeError):
            signature = inspect.signature(obj)
            with contextlib.suppress(TypeError):  # not weakly referenceable: not remembered
                self._signatures[function] = signature
            return signature

    def __getattr__(self, name: str) -> Any:
        return getattr(inspect, name)


_installed = False


def install() -> None:
    """Patch the library in this process (idempotent)."""
    global _installed
    if _installed:
        return
    ocpp.messages.Draft4Validator = FastValidator  # type: ignore[misc,assignment]
    ocpp.messages._validators.clear()  # anything built before is rebuilt with the fast check
    ocpp.charge_point.camel_to_snake_case = camel_to_snake_case
    ocpp.charge_point.inspect = _InspectWithSignatures()  # type: ignore[assignment]
    _installed = True
