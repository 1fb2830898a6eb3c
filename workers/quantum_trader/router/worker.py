"""Router shell: lease → shared consumer (screen → window → decide) → publish → report.

Only the replica holding the leader lease consumes ``stream:ai.signal`` (group ``router``);
the others log ``ROUTER_STANDBY`` and wait. The leader consumes through the shared bus
consumer like every worker (``ctx.consume``: dead-lettering, poison handling, per-symbol
order, the bus-lag and processed-entries metrics), with the router as its batch window
(:class:`Router`): each arrival is screened at once (:func:`core.screen`; a drop is recorded
and acked), the admitted ones wait unacked until :func:`core.due` (``batchSize`` or
``candidateWindow``), then :meth:`Router.decide` — reads → core → writes → report — routes
them together. A crash redelivers what waited (``publish_once`` on ``Keys.published_signals``
keeps a redelivered signal from yielding a second intent; stale ones are dropped as
``stale``). On stop the leader decides what waits; on a lost lease it leaves it pending for
the next leader, which claims everything pending before it reads anything new.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, replace
from typing import Final

from quantum_trader.core import metrics
from quantum_trader.core.bus import Parsed, raw_command
from quantum_trader.core.keys import GROUP_ROUTER
from quantum_trader.core.messages import RouterFate, Signal, TradeIntent
from quantum_trader.core.profile import RouterSettings
from quantum_trader.core.service import WorkerContext
from quantum_trader.ledger.positions import open_sides
from quantum_trader.market.base import FundingRate, FundingSource
from quantum_trader.router import core
from quantum_trader.router.lease import Lease

READ_BLOCK_MAX_MS: Final = 250  # also bounds how long a stop waits
RECLAIM_AT_LEAD: Final = 10_000  # entries a previous leader left pending, claimed when we take the lease
# Keys.published_signals (hash signal_id → intent_id, written by publish_once) only has to
# remember signals young enough to be routed (a redelivered old signal is dropped as stale),
# so it is reset when it grows past this many entries instead of growing forever.
LEDGER_MAX: Final = 200_000


@dataclass(frozen=True, slots=True)
class RouterConfig:
    """What the router is given: its own section plus the values it shares with other stages."""

    settings: RouterSettings
    base_size_usd: float  # executor.baseSizeUsd: the size an intent starts from (USD)
    costs: core.EntryCosts | None = None  # the entry rule's round-trip costs (None: core defaults)


FUNDING_RETRY_MS: Final = 15 * 60 * 1000  # after a failed or empty funding read, ask again this much later


class FundingBook:
    """Each symbol's recent funding settlements, read from the exchange when a new one is due (so a
    symbol costs one call per settlement period, not one per batch). A symbol whose read fails or
    returns nothing is unknown (``funding=unknown`` in the entry rule) until it is asked again."""

    def __init__(self) -> None:
        self._rates: dict[str, list[FundingRate]] = {}
        self._next_read_ms: dict[str, int] = {}

    def due(self, symbols: set[str], *, now_ms: int) -> list[str]:
        return sorted(s for s in symbols if now_ms >= self._next_read_ms.get(s, -1))

    def store(self, symbol: str, rates: list[FundingRate], *, now_ms: int) -> None:
        past = [r for r in rates if r.ts <= now_ms][-2:]
        self._rates[symbol] = past
        interval = past[-1].ts - past[-2].ts if len(past) == 2 else 0
        self._next_read_ms[symbol] = past[-1].ts + interval if interval > 0 else now_ms + FUNDING_RETRY_MS

    def bps_8h(self, symbols: set[str], *, now_ms: int) -> dict[str, float]:
        out: dict[str, float] = {}
        for sym in symbols:
            bps = core.funding_bps_8h(self._rates.get(sym, []), now_ms=now_ms)
            if bps is not None:
                out[sym] = bps
        return out


async def read_funding(ctx: WorkerContext, book: FundingBook, symbols: set[str], *, now_ms: int) -> dict[str, float]:
    """Refresh the symbols whose next settlement is due, then each symbol's expected funding."""
    source = ctx.exchange
    if not isinstance(source, FundingSource):  # a venue without funding: every symbol stays unknown
        return {}
    for sym in book.due(symbols, now_ms=now_ms):
        try:
            rates = await source.funding_rates(
                sym, since_ms=now_ms - core.FUNDING_MAX_AGE_MS - int(core.FUNDING_PERIOD_S * 1000), until_ms=now_ms)
        except Exception as exc:  # any venue error: funding unknown for a while, the batch goes on
            ctx.log.event("FUNDING_UNKNOWN", symbol=sym, reason=type(exc).__name__)
            rates = []
        book.store(sym, rates, now_ms=now_ms)
    return book.bps_8h(symbols, now_ms=now_ms)


