"""Snapshot shell: learn recent intents → choose candidates (pure core) → fetch → write snapshots + tradable set.

* Recent intent symbols come from ``stream:trade.intent`` read as consumer group
  ``snapshot`` (and, on start, rebuilt from ``XREVRANGE`` over ``intentWindow``).
* Symbols the router wanted but dropped as ``not_tradable`` (``stream:router.drop``)
  are read without a group (``XRANGE`` from the last id seen) and get priority
  after intents: otherwise ``filterTradable`` and intent ranking would starve each
  other (no intent without a snapshot, no snapshot without an intent).
* One cycle every ``min(targetCycle, ttl/3)``, earlier when an intent arrives for a
  symbol outside the current candidate set.
* Writes are atomic per cycle (``MULTI``): every snapshot hash with its TTL, then
  ``DEL`` + ``SADD`` + ``PEXPIRE`` of ``cfg:tradable_symbols``. When the exchange
  fails nothing is written and the old snapshots expire (fail closed).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any, Final

from redis.exceptions import RedisError

from quantum_trader.core import metrics
from quantum_trader.core.bus import Parsed
from quantum_trader.core.keys import GROUP_SNAPSHOT
from quantum_trader.core.messages import MessageError, RouterFate, TradeIntent, decode_raw
from quantum_trader.core.profile import SnapshotSettings
from quantum_trader.core.service import WorkerContext
from quantum_trader.ledger.demand import NOT_TRADABLE
from quantum_trader.market.base import SymbolFailure, mark_prices_each
from quantum_trader.snapshot import core

SCAN_CHUNK: Final = 500
SCAN_LIMIT: Final = 50_000
ALLOWLIST_TIERS: Final = ("active", "last_ok", "profile", "env")


@dataclass
class State:
    intents: dict[str, int] = field(default_factory=dict)  # symbol → last intent ts
    demand: dict[str, int] = field(default_factory=dict)  # symbol → last not_tradable drop ts
    demand_cursor: str = "0-0"
    ewma_latency_s: float | None = None
    planned: frozenset[str] = frozenset()
    last_allowlist: tuple[str, int] | None = None
    last_missing: tuple[str, ...] = ()
    last_shape: tuple[object, ...] | None = None  # SNAPSHOT_CYCLE is logged when this changes
    last_skipped: tuple[tuple[str, str], ...] = ()  # SNAPSHOT_SYMBOL_SKIPPED is logged when this changes
    wake: asyncio.Event = field(default_factory=asyncio.Event)


def _s(v: Any) -> str:
    return v.decode("utf-8", errors="replace") if isinstance(v, bytes) else str(v)


async def scan_back(
    ctx: WorkerContext, stream: str, *, since_ms: int, limit: int = SCAN_LIMIT
) -> list[tuple[str, dict[str, str]]]:
    """Entries newest first whose ``ts`` field is at or after ``since_ms`` (XREVRANGE in chunks)."""
    out: list[tuple[str, dict[str, str]]] = []
    upper = "+"
    scanned = 0
    while scanned < limit:
        rows = await ctx.bus.range(stream, end=upper, count=SCAN_CHUNK, reverse=True)  # raw bytes: poison-proof
        if not rows:
            break
        for row in rows:
            entry_id, fields = row.id, decode_raw(row.fields or {})
            try:
                ts = int(fields.get("ts", "0"))
            except ValueError:
                continue  # a poison entry is skipped, not mistaken for the end of the window
            if ts < since_ms:
                return out
            out.append((entry_id, fields))
        scanned += len(rows)
        upper = "(" + rows[-1].id
    return out


async def rebuild(ctx: WorkerContext, state: State, *, settings: SnapshotSettings) -> None:
    now_ms = ctx.clock.now_ms()
    since = now_ms - int(settings.intent_window * 1000)
    seen: list[tuple[str, int]] = []
    for _, fields in await scan_back(ctx, ctx.keys.trade_intent, since_ms=since):
        if fields.get("symbol"):
            seen.append((fields["symbol"], int(fields.get("ts", "0"))))
    state.intents = core.remember(state.intents, seen, now_ms=now_ms, window_s=settings.intent_window)
    rows = await scan_back(ctx, ctx.keys.router_drop, since_ms=since)
    if rows:
        state.demand_cursor = rows[0][0]
    state.demand = core.remember(
        state.demand, _demand(f for _, f in rows), now_ms=now_ms, window_s=settings.intent_window
    )
    ctx.log.event("INTENT_WINDOW_REBUILT", intent_symbols=len(state.intents), demand_symbols=len(state.demand))


def _demand(rows: Any) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    for fields in rows:
        try:
            fate = RouterFate.from_fields(fields)
        except MessageError:
            continue
        if fate.reason == NOT_TRADABLE:
            out.append((fate.symbol, fate.ts))
    return out


async def read_demand(ctx: WorkerContext, state: State, *, settings: SnapshotSettings) -> None:
    rows = await ctx.bus.range(ctx.keys.router_drop, start="(" + state.demand_cursor, count=10_000)
    if not rows:
        return
    state.demand_cursor = rows[-1].id
    state.demand = core.remember(
        state.demand, _demand(decode_raw(r.fields or {}) for r in rows), now_ms=ctx.clock.now_ms(),
        window_s=settings.intent_window,
    )
    if any(s not in state.planned for s in state.demand):
        state.wake.set()


async def _positions(ctx: WorkerContext, raw_state: dict[Any, Any]) -> dict[str, core.PositionView]:
    """Executor's book (state:positions), overridden by the exchange's own view where it has one."""
    views, bad = core.parse_positions({_s(k): _s(v) for k, v in raw_state.items()})
    if bad:
        ctx.log.warn("POSITIONS_UNPARSEABLE", symbols=bad)
    try:
        for p in await ctx.exchange.positions():
            if p.qty > 0:
                views[p.symbol] = core.PositionView(
                    p.symbol, p.qty if p.side == "BUY" else -p.qty, p.entry_price, p.unrealized_pnl
                )
    except Exception as exc:
        ctx.log.warn("EXCHANGE_POSITIONS_FAILED", error=f"{type(exc).__name__}: {exc}")
    return views


def _log_allowlist(ctx: WorkerContext, state: State, allowlist: core.Allowlist) -> None:
    profile = ctx.profile_name
    for tier in ALLOWLIST_TIERS:
        metrics.SNAPSHOT_ALLOWLIST.labels(profile, tier).set(len(allowlist.symbols) if tier == allowlist.source else 0)
    key = (allowlist.source, len(allowlist.symbols))
    if key != state.last_allowlist:
        state.last_allowlist = key
        ctx.log.event("ALLOWLIST", source=allowlist.source, count=len(allowlist.symbols))
        if not allowlist.symbols:
            ctx.log.warn(
                "ALLOWLIST_EMPTY",
                source=allowlist.source,
                cause="snapshot.allowlist is empty"
                + (" and allowlistSource=env" if allowlist.source == "env" else " and no valid universe"),
            )


async def _read_state(ctx: WorkerContext, state: State, *, settings: SnapshotSettings, now_ms: int) -> tuple[
    core.UniverseView | None, core.UniverseView | None, dict[str, core.PositionView]
]:
    """The universe documents, positions (book + exchange) and the router's demand; windows aged."""
    keys = ctx.keys
    pipe = ctx.redis.pipeline(transaction=False)
    pipe.get(keys.universe_active)
    pipe.get(keys.universe_last_ok)
    pipe.hgetall(keys.positions)
    raw_active, raw_last_ok, raw_positions = await pipe.execute()
    await read_demand(ctx, state, settings=settings)
    state.intents = core.remember(state.intents, [], now_ms=now_ms, window_s=settings.intent_window)
    state.demand = core.remember(state.demand, [], now_ms=now_ms, window_s=settings.intent_window)
    positions = await _positions(ctx, raw_positions or {})
    return core.parse_universe(raw_active), core.parse_universe(raw_last_ok), positions


