"""The stream messages of DESIGN §2 (contract) and their flat Redis encoding.

Every message is a frozen Pydantic model with ``v`` (schema version) and ``ts``
(epoch milliseconds). :meth:`Message.to_fields` gives flat string fields for
``XADD``; :meth:`Message.from_fields` parses them back (bytes or str keys and
values) and is lossless: ``M.from_fields(m.to_fields()) == m``. Unknown fields
are ignored; a missing or malformed field raises :class:`MessageError` naming
the field and the reason.

Parsing is strict, because a consumed entry may come from anywhere: every key and
value must be UTF-8; integers are ASCII ``-?[0-9]+`` (no padding, no ``+``, no
non-ASCII digits, no ``-0``, no ``-0.0``); floats are finite ASCII decimals (no
``nan``/``inf``, no padding; ``-0.0`` reads as ``0.0``); booleans are exactly
``true`` or ``false``; JSON fields refuse ``NaN``/``Infinity``.
:func:`parse_count` is the same rule for a plain counter key (``state:open_orders``).
"""

from __future__ import annotations

import base64
import json
import re
import types
import typing
from collections.abc import Mapping
from typing import Any, ClassVar, Literal, Self, TypeAlias, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

SCHEMA_VERSION: typing.Final = "1"

Side: TypeAlias = Literal["BUY", "SELL"]
SignalSide: TypeAlias = Literal["BUY", "SELL", "HOLD"]
Decision: TypeAlias = Literal["EXECUTE", "BLOCKED"]
ExecStatus: TypeAlias = Literal["FILLED", "REJECTED"]
ExecMode: TypeAlias = Literal["paper", "testnet", "live"]
PositionEventKind: TypeAlias = Literal["OPENED", "CLOSED"]
CloseReason: TypeAlias = Literal[
    "none", "stop_loss", "take_profit", "time", "signal", "manual", "kill", "reconcile"
]

RawFields: TypeAlias = Mapping[bytes, bytes] | Mapping[str, str] | Mapping[bytes | str, bytes | str]


class MessageError(ValueError):
    """A stream entry that cannot be parsed: names the field and the reason."""

    def __init__(self, *, message_type: str, field: str, reason: str) -> None:
        self.message_type = message_type
        self.field = field
        self.reason = reason
        super().__init__(f"{message_type}: field {field!r}: {reason}")


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value


_INT_RE: typing.Final = re.compile(r"-?[0-9]{1,19}", re.ASCII)  # fits 64 bits; int() of 5k digits raises
_FLOAT_RE: typing.Final = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?", re.ASCII)
_COUNT_RE: typing.Final = re.compile(r"0|[1-9][0-9]{0,17}", re.ASCII)


class FieldError(ValueError):
    """One field's text is not a value of its type (the message says why)."""


def parse_int(text: str) -> int:
    """A strict decimal integer: ASCII digits with an optional leading ``-``; ``-0`` refused."""
    if _INT_RE.fullmatch(text) is None:
        raise FieldError(f"not a valid integer: ASCII digits only, no padding (got {_clip(text)!r})")
    value = int(text)
    if value == 0 and text.startswith("-"):
        raise FieldError("not a valid integer: negative zero (got '-0')")
    return value


def parse_float(text: str) -> float:
    """A strict finite decimal: ``1``, ``-2.5``, ``1e-05``; no nan/inf, padding, ``+`` or non-ASCII digits.

    ``-0.0`` reads as ``0.0`` (the same IEEE number; several writers format floats with ``repr``).
    """
    if len(text) > 64 or _FLOAT_RE.fullmatch(text) is None:
        raise FieldError(f"not a valid number: a finite ASCII decimal is required (got {_clip(text)!r})")
    value = float(text)
    if value != value or value in (float("inf"), float("-inf")):
        raise FieldError(f"not a valid number: not finite (got {_clip(text)!r})")
    return value + 0.0  # -0.0 is the same number as 0.0 (IEEE); normalised so it never leaks into signs


def parse_bool(text: str) -> bool:
    """Exactly ``true`` or ``false``."""
    if text == "true":
        return True
    if text == "false":
        return False
    raise FieldError(f"not a boolean: exactly 'true' or 'false' (got {_clip(text)!r})")


def parse_count(raw: bytes | str | None) -> int | None:
    """A non-negative counter stored as a string key (``state:open_orders``); None when unparseable.

    ASCII ``0`` or ``[1-9][0-9]*`` only: no sign, padding, leading zeros, non-ASCII digits or
    invalid UTF-8 — a value a writer of ours could not have produced is not trusted.
    """
    if raw is None:
        return None
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("ascii")
        except UnicodeDecodeError:
            return None
    return int(raw) if _COUNT_RE.fullmatch(raw) else None