def _emit(ctx: WorkerContext, events: tuple[core.LogEvent, ...] | list[core.LogEvent]) -> None:
    for ev in events:
        if ev.level == "warn":
            ctx.log.warn(ev.event, **ev.fields)
        else:
            ctx.log.event(ev.event, **ev.fields)


def _count_drops(ctx: WorkerContext, drops: tuple[RouterFate, ...] | list[RouterFate]) -> None:
    for d in drops:
        metrics.ROUTER_DROPS.labels(ctx.keys.profile, metrics.reason_code(d.reason)).inc()


def _lost_races(intents: tuple[TradeIntent, ...], published: list[bool], *, now_ms: int) -> list[RouterFate]:
    """Intents ``publish_once`` refused: routed by an earlier leader between our read and our publish."""
    return [
        RouterFate(signal_id=i.signal_id, symbol=i.symbol, side=i.side, confidence=i.confidence,
                   reason=core.DUPLICATE, ts=now_ms)
        for i, ok in zip(intents, published, strict=True) if not ok
    ]


async def gather_input(ctx: WorkerContext, candidates: list[core.Candidate]) -> core.BatchInput:
    """Read everything one decision needs in one round trip."""
    keys = ctx.keys
    ids = [c.signal.signal_id for c in candidates]
    pipe = ctx.redis.pipeline(transaction=False)
    raw_command(pipe, "GET", keys.open_orders)  # undecoded: a non-UTF-8 value fails closed, not the client
    pipe.exists(keys.control_paused)
    pipe.smembers(keys.tradable_symbols)
    pipe.hmget(keys.published_signals, ids)
    pipe.hgetall(keys.positions)
    raw_open, paused, tradable, routed, positions = await pipe.execute()
    held, sides = open_sides(positions or {})  # an unreadable record: still held, no verdict on it
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
        open_symbols=held,
        open_sides=sides,
    )


class Router:
    """The router's batch window on the shared consumer (a ``bus.Window[Signal]``) and its handler."""

    def __init__(self, ctx: WorkerContext, config: RouterConfig) -> None:
        self.ctx = ctx
        self.config = config
        self.settings = config.settings
        self.received: dict[str, int] = {}  # entry id → clock ms when admitted (staleness is judged from it)
        self.funding = FundingBook()
        self.lease_lost = False

    # -- the window (bus.Window) -----------------------------------------------------------------
    def now_ms(self) -> int:
        return self.ctx.clock.now_ms()

    async def admit(self, arrivals: list[Parsed[Signal]]) -> set[str]:
        """Screen arrivals: drops are recorded (and acked by the bus); the others wait for the batch."""
        ctx, settings = self.ctx, self.settings
        now_ms = ctx.clock.now_ms()
        drops: list[RouterFate] = []
        events: list[core.LogEvent] = []
        keep: set[str] = set()
        for p in arrivals:
            metrics.ROUTER_SIGNALS.labels(ctx.keys.profile).inc()
            reason = core.screen(p.message, settings=settings)
            if reason is None:
                keep.add(p.id)
                self.received[p.id] = now_ms
                continue
            drops.append(core.fate(p.message, reason, now_ms=now_ms))
            events.append(core.screen_event(p.message, reason, settings=settings))
        if drops:
            await ctx.bus.publish_many([(ctx.keys.router_drop, d) for d in drops])
            _count_drops(ctx, drops)
        _emit(ctx, events)
        return keep

    def due_in_ms(self, *, waiting: int, oldest_ms: int) -> int:
        now_ms = self.ctx.clock.now_ms()
        if core.due(buffered=waiting, oldest_buffered_ms=oldest_ms, now_ms=now_ms, settings=self.settings):
            return 0
        remaining = oldest_ms + int(self.settings.candidate_window * 1000) - now_ms
        return int(max(1.0, remaining / float(getattr(self.ctx.clock, "speed", 1.0))))

    def decide_on_stop(self) -> bool:
        return not self.lease_lost  # a lost lease leaves the batch pending for the next leader

    # -- the handler: reads → core → writes → report -----------------------------------------------
    async def decide(self, batch: list[Parsed[Signal]]) -> core.BatchResult:
        """Decide the waiting batch, publish its intents and drop records (the bus acks them)."""
        ctx, config = self.ctx, self.config
        now_ms = ctx.clock.now_ms()
        candidates = [core.Candidate(entry_id=p.id, signal=p.message, received_ms=self.received.pop(p.id, now_ms))
                      for p in batch]
        inp: core.BatchInput = await ctx.bus.retry(
            lambda: gather_input(ctx, candidates), what="router_inputs", stop=ctx.stop
        )
        funding = await read_funding(ctx, self.funding, {c.signal.symbol for c in candidates}, now_ms=inp.now_ms)
        inp = replace(inp, funding_bps_8h=funding)
        result = core.decide_batch(inp, settings=config.settings, base_size_usd=config.base_size_usd,
                                   costs=config.costs)
        if result.held:  # verdicts on held positions, for the executor's monitor (ledger/held.py)
            await ctx.redis.hset(ctx.keys.held_signals, mapping={h.symbol: h.to_json() for h in result.held})
        published = await ctx.bus.publish_once_many(
            [(ctx.keys.trade_intent, i, ctx.keys.published_signals, i.signal_id, i.intent_id) for i in result.intents]
        )
        drops = list(result.drops) + _lost_races(result.intents, published, now_ms=inp.now_ms)
        if drops:
            await ctx.bus.publish_many([(ctx.keys.router_drop, d) for d in drops])
        self.report(result, drops, published=sum(published))
        if result.intents and await ctx.redis.hlen(ctx.keys.published_signals) > LEDGER_MAX:
            await ctx.redis.delete(ctx.keys.published_signals)
            ctx.log.event("ROUTER_LEDGER_RESET", max=LEDGER_MAX)
        return result

    async def handle(self, batch: list[Parsed[Signal]]) -> None:
        await self.decide(batch)

    def report(self, result: core.BatchResult, drops: list[RouterFate], *, published: int) -> None:
        ctx, profile = self.ctx, self.ctx.keys.profile
        _emit(ctx, result.events)
        _count_drops(ctx, drops)
        metrics.ROUTER_INTENTS.labels(profile).inc(published)
        metrics.ROUTER_BATCHES.labels(profile, result.outcome).inc()
        if result.open_orders is not None:
            metrics.ROUTER_CAPACITY.labels(profile, "open").set(result.open_orders)


