"""Reconciliation: the exchange's positions are the truth; Redis ``state:positions`` follows them.

:func:`diff` (pure) compares the exchange's open positions with the executor's
Redis positions and returns the actions that close the gap:

- ``adopted_unknown_position``: on the exchange, not in Redis (placed by hand, or an
  order whose reply was lost) → written to Redis with ``"adopted": true`` and no
  SL/TP (0), and an alert (warning log line, event, metric);
- ``dropped_missing_position``: in Redis, not on the exchange (closed by a
  stop, liquidated, closed by hand) → removed from Redis;
- ``position_corrected``: both, but side/qty/entry differ (or the Redis value is
  unreadable) → Redis takes the exchange's side, qty and entry price;
- ``open_orders_corrected``: ``state:open_orders`` ≠ positions + working entry orders.

Symbols with an execution in flight (``state:pending_intents``) are skipped: the
executor is about to write them itself. :func:`apply` writes the actions in one
Lua script that re-checks each value it read (compare-and-set), so a position the
executor changed in between is left alone; then it publishes one
``ReconcileEvent`` per applied action on ``stream:reconcile.event`` and counts
``qt_executor_reconcile_total{kind}``.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol

from quantum_trader.core import metrics
from quantum_trader.core.clock import Clock
from quantum_trader.core.keys import Keys
from quantum_trader.core.logs import EventLog
from quantum_trader.core.messages import ReconcileEvent, decode_raw
from quantum_trader.ledger.positions import Position as StatePosition
from quantum_trader.market.base import Position as ExchangePosition

Kind = Literal["adopted_unknown_position", "dropped_missing_position", "position_corrected", "open_orders_corrected"]
ADOPTED: Final = "adopted_unknown_position"
DROPPED: Final = "dropped_missing_position"
CORRECTED: Final = "position_corrected"
OPEN_ORDERS: Final = "open_orders_corrected"


@dataclass(frozen=True, slots=True)
class ReconcileAction:
    kind: Kind
    symbol: str  # "" for open_orders_corrected
    detail: str
    value: str = ""  # the JSON to write (adopt/correct) or the open_orders value (expected)
    expected: str = ""  # the Redis value read (drop/correct): written only if still equal


def adopted_position_json(p: ExchangePosition, *, now_ms: int) -> str:
    """The Redis record of an adopted exchange position (``adopted: true``, no SL/TP)."""
    record = StatePosition(
        symbol=p.symbol,
        side=p.side,
        qty=p.qty,
        entry_price=p.entry_price,
        stop_loss=0.0,
        take_profit=0.0,
        opened_ts=now_ms,
        order_id=f"adopted-{p.symbol}-{now_ms}",
    )
    data = json.loads(record.to_json())
    data["adopted"] = True
    return json.dumps(data, separators=(",", ":"), sort_keys=True)


def _same(a: float, b: float, *, rel: float) -> bool:
    return abs(a - b) <= rel * max(abs(a), abs(b), 1e-12)


def diff(
    exchange_positions: Sequence[ExchangePosition],
    redis_positions: Mapping[str, str] | Mapping[bytes, bytes],
    *,
    now_ms: int,
    redis_open_orders: str | None = None,
    working_orders: int = 0,
    in_flight: Collection[str] = (),
    rel_tol: float = 1e-6,
) -> list[ReconcileAction]:
    """Actions that make Redis agree with the exchange (pure; ``redis_positions`` is ``HGETALL state:positions``)."""
    raw = decode_raw(redis_positions)
    on_exchange = {p.symbol: p for p in exchange_positions if p.qty > 0}
    actions: list[ReconcileAction] = []
    for symbol in sorted(set(on_exchange) | set(raw)):
        if symbol in in_flight:
            continue
        action = _position_action(symbol, on_exchange.get(symbol), raw.get(symbol), now_ms=now_ms, rel_tol=rel_tol)
        if action is not None:
            actions.append(action)
    dropped = {a.symbol for a in actions if a.kind == DROPPED}
    adopted = {a.symbol for a in actions if a.kind == ADOPTED}
    expected = len((set(raw) - dropped) | adopted) + max(0, working_orders)
    if redis_open_orders != str(expected):
        actions.append(
            ReconcileAction(
                kind=OPEN_ORDERS, symbol="", value=str(expected),
                detail=f"state:open_orders {redis_open_orders if redis_open_orders is not None else 'missing'} → "
                f"{expected} (positions + {working_orders} working orders)",
            )
        )
    return actions


def _position_action(
    symbol: str, ex: ExchangePosition | None, stored: str | None, *, now_ms: int, rel_tol: float
) -> ReconcileAction | None:
    """What one symbol needs: adopt, drop, replace an unreadable record, correct, or nothing."""
    if stored is None:
        if ex is None:
            return None
        return ReconcileAction(
            kind=ADOPTED, symbol=symbol, value=adopted_position_json(ex, now_ms=now_ms),
            detail=f"exchange has {ex.side} {ex.qty:g} @ {ex.entry_price:g}; Redis had none",
        )
    try:
        mine: StatePosition | None = StatePosition.from_json(stored)
    except ValueError:
        mine = None
    if ex is None:
        what = f"{mine.side} {mine.qty:g}" if mine else "an unreadable record"
        return ReconcileAction(kind=DROPPED, symbol=symbol, expected=stored,
                               detail=f"Redis had {what}; the exchange has no position")
    if mine is None:
        return ReconcileAction(kind=CORRECTED, symbol=symbol, expected=stored,
                               value=adopted_position_json(ex, now_ms=now_ms),
                               detail=f"unreadable Redis record replaced by exchange {ex.side} {ex.qty:g}")
    if mine.side == ex.side and _same(mine.qty, ex.qty, rel=rel_tol) and _same(
        mine.entry_price, ex.entry_price, rel=1e-4
    ):
        return None
    data = json.loads(stored)
    if mine.side != ex.side:  # a flipped position: the old stop/target make no sense
        data["stop_loss"] = 0.0
        data["take_profit"] = 0.0
    data.update(side=ex.side, qty=ex.qty, entry_price=ex.entry_price)
    return ReconcileAction(
        kind=CORRECTED, symbol=symbol, expected=stored,
        value=json.dumps(data, separators=(",", ":"), sort_keys=True),
        detail=f"Redis {mine.side} {mine.qty:g} @ {mine.entry_price:g} → exchange "
        f"{ex.side} {ex.qty:g} @ {ex.entry_price:g}",
    )


# KEYS: positions hash, open_orders. ARGV: working orders, then per action: kind, symbol, value, expected.
# Returns per action 1 (applied) or 0 (state changed since it was read: left alone), then open_orders.
_APPLY: Final = r"""
local out = {}
local i = 2
while i <= #ARGV do
  local kind, sym, value, expected = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local ok = 0
  if kind == 'adopted_unknown_position' then
    ok = redis.call('HSETNX', KEYS[1], sym, value)
  elseif kind == 'dropped_missing_position' then
    if redis.call('HGET', KEYS[1], sym) == expected then ok = redis.call('HDEL', KEYS[1], sym) end
  elseif kind == 'position_corrected' then
    if redis.call('HGET', KEYS[1], sym) == expected then redis.call('HSET', KEYS[1], sym, value); ok = 1 end
  elseif kind == 'open_orders_corrected' then
    ok = 1
  end
  out[#out + 1] = ok
  i = i + 4
end
local n = redis.call('HLEN', KEYS[1]) + tonumber(ARGV[1])
local before = redis.call('GET', KEYS[2])
if before ~= tostring(n) then redis.call('SET', KEYS[2], n) end
out[#out + 1] = n
return out
"""


class _Publisher(Protocol):
    async def publish(self, stream: str, message: ReconcileEvent) -> str: ...


async def apply(
    actions: Sequence[ReconcileAction],
    *,
    redis: Any,
    keys: Keys,
    bus: _Publisher,
    clock: Clock,
    log: EventLog,
    working_orders: int = 0,
) -> list[ReconcileAction]:
    """Write ``actions`` atomically (compare-and-set), publish an event and count a metric per applied one."""
    if not actions:
        return []
    argv: list[str] = [str(max(0, working_orders))]
    for a in actions:
        argv.extend((a.kind, a.symbol, a.value, a.expected))
    script = redis.register_script(_APPLY)
    raw = await script(keys=[keys.positions, keys.open_orders], args=argv)
    flags, open_orders = [int(x) for x in raw[:-1]], int(raw[-1])
    applied: list[ReconcileAction] = []
    now = clock.now_ms()
    for a, ok in zip(actions, flags, strict=True):
        if not ok:
            log.event("RECONCILE_SKIPPED", kind=a.kind, symbol=a.symbol, note="state changed since read")
            continue
        if a.kind == OPEN_ORDERS and a.value != str(open_orders):
            a = ReconcileAction(kind=a.kind, symbol=a.symbol, value=str(open_orders),
                                detail=f"{a.detail}; wrote {open_orders} (positions changed meanwhile)")
        applied.append(a)
        metrics.EXEC_RECONCILE.labels(keys.profile, a.kind).inc()
        await bus.publish(keys.reconcile_event, ReconcileEvent(symbol=a.symbol or "*", kind=a.kind, detail=a.detail,
                                                               ts=now))
        if a.kind == ADOPTED:
            log.warn("RECONCILE_ADOPTED_POSITION", symbol=a.symbol, detail=a.detail, alert=True)
        else:
            log.event("RECONCILE", kind=a.kind, symbol=a.symbol, detail=a.detail)
    metrics.EXEC_OPEN_ORDERS.labels(keys.profile).set(open_orders)
    return applied


class PositionSource(Protocol):
    """A venue (or exchange) that knows the exchange's positions; ``None`` means Redis is the truth."""

    async def positions(self) -> list[ExchangePosition] | None: ...


async def reconcile_once(
    source: PositionSource,
    *,
    redis: Any,
    keys: Keys,
    bus: _Publisher,
    clock: Clock,
    log: EventLog,
) -> list[ReconcileAction]:
    """One round: read the exchange and Redis, :func:`diff`, :func:`apply`. Returns the applied actions.

    Raises ``ExchangeError`` when the exchange cannot be read (nothing is changed then).
    """
    exchange_positions = await source.positions()
    if exchange_positions is None:
        return []
    counter = getattr(source, "working_orders", None)
    working = int(await counter()) if counter is not None else 0
    pipe = redis.pipeline(transaction=False)
    pipe.hgetall(keys.positions)
    pipe.get(keys.open_orders)
    pipe.hgetall(keys.pending_intents)
    stored, open_orders, pending = await pipe.execute()
    in_flight = {s for s in (_intent_symbol(v) for v in decode_raw(pending).values()) if s}
    if isinstance(open_orders, bytes):
        open_orders = open_orders.decode()
    actions = diff(
        exchange_positions, stored, now_ms=clock.now_ms(), redis_open_orders=open_orders,
        working_orders=working, in_flight=in_flight,
    )
    return await apply(actions, redis=redis, keys=keys, bus=bus, clock=clock, log=log, working_orders=working)


def _intent_symbol(raw: str | bytes | None) -> str:
    """The symbol of a pending intent (JSON of TradeIntent fields); '' when unreadable."""
    if raw is None:
        return ""
    try:
        data = json.loads(raw)
    except (ValueError, TypeError):
        return ""
    symbol = data.get("symbol") if isinstance(data, dict) else None
    return symbol if isinstance(symbol, str) else ""
