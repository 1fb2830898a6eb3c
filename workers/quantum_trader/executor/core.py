"""The executor's pure core: sizing and rounding, paper fills, position transitions, SL/TP/time exits.

No I/O and no clock reads. The shell reads state, calls :func:`plan_execution`,
hands the resulting :class:`~quantum_trader.executor.venue.VenueOrder` to its
venue, and turns the fill into a :class:`Transition` with :func:`apply_fill`,
which one Lua script writes atomically (see ``scripts.py``).

Conventions:
- one position per symbol (one-way mode). A non-reduce-only intent on a symbol
  with an open position is rejected ``position_exists``.
- a reduce-only intent's ``side`` is the order side (SELL reduces a long), as on
  the exchange; it closes ``min(intent qty, position qty)`` and closes the whole
  position when the rest would be below min qty / min notional.
- qty = ``position_size_usd × leverage / price`` rounded DOWN to the step size; below ``min_qty``
  or ``min_notional`` it is raised to the smallest step multiple the exchange accepts when that
  notional fits :class:`SizeLimits` (``executor.maxPositionUsd`` and the room left under
  ``gate.maxExposureUsd``), else REJECTED ``below_min_notional:need_usd=…,max_usd=…``.
- liquidation at entry: with isolated margin at the intent's leverage L and maintenance margin
  rate m, a long is liquidated at ``price × (1 − 1/L + m)``, a short at ``price × (1 + 1/L − m)``;
  a stop at or beyond that price → REJECTED ``liquidation_before_stop:liq=…,stop=…,leverage=…``.
- paper slippage is adverse, in [0, ``maxSlippageBps``], deterministic from a key
  (the client order id); fee = notional × ``feeBps``.
- realised PnL = (exit − entry) · qty · dir − entry fee share − exit fee − funding share (the
  perpetual funding charged on the open position at each settlement, :func:`accrue_funding`).
- exits: stop loss, take profit (the mark crossed a level), then time (the position reached its
  ``expires_ts``: opened + the label horizon, ``ExecutionLimits.time_exit_ms``), so positions end
  the way the training labels assume.
- a held position and a newer signal on its symbol (the router's verdict in ``state:held_signals``,
  :func:`held_outcome`): ``renew`` gives the position the signal's stop loss, take profit and time
  exit (signal time + horizon) without a trade; ``close`` closes it at the mark (``close_reason=signal``).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Final, Literal

from quantum_trader.core.messages import (
    CloseReason,
    ExecMode,
    ExecutionResult,
    PositionEvent,
    Side,
    TradeIntent,
)
from quantum_trader.executor.venue import VenueFill, VenueOrder
from quantum_trader.ledger.held import HeldSignal
from quantum_trader.ledger.positions import Position
from quantum_trader.market.base import FundingRate, Market

REJECT_NO_NEW_POSITIONS: Final = "no_new_positions"
REJECT_UNKNOWN_SYMBOL: Final = "unknown_symbol"
REJECT_NO_PRICE: Final = "no_price"
REJECT_STALE_PRICE: Final = "stale_price"
REJECT_POSITION_EXISTS: Final = "position_exists"
REJECT_NO_POSITION: Final = "no_position"
REJECT_REDUCE_SIDE: Final = "reduce_only_side_mismatch"
REJECT_BELOW_MIN_NOTIONAL: Final = "below_min_notional"  # + ":need_usd=…,max_usd=…"
REJECT_LIQUIDATION: Final = "liquidation_before_stop"  # + ":liq=…,stop=…,leverage=…"
REJECT_MAX_QTY: Final = "max_qty"
VENUE_MIN_NOTIONAL: Final = "min_notional"  # an exchange's own refusal of a too-small order: sizing, not an error

# Rejections decided by policy/sizing before any venue call: not execution errors (kill score).
POLICY_REJECTIONS: Final = frozenset(
    {
        REJECT_NO_NEW_POSITIONS,
        REJECT_UNKNOWN_SYMBOL,
        REJECT_NO_PRICE,
        REJECT_STALE_PRICE,
        REJECT_POSITION_EXISTS,
        REJECT_NO_POSITION,
        REJECT_REDUCE_SIDE,
        REJECT_BELOW_MIN_NOTIONAL,
        REJECT_LIQUIDATION,
        REJECT_MAX_QTY,
        VENUE_MIN_NOTIONAL,
    }
)
#: every reason code :func:`plan_execution` can reject with (the part before ``:``), in check order
REASONS: Final = (
    REJECT_NO_NEW_POSITIONS, REJECT_UNKNOWN_SYMBOL, REJECT_NO_PRICE, REJECT_STALE_PRICE, REJECT_NO_POSITION,
    REJECT_REDUCE_SIDE, REJECT_POSITION_EXISTS, REJECT_LIQUIDATION, REJECT_BELOW_MIN_NOTIONAL, REJECT_MAX_QTY,
)

_EPS: Final = 1e-9


@dataclass(frozen=True, slots=True)
class Filters:
    tick_size: float
    step_size: float
    min_notional: float
    min_qty: float
    max_qty: float

    @classmethod
    def from_market(cls, m: Market) -> Filters:
        return cls(m.tick_size, m.step_size, m.min_notional, m.min_qty, m.max_qty)


def filters_by_symbol(markets: list[Market]) -> dict[str, Filters]:
    return {m.symbol: Filters.from_market(m) for m in markets}


def _decimals(step: float) -> int:
    if step <= 0:
        return 12
    return max(0, min(12, -math.floor(math.log10(step) + _EPS)))


def floor_to_step(value: float, step: float) -> float:
    """Round DOWN to a multiple of ``step`` (tolerant of float noise like 0.3/0.1)."""
    if step <= 0:
        return value
    n = math.floor(value / step + _EPS)
    return round(n * step, _decimals(step) + 2)


def ceil_to_step(value: float, step: float) -> float:
    """Round UP to a multiple of ``step`` (tolerant of float noise)."""
    if step <= 0:
        return value
    n = math.ceil(value / step - _EPS)
    return round(n * step, _decimals(step) + 2)


def min_order_qty(filters: Filters, price: float) -> float:
    """The smallest quantity on the step grid the exchange accepts at ``price`` (min qty and min notional)."""
    return ceil_to_step(max(filters.min_qty, filters.min_notional / price), filters.step_size)


def liquidation_price(*, side: Side, price: float, leverage: float, maintenance_margin_rate: float) -> float:
    """Isolated-margin liquidation price of a position opened at ``price``: the margin (notional / L)
    is gone down to the maintenance margin (m × notional). Fees and funding are ignored."""
    lev = max(leverage, 1e-9)
    if side == "BUY":
        return max(0.0, price * (1.0 - 1.0 / lev + maintenance_margin_rate))
    return price * (1.0 + 1.0 / lev - maintenance_margin_rate)


def round_to_tick(price: float, tick: float, *, direction: Literal["down", "up", "nearest"] = "nearest") -> float:
    if tick <= 0:
        return price
    x = price / tick
    n = math.floor(x + _EPS) if direction == "down" else math.ceil(x - _EPS) if direction == "up" else round(x)
    return round(n * tick, _decimals(tick) + 2)


def paper_order_id(client_order_id: str) -> str:
    """``PAPER-<12 hex>``, deterministic from the client order id (= intent id)."""
    return "PAPER-" + hashlib.sha256(client_order_id.encode("utf-8")).hexdigest()[:12].upper()


def paper_slippage_bps(key: str, max_slippage_bps: float) -> float:
    """Adverse slippage in [0, max], uniform over the hash of ``key`` (deterministic)."""
    u = int.from_bytes(hashlib.sha256(("slip:" + key).encode("utf-8")).digest()[:8], "big") / float(2**64)
    return u * max_slippage_bps


def paper_fill_price(
    *, side: Side, reference: float, slippage_bps: float, tick: float, max_slippage_bps: float
) -> tuple[float, float]:
    """(fill price, realised slippage bps). Adverse move, rounded to the tick towards the
    reference; the tick rounding is dropped when it would take |slippage| over the bound."""
    direction = 1 if side == "BUY" else -1
    raw = reference * (1.0 + direction * slippage_bps / 10_000.0)
    price = round_to_tick(raw, tick, direction="down" if side == "BUY" else "up")
    slip = (price / reference - 1.0) * direction * 10_000.0
    if abs(slip) > max_slippage_bps + _EPS or price <= 0:
        price = raw
        slip = slippage_bps
    return price, slip


def fee_usd(notional: float, fee_bps: float) -> float:
    return notional * fee_bps / 10_000.0


def half_spread(*, mid: float, spread_bps: float, tick: float) -> float:
    """Half the quoted spread around ``mid`` (price units): ``spread_bps`` of it, at least half a tick."""
    return max(mid * spread_bps / 2e4, tick / 2.0) if spread_bps > 0 else 0.0


def quote(side: Side, *, mid: float, spread_bps: float, tick: float, bid: float = 0.0, ask: float = 0.0) -> float:
    """The price a taker crosses to: the ask (BUY) or bid (SELL) when known, else ``mid`` ± half the spread."""
    if 0 < bid <= ask:
        return ask if side == "BUY" else bid
    h = half_spread(mid=mid, spread_bps=spread_bps, tick=tick)
    return mid + h if side == "BUY" else mid - h


def paper_fill(
    order: VenueOrder, *, spread_bps: float, tick: float, max_slippage_bps: float, fee_bps: float
) -> VenueFill:
    """The paper venue's fill: the half spread crossed (:func:`quote`), then the adverse slippage
    (deterministic from the client order id) and tick rounding, then the taker fee on the notional."""
    quoted = quote(order.side, mid=order.reference_price, spread_bps=spread_bps, tick=tick, bid=order.bid,
                   ask=order.ask)
    slip = paper_slippage_bps(order.client_order_id, max_slippage_bps)
    price, _ = paper_fill_price(side=order.side, reference=quoted, slippage_bps=slip, tick=tick,
                                max_slippage_bps=max_slippage_bps)
    return VenueFill(status="FILLED", order_id=paper_order_id(order.client_order_id), qty=order.qty, price=price,
                     fee_usd=fee_usd(order.qty * price, fee_bps))


# -- planning ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Plan:
    """What to do with one EXECUTE decision: an order for the venue, or a rejection."""

    kind: Literal["open", "reduce", "reject"]
    reason: str = "none"
    order: VenueOrder | None = None
    close_all: bool = False


def _reject(reason: str) -> Plan:
    return Plan(kind="reject", reason=reason)


@dataclass(frozen=True, slots=True)
class SizeLimits:
    """What an opening order may grow to when raised to the exchange minimum, and the liquidation assumption."""

    max_position_usd: float  # executor.maxPositionUsd: notional cap of a raised position
    exposure_room_usd: float  # gate.maxExposureUsd − open gross notional (inf-safe: ≤ 0 → no raise)
    maintenance_margin_rate: float  # executor.maintenanceMarginRate

    @property
    def max_raise_usd(self) -> float:
        return max(0.0, min(self.max_position_usd, self.exposure_room_usd))


def reason_below_min_notional(need_usd: float, max_usd: float) -> str:
    return f"{REJECT_BELOW_MIN_NOTIONAL}:need_usd={need_usd:.2f},max_usd={max_usd:.2f}"


def reason_liquidation(liq: float, stop: float, leverage: float) -> str:
    return f"{REJECT_LIQUIDATION}:liq={liq:.6g},stop={stop:.6g},leverage={leverage:g}"


def liquidation_reason(intent: TradeIntent, *, price: float, maintenance_margin_rate: float) -> str | None:
    """``liquidation_before_stop:…`` when the intent's stop lies at or beyond its liquidation price."""
    if intent.stop_loss <= 0:
        return None
    liq = liquidation_price(side=intent.side, price=price, leverage=intent.leverage,
                            maintenance_margin_rate=maintenance_margin_rate)
    beyond = intent.stop_loss <= liq if intent.side == "BUY" else intent.stop_loss >= liq
    return reason_liquidation(liq, intent.stop_loss, intent.leverage) if beyond else None