async def _fetch_marks(
    ctx: WorkerContext, state: State, symbols: tuple[str, ...]
) -> tuple[dict[str, float], dict[str, SymbolFailure]] | None:
    """Mark prices of the planned symbols, and the symbols that got none with the reason.

    One unknown/delisted/failing symbol is skipped (``unknown_symbol`` ...), the rest proceed;
    None only when the exchange priced nothing at all (fail closed). Updates the latency EWMA."""
    if not symbols:
        return {}, {}
    started = time.perf_counter()
    try:
        got = await mark_prices_each(ctx.exchange, list(symbols))
    except Exception as exc:
        ctx.error("exchange")
        ctx.log.warn("SNAPSHOT_FETCH_FAILED", symbols=len(symbols), error=f"{type(exc).__name__}: {exc}")
        return None
    if not got.values and got.failures:
        ctx.error("exchange")
        reasons = sorted({f.reason for f in got.failures.values()})
        ctx.log.warn("SNAPSHOT_FETCH_FAILED", symbols=len(symbols), reasons=reasons)
        return None
    state.ewma_latency_s = core.ewma(state.ewma_latency_s, (time.perf_counter() - started) / len(symbols))
    return got.values, got.failures


def _report_skipped(ctx: WorkerContext, state: State, failures: dict[str, SymbolFailure]) -> None:
    for f in failures.values():
        metrics.SNAPSHOT_SKIPPED.labels(ctx.profile_name, f.reason).inc()
    shape = tuple(sorted((f.symbol, f.reason) for f in failures.values()))
    if shape != state.last_skipped:  # one line per change, not per cycle
        for f in failures.values():
            ctx.log.warn("SNAPSHOT_SYMBOL_SKIPPED", symbol=f.symbol, reason=f.reason, detail=f.detail)
    state.last_skipped = shape


