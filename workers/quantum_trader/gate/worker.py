"""The gate's async shell: reads → core → writes → report, once per batch of ``trade.intent``.

 1. reads: one script call (a consistent moment) reads ``control:paused``, the batch symbols'
    positions, the universe (active/last_ok), ``state:cooldowns``, ``state:risk`` (with the open
    notional), the in-flight summary (``state:pending_summary``), the decision ledger for the
    batch's intent ids, and the snapshot hash of each symbol;
 2. core: :func:`quantum_trader.gate.core.build_view` turns the replies into the rules' view
    (fail closed on anything unreadable), :func:`~quantum_trader.gate.core.decide_batch` decides;
 3. writes: one call of ``DECIDE_LUA`` (:mod:`quantum_trader.ledger.scripts`) for the batch, per
    intent: ``HSETNX state:decided_intents`` → ``XADD stream:gate.decision`` → (EXECUTE) ``HSET
    state:pending_intents`` and the summary — atomic, so a redelivered intent never gets a second
    decision and an EXECUTE is never without the intent the executor needs;
 4. report: one ``GATE_DECISION`` line per decision, metrics per batch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from quantum_trader.core import metrics
from quantum_trader.core.bus import Parsed
from quantum_trader.core.keys import GROUP_GATE, Keys
from quantum_trader.core.logs import EventLog
from quantum_trader.core.messages import TradeIntent
from quantum_trader.core.profile import GateSettings
from quantum_trader.core.service import WorkerContext
from quantum_trader.gate.core import GateReads, GateView, Verdict, build_view, decide_batch, decision_fields
from quantum_trader.ledger.allowlist import AllowlistConfig
from quantum_trader.ledger.intents import (
    NOTIONAL_FIELD,
    flight_field,
    intent_json,
    intent_notional,
    parse_intent_json,
    summary_fields,
)
from quantum_trader.ledger.scripts import (
    DECIDE_LUA,
    MULTI_READ_LUA,
    REBUILD_SUMMARY_LUA,
    RESYNC_NOTIONAL_LUA,
    MultiRead,
    pairs,
)
from quantum_trader.ledger.snapshots import READ_FIELDS, parse_snapshot

# shared-state helpers callers used to import from here
__all__ = ["NOTIONAL_FIELD", "flight_field", "intent_json", "parse_intent_json", "parse_snapshot"]

BATCH: Final = 250  # entries per read: bigger batches amortise the 2 round trips per batch under backlog


@dataclass(frozen=True, slots=True)
class GateConfig:
    """What the gate is given: its own section plus the values it shares (built by ``quantum_trader.compose``)."""

    settings: GateSettings
    allowlist: AllowlistConfig  # snapshot.allowlist / allowlistSource: the snapshot worker's, shared
    spec_paused: bool = False  # the profile's top-level ``paused``: blocks new positions


class Gate:
    """State of one gate process (testable without a WorkerContext)."""

    def __init__(
        self,
        *,
        redis: Any,
        keys: Keys,
        settings: GateSettings,
        allowlist: AllowlistConfig,
        spec_paused: bool,
        log: EventLog,
        maxlen: int = 100_000,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.settings = settings
        self.allowlist = allowlist
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

    async def read(self, intents: list[TradeIntent]) -> GateReads:
        """Everything the rules need, from one consistent moment (one script call)."""
        k = self.keys
        symbols = sorted({i.symbol for i in intents})
        mr = MultiRead()
        mr.add("EXISTS", k.control_paused)
        mr.add("HMGET", k.positions, *symbols)
        mr.add("GET", k.universe_active)
        mr.add("GET", k.universe_last_ok)
        mr.add("HMGET", k.cooldowns, *symbols)
        mr.add("HGETALL", k.risk_state)
        mr.add("HMGET", k.pending_summary, *summary_fields(symbols))
        mr.add("HMGET", k.decided_intents, *[i.intent_id for i in intents])
        for s in symbols:
            mr.add("HMGET", k.position_snapshot(s), *READ_FIELDS)
        res = await mr.run(self._read)
        return GateReads(
            symbols=tuple(symbols),
            intent_ids=tuple(i.intent_id for i in intents),
            paused=self.spec_paused or bool(res[0]),
            positions={s: v for s, v in zip(symbols, res[1], strict=True) if v is not None},
            universe_active=res[2],
            universe_last_ok=res[3],
            cooldowns=res[4],
            risk=pairs(res[5]),
            summary=res[6],
            decided=res[7],
            snapshots=res[8:],
        )

    async def view(self, intents: list[TradeIntent], *, now_ms: int) -> GateView:
        """Read, build the view (pure, fail closed), report what was unreadable and the allowlist tier."""
        view, report = build_view(
            await self.read(intents), settings=self.settings, allowlist=self.allowlist, now_ms=now_ms
        )
        if report.unreadable_positions:
            self.log.warn("POSITION_UNREADABLE", symbols=list(report.unreadable_positions),
                          note="exposure unknown: blocking exposure_limit")
        if report.risk_error:
            self.log.warn("RISK_STATE_UNREADABLE", error=report.risk_error, note="kill score 1 (fail closed)")
        metrics.GATE_KILL_SCORE.labels(self.profile).set(view.kill_score)
        if self._tier != (report.tier, len(view.allowlist)):
            self._tier = (report.tier, len(view.allowlist))
            self.log.event("ALLOWLIST_TIER", tier=report.tier, symbols=len(view.allowlist))
        return view

    async def handle(self, intents: list[TradeIntent], *, now_ms: int) -> int:
        """Decide and publish a batch; return how many decisions were published."""
        if not intents:
            return 0
        view = await self.view(intents, now_ms=now_ms)
        verdicts = decide_batch(intents, view, settings=self.settings, now_ms=now_ms)
        todo = [(i, v) for i, v in zip(intents, verdicts, strict=True) if i.intent_id not in view.decided]
        if not todo:
            return 0  # every intent redelivered: already decided once, never again
        results = await self.write(todo, now_ms=now_ms)
        return self.report([t for t, ok in zip(todo, results, strict=True) if ok])

    async def write(self, todo: list[tuple[TradeIntent, Verdict]], *, now_ms: int) -> list[int]:
        """One ``DECIDE_LUA`` call for the batch; 1 per decision written, 0 per one already in the ledger."""
        k = self.keys
        items = [decide_item(intent, verdict, now_ms=now_ms) for intent, verdict in todo]
        return list(await self._decide(
            keys=[k.decided_intents, k.gate_decision, k.pending_intents, k.pending_summary, k.ledger_age],
            args=[json.dumps(items, separators=(",", ":")), str(self.maxlen), str(now_ms)],
        ))

    def report(self, published: list[tuple[TradeIntent, Verdict]]) -> int:
        """One ``GATE_DECISION`` line per decision written; metrics counted per batch."""
        counts: dict[tuple[str, str], int] = {}
        for intent, verdict in published:
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
            metrics.BUS_PUBLISHED.labels(self.profile, "gate.decision").inc(len(published))
        return len(published)


def decide_item(intent: TradeIntent, verdict: Verdict, *, now_ms: int) -> list[Any]:
    """One decision as the JSON array ``DECIDE_LUA`` reads: [intent_id, decision_id, [fields...],
    pending intent JSON or "", in-flight summary field or "", notional or ""]."""
    fields = decision_fields(intent, verdict, now_ms=now_ms)
    opening = verdict.execute and not intent.reduce_only
    flat: list[str] = []
    for key, value in fields.items():
        flat.extend((key, value))
    return [
        intent.intent_id,
        fields["decision_id"],
        flat,
        intent_json(intent) if verdict.execute else "",
        flight_field(intent.symbol, intent.side) if opening else "",
        repr(intent_notional(intent)) if opening else "",
    ]


async def main(ctx: WorkerContext, config: GateConfig) -> None:
    gate = Gate(
        redis=ctx.redis,
        keys=ctx.keys,
        settings=config.settings,
        allowlist=config.allowlist,
        spec_paused=config.spec_paused,
        log=ctx.log,
    )
    await gate.rebuild_in_flight()
    ctx.log.event(
        "GATE_READY",
        allowlist_source=config.allowlist.source,
        max_exposure_usd=config.settings.max_exposure_usd,
        kill_warning=config.settings.kill_score_warning,
        kill_critical=config.settings.kill_score_critical,
    )

    async def handler(batch: list[Parsed[TradeIntent]]) -> None:
        await gate.handle([p.message for p in batch], now_ms=ctx.clock.now_ms())

    ctx.mark_ready()
    await ctx.consume(
        stream=ctx.keys.trade_intent, message_type=TradeIntent, handler=handler, group=GROUP_GATE, count=BATCH
    )