def opening_qty(qty: float, *, filters: Filters, price: float, sizing: SizeLimits) -> float | str:
    """``qty`` when the exchange accepts it; else the exchange minimum when it fits ``sizing``;
    else the ``below_min_notional:…`` reason."""
    if qty > 0 and qty >= filters.min_qty - _EPS and qty * price >= filters.min_notional - _EPS:
        return qty
    need = min_order_qty(filters, price)
    if need * price > sizing.max_raise_usd + _EPS:
        return reason_below_min_notional(need * price, sizing.max_raise_usd)
    return need


def _price_reason(
    intent: TradeIntent, *, mark_price: float | None, mark_ts_ms: int | None, filters: Filters | None,
    no_new_positions: bool, max_price_age_ms: float, now_ms: int,
) -> str | None:
    """The first check that refuses the decision before any sizing, or None."""
    if not intent.reduce_only and no_new_positions:
        return REJECT_NO_NEW_POSITIONS
    if filters is None:
        return REJECT_UNKNOWN_SYMBOL
    if mark_price is None or mark_price <= 0 or mark_ts_ms is None:
        return REJECT_NO_PRICE
    if now_ms - mark_ts_ms > max_price_age_ms:
        return REJECT_STALE_PRICE
    return None


def _reduce(intent: TradeIntent, qty: float, *, position: Position | None, filters: Filters, price: float) -> Plan:
    """A reduce-only decision: reduce by ``qty``, or close all when the rest would be unsellable."""
    if position is None:
        return _reject(REJECT_NO_POSITION)
    if position.side == intent.side:
        return _reject(REJECT_REDUCE_SIDE)
    rest = floor_to_step(position.qty - qty, filters.step_size)
    close_all = qty <= 0 or rest <= _EPS or rest < filters.min_qty - _EPS or rest * price < filters.min_notional - _EPS
    return Plan(kind="reduce", order=_order(intent, position.qty if close_all else qty, price=price), close_all=close_all)


