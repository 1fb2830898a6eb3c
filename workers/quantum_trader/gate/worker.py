"""The gate's async shell: read intents, gather the view in one round trip, decide, publish once.

Per batch of ``trade.intent`` entries:
 1. one script call (a consistent moment) reads ``control:paused``, the batch symbols'
    positions and the open notional (``state:risk``), the universe
    (active/last_ok), ``state:cooldowns``, ``state:risk``, the in-flight summary
    (``state:pending_summary``: opening EXECUTEs not yet executed, per symbol:side,
    and their notional), the decision ledger for the batch's intent ids, and the
    snapshot hash of each symbol;
 2. :func:`quantum_trader.gate.core.decide_batch` decides in order;
 3. one call of :data:`DECIDE_LUA` for the batch, per intent: ``HSETNX state:decided_intents``
    → ``XADD stream:gate.decision`` → (EXECUTE) ``HSET state:pending_intents`` and the
    summary — atomic, so a redelivered intent never gets a second decision and an
    EXECUTE is never without the intent the executor needs. The executor removes the
    pending intent (and decrements the summary) atomically with its result.
"""

from __future__ import annotations

import json
from typing import Any, Final

from quantum_trader.core import metrics
from quantum_trader.core.bus import Parsed
from quantum_trader.core.keys import GROUP_GATE, Keys
from quantum_trader.core.logs import EventLog
from quantum_trader.core.messages import TradeIntent
from quantum_trader.core.profile import GateSettings, SnapshotSettings
from quantum_trader.core.service import WorkerContext
from quantum_trader.executor.scripts import (
    MULTI_READ_LUA,
    OPEN_NOTIONAL_FIELD,
    RESYNC_NOTIONAL_LUA,
    MultiRead,
    pairs,
)
from quantum_trader.executor.state import RiskState, parse_positions
from quantum_trader.gate.core import (
    GateView,
    SnapshotInfo,
    decide_batch,
    decision_fields,
    intent_notional,
    kill_score,
    resolve_allowlist,
)

# One call per batch. ARGV[1]: JSON array of [intent_id, decision_id, [decision fields...],
# pending intent JSON or "", in-flight summary field or "", notional or ""]; ARGV[2]: stream MAXLEN;
# ARGV[3]: now (ms), the ledger entry's age for pruning (KEYS[5] = state:ledger_age).
# Per item, atomically: HSETNX ledger → XADD decision → (EXECUTE) HSET pending (+ summary). → 1/0 each.
DECIDE_LUA: Final = """
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
if notional ~= 0 then redis.call('HINCRBYFLOAT', KEYS[4], '_notional', string.format('%.10f', notional)) end
return out
"""

# Rebuild state:pending_summary from state:pending_intents (gate start-up; heals any drift).
REBUILD_SUMMARY_LUA: Final = """
local all = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[2])
local total = 0
local n = 0
for i = 1, #all, 2 do
  local ok, it = pcall(cjson.decode, all[i + 1])
  if ok and type(it) == 'table' and it['reduce_only'] ~= true and it['symbol'] and it['side'] then
    redis.call('HINCRBY', KEYS[2], it['symbol'] .. ':' .. it['side'], 1)
    total = total + (tonumber(it['position_size_usd']) or 0) * (tonumber(it['leverage']) or 0)
    n = n + 1
  end
end
redis.call('HSET', KEYS[2], '_notional', string.format('%.10f', total))
return n
"""

NOTIONAL_FIELD: Final = "_notional"
BATCH: Final = 250  # entries per read: bigger batches amortise the 2 round trips per batch under backlog


def flight_field(symbol: str, side: str) -> str:
    """The ``state:pending_summary`` field of in-flight opening EXECUTEs on a symbol and side."""
    return f"{symbol}:{side}"


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def parse_snapshot(raw: list[Any] | None) -> SnapshotInfo | None:
    """``HMGET snapshot mark_price ts`` → SnapshotInfo, or None when missing/malformed."""
    if not raw or raw[0] is None or raw[1] is None:
        return None
    try:
        return SnapshotInfo(mark_price=float(_text(raw[0])), ts_ms=int(float(_text(raw[1]))))
    except ValueError:
        return None


def intent_json(intent: TradeIntent) -> str:
    """A TradeIntent as the JSON object ``state:pending_intents`` holds (typed JSON values)."""
    return intent.model_dump_json()