async def _hold_lease(ctx: WorkerContext, lease: Lease, router: Router, leading: asyncio.Event) -> None:
    """Renew the lease every third of its TTL; on loss (or stop) end the leader's consume loop."""
    while not leading.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ctx.stop.wait(), lease.ttl_ms / 3000.0)
        if ctx.stop.is_set():
            break
        if not await ctx.bus.retry(lease.renew, what="router_lease", stop=ctx.stop):
            router.lease_lost = True
            metrics.ROUTER_LEADER.labels(ctx.keys.profile).set(0)
            ctx.log.warn("ROUTER_LEASE_LOST", owner=lease.owner)
            break
    leading.set()


async def lead(ctx: WorkerContext, lease: Lease, config: RouterConfig) -> None:
    """Route while holding the lease; return when it is lost or the worker stops."""
    keys = ctx.keys
    router = Router(ctx, config)
    done = asyncio.Event()  # the leader's stop: set when the worker stops or the lease is lost
    await ctx.bus.ensure_group(keys.ai_signal, GROUP_ROUTER)
    # whatever a previous leader left pending is ours now, handled before anything new
    await ctx.bus.reclaim(keys.ai_signal, GROUP_ROUTER, ctx.consumer, min_idle_ms=0, count=RECLAIM_AT_LEAD)
    ctx.mark_ready()
    holder = asyncio.create_task(_hold_lease(ctx, lease, router, done))
    try:
        await ctx.consume(stream=keys.ai_signal, message_type=Signal, handler=router.handle, window=router,
                          stop=done, count=config.settings.batch_size, block_ms=READ_BLOCK_MAX_MS)
    finally:
        done.set()
        holder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await holder


def _log_config(ctx: WorkerContext, settings: RouterSettings) -> None:
    profile = ctx.keys.profile
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


async def main(ctx: WorkerContext, config: RouterConfig) -> None:
    """Lead while holding the lease, stand by otherwise, until the worker stops."""
    settings, profile = config.settings, ctx.keys.profile
    _log_config(ctx, settings)
    lease = Lease(ctx.redis, key=ctx.keys.router_lease, owner=ctx.consumer, ttl_ms=int(settings.lease_ttl * 1000))
    standby_logged = False
    try:
        while not ctx.stop.is_set():
            if await lease.acquire():
                standby_logged = False
                metrics.ROUTER_LEADER.labels(profile).set(1)
                ctx.log.event("ROUTER_LEADER", owner=lease.owner, ttl_ms=lease.ttl_ms)
                await lead(ctx, lease, config)
                continue
            metrics.ROUTER_LEADER.labels(profile).set(0)
            if not standby_logged:
                ctx.log.event("ROUTER_STANDBY", owner=lease.owner, leader=await lease.holder() or "")
                standby_logged = True
                ctx.mark_ready()  # a standby is healthy: it is waiting by design
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ctx.stop.wait(), lease.ttl_ms / 3000.0)
    finally:
        metrics.ROUTER_LEADER.labels(profile).set(0)
        try:
            await lease.release()
        except Exception as exc:
            ctx.log.warn("ROUTER_LEASE_RELEASE_FAILED", error=type(exc).__name__)

