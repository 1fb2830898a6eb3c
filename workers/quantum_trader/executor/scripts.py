"""The executor's one atomic state transition (Lua), and how a :class:`Transition` maps onto it.

``APPLY_LUA`` in one script (so a crash leaves either all or none of it):
ledger check (``state:executed_intents``) → position guard (the symbol's
stored position must still be exactly the record the plan was made against) → position
write/delete → ``state:open_orders`` = ``HLEN state:positions`` → ``XADD
execution.result`` → ``XADD position.event`` → risk update (realised PnL
today/total, equity peak, loss streak, error-rate EWMA) → cooldown → ``HDEL
state:pending_intents`` (and the gate's in-flight summary); per batch ``state:risk
open_notional_usd`` moves by the notional of positions written/deleted.
Returns 1 applied, 0 already executed, -1 guard failed. Every key is the profile's (one hash slot). One call applies a whole batch of
transitions in order (each with its own ledger/guard check).
"""

from __future__ import annotations

import json
from typing import Any, Final

from quantum_trader.core.keys import Keys
from quantum_trader.core.messages import Message
from quantum_trader.executor.core import Transition
from quantum_trader.executor.state import ERROR_RATE_ALPHA, ERROR_RATE_HALF_LIFE_MS, utc_day

OPEN_NOTIONAL_FIELD: Final = "open_notional_usd"  # in state:risk: Σ qty × entry over state:positions
APPLIED: Final = 1
ALREADY_EXECUTED: Final = 0
GUARD_FAILED: Final = -1
_ANY: Final = "*"

APPLY_LUA: Final = r"""
local maxlen, day, alpha, now_ms = ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local half_life = tonumber(ARGV[6])
local rate, executions = nil, 0
local flights, flight_notional = {}, 0
local notional_delta = 0
local function xadd(key, fields)
  local args = {key, 'MAXLEN', '~', maxlen, '*'}
  for _, v in ipairs(fields) do args[#args + 1] = v end
  redis.call('XADD', unpack(args))
end
local function apply(t)
  local ledger_id = t[1]
  if ledger_id ~= '' and redis.call('HEXISTS', KEYS[1], ledger_id) == 1 then return 0 end
  local sym = t[3]
  local cur_pos = nil
  if t[4] ~= '*' or t[5] ~= 'none' then
    local cur = redis.call('HGET', KEYS[2], sym) or ''
    if t[4] ~= '*' and cur ~= t[4] then return -1 end
    if cur ~= '' then
      local ok, pos = pcall(cjson.decode, cur)
      if ok and type(pos) == 'table' then cur_pos = pos end
    end
  end
  if ledger_id ~= '' then
    redis.call('HSET', KEYS[1], ledger_id, t[2])
    if redis.call('HDEL', KEYS[8], ledger_id) == 1 and t[13] ~= '' then
      flights[t[13]] = (flights[t[13]] or 0) + 1
      flight_notional = flight_notional + tonumber(t[14])
    end
  end
  if t[5] ~= 'none' then
    if cur_pos then
      notional_delta = notional_delta - (tonumber(cur_pos['qty']) or 0) * (tonumber(cur_pos['entry_price']) or 0)
    end
    if t[5] == 'set' then
      redis.call('HSET', KEYS[2], sym, t[6])
      notional_delta = notional_delta + tonumber(t[12])
    else
      redis.call('HDEL', KEYS[2], sym)
    end
  end
  if type(t[7]) == 'table' then xadd(KEYS[4], t[7]) end
  if type(t[8]) == 'table' then xadd(KEYS[5], t[8]) end
  if t[9] ~= '' then
    local pnl = tonumber(t[9])
    if redis.call('HGET', KEYS[6], 'day') ~= day then
      redis.call('HSET', KEYS[6], 'day', day, 'realized_pnl_today', '0', 'loss_streak', '0')
    end
    redis.call('HINCRBYFLOAT', KEYS[6], 'realized_pnl_today', t[9])
    local total = tonumber(redis.call('HINCRBYFLOAT', KEYS[6], 'realized_pnl_total', t[9]))
    local peak = tonumber(redis.call('HGET', KEYS[6], 'equity_peak') or '0')
    if total > peak then redis.call('HSET', KEYS[6], 'equity_peak', tostring(total)) end
    if pnl < 0 then
      redis.call('HINCRBY', KEYS[6], 'loss_streak', 1)
    else
      redis.call('HSET', KEYS[6], 'loss_streak', '0')
    end
    redis.call('HINCRBY', KEYS[6], 'closed_total', 1)
  end
  if t[10] ~= '' then redis.call('HSET', KEYS[7], sym, t[10]) end
  if t[11] ~= '' then
    if rate == nil then
      -- decay the stored rate by the time since its last update (as the gate reads it)
      local r = redis.call('HMGET', KEYS[6], 'error_rate', 'error_ts')
      rate = tonumber(r[1] or '0') or 0
      local since = tonumber(r[2] or '0') or 0
      if since > 0 and now_ms > since then rate = rate * 0.5 ^ ((now_ms - since) / half_life) end
    end
    rate = rate * (1 - alpha) + alpha * tonumber(t[11])
    executions = executions + 1
  end
  return 1
end
local out = {}
for n, t in ipairs(cjson.decode(ARGV[1])) do out[n] = apply(t) end
redis.call('SET', KEYS[3], redis.call('HLEN', KEYS[2]))
if notional_delta ~= 0 then
  redis.call('HINCRBYFLOAT', KEYS[6], 'open_notional_usd', string.format('%.10f', notional_delta))
end
if executions > 0 then
  redis.call('HSET', KEYS[6], 'error_rate', string.format('%.6f', rate), 'error_ts', ARGV[5])
  redis.call('HINCRBY', KEYS[6], 'executions', executions)
end
for field, n in pairs(flights) do
  if redis.call('HINCRBY', KEYS[9], field, -n) <= 0 then redis.call('HDEL', KEYS[9], field) end
end
if flight_notional ~= 0 then
  redis.call('HINCRBYFLOAT', KEYS[9], '_notional', string.format('%.10f', -flight_notional))
end
return out
"""

