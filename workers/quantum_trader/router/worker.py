"""Router shell: lease → read signals → buffer → decide (pure core) → publish → ack.

Only the replica holding the leader lease reads ``stream:ai.signal`` (group
``router``); the others log ``ROUTER_STANDBY`` and wait. Signals are acked only
after the batch that contains them is decided and its intents and drop records
are written, so a crash re-delivers them (and ``publish_once`` on
``Keys.published_signals`` keeps a redelivered signal from yielding a second
intent; stale ones are dropped as ``stale``).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Final

from quantum_trader.core import metrics
from quantum_trader.core.bus import Entry, raw_command
from quantum_trader.core.keys import GROUP_ROUTER
from quantum_trader.core.messages import MessageError, RouterFate, Signal
from quantum_trader.core.profile import RouterSettings
from quantum_trader.core.service import WorkerContext
from quantum_trader.router import core
from quantum_trader.router.lease import Lease

READ_BLOCK_MAX_MS: Final = 250  # also bounds how long a stop waits
LAG_EVERY_S: Final = 5.0  # how often the group's lag gauge is refreshed (as the shared consumer does)
# Keys.published_signals (hash signal_id → intent_id, written by publish_once) only has to
# remember signals young enough to be routed (a redelivered old signal is dropped as stale),
# so it is reset when it grows past this many entries instead of growing forever.
LEDGER_MAX: Final = 200_000


@dataclass
class _Buffer:
    candidates: list[core.Candidate] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)  # every entry id to ack after the decision
    oldest_ms: int | None = None

    def clear(self) -> None:
        self.candidates.clear()
        self.ids.clear()
        self.oldest_ms = None


def _speed(ctx: WorkerContext) -> float:
    return float(getattr(ctx.clock, "speed", 1.0))


def _emit(ctx: WorkerContext, events: tuple[core.LogEvent, ...] | list[core.LogEvent]) -> None:
    for ev in events:
        if ev.level == "warn":
            ctx.log.warn(ev.event, **ev.fields)
        else:
            ctx.log.event(ev.event, **ev.fields)


def _stream_label(ctx: WorkerContext) -> str:
    return ctx.keys.ai_signal.rsplit(":", 1)[-1]


async def _ack(ctx: WorkerContext, ids: list[str]) -> None:
    """Ack handled entries and count them as the shared consumer does (processed-entries panels)."""
    await ctx.bus.ack(ctx.keys.ai_signal, GROUP_ROUTER, ids)
    if ids:
        ctx.processed(len(ids))
        metrics.WORKER_PROCESSED.labels(ctx.profile.name, ctx.name, _stream_label(ctx)).inc(len(ids))


async def _report_lag(ctx: WorkerContext) -> None:
    lag = await ctx.bus.lag(ctx.keys.ai_signal, GROUP_ROUTER)
    if lag is not None:
        metrics.BUS_LAG.labels(ctx.profile.name, _stream_label(ctx), GROUP_ROUTER).set(lag)


def _count_drops(ctx: WorkerContext, drops: tuple[RouterFate, ...] | list[RouterFate]) -> None:
    for d in drops:
        metrics.ROUTER_DROPS.labels(ctx.profile.name, metrics.reason_code(d.reason)).inc()


async def _admit(
    ctx: WorkerContext, entries: list[Entry], buf: _Buffer, *, settings: RouterSettings
) -> None:
    """Parse and screen new entries; admitted ones join the buffer, the rest are recorded and acked."""
    profile = ctx.profile.name
    now_ms = ctx.clock.now_ms()
    drops: list[RouterFate] = []
    events: list[core.LogEvent] = []
    done: list[str] = []
    for entry in entries:
        if entry.fields is None:
            done.append(entry.id)
            continue
        try:
            signal = Signal.from_fields(entry.fields)
        except MessageError as exc:
            await ctx.bus.deadletter(
                source_stream=ctx.keys.ai_signal, entry=entry, reason=str(exc), group=GROUP_ROUTER,
                code="malformed",
            )
            done.append(entry.id)
            continue
        metrics.ROUTER_SIGNALS.labels(profile).inc()
        reason = core.screen(signal, settings=settings)
        if reason is not None:
            drops.append(core.fate(signal, reason, now_ms=now_ms))
            events.append(core.screen_event(signal, reason, settings=settings))
            done.append(entry.id)
            continue
        buf.candidates.append(core.Candidate(entry_id=entry.id, signal=signal, received_ms=now_ms))
        buf.ids.append(entry.id)
        if buf.oldest_ms is None:
            buf.oldest_ms = now_ms
    if drops:
        await ctx.bus.publish_many([(ctx.keys.router_drop, d) for d in drops])
        _count_drops(ctx, drops)
    _emit(ctx, events)
    await _ack(ctx, done)


async def gather_input(ctx: WorkerContext, candidates: list[core.Candidate]) -> core.BatchInput:
    """Read everything one decision needs in one round trip."""
    keys = ctx.keys
    ids = [c.signal.signal_id for c in candidates]
    pipe = ctx.redis.pipeline(transaction=False)
    raw_command(pipe, "GET", keys.open_orders)  # undecoded: a non-UTF-8 value fails closed, not the client
    pipe.exists(keys.control_paused)
    pipe.smembers(keys.tradable_symbols)
    pipe.hmget(keys.published_signals, ids)
    pipe.hkeys(keys.positions)
    raw_open, paused, tradable, routed, positions = await pipe.execute()
    if isinstance(raw_open, bytes):
        raw_open = raw_open.decode("utf-8", errors="replace")
    tradable_set = frozenset(t.decode() if isinstance(t, bytes) else t for t in tradable or ())
    return core.BatchInput(
        candidates=tuple(candidates),
        open_orders_raw=raw_open,
        paused=bool(paused),
        tradable=tradable_set or None,
        already_routed=frozenset(i for i, r in zip(ids, routed or [], strict=False) if r is not None),
        now_ms=ctx.clock.now_ms(),
        open_symbols=frozenset(p.decode() if isinstance(p, bytes) else p for p in positions or ()),
    )


async def decide(
    ctx: WorkerContext,
    buf: _Buffer,
    *,
    settings: RouterSettings,
    base_size_usd: float,
    costs: core.EntryCosts | None = None,
) -> core.BatchResult:
    """reads → core → writes → report: decide the buffered batch, publish intents and drop records, ack."""
    started = time.perf_counter()
    inp: core.BatchInput = await ctx.bus.retry(
        lambda: gather_input(ctx, buf.candidates), what="router_inputs", stop=ctx.stop
    )
    result = core.decide_batch(inp, settings=settings, base_size_usd=base_size_usd, costs=costs)
    published = await ctx.bus.publish_once_many(
        [
            (ctx.keys.trade_intent, i, ctx.keys.published_signals, i.signal_id, i.intent_id)
            for i in result.intents
        ]
    )
    drops = list(result.drops)
    for intent, ok in zip(result.intents, published, strict=True):
        if not ok:  # routed by an earlier leader between our read and our publish
            drops.append(
                RouterFate(
                    signal_id=intent.signal_id, symbol=intent.symbol, side=intent.side,
                    confidence=intent.confidence, reason=core.DUPLICATE, ts=inp.now_ms,
                )
            )
    if drops:
        await ctx.bus.publish_many([(ctx.keys.router_drop, d) for d in drops])
    _report(ctx, result, drops, published=sum(published), seconds=time.perf_counter() - started)
    await _ack(ctx, buf.ids)
    buf.clear()
    if result.intents and await ctx.redis.hlen(ctx.keys.published_signals) > LEDGER_MAX:
        await ctx.redis.delete(ctx.keys.published_signals)
        ctx.log.event("ROUTER_LEDGER_RESET", max=LEDGER_MAX)
    return result


def _report(
    ctx: WorkerContext, result: core.BatchResult, drops: list[RouterFate], *, published: int, seconds: float
) -> None:
    profile = ctx.profile.name
    _emit(ctx, result.events)
    _count_drops(ctx, drops)
    metrics.ROUTER_INTENTS.labels(profile).inc(published)
    metrics.ROUTER_BATCHES.labels(profile, result.outcome).inc()
    metrics.STAGE_LATENCY.labels(profile, ctx.name).observe(seconds)
    if result.open_orders is not None:
        metrics.ROUTER_CAPACITY.labels(profile, "open").set(result.open_orders)


async def _read(ctx: WorkerContext, *, count: int, block_ms: int, pending: bool = False) -> list[Entry]:
    entries: list[Entry] = await ctx.bus.retry(
        lambda: ctx.bus.read(
            ctx.keys.ai_signal, GROUP_ROUTER, ctx.consumer, count=count, block_ms=block_ms, pending=pending
        ),
        what="xreadgroup",
        stop=ctx.stop,
    )
    return entries


async def lead(
    ctx: WorkerContext, lease: Lease, *, settings: RouterSettings, base_size_usd: float, costs: core.EntryCosts
) -> None:
    """Route while holding the lease; return when it is lost or the worker stops."""
    keys = ctx.keys
    await ctx.bus.ensure_group(keys.ai_signal, GROUP_ROUTER)
    buf = _Buffer()
    renew_every = lease.ttl_ms / 3000.0
    last_renew, last_lag = time.monotonic(), 0.0
    # Our own pending entries (restart), then whatever a previous leader left pending.
    backlog = await _read(ctx, count=settings.batch_size, block_ms=0, pending=True)
    backlog += await ctx.bus.reclaim(keys.ai_signal, GROUP_ROUTER, ctx.consumer, min_idle_ms=0, count=10_000)
    if backlog:
        await _admit(ctx, backlog, buf, settings=settings)
    ctx.mark_ready()
    while not ctx.stop.is_set():
        if time.monotonic() - last_renew >= renew_every:
            if not await lease.renew():
                metrics.ROUTER_LEADER.labels(ctx.profile.name).set(0)
                ctx.log.warn("ROUTER_LEASE_LOST", owner=lease.owner, buffered=len(buf.ids))
                return  # unacked entries stay pending; the next leader reclaims them
            last_renew = time.monotonic()
        if time.monotonic() - last_lag >= LAG_EVERY_S:
            last_lag = time.monotonic()
            await _report_lag(ctx)
        now_ms = ctx.clock.now_ms()
        if core.due(buffered=len(buf.candidates), oldest_buffered_ms=buf.oldest_ms, now_ms=now_ms, settings=settings):
            await decide(ctx, buf, settings=settings, base_size_usd=base_size_usd, costs=costs)
            continue
        wait_ms = READ_BLOCK_MAX_MS
        if buf.oldest_ms is not None:
            remaining = buf.oldest_ms + int(settings.candidate_window * 1000) - now_ms
            wait_ms = int(min(wait_ms, max(1.0, remaining / _speed(ctx))))
        wait_ms = int(min(wait_ms, max(1.0, renew_every * 1000)))
        try:
            entries = await _read(ctx, count=settings.batch_size, block_ms=max(1, wait_ms))
        except asyncio.CancelledError:
            if ctx.stop.is_set():
                break
            raise
        if entries:
            await _admit(ctx, entries, buf, settings=settings)
    # Stopping: decide what we hold so nothing waits for a redelivery.
    if buf.candidates:
        await decide(ctx, buf, settings=settings, base_size_usd=base_size_usd, costs=costs)
    elif buf.ids:
        await _ack(ctx, buf.ids)


async def main(ctx: WorkerContext) -> None:
    settings = ctx.profile.spec.router
    # values the router shares with other workers, each declared once and passed explicitly:
    # executor.baseSizeUsd (size), executor.feeBps / maxSlippageBps and universe.spreadBps (entry costs)
    spec = ctx.profile.spec
    base_size_usd = spec.executor.base_size_usd
    costs = core.entry_costs(executor=spec.executor, universe=spec.universe)
    profile = ctx.profile.name
    metrics.ROUTER_CAPACITY.labels(profile, "target").set(settings.target_open_orders)
    metrics.ROUTER_CAPACITY.labels(profile, "max").set(settings.max_open_orders)
    ctx.log.event(
        "ROUTER_CONFIG",
        max=settings.max_open_orders,
        target=settings.target_open_orders,
        burst=settings.max_new_per_cycle,
        min_conf=settings.min_confidence,
        super_conf=settings.super_confidence,
        window_s=settings.candidate_window,
        batch=settings.batch_size,
        filter_tradable=settings.filter_tradable,
    )
    lease = Lease(ctx.redis, key=ctx.keys.router_lease, owner=ctx.consumer, ttl_ms=int(settings.lease_ttl * 1000))
    standby_logged = False
    try:
        while not ctx.stop.is_set():
            if await lease.acquire():
                standby_logged = False
                metrics.ROUTER_LEADER.labels(profile).set(1)
                ctx.log.event("ROUTER_LEADER", owner=lease.owner, ttl_ms=lease.ttl_ms)
                await lead(ctx, lease, settings=settings, base_size_usd=base_size_usd, costs=costs)
                continue
            metrics.ROUTER_LEADER.labels(profile).set(0)
            if not standby_logged:
                ctx.log.event("ROUTER_STANDBY", owner=lease.owner, leader=await lease.holder() or "")
                standby_logged = True
                ctx.mark_ready()  # a standby is healthy: it is waiting by design
            try:
                await asyncio.wait_for(ctx.stop.wait(), lease.ttl_ms / 3000.0)
            except TimeoutError:
                pass
    finally:
        metrics.ROUTER_LEADER.labels(profile).set(0)
        try:
            await lease.release()
        except Exception as exc:
            ctx.log.warn("ROUTER_LEASE_RELEASE_FAILED", error=type(exc).__name__)