def parse_intent_json(raw: str | bytes) -> TradeIntent:
    """A ``state:pending_intents`` value back to a TradeIntent (raises ValueError when malformed)."""
    return TradeIntent.model_validate_json(raw)


class Gate:
    """State of one gate process (testable without a WorkerContext)."""

    def __init__(
        self,
        *,
        redis: Any,
        keys: Keys,
        settings: GateSettings,
        snapshot_settings: SnapshotSettings,
        spec_paused: bool,
        log: EventLog,
        maxlen: int = 100_000,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.settings = settings
        self.snapshot_settings = snapshot_settings
        self.spec_paused = spec_paused
        self.log = log
        self.maxlen = maxlen
        self.profile = keys.profile
        self._decide = redis.register_script(DECIDE_LUA)
        self._read = redis.register_script(MULTI_READ_LUA)
        self._rebuild = redis.register_script(REBUILD_SUMMARY_LUA)
        self._resync = redis.register_script(RESYNC_NOTIONAL_LUA)
        self._tier: tuple[str, int] | None = None

    async def rebuild_in_flight(self) -> int:
        """Recompute the in-flight summary from the pending intents (atomic); returns in-flight opens."""
        n = int(await self._rebuild(keys=[self.keys.pending_intents, self.keys.pending_summary]))
        notional = await self._resync(keys=[self.keys.positions, self.keys.risk_state])
        self.log.event("IN_FLIGHT_REBUILT", opening_executes=n, open_notional_usd=notional)
        return n

    async def view(self, intents: list[TradeIntent], *, now_ms: int) -> GateView:
        k = self.keys
        symbols = sorted({i.symbol for i in intents})
        mr = MultiRead()
        mr.add("EXISTS", k.control_paused)
        mr.add("HMGET", k.positions, *symbols)
        mr.add("GET", k.universe_active)
        mr.add("GET", k.universe_last_ok)
        mr.add("HMGET", k.cooldowns, *symbols)
        mr.add("HGETALL", k.risk_state)
        flight_fields = [flight_field(s, side) for s in symbols for side in ("BUY", "SELL")]
        mr.add("HMGET", k.pending_summary, *flight_fields, NOTIONAL_FIELD)
        mr.add("HMGET", k.decided_intents, *[i.intent_id for i in intents])
        for s in symbols:
            mr.add("HMGET", k.position_snapshot(s), "mark_price", "ts")
        res = await mr.run(self._read)
        paused_flag, active, last_ok = res[0], res[2], res[3]
        pos_raw = {s: v for s, v in zip(symbols, res[1], strict=True) if v is not None}
        risk_raw = pairs(res[5])
        summary_raw, decided_raw = res[6], res[7]
        snaps = {s: parse_snapshot(r) for s, r in zip(symbols, res[8:], strict=True)}

        positions, bad = parse_positions(pos_raw)
        if bad:
            self.log.warn("POSITION_UNREADABLE", symbols=bad, note="exposure unknown: blocking exposure_limit")
        try:
            risk = RiskState.from_hash(risk_raw)
            score = kill_score(risk, settings=self.settings, now_ms=now_ms)
        except ValueError as exc:
            self.log.warn("RISK_STATE_UNREADABLE", error=str(exc), note="kill score 1 (fail closed)")
            risk, score = RiskState(), 1.0
        metrics.GATE_KILL_SCORE.labels(self.profile).set(score)
        try:
            open_notional = float(risk_raw.get(OPEN_NOTIONAL_FIELD, 0.0))
        except ValueError:
            open_notional = float("inf")  # unreadable: fail closed (exposure_limit)

        allowlist, tier = resolve_allowlist(
            source=self.snapshot_settings.allowlist_source,
            active=active,
            last_ok=last_ok,
            profile_allowlist=self.snapshot_settings.allowlist,
            now_ms=now_ms,
        )
        if self._tier != (tier, len(allowlist)):
            self._tier = (tier, len(allowlist))
            self.log.event("ALLOWLIST_TIER", tier=tier, symbols=len(allowlist))

        cooldowns: dict[str, int] = {}
        for sym, until in zip(symbols, res[4], strict=True):
            if until is not None:
                try:
                    cooldowns[sym] = int(float(_text(until)))
                except ValueError:
                    cooldowns[sym] = 2**62  # unreadable cooldown: fail closed
        in_flight: set[tuple[str, str]] = set()
        for fld, count in zip(flight_fields, summary_raw[:-1], strict=True):
            try:
                busy = count is not None and int(_text(count)) > 0
            except ValueError:
                busy = True  # unreadable: fail closed (duplicate)
            if busy:
                sym, side = fld.rsplit(":", 1)
                in_flight.add((sym, side))
        try:
            in_flight_notional = float(_text(summary_raw[-1])) if summary_raw[-1] is not None else 0.0
        except ValueError:
            in_flight_notional = float("inf")  # unreadable: fail closed (exposure_limit)
        decided = frozenset(i.intent_id for i, d in zip(intents, decided_raw, strict=True) if d is not None)
        return GateView(
            paused=self.spec_paused or bool(paused_flag),
            allowlist=allowlist,
            positions=positions,
            snapshots={s: v for s, v in snaps.items() if v is not None},
            cooldowns=cooldowns,
            risk=risk,
            kill_score=score,
            decided=decided,
            in_flight=frozenset(in_flight),
            in_flight_notional=in_flight_notional,
            exposure_unknown=bool(bad),
            open_notional_usd=open_notional,
        )

    async def handle(self, intents: list[TradeIntent], *, now_ms: int) -> int:
        """Decide and publish a batch; return how many decisions were published."""
        if not intents:
            return 0
        view = await self.view(intents, now_ms=now_ms)
        verdicts = decide_batch(intents, view, settings=self.settings, now_ms=now_ms)
        k = self.keys
        items: list[list[Any]] = []
        todo = []
        for intent, verdict in zip(intents, verdicts, strict=True):
            if intent.intent_id in view.decided:
                continue  # redelivered: already decided once, never again
            fields = decision_fields(intent, verdict, now_ms=now_ms)
            opening = verdict.execute and not intent.reduce_only
            flat: list[str] = []
            for key, value in fields.items():
                flat.extend((key, value))
            items.append([
                intent.intent_id,
                fields["decision_id"],
                flat,
                intent_json(intent) if verdict.execute else "",
                flight_field(intent.symbol, intent.side) if opening else "",
                repr(intent_notional(intent)) if opening else "",
            ])
            todo.append((intent, verdict))
        if not todo:
            return 0
        results = await self._decide(
            keys=[k.decided_intents, k.gate_decision, k.pending_intents, k.pending_summary, k.ledger_age],
            args=[json.dumps(items, separators=(",", ":")), str(self.maxlen), str(now_ms)],
        )
        published = 0
        counts: dict[tuple[str, str], int] = {}
        for (intent, verdict), ok in zip(todo, results, strict=True):
            if not ok:
                continue
            published += 1
            label = (verdict.decision, metrics.reason_code(verdict.reason))
            counts[label] = counts.get(label, 0) + 1
            self.log.event(
                "GATE_DECISION",
                intent_id=intent.intent_id,
                symbol=intent.symbol,
                side=intent.side,
                decision=verdict.decision,
                reason=verdict.reason,
                kill_score=round(verdict.kill_score, 6),
            )
        for (decision, code), n in counts.items():
            metrics.GATE_DECISIONS.labels(self.profile, decision, code).inc(n)
        if published:
            metrics.BUS_PUBLISHED.labels(self.profile, "gate.decision").inc(published)
        return published


async def main(ctx: WorkerContext) -> None:
    spec = ctx.profile.spec
    gate = Gate(
        redis=ctx.redis,
        keys=ctx.keys,
        settings=spec.gate,
        snapshot_settings=spec.snapshot,
        spec_paused=spec.paused,
        log=ctx.log,
    )
    await gate.rebuild_in_flight()
    ctx.log.event(
        "GATE_READY",
        allowlist_source=spec.snapshot.allowlist_source,
        max_exposure_usd=spec.gate.max_exposure_usd,
        kill_warning=spec.gate.kill_score_warning,
        kill_critical=spec.gate.kill_score_critical,
    )

    async def handler(batch: list[Parsed[TradeIntent]]) -> None:
        await gate.handle([p.message for p in batch], now_ms=ctx.clock.now_ms())

    ctx.mark_ready()
    await ctx.consume(
        stream=ctx.keys.trade_intent, message_type=TradeIntent, handler=handler, group=GROUP_GATE, count=BATCH
    )