def _open(
    intent: TradeIntent, qty: float, *, position: Position | None, filters: Filters, price: float, sizing: SizeLimits
) -> Plan:
    """An opening decision: no position yet, stop before liquidation, a size the exchange accepts."""
    if position is not None:
        return _reject(REJECT_POSITION_EXISTS)
    liquidation = liquidation_reason(intent, price=price, maintenance_margin_rate=sizing.maintenance_margin_rate)
    if liquidation is not None:
        return _reject(liquidation)
    sized = opening_qty(qty, filters=filters, price=price, sizing=sizing)
    if isinstance(sized, str):
        return _reject(sized)
    if filters.max_qty > 0 and sized > filters.max_qty + _EPS:
        return _reject(REJECT_MAX_QTY)
    return Plan(kind="open", order=_order(intent, sized, price=price))


def _order(intent: TradeIntent, qty: float, *, price: float) -> VenueOrder:
    return VenueOrder(intent_id=intent.intent_id, client_order_id=intent.intent_id, symbol=intent.symbol,
                      side=intent.side, qty=qty, reference_price=price, reduce_only=intent.reduce_only)


def plan_execution(
    intent: TradeIntent,
    *,
    position: Position | None,
    mark_price: float | None,
    mark_ts_ms: int | None,
    filters: Filters | None,
    no_new_positions: bool,
    max_price_age_ms: float,
    sizing: SizeLimits,
    now_ms: int,
) -> Plan:
    """Size, round and sanity-check one EXECUTE decision (first failing check wins)."""
    refused = _price_reason(intent, mark_price=mark_price, mark_ts_ms=mark_ts_ms, filters=filters,
                            no_new_positions=no_new_positions, max_price_age_ms=max_price_age_ms, now_ms=now_ms)
    if refused is not None or filters is None or mark_price is None:
        return _reject(refused or REJECT_UNKNOWN_SYMBOL)
    qty = floor_to_step(intent.position_size_usd * intent.leverage / mark_price, filters.step_size)
    if intent.reduce_only:
        return _reduce(intent, qty, position=position, filters=filters, price=mark_price)
    return _open(intent, qty, position=position, filters=filters, price=mark_price, sizing=sizing)


