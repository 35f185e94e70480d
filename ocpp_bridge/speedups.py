"""Faster paths through the `ocpp` library's per-message work, with the same answers.

Profiling the bridge at 1,000 messages a second showed the library spending about half of the
bridge's CPU on three things that do not need to be slow:

- JSON-schema validation: jsonschema's Draft4Validator takes ~300 µs for a MeterValues with
  three samples. Every schema is also compiled once with fastjsonschema (into Python code, with
  Draft 4's rules whatever the schema declares, no format checks, no defaults filled in, no
  remote references) and a payload it passes is valid; a payload it rejects, and any schema it
  cannot compile, goes to jsonschema as before, so every error message and error code stays
  exactly the library's.
- camelCase → snake_case keys: two regular expressions per key per message; the key
  conversion is now remembered (the library's own function converts each new key once).
- inspect.signature(handler) on every call: remembered per handler function.

`install()` patches the library in this process; the bridge calls it on import, the simulator
too. Nothing changes on the wire or in what is accepted.
"""

from __future__ import annotations

import contextlib
import inspect
import types
import weakref
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import fastjsonschema
import ocpp.charge_point
import ocpp.messages
from jsonschema import Draft4Validator

Check = Callable[[Any], bool]
DRAFT_4 = "http://json-schema.org/draft-04/schema#"


def _no_remote_refs(uri: str) -> Any:
    raise fastjsonschema.JsonSchemaDefinitionException(f"remote $ref {uri} not fetched")


def compile_schema(schema: Any) -> Check | None:
    """Return a function telling whether an instance is valid (False: ask jsonschema), or
    None when the schema cannot be compiled (jsonschema decides everything)."""
    if not isinstance(schema, dict):
        return None
    # The library validates every version's schemas with Draft 4 (where 1.0 is no integer).
    definition = {**schema, "$schema": DRAFT_4}
    try:
        validate = fastjsonschema.compile(
            definition,
            handlers={"http": _no_remote_refs, "https": _no_remote_refs},
            use_default=False,  # never change the payload
            use_formats=False,  # the library gives jsonschema no format checker
            detailed_exceptions=False,
        )
    except Exception:  # anything it cannot compile stays with jsonschema
        return None
    invalid = fastjsonschema.JsonSchemaException

    def check(instance: Any) -> bool:
        try:
            validate(instance)
        except invalid:
            return False
        except Exception:  # e.g. a Decimal where the compiled code expects a float
            return False
        return True

    return check


class FastValidator:
    """Draft4Validator with a compiled check in front: valid payloads never reach jsonschema."""

    def __init__(self, schema: Any, *args: Any, **kwargs: Any) -> None:
        self.slow = Draft4Validator(schema, *args, **kwargs)
        self.fast: Check | None = compile_schema(schema)

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
