"""What every charger connection does whatever its OCPP version: framing, logging, limits.

`SessionMixin` sits in front of the `ocpp` library's ChargePoint and adds what the library leaves
to its users: every frame in and out goes to the message log; frames that are not OCPP-J get
the CallError the spec asks for (the library only logs them); an action nobody knows gets
NotImplemented and a known one we do not handle NotSupported; a charger that has not been
accepted may only boot and heartbeat; a flooding charger is slowed down on its own socket;
binary frames close the connection with 1003.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import ocpp.messages
from ocpp.exceptions import (
    NotImplementedError as OcppNotImplemented,
)
from ocpp.exceptions import (
    NotSupportedError,
    OCPPError,
    SecurityError,
)
from ocpp.messages import CallError, MessageType, unpack

from ocpp_bridge import speedups
from ocpp_bridge.records import Charger

if TYPE_CHECKING:
    from ocpp_bridge.server import Bridge

log = logging.getLogger("ocpp_bridge.session")
# Quiet: the library logs every frame at INFO, which costs more than handling it.
logging.getLogger("ocpp").setLevel(logging.WARNING)
# Validate schemas in the event loop: the library's default hands each check to a thread, which
# under the GIL buys no parallelism and costs two thread hops per message.
ocpp.messages.ASYNC_VALIDATION = False
# Compiled schema checks, remembered key conversions and handler signatures (same answers).
speedups.install()

# OCPP 1.6 spells two error codes its own way.
_CODES_16 = {
    "FormatViolation": "FormationViolation",
    "OccurrenceConstraintViolation": "OccurenceConstraintViolation",
}
ALLOWED_BEFORE_ACCEPTED = frozenset({"BootNotification", "Heartbeat"})


class TokenBucket:
    """Allow `rate` messages a second with bursts of `burst`; wait() sleeps when over."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens = burst
        self.stamp = time.monotonic()
        self.throttled = 0

    async def wait(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            self.throttled += 1
            await asyncio.sleep((1 - self.tokens) / self.rate)
            self.tokens = 1
            self.stamp = time.monotonic()
        self.tokens -= 1


class SessionMixin:
    """Framing, logging, gating and limits for a connected charger (mixed into ChargePoint)."""

    # Provided by the ocpp library's ChargePoint.
    _connection: Any
    _ocpp_version: str
    _response_queue: asyncio.Queue[Any]
    route_map: dict[str, dict[str, Any]]
    _handle_call: Any

    def setup(self, bridge: Bridge, charger: Charger) -> None:
        """Attach the bridge and the charger record (called right after construction)."""
        self.bridge = bridge
        self.charger = charger
        self.store = bridge.store
        self.limiter = TokenBucket(bridge.config.rate_limit, bridge.config.rate_burst)
        self.last_frame = time.monotonic()
        # When a committed job last set the charger's last_seen (connect, boot, heartbeat): the
        # presence touch skips chargers marked alive during its interval.
        self.seen_at = 0.0
        self._current_action: str | None = None
        self.set_lenient(charger.lenient)

    def set_lenient(self, lenient: bool) -> None:
        """Skip schema validation of incoming calls for a model known to break the schema."""
        self.charger.lenient = lenient
        for handlers in self.route_map.values():
            handlers["_skip_schema_validation"] = lenient

    async def start(self) -> None:
        """Read frames until the socket closes, one message at a time, as OCPP-J requires."""
        while True:
            frame = await self._connection.recv()
            self.last_frame = time.monotonic()
            if isinstance(frame, bytes):
                self._log("in", None, None, None, json.dumps(frame.decode("latin-1")[:1000]))
                await self._connection.close(1003, "OCPP-J frames are text")
                return
            await self.limiter.wait()
            await self.route_message(frame)

    async def route_message(self, raw_msg: str) -> None:
        """Log the frame, then answer it (or hand a response to the waiting call)."""
        raw_msg = _without_nul(raw_msg)
        try:
            msg = unpack(raw_msg)
        except OCPPError as error:
            message_id = _guess_message_id(raw_msg)
            self._log("in", None, message_id, None, json.dumps(raw_msg[:10_000]))
            await self._send(CallError(message_id or "-1", *_error_fields(error)).to_json())
            return
        if msg.message_type_id == MessageType.CallError:
            self._log(
                "in", 4, msg.unique_id, None, _dumps(msg.error_details), msg.error_code,
                msg.error_description,
            )  # fmt: skip
        else:
            action = getattr(msg, "action", None)
            self._log("in", msg.message_type_id, msg.unique_id, action, _dumps(msg.payload))
        if msg.message_type_id != MessageType.Call:
            self._response_queue.put_nowait(msg)
            return
        self._current_action = msg.action
        try:
            if msg.action not in self.route_map:
                raise _unknown_action_error(msg.action, self._ocpp_version)
            if (
                self.charger.registration != "accepted"
                and msg.action not in ALLOWED_BEFORE_ACCEPTED
            ):
                raise SecurityError(
                    description=f"charger is {self.charger.registration}; boot first"
                )
            await self._handle_call(msg)
        except OCPPError as error:
            await self._send(msg.create_call_error(error).to_json())
        finally:
            self._current_action = None

    async def _send(self, message: str) -> None:
        """Send a frame (with OCPP 1.6's spelling of error codes) and log it."""
        frame = json.loads(message)
        kind = frame[0]
        if kind == MessageType.CallError:
            if self._ocpp_version == "1.6" and frame[2] in _CODES_16:
                frame[2] = _CODES_16[frame[2]]
                message = json.dumps(frame, separators=(",", ":"))
            self._log(
                "out", 4, frame[1], self._current_action, _dumps(frame[4]), frame[2], frame[3]
            )
        elif kind == MessageType.Call:
            self._log("out", 2, frame[1], frame[2], _dumps(frame[3]))
        else:
            self._log("out", 3, frame[1], self._current_action, _dumps(frame[2]))
        await self._connection.send(message)

    def _log(
        self,
        direction: str,
        message_type: int | None,
        message_id: Any,
        action: str | None,
        payload: str,
        error_code: str | None = None,
        error_description: str | None = None,
    ) -> None:
        self.store.log(
            (
                datetime.now(UTC),
                self.charger.tenant_id,
                self.charger.id,
                direction,
                message_type,
                str(message_id)[:64] if message_id is not None else None,
                action[:60] if isinstance(action, str) else None,
                _without_nul(payload),
                error_code[:40] if isinstance(error_code, str) else None,
                error_description,
            )
        )


def _without_nul(text: str) -> str:
    """Return JSON text with each escaped U+0000 made U+FFFD.

    PostgreSQL's jsonb and text cannot hold U+0000: one such payload would fail its message's
    records and its whole batch of log rows. The escapes have the same length and shape, so the
    JSON stays valid.
    """
    return text.replace("\\u0000", "\\ufffd") if "\\u0000" in text else text


def _dumps(payload: Any) -> str:
    return json.dumps(payload, separators=(",", ":"), default=str)


def _guess_message_id(raw: str) -> str | None:
    """Return the message id of a frame that is JSON but not valid OCPP-J, if it has one."""
    try:
        frame = json.loads(raw)
    except (ValueError, TypeError):
        return None
    if isinstance(frame, list) and len(frame) > 1 and isinstance(frame[1], str):
        return frame[1][:36]
    return None


def _error_fields(error: OCPPError) -> tuple[str, str, dict[str, Any]]:
    details = {k: v for k, v in (error.details or {}).items() if k != "ocpp_message"}
    return error.code, error.description, json.loads(_dumps(details))


def _unknown_action_error(action: str, version: str) -> OCPPError:
    """NotImplemented for an action the protocol does not know, NotSupported for one we skip."""
    if version == "1.6":
        from ocpp.v16.enums import Action
    else:
        from ocpp.v201.enums import Action
    try:
        Action(action)
    except ValueError:
        return OcppNotImplemented(description=f"{action} is not an OCPP {version} action")
    return NotSupportedError(description=f"{action} is not supported by this central system")