def _clip(text: str, limit: int = 64) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def decode_strict(fields: RawFields, *, message_type: str = "message") -> dict[str, str]:
    """Stream fields as ``dict[str, str]``; a key or value that is not UTF-8 raises :class:`MessageError`."""
    out: dict[str, str] = {}
    for k, v in fields.items():
        try:
            key = k.decode("utf-8") if isinstance(k, bytes) else k
        except UnicodeDecodeError:
            raise MessageError(message_type=message_type, field=_text(k), reason="field name is not valid UTF-8") \
                from None
        try:
            out[key] = v.decode("utf-8") if isinstance(v, bytes) else v
        except UnicodeDecodeError as exc:
            raise MessageError(
                message_type=message_type, field=key, reason=f"not valid UTF-8 (byte {exc.start})"
            ) from None
    return out


def decode_raw(fields: RawFields) -> dict[str, str]:
    """Bytes-or-str stream fields as a plain ``dict[str, str]`` (a plain copy when already str)."""
    for k, v in fields.items():
        if type(k) is str and type(v) is str:
            return dict(fields)  # type: ignore[arg-type]
        break
    return {_text(k): _text(v) for k, v in fields.items()}


def _encode(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value + 0.0)  # -0.0 + 0.0 == 0.0: readers refuse negative zero
    if isinstance(value, (list, dict, tuple)):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return str(value)


def _scalar_kind(annotation: Any) -> str | None:
    """'int' | 'float' | 'bool' for a plain scalar annotation (bool before int: bool is an int)."""
    for kind, tp in (("bool", bool), ("int", int), ("float", float)):
        if annotation is tp:
            return kind
    return None


_SCALAR_PARSERS: typing.Final[dict[str, typing.Callable[[str], Any]]] = {
    "int": parse_int, "float": parse_float, "bool": parse_bool,
}


def _is_json_annotation(annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin in (list, dict, tuple):
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_is_json_annotation(a) for a in get_args(annotation))
    return annotation in (list, dict, tuple)


class Message(BaseModel):
    """Base of all stream messages."""

    model_config = ConfigDict(frozen=True, extra="ignore", allow_inf_nan=False)

    TYPE: ClassVar[str] = "message"
    _json_fields: ClassVar[frozenset[str]] = frozenset()
    _scalar_fields: ClassVar[dict[str, str]] = {}

    v: str = SCHEMA_VERSION
    ts: int = Field(ge=0, description="epoch milliseconds")

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls._json_fields = frozenset(
            name for name, info in cls.model_fields.items() if _is_json_annotation(info.annotation)
        )
        cls._scalar_fields = {
            name: kind for name, info in cls.model_fields.items()
            if (kind := _scalar_kind(info.annotation)) is not None
        }

    @field_validator("v")
    @classmethod
    def _known_version(cls, value: str) -> str:
        if value != SCHEMA_VERSION:
            raise ValueError(f"unsupported schema version {value!r} (this build reads {SCHEMA_VERSION!r})")
        return value

    def to_fields(self) -> dict[str, str]:
        """Flat string fields for ``XADD``."""
        return {name: _encode(getattr(self, name)) for name in type(self).model_fields}

    @classmethod
    def from_fields(cls, fields: RawFields) -> Self:
        """Parse flat stream fields; raise :class:`MessageError` on the first bad field."""
        data: dict[str, Any] = decode_strict(fields, message_type=cls.TYPE)
        for name, kind in cls._scalar_fields.items():
            if name in data:
                try:
                    data[name] = _SCALAR_PARSERS[kind](data[name])
                except FieldError as exc:
                    raise MessageError(message_type=cls.TYPE, field=name, reason=str(exc)) from None
        for name in cls._json_fields:
            if name in data:
                try:
                    data[name] = json.loads(data[name], parse_constant=_reject_constant)
                except (json.JSONDecodeError, ValueError, RecursionError) as exc:
                    msg = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc) or type(exc).__name__
                    raise MessageError(
                        message_type=cls.TYPE, field=name, reason=f"not valid JSON ({msg})"
                    ) from None
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"]) or "<message>"
            got = data.get(str(err["loc"][0])) if err["loc"] else None
            reason = err["msg"] if err["type"] == "missing" else f"{err['msg']} (got {got!r})"
            if err["type"] == "missing":
                reason = "required field missing"
            raise MessageError(message_type=cls.TYPE, field=loc, reason=reason) from None


class Signal(Message):
    """``stream:ai.signal``: one model opinion about one symbol at one bar close."""

    TYPE: ClassVar[str] = "ai.signal"
    signal_id: str = Field(min_length=1)
    symbol: str = Field(min_length=1)
    side: SignalSide
    confidence: float = Field(ge=0.0, le=1.0)
    model: str = Field(min_length=1, description="e.g. lgbm-<version> or fallback-trend")
    model_version: str
    price: float = Field(gt=0.0)
    atr: float = Field(ge=0.0, description="average true range in price units")
    regime: str = Field(description="market regime label, 'unknown' when not known")
    rl_gate_pass: bool
    win_atr: float = Field(
        0.0, ge=0.0, description="the model's out-of-sample mean win under the exits, in ATRs; 0 (or absent): "
        "unknown, the router uses its take-profit distance"
    )
    loss_atr: float = Field(
        0.0, ge=0.0, description="its out-of-sample mean loss under the exits, in ATRs; 0 (or absent): unknown, "
        "the router uses its stop-loss distance"
    )
    hold_s: float = Field(0.0, ge=0.0, description="its out-of-sample mean holding time, seconds; 0: unknown")


