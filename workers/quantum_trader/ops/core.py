"""Pure parts of the operations commands: the audit record, flatten plans, position and trade rows.

No I/O and no clock reads: the shell (:mod:`quantum_trader.ops.service`) reads Redis and
passes ``now_ms`` in. Every operation — from ``qt`` or the REST API, done or refused —
leaves one :class:`OpsAudit` entry on ``stream:ops.audit`` saying who did what and why.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Literal, TypeAlias

from pydantic import Field

from quantum_trader.core.messages import ExecutionResult, Message, PositionEvent, Side, TradeIntent
from quantum_trader.ledger.positions import Position

Action: TypeAlias = Literal["pause", "resume", "flatten", "positions", "trades", "risk_reset", "risk", "audit"]
Outcome: TypeAlias = Literal["ok", "refused"]

FLAG_OWNER: Final = "qt"  # control:paused written by qt carries {"by": "qt", ...}; the operator leaves it alone
FLATTEN_OVERSIZE: Final = 1.02  # reduce-only size a little above the position so the executor closes it whole
FLATTEN_SIGNAL_ID: Final = "ops"

# Refusal reason codes (the audit entry and the API carry them; the CLI prints them).
R_NOT_PAUSED: Final = "not_paused"
R_ALREADY_PAUSED: Final = "already_paused"
R_PAUSED_BY_SPEC: Final = "paused_by_spec"
R_PAUSED_BY_OPERATOR: Final = "paused_by_operator"
R_NO_POSITION: Final = "no_position"
R_NO_PRICE: Final = "no_price"
R_BAD_SYMBOL: Final = "bad_symbol"


class OpsAudit(Message):
    """``stream:ops.audit``: one operation on a profile, done or refused."""

    TYPE: ClassVar[str] = "ops.audit"
    action: str = Field(min_length=1)
    outcome: Literal["ok", "refused"]
    reason: str = Field(description="reason code of a refusal; 'none' when done")
    actor: str = Field(min_length=1, description="who: user@host for qt, api:<client address> for the API")
    via: Literal["cli", "api"]
    target: str = Field(default="", description="the symbol, when the action has one")
    detail: dict[str, Any] = Field(default_factory=dict)


def audit(
    action: Action, *, outcome: Outcome, actor: str, via: Literal["cli", "api"], now_ms: int,
    reason: str = "none", target: str = "", detail: Mapping[str, Any] | None = None,
) -> OpsAudit:
    return OpsAudit(action=action, outcome=outcome, reason=reason, actor=actor, via=via, target=target,
                    detail=dict(detail or {}), ts=now_ms)


@dataclass(frozen=True, slots=True)
class Result:
    """What an operation did: shown by ``qt``, returned by the API, recorded in the audit stream."""

    action: Action
    ok: bool
    message: str
    reason: str = "none"
    data: Mapping[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action, "ok": self.ok, "reason": self.reason, "message": self.message,
                "data": dict(self.data or {})}


# -- pause / resume ------------------------------------------------------------------------------


def pause_flag(*, actor: str, reason: str, now_ms: int) -> str:
    """The ``control:paused`` value ``qt pause`` writes."""
    return json.dumps({"by": FLAG_OWNER, "actor": actor, "reason": reason, "ts": now_ms}, separators=(",", ":"))


def flag_owner(raw: str | None) -> str:
    """Who set a control flag: ``qt``, ``quantum-operator``, … or ``unknown`` (not JSON)."""
    if raw is None:
        return ""
    try:
        doc = json.loads(raw)
    except ValueError:
        return "unknown"
    return str(doc.get("by", "unknown")) if isinstance(doc, dict) else "unknown"


def plan_resume(*, spec_paused: bool, flag: str | None) -> tuple[bool, str, str]:
    """(may resume, reason code, message). A pause the operator set for ``spec.paused`` is the profile's."""
    if spec_paused:
        return False, R_PAUSED_BY_SPEC, "the profile sets spec.paused: true; edit the TradingProfile to resume"
    if flag is None:
        return False, R_NOT_PAUSED, "not paused"
    owner = flag_owner(flag)
    if owner not in (FLAG_OWNER, "unknown"):
        return False, R_PAUSED_BY_OPERATOR, (
            f"paused by {owner} (spec.paused or a deletion in progress); change the TradingProfile instead")
    return True, "none", "resumed: the router publishes again and the gate stops blocking 'paused'"


# -- flatten -------------------------------------------------------------------------------------


def flatten_intents(
    positions: Mapping[str, Position], marks: Mapping[str, float], *, now_ms: int, symbol: str | None = None,
) -> tuple[list[TradeIntent], dict[str, str]]:
    """Reduce-only intents that close ``symbol`` (or every open position), and the symbols refused with why.

    They take the normal path — gate (reduce-only intents are never blocked by risk rules) and
    executor (exactly once per intent id) — and close with ``close_reason`` of a reduce-only exit.
    """
    chosen = [symbol] if symbol is not None else sorted(positions)
    intents: list[TradeIntent] = []
    refused: dict[str, str] = {}
    for sym in chosen:
        pos = positions.get(sym)
        if pos is None:
            refused[sym] = R_NO_POSITION
            continue
        mark = marks.get(sym) or pos.entry_price
        if not mark or mark <= 0:
            refused[sym] = R_NO_PRICE
            continue
        leverage = pos.leverage if pos.leverage > 0 else 1.0
        side: Side = "SELL" if pos.side == "BUY" else "BUY"
        intents.append(TradeIntent(
            intent_id=f"ops-flatten-{sym}-{now_ms}", signal_id=FLATTEN_SIGNAL_ID, symbol=sym, side=side,
            position_size_usd=pos.qty * mark * FLATTEN_OVERSIZE / leverage, leverage=leverage, entry_price=mark,
            stop_loss=0.0, take_profit=0.0, confidence=1.0, score=0.0, rank=0, size_boost=1.0, reduce_only=True,
            ts=now_ms,
        ))
    return intents, refused