async def cycle(ctx: WorkerContext, state: State, *, settings: SnapshotSettings) -> core.Coverage | None:
    """One snapshot cycle: reads → plan (core) → fetch → outcome (core) → write → report.

    Returns the coverage, or None when the exchange failed (nothing written; old snapshots expire)."""
    now_ms = ctx.clock.now_ms()
    active, last_ok, positions = await _read_state(ctx, state, settings=settings, now_ms=now_ms)
    plan = core.plan_cycle(
        settings, active=active, last_ok=last_ok, positions=positions, recent_intents=state.intents,
        demand=state.demand, ewma_latency_s=state.ewma_latency_s, now_ms=now_ms,
    )
    _log_allowlist(ctx, state, plan.allowlist)
    state.planned = frozenset(plan.candidates.symbols)
    fetched = await _fetch_marks(ctx, state, plan.candidates.symbols)
    if fetched is None:
        return None
    marks, skipped = fetched
    out = core.finish_cycle(plan, marks=marks, positions=positions, recent_intents=state.intents,
                            now_ms=ctx.clock.now_ms())
    await write(ctx, out.rows, out.tradable, ttl_ms=int(settings.ttl * 1000), skipped=skipped)
    _report_skipped(ctx, state, skipped)
    _report(ctx, state, plan, out, settings=settings)
    ctx.processed(1)
    return out.coverage


def _report(
    ctx: WorkerContext, state: State, plan: core.CyclePlan, out: core.CycleOutcome, *, settings: SnapshotSettings
) -> None:
    profile, coverage, top_k = ctx.profile_name, out.coverage, plan.top_k
    metrics.SNAPSHOT_COVERAGE.labels(profile).set(coverage.ratio)
    if coverage.missing:
        metrics.SNAPSHOT_MISSES.labels(profile).inc(len(coverage.missing))
        if coverage.missing != state.last_missing:  # one line per change, not per cycle
            ctx.log.warn("SNAPSHOT_MISS", count=len(coverage.missing), symbols=list(coverage.missing))
    state.last_missing = coverage.missing
    metrics.SNAPSHOT_SYMBOLS.labels(profile).set(len(out.tradable))
    metrics.SNAPSHOT_TOP_K.labels(profile).set(top_k)
    if state.ewma_latency_s is not None:
        metrics.SNAPSHOT_FETCH_LATENCY.labels(profile).set(state.ewma_latency_s)
    if out.missing:
        ctx.log.warn("NO_MARK_PRICE", count=len(out.missing), symbols=list(out.missing[:20]))
    tiers = {t: plan.candidates.count(t) for t in ("intent", "demand", "position", "backfill")}
    shape = (len(out.rows), len(out.tradable), top_k, *tiers.values(), coverage.ratio)
    log = ctx.log.event if shape != state.last_shape else ctx.log.debug
    state.last_shape = shape
    log("SNAPSHOT_CYCLE", snapshots=len(out.rows), tradable=len(out.tradable), top_k=top_k, **tiers,
        ranking=settings.ranking, coverage=round(coverage.ratio, 4),
        latency_ms=round((state.ewma_latency_s or 0.0) * 1000, 3))


