"""How the executor's :class:`Transition` maps onto the shared-state transition script.

``APPLY_LUA`` (:mod:`quantum_trader.ledger.scripts`) in one script (so a crash leaves either all or
none of it): ledger check (``state:executed_intents``) → position guard (the symbol's stored position
must still be exactly the record the plan was made against) → position write/delete →
``state:open_orders`` = ``HLEN state:positions`` → ``XADD execution.result`` → ``XADD position.event``
→ risk update (realised PnL today/total, equity peak, loss streak, error-rate EWMA) → cooldown →
``HDEL state:pending_intents`` (and the gate's in-flight summary); per batch ``state:risk
open_notional_usd`` moves by the notional of positions written/deleted. Returns 1 applied, 0 already
executed, -1 guard failed. One call applies a whole batch of transitions in order.
"""

from __future__ import annotations

import json
from typing import Any, Final

from quantum_trader.core.keys import Keys
from quantum_trader.core.messages import Message
from quantum_trader.executor.core import Transition
from quantum_trader.ledger.ledgers import prune_ledgers
from quantum_trader.ledger.risk import ERROR_RATE_ALPHA, ERROR_RATE_HALF_LIFE_MS, OPEN_NOTIONAL, utc_day
from quantum_trader.ledger.scripts import (
    ALREADY_EXECUTED,
    APPLIED,
    APPLY_LUA,
    GUARD_FAILED,
    MULTI_READ_LUA,
    RESYNC_NOTIONAL_LUA,
    SYNC_OPEN_ORDERS_LUA,
    MultiRead,
    pairs,
)

# shared-state names the executor's callers used to import from here
__all__ = [
    "ALREADY_EXECUTED", "APPLIED", "APPLY_LUA", "GUARD_FAILED", "MULTI_READ_LUA", "OPEN_NOTIONAL_FIELD",
    "RESYNC_NOTIONAL_LUA", "SYNC_OPEN_ORDERS_LUA", "Applier", "MultiRead", "fast_fields", "pairs",
    "prune_ledgers", "transition_item", "transition_keys",
]

OPEN_NOTIONAL_FIELD: Final = OPEN_NOTIONAL
_ANY: Final = "*"


def _encode(v: object) -> str:
    t = type(v)
    if t is str:
        return v  # type: ignore[return-value]
    if t is float:
        return repr(v)
    if t is bool:
        return "true" if v else "false"
    return str(v)


def fast_fields(message: Message) -> dict[str, str]:
    """``message.to_fields()`` for flat messages (str/int/float/bool fields) without the generic
    encoder's overhead (hot path; a test keeps them equal)."""
    return {k: _encode(v) for k, v in message.__dict__.items()}


def _flat(message: Message) -> list[str]:
    out: list[str] = []
    for k, v in message.__dict__.items():
        out.extend((k, _encode(v)))
    return out


def transition_keys(keys: Keys) -> list[str]:
    return [
        keys.executed_intents,
        keys.positions,
        keys.open_orders,
        keys.execution_result,
        keys.position_event,
        keys.risk_state,
        keys.cooldowns,
        keys.pending_intents,
        keys.pending_summary,
    ]


def transition_item(t: Transition) -> list[Any]:
    """One transition as the JSON array :data:`APPLY_LUA` reads (index = Lua ``t[n]`` − 1)."""
    return [
        t.ledger_intent,
        t.ledger_value,
        t.symbol,
        _ANY if t.expected is None else t.expected,
        t.op,
        t.new_position.to_json() if t.new_position is not None else "",
        _flat(t.result) if t.result is not None else "",
        _flat(t.event) if t.event is not None else "",
        repr(t.realized_pnl) if t.realized_pnl is not None else "",
        str(t.cooldown_until_ms) if t.cooldown_until_ms is not None else "",
        ("1" if t.venue_error else "0") if t.venue_error is not None else "",
        repr(t.new_position.notional_usd) if t.new_position is not None else "0",
        t.in_flight_field,
        repr(t.in_flight_notional),
    ]


class Applier:
    """Runs :data:`APPLY_LUA` for a list of transitions in one call (order preserved)."""

    def __init__(self, redis: Any, *, keys: Keys, maxlen: int = 100_000) -> None:
        self._script = redis.register_script(APPLY_LUA)
        self._keys = transition_keys(keys)
        self._maxlen = maxlen

    async def apply_many(self, transitions: list[Transition], *, now_ms: int) -> list[int]:
        if not transitions:
            return []
        items = json.dumps([transition_item(t) for t in transitions], separators=(",", ":"))
        args = [items, str(self._maxlen), utc_day(now_ms), repr(ERROR_RATE_ALPHA), str(now_ms), str(ERROR_RATE_HALF_LIFE_MS)]
        return [int(r) for r in await self._script(keys=self._keys, args=args)]
