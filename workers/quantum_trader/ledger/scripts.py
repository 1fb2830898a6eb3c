"""Every Lua script that touches shared state, beside the rooms it reads and writes.

Field names are never spelled here: each script is a template whose ``$NAME`` placeholders are
filled from the rooms' constants (:mod:`.positions`, :mod:`.risk`, :mod:`.intents`), the same
constants the Python readers use. Every key a script touches is the profile's (one hash slot).

* ``DECIDE_LUA``          (gate)     decided ledger → ``gate.decision`` → pending intent + summary
* ``REBUILD_SUMMARY_LUA`` (gate)     ``state:pending_summary`` from ``state:pending_intents``
* ``APPLY_LUA``           (executor) ledger → positions → open_orders → results/events → risk →
                                     cooldown → pending intent + summary, per transition
* ``RESYNC_NOTIONAL_LUA`` (both)     ``state:risk open_notional_usd`` from ``state:positions``
* ``SYNC_OPEN_ORDERS_LUA``(executor) paper: ``state:open_orders`` = ``HLEN state:positions``
* ``PRUNE_LEDGERS_LUA``   (executor) drop old exactly-once ledger entries
* ``MULTI_READ_LUA``      (all)      many reads from one consistent moment (:class:`MultiRead`)
"""

from __future__ import annotations

import json
from string import Template
from typing import Any, Final

from quantum_trader.ledger import intents, positions, risk

APPLIED: Final = 1
ALREADY_EXECUTED: Final = 0
GUARD_FAILED: Final = -1


def _quote(name: str) -> str:
    if not name or any(not (c.isalnum() or c in "_:") for c in name):
        raise ValueError(f"not a plain field name: {name!r}")
    return f"'{name}'"


NAMES: Final = {
    "QTY": positions.QTY,
    "ENTRY_PRICE": positions.ENTRY_PRICE,
    "DAY": risk.DAY,
    "REALIZED_PNL_TODAY": risk.REALIZED_PNL_TODAY,
    "REALIZED_PNL_TOTAL": risk.REALIZED_PNL_TOTAL,
    "EQUITY_PEAK": risk.EQUITY_PEAK,
    "LOSS_STREAK": risk.LOSS_STREAK,
    "CLOSED_TOTAL": risk.CLOSED_TOTAL,
    "ERROR_RATE": risk.ERROR_RATE,
    "ERROR_TS": risk.ERROR_TS,
    "EXECUTIONS": risk.EXECUTIONS,
    "OPEN_NOTIONAL": risk.OPEN_NOTIONAL,
    "NOTIONAL_FIELD": intents.NOTIONAL_FIELD,
    "REDUCE_ONLY": intents.REDUCE_ONLY,
    "SYMBOL": intents.SYMBOL,
    "SIDE": intents.SIDE,
    "POSITION_SIZE_USD": intents.POSITION_SIZE_USD,
    "LEVERAGE": intents.LEVERAGE,
    "FLIGHT_SEP": intents.flight_field("", ""),
}


def render(template: str) -> str:
    """A script template with every ``$NAME`` replaced by its quoted field name (unknown name → KeyError)."""
    return Template(template).substitute({k: _quote(v) for k, v in NAMES.items()})


# One call per batch. ARGV[1]: JSON array of [intent_id, decision_id, [decision fields...],
# pending intent JSON or "", in-flight summary field or "", notional or ""]; ARGV[2]: stream MAXLEN;
# ARGV[3]: now (ms), the ledger entry's age for pruning (KEYS[5] = state:ledger_age).
# Per item, atomically: HSETNX ledger → XADD decision → (EXECUTE) HSET pending (+ summary). → 1/0 each.
DECIDE_LUA: Final = render(
"""
local items = cjson.decode(ARGV[1])
local out = {}
local flights, notional = {}, 0
for n, it in ipairs(items) do
  if redis.call('HSETNX', KEYS[1], it[1], it[2]) == 0 then
    out[n] = 0
  else
    redis.call('ZADD', KEYS[5], 'NX', ARGV[3], it[1])
    local args = {KEYS[2], 'MAXLEN', '~', ARGV[2], '*'}
    for _, v in ipairs(it[3]) do args[#args + 1] = v end
    redis.call('XADD', unpack(args))
    if it[4] ~= '' then
      redis.call('HSET', KEYS[3], it[1], it[4])
      if it[5] ~= '' then
        flights[it[5]] = (flights[it[5]] or 0) + 1
        notional = notional + tonumber(it[6])
      end
    end
    out[n] = 1
  end
end
for field, k in pairs(flights) do redis.call('HINCRBY', KEYS[4], field, k) end
if notional ~= 0 then redis.call('HINCRBYFLOAT', KEYS[4], $NOTIONAL_FIELD, string.format('%.10f', notional)) end
return out
"""
)