# -- transitions ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Transition:
    """One atomic state change: what the Lua script writes.

    ``expected``: the stored ``state:positions`` value of the symbol the plan was
    made against ("" = no position; ``None`` = do not check) — compare-and-set on
    the whole record, so a partial reduce in between also fails the guard. The
    core fills it with ``position.to_json()``; the shell replaces it with the raw
    value it read. ``new_position``: write it (``op == "set"``), or delete the
    symbol's position (``op == "del"``).
    """

    symbol: str
    expected: str | None
    op: Literal["none", "set", "del"]
    new_position: Position | None = None
    result: ExecutionResult | None = None
    event: PositionEvent | None = None
    realized_pnl: float | None = None
    cooldown_until_ms: int | None = None
    venue_error: bool | None = None  # None: not an execution (monitor close)
    ledger_intent: str = ""  # intent id for the executed ledger ("" = none)
    ledger_value: str = ""
    in_flight_field: str = ""  # gate's pending-summary field to decrement ("" = not an opening EXECUTE)
    in_flight_notional: float = 0.0


def close_pnl(position: Position, *, qty: float, exit_price: float, exit_fee: float) -> float:
    share = qty / position.qty if position.qty > 0 else 0.0
    charged = (position.entry_fee_usd + position.funding_usd) * share
    return (exit_price - position.entry_price) * qty * position.direction - charged - exit_fee