# -- positions -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PositionRow:
    symbol: str
    side: Side
    qty: float
    entry_price: float
    mark_price: float | None  # None: no fresh snapshot
    unrealized_pnl_usd: float | None
    notional_usd: float
    stop_loss: float
    take_profit: float
    opened_ts: int
    age_ms: int

    def to_json(self) -> dict[str, Any]:
        return {"symbol": self.symbol, "side": self.side, "qty": self.qty, "entry_price": self.entry_price,
                "mark_price": self.mark_price, "unrealized_pnl_usd": self.unrealized_pnl_usd,
                "notional_usd": self.notional_usd, "stop_loss": self.stop_loss, "take_profit": self.take_profit,
                "opened_ts": self.opened_ts, "age_ms": self.age_ms}


def position_rows(
    positions: Mapping[str, Position], marks: Mapping[str, float], *, ages_ms: Mapping[str, int],
) -> list[PositionRow]:
    """Open positions with unrealised PnL at the snapshot's mark (None when there is no mark)."""
    rows = []
    for sym in sorted(positions):
        p = positions[sym]
        mark = marks.get(sym)
        upnl = (mark - p.entry_price) * p.qty * p.direction if mark and mark > 0 else None
        rows.append(PositionRow(symbol=sym, side=p.side, qty=p.qty, entry_price=p.entry_price,
                                mark_price=mark if mark and mark > 0 else None, unrealized_pnl_usd=upnl,
                                notional_usd=p.notional_usd, stop_loss=p.stop_loss, take_profit=p.take_profit,
                                opened_ts=p.opened_ts, age_ms=ages_ms.get(sym, 0)))
    return rows


# -- trades --------------------------------------------------------------------------------------

TRADE_COLUMNS: Final = ("ts", "symbol", "side", "qty", "price", "notional_usd", "fee_usd", "event",
                        "realized_pnl_usd", "close_reason", "mode", "order_id", "intent_id")


@dataclass(frozen=True, slots=True)
class Trade:
    """One position event — OPENED, or CLOSED with realised PnL — with the fill that caused it when there is one
    (a stop loss or take profit closed by the executor's monitor has no ``execution.result``)."""

    ts: int
    symbol: str
    side: Side  # the side of this trade: the position's side when OPENED, the opposite when CLOSED
    qty: float
    price: float
    notional_usd: float
    fee_usd: float | None  # None: no fill record (the fee is inside the realised PnL)
    event: str
    realized_pnl_usd: float | None
    close_reason: str
    mode: str
    order_id: str
    intent_id: str

    def to_json(self) -> dict[str, Any]:
        return {c: getattr(self, c) for c in TRADE_COLUMNS}


def _opposite(side: Side) -> Side:
    return "SELL" if side == "BUY" else "BUY"


def trades(events: Iterable[PositionEvent], fills: Iterable[ExecutionResult], *, mode: str) -> list[Trade]:
    """Position events (newest first, as given) with their fills: an opening fill shares the position's
    ``order_id``; a closing fill has the same symbol and instant and the opposite side."""
    filled = [f for f in fills if f.status == "FILLED"]
    by_order = {f.order_id: f for f in filled}
    by_close = {(f.symbol, f.ts, f.side): f for f in filled}
    out = []
    for e in events:
        if e.event == "OPENED":
            f = by_order.get(e.order_id)
            side, price = e.side, e.entry_price
        else:
            side, price = _opposite(e.side), e.exit_price
            f = by_close.get((e.symbol, e.ts, side))
        out.append(Trade(ts=e.ts, symbol=e.symbol, side=side, qty=e.qty, price=price, notional_usd=e.qty * price,
                         fee_usd=f.fee_usd if f is not None else None, event=e.event,
                         realized_pnl_usd=e.pnl_usd if e.event == "CLOSED" else None,
                         close_reason=e.close_reason if e.event == "CLOSED" else "",
                         mode=f.mode if f is not None else mode, order_id=f.order_id if f is not None else e.order_id,
                         intent_id=f.intent_id if f is not None else ""))
    return out


def trades_csv(rows: Sequence[Trade]) -> str:
    """RFC 4180 CSV with a header; times as ISO 8601 UTC plus the raw epoch ms."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["time_utc", *TRADE_COLUMNS])
    for t in rows:
        iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t.ts / 1000)) + f".{t.ts % 1000:03d}Z"
        writer.writerow([iso, *("" if getattr(t, c) is None else getattr(t, c) for c in TRADE_COLUMNS)])
    return buf.getvalue()


# -- risk reset ----------------------------------------------------------------------------------

RISK_RESET_FIELDS: Final = ("equity_peak", "loss_streak", "error_rate")