# Rebuild state:pending_summary from state:pending_intents (gate start-up; heals any drift).
REBUILD_SUMMARY_LUA: Final = render(
"""
local all = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[2])
local total = 0
local n = 0
for i = 1, #all, 2 do
  local ok, it = pcall(cjson.decode, all[i + 1])
  if ok and type(it) == 'table' and it[$REDUCE_ONLY] ~= true and it[$SYMBOL] and it[$SIDE] then
    redis.call('HINCRBY', KEYS[2], it[$SYMBOL] .. $FLIGHT_SEP .. it[$SIDE], 1)
    total = total + (tonumber(it[$POSITION_SIZE_USD]) or 0) * (tonumber(it[$LEVERAGE]) or 0)
    n = n + 1
  end
end
redis.call('HSET', KEYS[2], $NOTIONAL_FIELD, string.format('%.10f', total))
return n
"""
)

APPLY_LUA: Final = render(
r"""
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
      notional_delta = notional_delta - (tonumber(cur_pos[$QTY]) or 0) * (tonumber(cur_pos[$ENTRY_PRICE]) or 0)
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
    if redis.call('HGET', KEYS[6], $DAY) ~= day then
      redis.call('HSET', KEYS[6], $DAY, day, $REALIZED_PNL_TODAY, '0', $LOSS_STREAK, '0')
    end
    redis.call('HINCRBYFLOAT', KEYS[6], $REALIZED_PNL_TODAY, t[9])
    local total = tonumber(redis.call('HINCRBYFLOAT', KEYS[6], $REALIZED_PNL_TOTAL, t[9]))
    local peak = tonumber(redis.call('HGET', KEYS[6], $EQUITY_PEAK) or '0')
    if total > peak then redis.call('HSET', KEYS[6], $EQUITY_PEAK, tostring(total)) end
    if pnl < 0 then
      redis.call('HINCRBY', KEYS[6], $LOSS_STREAK, 1)
    else
      redis.call('HSET', KEYS[6], $LOSS_STREAK, '0')
    end
    redis.call('HINCRBY', KEYS[6], $CLOSED_TOTAL, 1)
  end
  if t[10] ~= '' then redis.call('HSET', KEYS[7], sym, t[10]) end
  if t[11] ~= '' then
    if rate == nil then
      -- decay the stored rate by the time since its last update (as the gate reads it)
      local r = redis.call('HMGET', KEYS[6], $ERROR_RATE, $ERROR_TS)
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
  redis.call('HINCRBYFLOAT', KEYS[6], $OPEN_NOTIONAL, string.format('%.10f', notional_delta))
end
if executions > 0 then
  redis.call('HSET', KEYS[6], $ERROR_RATE, string.format('%.6f', rate), $ERROR_TS, ARGV[5])
  redis.call('HINCRBY', KEYS[6], $EXECUTIONS, executions)
end
for field, n in pairs(flights) do
  if redis.call('HINCRBY', KEYS[9], field, -n) <= 0 then redis.call('HDEL', KEYS[9], field) end
end
if flight_notional ~= 0 then
  redis.call('HINCRBYFLOAT', KEYS[9], $NOTIONAL_FIELD, string.format('%.10f', -flight_notional))
end
return out
"""
)

# state:risk open_notional_usd = Σ qty × entry_price over state:positions (start-up and periodic re-sync:
# heals drift from writers that do not maintain it, e.g. reconciliation). → the new value.
RESYNC_NOTIONAL_LUA: Final = render(
r"""
local vals = redis.call('HVALS', KEYS[1])
local total = 0
for _, v in ipairs(vals) do
  local ok, p = pcall(cjson.decode, v)
  if ok and type(p) == 'table' then
    total = total + (tonumber(p[$QTY]) or 0) * (tonumber(p[$ENTRY_PRICE]) or 0)
  end
end
local value = string.format('%.10f', total)
redis.call('HSET', KEYS[2], $OPEN_NOTIONAL, value)
return value
"""
)

# Paper: state:open_orders = HLEN state:positions (no working orders); returns the previous value.
SYNC_OPEN_ORDERS_LUA: Final = r"""
local before = redis.call('GET', KEYS[2])
local n = redis.call('HLEN', KEYS[1])
if before ~= tostring(n) then redis.call('SET', KEYS[2], n) end
return {before, n}
"""

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