def accrue_funding(position: Position, rates: Sequence[FundingRate], *, now_ms: int) -> Position | None:
    """The position with every settlement after the last one charged (and after opening) up to
    ``now_ms`` charged: ``qty × entry × rate`` each, paid by a long and received by a short when the
    rate is positive (as the backtest charges it). None when nothing new is due."""
    since = max(position.funding_ts, position.opened_ts)
    due = [r for r in rates if since < r.ts <= now_ms]
    if not due:
        return None
    paid = sum(position.notional_usd * r.rate for r in due) * position.direction
    return replace(position, funding_usd=position.funding_usd + paid, funding_ts=max(r.ts for r in due))


def funding_transition(position: Position, charged: Position) -> Transition:
    """Rewrite the position with its new funding (compare-and-set on the record it was computed from)."""
    return Transition(symbol=position.symbol, expected=position.to_json(), op="set", new_position=charged)


def _result(
    intent: TradeIntent,
    *,
    decision_id: str,
    order_id: str,
    qty: float,
    price: float,
    slippage_bps: float,
    fee: float,
    status: Literal["FILLED", "REJECTED"],
    reason: str,
    mode: ExecMode,
    now_ms: int,
) -> ExecutionResult:
    return ExecutionResult(
        order_id=order_id,
        intent_id=intent.intent_id,
        decision_id=decision_id,
        symbol=intent.symbol,
        side=intent.side,
        qty=qty,
        price=price,
        notional_usd=qty * price,
        slippage_bps=round(slippage_bps, 6),
        fee_usd=fee,
        status=status,
        reason=reason,
        mode=mode,
        ts=now_ms,
    )


def reject_transition(
    intent: TradeIntent,
    *,
    decision_id: str,
    reason: str,
    mode: ExecMode,
    now_ms: int,
    order_id: str = "",
    venue_error: bool = False,
) -> Transition:
    result = _result(
        intent,
        decision_id=decision_id,
        order_id=order_id,
        qty=0.0,
        price=0.0,
        slippage_bps=0.0,
        fee=0.0,
        status="REJECTED",
        reason=reason,
        mode=mode,
        now_ms=now_ms,
    )
    return Transition(
        symbol=intent.symbol,
        expected=None,
        op="none",
        result=result,
        venue_error=venue_error,
        ledger_intent=intent.intent_id,
        ledger_value=f"REJECTED:{reason}",
    )