async def write(
    ctx: WorkerContext, rows: tuple[core.SnapshotRow, ...], tradable: frozenset[str], *, ttl_ms: int,
    skipped: dict[str, SymbolFailure] | None = None,
) -> None:
    keys = ctx.keys
    pipe = ctx.redis.pipeline(transaction=True)
    pipe.delete(keys.snapshot_skipped)
    if skipped:
        pipe.hset(keys.snapshot_skipped, mapping={s: f"{f.reason}|{f.detail}" for s, f in skipped.items()})
        pipe.pexpire(keys.snapshot_skipped, ttl_ms)
    for row in rows:
        key = keys.position_snapshot(row.symbol)
        pipe.hset(key, mapping=row.fields())  # type: ignore[arg-type]
        pipe.pexpire(key, ttl_ms)
    pipe.delete(keys.tradable_symbols)
    if tradable:
        pipe.sadd(keys.tradable_symbols, *sorted(tradable))
        pipe.pexpire(keys.tradable_symbols, ttl_ms)
    await pipe.execute()


async def _wait(ctx: WorkerContext, state: State, seconds: float) -> None:
    speed = float(getattr(ctx.clock, "speed", 1.0))
    stop_task = asyncio.ensure_future(ctx.stop.wait())
    wake_task = asyncio.ensure_future(state.wake.wait())
    try:
        await asyncio.wait({stop_task, wake_task}, timeout=max(0.0, seconds) / speed,
                           return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop_task.cancel()
        wake_task.cancel()
    state.wake.clear()


@dataclass(frozen=True, slots=True)
class SnapshotConfig:
    """What the snapshot worker is given: its own section (built by ``quantum_trader.compose``)."""

    settings: SnapshotSettings


async def main(ctx: WorkerContext, config: SnapshotConfig) -> None:
    settings = config.settings
    state = State()
    ctx.log.event(
        "SNAPSHOT_CONFIG",
        source=settings.allowlist_source,
        ranking=settings.ranking,
        min_top_k=settings.min_top_k,
        max_top_k=settings.max_top_k,
        target_cycle_s=settings.target_cycle,
        intent_window_s=settings.intent_window,
        ttl_s=settings.ttl,
    )
    await rebuild(ctx, state, settings=settings)

    async def on_intents(batch: list[Parsed[TradeIntent]]) -> None:
        state.intents = core.remember(
            state.intents, [(p.message.symbol, p.message.ts) for p in batch], now_ms=ctx.clock.now_ms(),
            window_s=settings.intent_window,
        )
        if any(p.message.symbol not in state.planned for p in batch):
            state.wake.set()

    consumer = asyncio.create_task(
        ctx.consume(stream=ctx.keys.trade_intent, message_type=TradeIntent, handler=on_intents,
                    group=GROUP_SNAPSHOT, block_ms=500)
    )
    interval = max(0.05, min(settings.target_cycle, settings.ttl / 3.0))
    try:
        while not ctx.stop.is_set():
            if consumer.done():  # surface a consumer crash to the supervisor
                consumer.result()
            try:
                await cycle(ctx, state, settings=settings)
            except (RedisError, OSError) as exc:  # Redis away: retry next cycle, snapshots expire meanwhile
                ctx.error("cycle")
                ctx.log.warn("SNAPSHOT_CYCLE_FAILED", error=f"{type(exc).__name__}: {exc}")
            ctx.mark_ready()
            await _wait(ctx, state, interval)
    finally:
        if not consumer.done():
            if ctx.stop.is_set():
                with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(consumer, 5)
            else:
                consumer.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await consumer
