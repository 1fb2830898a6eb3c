"""Parity: one replay span through the real worker shells on Redis and through ``qt backtest``.

The live side is the workers' own shell functions on a real Redis, stepped in pipeline order
under a data clock (a stand-in for ``qt run`` whose clock advances once every stream is drained):
at every 1m close the executor's SL/TP monitor (``monitor_once``); at every 15m close the universe
cycle when due (``cycle_once``, publishing to Redis), the ai worker (``on_bar_close``), the
router's admission and batch (``Router.admit`` → snapshot ``cycle`` → ``Router.decide``), the gate
(``Gate.handle``) and the executor (``Executor.handle``), each reading what the previous one
wrote to its stream; a router verdict on a held position (``state:held_signals``) is applied by the
monitor at the next 1m close, as the backtest applies it. The backtest runs the same span with ``--fills paper`` (the live paper venue:
fill at the mark across half the profile's spread). Signals, intents, gate decisions, fills and closed trades must be
identical; otherwise the test names the first difference.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from quantum_trader import compose
from quantum_trader.ai import worker as ai_worker
from quantum_trader.backtest.command import Progress, execute
from quantum_trader.backtest.data import load_replay
from quantum_trader.backtest.report import funnel_doc
from quantum_trader.backtest.signals import decision_times
from quantum_trader.core.bus import Parsed
from quantum_trader.core.clock import DataClock
from quantum_trader.core.keys import GROUP_EXECUTOR, GROUP_GATE, GROUP_ROUTER
from quantum_trader.core.messages import (
    ExecutionResult,
    GateDecision,
    PositionEvent,
    RouterFate,
    Signal,
    TradeIntent,
)
from quantum_trader.core.profile import TradingProfile, load_profile
from quantum_trader.core.service import WorkerContext, redis_client
from quantum_trader.executor import worker as executor_worker
from quantum_trader.gate.worker import Gate
from quantum_trader.ledger.allowlist import AllowlistConfig
from quantum_trader.market.replay import ReplayExchange
from quantum_trader.router import worker as router_worker
from quantum_trader.snapshot import worker as snapshot_worker
from quantum_trader.universe.worker import UniverseState, cycle_once

from tests.backtest.conftest import DAY, END, record

SPAN_DAYS = 3
MINUTE = 60_000


def _profile(tmp: Path, data: Path) -> TradingProfile:
    path = tmp / "parity.yaml"
    path.write_text(
        "apiVersion: quantumtrader.io/v1alpha1\nkind: TradingProfile\nmetadata: {name: parity}\nspec:\n"
        f"  exchange: {{name: replay, data: {data}}}\n"
        "  universe: {size: 3, refreshInterval: 2h, validFor: 3h, bars: 60, minQuoteVolume24h: 0}\n"
        "  health: {minBars: 50}\n"
        # the untrained fallback (confidence < 0.60, win = loss = the stop distance) has a positive expected
        # value only where costs are small: low fees and slippage give enough intents in three days for every stage
        "  router: {minConfidence: 0.51}\n"
        "  ai: {holdBelow: 0.51}\n"
        "  executor: {baseSizeUsd: 60, feeBps: 0.5, maxSlippageBps: 1}\n",
        encoding="utf-8",
    )
    return load_profile(path)


async def _read(ctx: WorkerContext, stream: str, group: str) -> list[Any]:
    await ctx.bus.ensure_group(stream, group)
    entries = await ctx.bus.read(stream, group, ctx.consumer, count=10_000, block_ms=None)
    if entries:
        await ctx.redis.xack(stream, group, *[e.id for e in entries])
    return entries


async def _live(profile: TradingProfile, *, start: int, end: int, redis_url: str) -> dict[str, list[Any]]:
    spec = profile.spec
    clock = DataClock(start)
    client = redis_client(redis_url)
    stop = asyncio.Event()
    exchange = ReplayExchange(spec.exchange, clock=clock)

    def ctx(name: str) -> WorkerContext:
        return WorkerContext(name=name, profile=profile, redis=client, clock=clock, stop=stop,
                             exchange_factory=lambda: exchange)

    ai_ctx, router_ctx, snap_ctx, gate_ctx, ex_ctx = (ctx(n) for n in ("ai", "router", "snapshot", "gate",
                                                                       "executor"))
    ai_state, snap_state, uni_state = ai_worker._State(), snapshot_worker.State(), UniverseState()
    gate = Gate(redis=client, keys=gate_ctx.keys, settings=spec.gate, spec_paused=False, log=gate_ctx.log,
                allowlist=AllowlistConfig(source=spec.snapshot.allowlist_source, symbols=spec.snapshot.allowlist))
    await gate.rebuild_in_flight()
    router = router_worker.Router(router_ctx, compose.router_config(profile))
    started = await executor_worker._start(ex_ctx, compose.executor_config(profile))
    assert started is not None
    executor, _ = started
    keys = ai_ctx.keys
    for stream, group in ((keys.ai_signal, GROUP_ROUTER), (keys.trade_intent, GROUP_GATE),
                          (keys.gate_decision, GROUP_EXECUTOR)):
        await ai_ctx.bus.ensure_group(stream, group)
    refresh = int(spec.universe.refresh_interval * 1000)
    next_universe = start
    prev = start - MINUTE * 15
    try:
        for t in decision_times(start_ms=start, end_ms=end, timeframe=spec.ai.timeframe):
            for m in range(prev + MINUTE, t + 1, MINUTE):  # the SL/TP monitor sees every 1m mark
                clock.advance_to(m)
                await executor.monitor_once(now_ms=m)
            prev = t
            clock.advance_to(t)
            while next_universe <= t:
                await cycle_once(config=compose.universe_config(profile), keys=keys, exchange=exchange, clock=clock,
                                 log=ai_ctx.log, state=uni_state, redis=client)
                next_universe += refresh
            await ai_worker.on_bar_close(ai_ctx, ai_state, bar_open_ms=t - 900_000, settings=spec.ai,
                                         fallback_stop_atr=spec.router.stop_loss_atr)
            arrivals = [Parsed(e.id, Signal.from_fields(e.fields), 1)
                        for e in await _read(router_ctx, keys.ai_signal, GROUP_ROUTER)]
            waiting = await router.admit(arrivals)
            if not waiting:
                continue
            await snapshot_worker.cycle(snap_ctx, snap_state, settings=spec.snapshot)
            await router.decide([p for p in arrivals if p.id in waiting])
            intents = [TradeIntent.from_fields(e.fields) for e in await _read(gate_ctx, keys.trade_intent,
                                                                              GROUP_GATE)]
            if intents:
                await gate.handle(intents, now_ms=t)
            decisions = [GateDecision.from_fields(e.fields) for e in await _read(ex_ctx, keys.gate_decision,
                                                                                GROUP_EXECUTOR)]
            if decisions:
                await executor.handle(decisions, now_ms=t)
        for m in range(prev + MINUTE, end + 1, MINUTE):
            clock.advance_to(m)
            await executor.monitor_once(now_ms=m)

        async def stream(key: str, kind: Any) -> list[Any]:
            return [kind.from_fields(f) for _, f in await client.xrange(key)]

        return {
            "signals": await stream(keys.ai_signal, Signal),
            "drops": await stream(keys.router_drop, RouterFate),
            "intents": await stream(keys.trade_intent, TradeIntent),
            "decisions": await stream(keys.gate_decision, GateDecision),
            "fills": await stream(keys.execution_result, ExecutionResult),
            "closed": [e for e in await stream(keys.position_event, PositionEvent) if e.event == "CLOSED"],
        }
    finally:
        await client.aclose()


def _first_difference(name: str, live: list[Any], backtest: list[Any]) -> str | None:
    for i, (a, b) in enumerate(zip(live, backtest, strict=False)):
        if a != b:
            return f"{name} #{i}: live {a} != backtest {b}"
    if len(live) != len(backtest):
        return f"{name}: live has {len(live)}, backtest {len(backtest)}"
    return None


def test_backtest_matches_the_live_workers_on_redis(tmp_path: Path, redis_url: str) -> None:
    data = record(tmp_path / "m1", days=SPAN_DAYS + 3, timeframe="1m")  # 3 days: the ai window (284 × 15m)
    profile = _profile(tmp_path, data)
    start, end = END - SPAN_DAYS * DAY, END
    live = asyncio.run(_live(profile, start=start, end=end, redis_url=redis_url))
    run = execute(profile, start=start, end=end, data=load_replay(profile.spec.exchange), retrain_s=1e12, models=[],
                  in_sample=False, progress=Progress(sys.stderr, enabled=False), oracle=False, paper_fills=True)
    rec = run.result.record
    bt_signals = [p.signal() for t in run.plan.steps for p in run.plan.by_step.get(t, [])]
    pairs = {
        "signals": ([(s.signal_id, s.side, s.confidence, s.model) for s in live["signals"]],
                    [(s.signal_id, s.side, s.confidence, s.model) for s in bt_signals]),
        "intents": ([(i.intent_id, i.side, i.position_size_usd, i.stop_loss, i.take_profit) for i in live["intents"]],
                    [(i.intent_id, i.side, i.position_size_usd, i.stop_loss, i.take_profit) for i in rec.intents]),
        "decisions": ([(d.intent_id, d.decision, d.reason) for d in live["decisions"]], rec.decisions),
        "fills": ([(f.intent_id, "FILLED" if f.status == "FILLED" else f.reason, f.qty, f.price)
                   for f in live["fills"]], rec.fills),
        "closed": ([(c.symbol, c.ts, c.close_reason, round(c.exit_price, 8), round(c.pnl_usd, 6))
                    for c in sorted(live["closed"], key=lambda c: (c.ts, c.symbol))],
                   [(t.symbol, t.exit_ts, "manual" if t.exit_reason == "end_of_backtest" else t.exit_reason,
                     round(t.exit_price, 8), round(t.pnl_usd + t.funding_usd, 6))
                    for t in sorted(run.result.trades, key=lambda t: (t.exit_ts, t.symbol))
                    if t.exit_reason != "end_of_backtest"]),
    }
    assert len(live["intents"]) > 5 and len(live["fills"]) > 5, "the span must exercise the whole pipeline"
    renewed = [d for d in live["drops"] if d.reason.startswith("position_renewed:")]
    assert len(renewed) > 10, "signals on held positions must renew them (state:held_signals → the monitor)"
    assert run.result.funnel.router["position_renewed"] == len(renewed)
    router_doc = funnel_doc(run.result.funnel, ai_rows=0, ai_skipped={})["router"]  # report.json: apart from drops
    assert router_doc["held"]["renewed"] == len(renewed) and "position_renewed" not in router_doc["dropped"]
    assert {d.reason for d in live["decisions"]} - {"none"}, "some intents must be blocked"
    assert "time" in {c.close_reason for c in live["closed"]}, "some positions must reach the time exit"
    for name, (a, b) in pairs.items():
        diff = _first_difference(name, a, b)
        assert diff is None, diff