def apply_fill(
    intent: TradeIntent,
    *,
    plan: Plan,
    fill: VenueFill,
    position: Position | None,
    decision_id: str,
    mode: ExecMode,
    cooldown_ms: int,
    time_exit_ms: int,
    now_ms: int,
) -> Transition:
    """The state change for a venue's answer to a planned order (``time_exit_ms``: an opened
    position's time exit after opening; 0 = none)."""
    if plan.order is None:
        return reject_transition(intent, decision_id=decision_id, reason=plan.reason, mode=mode, now_ms=now_ms)
    if fill.status != "FILLED" or fill.qty <= 0:
        return _venue_rejection(intent, fill, decision_id=decision_id, mode=mode, now_ms=now_ms)
    ref = plan.order.reference_price
    direction = 1 if intent.side == "BUY" else -1
    slip = (fill.price / ref - 1.0) * direction * 10_000.0 if ref > 0 else 0.0
    result = _result(
        intent, decision_id=decision_id, order_id=fill.order_id, qty=fill.qty, price=fill.price,
        slippage_bps=slip, fee=fill.fee_usd, status="FILLED", reason="none", mode=mode, now_ms=now_ms,
    )
    if plan.kind == "open":
        return _opened(intent, fill, result=result, position=position, now_ms=now_ms,
                       expires_ts=now_ms + time_exit_ms if time_exit_ms > 0 else 0)
    if position is None:  # reduce planned against a position that vanished: shell re-plans
        return reject_transition(intent, decision_id=decision_id, reason=REJECT_NO_POSITION, mode=mode, now_ms=now_ms)
    closed_qty = min(fill.qty, position.qty)
    closing = close_position(
        position, qty=closed_qty, exit_price=fill.price, exit_fee=fill.fee_usd, reason="signal",
        cooldown_ms=cooldown_ms, now_ms=now_ms, close_all=plan.close_all or closed_qty >= position.qty - _EPS,
    )
    return replace(closing, result=result, venue_error=False, ledger_intent=intent.intent_id,
                   ledger_value=fill.order_id)


def _venue_rejection(
    intent: TradeIntent, fill: VenueFill, *, decision_id: str, mode: ExecMode, now_ms: int
) -> Transition:
    """A venue that did not fill: REJECTED with its reason (an execution error unless it is a policy reason)."""
    reason = fill.reason if fill.reason and fill.reason != "none" else "venue_rejected"
    return reject_transition(
        intent, decision_id=decision_id, reason=reason, mode=mode, now_ms=now_ms, order_id=fill.order_id,
        venue_error=reason not in POLICY_REJECTIONS,
    )


def _opened(
    intent: TradeIntent, fill: VenueFill, *, result: ExecutionResult, position: Position | None, now_ms: int,
    expires_ts: int,
) -> Transition:
    """A filled opening order: the new position, its OPENED event, the result and the ledger entry."""
    new = Position(
        symbol=intent.symbol, side=intent.side, qty=fill.qty, entry_price=fill.price,
        stop_loss=intent.stop_loss, take_profit=intent.take_profit, opened_ts=now_ms, order_id=fill.order_id,
        intent_id=intent.intent_id, entry_fee_usd=fill.fee_usd, leverage=intent.leverage, expires_ts=expires_ts,
    )
    event = PositionEvent(
        event="OPENED", symbol=intent.symbol, side=intent.side, qty=fill.qty, entry_price=fill.price,
        exit_price=0.0, pnl_usd=0.0, close_reason="none", order_id=fill.order_id, ts=now_ms,
    )
    return Transition(
        symbol=intent.symbol, expected=position.to_json() if position is not None else "", op="set",
        new_position=new, result=result, event=event, venue_error=False, ledger_intent=intent.intent_id,
        ledger_value=fill.order_id,
    )