# state:risk open_notional_usd = Σ qty × entry_price over state:positions (start-up and periodic re-sync:
# heals drift from writers that do not maintain it, e.g. reconciliation). → the new value.
RESYNC_NOTIONAL_LUA: Final = r"""
local vals = redis.call('HVALS', KEYS[1])
local total = 0
for _, v in ipairs(vals) do
  local ok, p = pcall(cjson.decode, v)
  if ok and type(p) == 'table' then
    total = total + (tonumber(p['qty']) or 0) * (tonumber(p['entry_price']) or 0)
  end
end
local value = string.format('%.10f', total)
redis.call('HSET', KEYS[2], 'open_notional_usd', value)
return value
"""

# Paper: state:open_orders = HLEN state:positions (no working orders); returns the previous value.
SYNC_OPEN_ORDERS_LUA: Final = r"""
local before = redis.call('GET', KEYS[2])
local n = redis.call('HLEN', KEYS[1])
if before ~= tostring(n) then redis.call('SET', KEYS[2], n) end
return {before, n}
"""

# Many reads in one round trip, from one consistent moment. ARGV[1]: JSON [[command, key index, args...], ...]
# with command in GET, EXISTS, HGETALL, HMGET → one reply per op.
MULTI_READ_LUA: Final = r"""
local out = {}
for i, op in ipairs(cjson.decode(ARGV[1])) do
  out[i] = redis.call(op[1], KEYS[op[2]], unpack(op, 3))
end
return out
"""


class MultiRead:
    """Collects read ops for :data:`MULTI_READ_LUA`; ``add`` returns the op's index in the reply."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.ops: list[list[Any]] = []

    def add(self, command: str, key: str, *args: str) -> int:
        self.keys.append(key)
        self.ops.append([command, len(self.keys), *args])
        return len(self.ops) - 1

    async def run(self, script: Any) -> list[Any]:
        return list(await script(keys=self.keys, args=[json.dumps(self.ops, separators=(",", ":"))]))


def pairs(flat: list[Any] | None) -> dict[str, str]:
    """A Lua ``HGETALL`` reply (flat list) as a dict."""
    if not flat:
        return {}
    text = [v.decode() if isinstance(v, bytes) else str(v) for v in flat]
    return dict(zip(text[::2], text[1::2], strict=True))


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


# Drop ledger entries first written before ARGV[1] (ms), at most ARGV[2] per call:
# KEYS = ledger_age, decided_intents, executed_intents. Returns how many were pruned.
PRUNE_LEDGERS_LUA: Final = r"""
local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #old == 0 then return 0 end
redis.call('HDEL', KEYS[2], unpack(old))
redis.call('HDEL', KEYS[3], unpack(old))
redis.call('ZREM', KEYS[1], unpack(old))
return #old
"""
PRUNE_CHUNK: Final = 2000


async def prune_ledgers(redis: Any, *, keys: Keys, older_than_ms: int) -> int:
    """Remove exactly-once ledger entries first written before ``older_than_ms``; return the count.

    Safe because a message is redelivered only while it is pending (reclaimed within
    minutes), so an intent decided and executed days ago can never come back.
    """
    script = redis.register_script(PRUNE_LEDGERS_LUA)
    total = 0
    while True:
        n = int(await script(keys=[keys.ledger_age, keys.decided_intents, keys.executed_intents],
                             args=[str(older_than_ms), str(PRUNE_CHUNK)]))
        total += n
        if n < PRUNE_CHUNK:
            return total
