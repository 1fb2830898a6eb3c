"""The stream messages of DESIGN §2 (contract) and their flat Redis encoding.

Every message is a frozen Pydantic model with ``v`` (schema version) and ``ts``
(epoch milliseconds). :meth:`Message.to_fields` gives flat string fields for
``XADD``; :meth:`Message.from_fields` parses them back (bytes or str keys and
values) and is lossless: ``M.from_fields(m.to_fields()) == m``. Unknown fields
are ignored; a missing or malformed field raises :class:`MessageError` naming
the field and the reason.
"""

from __future__ import annotations

import json
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
CloseReason: TypeAlias = Literal["none", "stop_loss", "take_profit", "signal", "manual", "kill", "reconcile"]

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
        return repr(value)
    if isinstance(value, (list, dict, tuple)):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return str(value)


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

    v: str = SCHEMA_VERSION
    ts: int = Field(ge=0, description="epoch milliseconds")

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls._json_fields = frozenset(
            name for name, info in cls.model_fields.items() if _is_json_annotation(info.annotation)
        )

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
        data: dict[str, Any] = decode_raw(fields)
        for name in cls._json_fields:
            if name in data:
                try:
                    data[name] = json.loads(data[name])
                except json.JSONDecodeError as exc:
                    raise MessageError(
                        message_type=cls.TYPE, field=name, reason=f"not valid JSON ({exc.msg})"
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