def close_position(
    position: Position,
    *,
    qty: float,
    exit_price: float,
    exit_fee: float,
    reason: CloseReason,
    cooldown_ms: int,
    now_ms: int,
    close_all: bool = True,
) -> Transition:
    """Close (or reduce by ``qty``) a position: event CLOSED with realised PnL, cooldown set."""
    pnl = close_pnl(position, qty=qty, exit_price=exit_price, exit_fee=exit_fee)
    share = qty / position.qty if position.qty > 0 else 0.0
    event = PositionEvent(
        event="CLOSED",
        symbol=position.symbol,
        side=position.side,
        qty=qty,
        entry_price=position.entry_price,
        exit_price=exit_price,
        pnl_usd=round(pnl, 8),
        close_reason=reason,
        order_id=position.order_id,
        funding_usd=round(position.funding_usd * share, 8),
        ts=now_ms,
    )
    if close_all:
        op: Literal["set", "del"] = "del"
        new: Position | None = None
    else:
        rest = position.qty - qty
        op = "set"
        keep = rest / position.qty if position.qty > 0 else 0.0
        new = replace(position, qty=rest, entry_fee_usd=position.entry_fee_usd * keep,
                      funding_usd=position.funding_usd * keep)
    return Transition(
        symbol=position.symbol,
        expected=position.to_json(),
        op=op,
        new_position=new,
        event=event,
        realized_pnl=pnl,
        cooldown_until_ms=now_ms + cooldown_ms,
    )


# -- monitor -------------------------------------------------------------------------------------


def exit_reason(position: Position, mark_price: float, *, now_ms: int) -> CloseReason | None:
    """``stop_loss`` / ``take_profit`` when the mark crossed a level (0 = level unset), else ``time``
    when the position reached its time exit (``expires_ts``; 0 = none)."""
    if mark_price <= 0:
        return None
    level = _level_crossed(position, mark_price)
    if level is not None:
        return level
    if 0 < position.expires_ts <= now_ms:
        return "time"
    return None


def _level_crossed(position: Position, mark_price: float) -> CloseReason | None:
    if position.side == "BUY":
        if position.stop_loss > 0 and mark_price <= position.stop_loss:
            return "stop_loss"
        if position.take_profit > 0 and mark_price >= position.take_profit:
            return "take_profit"
    else:
        if position.stop_loss > 0 and mark_price >= position.stop_loss:
            return "stop_loss"
        if position.take_profit > 0 and mark_price <= position.take_profit:
            return "take_profit"
    return None


def unrealized_pnl(positions: Mapping[str, Position], marks: Mapping[str, float]) -> float:
    return sum(
        (marks[s] - p.entry_price) * p.qty * p.direction for s, p in positions.items() if marks.get(s, 0.0) > 0
    )


@dataclass(frozen=True, slots=True)
class ExitOrder:
    """A position whose stop or target the mark crossed (or whose time is up), and the reduce-only
    order that closes it."""

    position: Position
    reason: CloseReason
    order: VenueOrder


def exit_client_order_id(position: Position) -> str:
    """Deterministic client id of the SL/TP/time exit of one position (a retried close is idempotent)."""
    return f"X-{position.order_id}"[:36]


def plan_exits(
    positions: Mapping[str, Position], marks: Mapping[str, float], *, now_ms: int, signalled: Collection[str] = ()
) -> list[ExitOrder]:
    """The exits due at these marks and time (no mark → no decision): first the positions the router
    closed on a reversing signal (``signalled``, close reason ``signal``, in symbol order), then the
    SL/TP/time exits of the others in the positions' order."""
    out = [exit_order(positions[s], "signal", marks[s]) for s in sorted(signalled) if s in positions and s in marks]
    for sym, pos in positions.items():
        if sym in signalled:
            continue
        mark = marks.get(sym)
        reason = exit_reason(pos, mark, now_ms=now_ms) if mark is not None else None
        if reason is None or mark is None:
            continue
        out.append(exit_order(pos, reason, mark))
    return out