class TradeIntent(Message):
    """``stream:trade.intent``: a selected, sized intent from the router."""

    TYPE: ClassVar[str] = "trade.intent"
    intent_id: str = Field(min_length=1)
    signal_id: str
    symbol: str = Field(min_length=1)
    side: Side
    position_size_usd: float = Field(gt=0.0)
    leverage: float = Field(gt=0.0)
    entry_price: float = Field(gt=0.0)
    stop_loss: float = Field(ge=0.0)
    take_profit: float = Field(ge=0.0)
    confidence: float = Field(ge=0.0, le=1.0)
    score: float
    rank: int = Field(ge=0)
    size_boost: float = Field(gt=0.0)
    reduce_only: bool = False


class GateDecision(Message):
    """``stream:gate.decision``: EXECUTE or BLOCKED with the reason (DESIGN §2 reason strings)."""

    TYPE: ClassVar[str] = "gate.decision"
    decision_id: str = Field(min_length=1)
    intent_id: str = Field(min_length=1)
    symbol: str = Field(min_length=1)
    side: Side
    decision: Decision
    reason: str = Field(min_length=1)
    kill_score: float = Field(ge=0.0, le=1.0)


class ExecutionResult(Message):
    """``stream:execution.result``: a fill or a rejection."""

    TYPE: ClassVar[str] = "execution.result"
    order_id: str
    intent_id: str = Field(min_length=1)
    decision_id: str
    symbol: str = Field(min_length=1)
    side: Side
    qty: float = Field(ge=0.0)
    price: float = Field(ge=0.0)
    notional_usd: float = Field(ge=0.0)
    slippage_bps: float
    fee_usd: float
    status: ExecStatus
    reason: str
    mode: ExecMode


class PositionEvent(Message):
    """``stream:position.event``: a position OPENED or CLOSED (with realised pnl)."""

    TYPE: ClassVar[str] = "position.event"
    event: PositionEventKind
    symbol: str = Field(min_length=1)
    side: Side
    qty: float = Field(ge=0.0)
    entry_price: float = Field(ge=0.0)
    exit_price: float = Field(ge=0.0)
    pnl_usd: float
    close_reason: CloseReason
    order_id: str
    funding_usd: float = 0.0  # CLOSED: perpetual funding paid while open (< 0 received), already in pnl_usd


class PolicyAudit(Message):
    """``stream:policy.audit``: one entry per universe publication."""

    TYPE: ClassVar[str] = "policy.audit"
    version: str
    generator: str
    features_window: str
    universe_hash: str
    universe_count: int = Field(ge=0)
    symbols: list[str]
    valid_until: int = Field(ge=0, description="epoch ms")
    funnel: dict[str, Any]


class DeadLetter(Message):
    """``stream:deadletter``: an entry that failed validation or exhausted its deliveries."""

    TYPE: ClassVar[str] = "deadletter"
    reason: str
    source_stream: str
    source_id: str = ""
    group: str = ""
    raw: dict[str, str]
    raw_base64: list[str] = Field(
        default_factory=list,
        description="names (as in raw) whose value is base64 of the raw bytes (not UTF-8); a field name "
        "that is not UTF-8 itself appears as 'base64:<base64 of the name>'",
    )
    code: str = Field(default="", description="reason code: malformed | non_utf8 | max_deliveries_exceeded | ...")
    consumer: str = ""


def raw_for_deadletter(fields: RawFields) -> tuple[dict[str, str], list[str]]:
    """Raw stream fields as text for :class:`DeadLetter`: UTF-8 kept as is, anything else base64."""
    raw: dict[str, str] = {}
    encoded: list[str] = []
    for k, v in fields.items():
        kb = k if isinstance(k, bytes) else k.encode("utf-8", errors="surrogateescape")
        vb = v if isinstance(v, bytes) else v.encode("utf-8", errors="surrogateescape")
        try:
            key = kb.decode("utf-8")
        except UnicodeDecodeError:
            key = "base64:" + base64.b64encode(kb).decode("ascii")
        try:
            raw[key] = vb.decode("utf-8")
        except UnicodeDecodeError:
            raw[key] = base64.b64encode(vb).decode("ascii")
            encoded.append(key)
    return raw, encoded


class RouterFate(Message):
    """``stream:router.drop``: what the router did with a signal that did not become an intent."""

    TYPE: ClassVar[str] = "router.drop"
    signal_id: str
    symbol: str
    side: SignalSide
    confidence: float
    reason: str


class ReconcileEvent(Message):
    """``stream:reconcile.event``: a gap between the exchange's view and Redis state, and what was done."""

    TYPE: ClassVar[str] = "reconcile.event"
    symbol: str
    kind: str = Field(description="adopted_unknown_position | dropped_missing_position | open_orders_corrected")
    detail: str


MESSAGE_TYPES: typing.Final[dict[str, type[Message]]] = {
    m.TYPE: m
    for m in (
        Signal,
        TradeIntent,
        GateDecision,
        ExecutionResult,
        PositionEvent,
        PolicyAudit,
        DeadLetter,
        RouterFate,
        ReconcileEvent,
    )
}