def exit_order(position: Position, reason: CloseReason, mark_price: float) -> ExitOrder:
    """The reduce-only order that closes the whole position at the mark, for ``reason``."""
    order = VenueOrder(
        intent_id=exit_client_order_id(position), client_order_id=exit_client_order_id(position),
        symbol=position.symbol, side="SELL" if position.side == "BUY" else "BUY", qty=position.qty,
        reference_price=mark_price, reduce_only=True,
    )
    return ExitOrder(position, reason, order)


# -- verdicts on held positions (state:held_signals) ------------------------------------------------

HeldKind = Literal["renew", "close", "ignore"]


@dataclass(frozen=True, slots=True)
class HeldOutcome:
    """What a router verdict does to the position it names."""

    kind: HeldKind
    position: Position | None = None  # renew: the renewed position
    reason: str = ""  # ignore: why (no_position, older_than_position, side_mismatch, liquidation_before_stop…, applied)


def held_outcome(
    position: Position | None, held: HeldSignal, *, time_exit_ms: int, maintenance_margin_rate: float
) -> HeldOutcome:
    """Apply one verdict: a renewal of a position on the signal's side (its new stop must lie before its
    liquidation price; applied once: the same renewal again changes nothing), or the close of a position
    on the other side; a verdict older than the position's opening is ignored (it was about an earlier one)."""
    if position is None:
        return HeldOutcome("ignore", reason="no_position")
    if held.ts <= position.opened_ts:
        return HeldOutcome("ignore", reason="older_than_position")
    same_side = held.side == position.side
    if held.action == "close":
        return HeldOutcome("close") if not same_side else HeldOutcome("ignore", reason="side_mismatch")
    if not same_side:
        return HeldOutcome("ignore", reason="side_mismatch")
    if held.stop_loss > 0:
        liq = liquidation_price(side=position.side, price=position.entry_price, leverage=position.leverage,
                                maintenance_margin_rate=maintenance_margin_rate)
        if held.stop_loss <= liq if position.side == "BUY" else held.stop_loss >= liq:
            return HeldOutcome("ignore", reason=reason_liquidation(liq, held.stop_loss, position.leverage))
    expires = held.ts + time_exit_ms if time_exit_ms > 0 else position.expires_ts
    renewed = replace(position, stop_loss=held.stop_loss, take_profit=held.take_profit, expires_ts=expires)
    if renewed == position:
        return HeldOutcome("ignore", reason="applied")
    return HeldOutcome("renew", position=renewed)


@dataclass(frozen=True, slots=True)
class HeldPlan:
    """What one monitor pass does with the verdicts it read (:func:`plan_held`)."""

    renewals: tuple[tuple[HeldSignal, Position, Position], ...]  # (verdict, position, renewed position)
    closing: frozenset[str]  # symbols to close on a reversing signal (their verdict stays until closed)
    ignored: tuple[tuple[HeldSignal, str], ...]  # (verdict, reason)


def plan_held(
    positions: Mapping[str, Position], verdicts: Mapping[str, HeldSignal], *, time_exit_ms: int,
    maintenance_margin_rate: float,
) -> HeldPlan:
    """Every verdict's :func:`held_outcome` against the open positions, in symbol order."""
    renewals: list[tuple[HeldSignal, Position, Position]] = []
    closing: set[str] = set()
    ignored: list[tuple[HeldSignal, str]] = []
    for sym, held in sorted(verdicts.items()):
        position = positions.get(sym)
        out = held_outcome(position, held, time_exit_ms=time_exit_ms, maintenance_margin_rate=maintenance_margin_rate)
        if out.kind == "close":
            closing.add(sym)
        elif out.kind == "renew" and position is not None and out.position is not None:
            renewals.append((held, position, out.position))
        else:
            ignored.append((held, out.reason))
    return HeldPlan(tuple(renewals), frozenset(closing), tuple(ignored))


def renew_transition(position: Position, renewed: Position) -> Transition:
    """The compare-and-set that writes a renewed position (no order, no PnL, no cooldown)."""
    return Transition(symbol=position.symbol, expected=position.to_json(), op="set", new_position=renewed)
