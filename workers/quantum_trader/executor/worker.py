"""The executor's async shell (venue-agnostic): EXECUTE decisions → venue → one atomic transition.

Per batch of ``gate.decision`` entries (BLOCKED ones are just acked):
 1. one script call reads the executed ledger and ``state:pending_intents`` for the
    batch, ``state:positions``, ``control:no_new_positions`` and each symbol's snapshot;
 2. for each EXECUTE not yet executed: plan (pure) → ``venue.submit`` → transition (pure),
    updating a local view of positions so later intents of the batch see earlier fills;
 3. one ``APPLY_LUA`` call applies every transition in order (ledger, positions, open_orders,
    execution.result, position.event, risk, cooldown — atomically).
A guard failure (-1: the position changed under us, e.g. the monitor closed it)
raises, so the bus retries the batch entry by entry against fresh state.

The SL/TP monitor runs beside the consumer every ``executor.monitorInterval``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any, Final

from quantum_trader.core import metrics
from quantum_trader.core.bus import Parsed
from quantum_trader.core.keys import GROUP_EXECUTOR, Keys
from quantum_trader.core.logs import EventLog
from quantum_trader.core.messages import ExecMode, ExecutionResult, GateDecision, PositionEvent, TradeIntent
from quantum_trader.core.profile import ExecutorSettings
from quantum_trader.core.service import WorkerContext
from quantum_trader.executor.batch import (
    BatchPlanner,
    ExecutionLimits,
    frees_in_flight,
    pending_intent,
    reject_unknown,
    size_limits,
)
from quantum_trader.executor.core import (
    Filters,
    Transition,
    accrue_funding,
    close_position,
    filters_by_symbol,
    funding_transition,
    plan_exits,
    plan_held,
    renew_transition,
    unrealized_pnl,
)
from quantum_trader.executor.scripts import Applier
from quantum_trader.executor.venue import Venue, VenueFill
from quantum_trader.ledger.held import DELETE_IF_UNCHANGED_LUA, parse_held
from quantum_trader.ledger.ledgers import decision_id_for, prune_ledgers
from quantum_trader.ledger.positions import Position, parse_positions
from quantum_trader.ledger.risk import OPEN_NOTIONAL, RiskState, utc_day
from quantum_trader.ledger.risk import open_notional as open_notional_of
from quantum_trader.ledger.scripts import (
    ALREADY_EXECUTED,
    APPLIED,
    GUARD_FAILED,
    MULTI_READ_LUA,
    RESYNC_NOTIONAL_LUA,
    SYNC_OPEN_ORDERS_LUA,
    MultiRead,
)
from quantum_trader.ledger.snapshots import QUOTE_FIELDS, READ_FIELDS, parse_snapshot
from quantum_trader.market.base import Exchange, ExchangeError, FundingSource

REJECT_EXECUTOR_ERROR: Final = "executor_error"
MAX_DELIVERIES: Final = 5
BATCH: Final = 250  # entries per read (amortises the 2 round trips per batch under backlog)
MARKETS_REFRESH_S: Final = 60.0
REJECT_DECISION_LOST: Final = "decision_lost"
LOST_SWEEP_INTERVAL_S: Final = 60.0
LOST_MIN_AGE_MS: Final = 600_000


@dataclass(frozen=True, slots=True)
class ExecutorConfig:
    """What the executor is given: its own section plus the values it shares (built by ``quantum_trader.compose``)."""

    settings: ExecutorSettings
    limits: ExecutionLimits  # gate.cooldown, maxSnapshotAge, maxExposureUsd and the ai's label horizon (time exit)
    spread_bps: float  # universe.spreadBps: the paper venue fills across this spread when a snapshot has no quote
    mode: ExecMode = "paper"  # the profile's top-level ``mode``: which venue fills


def _str(v: str | bytes) -> str:
    return v.decode() if isinstance(v, bytes) else v


class GuardFailed(RuntimeError):
    """A position changed between read and write; the batch is retried on fresh state."""


class _Tally:
    """The executor's report of one batch: a log line per applied result/event, metrics counted once."""

    def __init__(self, log: EventLog) -> None:
        self.log = log
        self.results: Counter[tuple[str, str]] = Counter()
        self.rejections: Counter[str] = Counter()
        self.closes: Counter[str] = Counter()
        self.events = 0
        self.fees = 0.0
        self.slippage: list[float] = []

    def result(self, r: ExecutionResult) -> None:
        self.results[(r.status, r.mode)] += 1
        if r.status == "FILLED":
            self.slippage.append(abs(r.slippage_bps))
            self.fees += r.fee_usd
            self.log.event(
                "FILLED", intent_id=r.intent_id, order_id=r.order_id, symbol=r.symbol, side=r.side,
                qty=r.qty, price=r.price, notional_usd=round(r.notional_usd, 4),
                slippage_bps=round(r.slippage_bps, 3), fee_usd=round(r.fee_usd, 6), mode=r.mode,
            )
        else:
            self.rejections[metrics.reason_code(r.reason)] += 1
            self.log.event("REJECTED", intent_id=r.intent_id, symbol=r.symbol, side=r.side, reason=r.reason,
                           mode=r.mode)

    def event(self, e: PositionEvent) -> None:
        self.events += 1
        if e.event == "OPENED":
            self.log.event("POSITION_OPENED", symbol=e.symbol, side=e.side, qty=e.qty, entry_price=e.entry_price,
                           order_id=e.order_id)
            return
        self.closes[e.close_reason] += 1
        self.log.event(
            "POSITION_CLOSED", symbol=e.symbol, side=e.side, qty=e.qty, entry_price=e.entry_price,
            exit_price=e.exit_price, pnl_usd=round(e.pnl_usd, 6), close_reason=e.close_reason, order_id=e.order_id,
        )

    def count(self, p: str, *, positions: int) -> None:
        """The batch's metrics (``positions`` < 0: the open count is unknown, leave its gauges)."""
        slippage = metrics.EXEC_SLIPPAGE_BPS.labels(p)
        for bps in self.slippage:
            slippage.observe(bps)
        for (status, mode), n in self.results.items():
            metrics.EXEC_RESULTS.labels(p, status, mode).inc(n)
        if self.results:
            metrics.BUS_PUBLISHED.labels(p, "execution.result").inc(sum(self.results.values()))
        for code, n in self.rejections.items():
            metrics.EXEC_REJECTIONS.labels(p, code).inc(n)
        for reason, n in self.closes.items():
            metrics.EXEC_CLOSED.labels(p, reason).inc(n)
        if self.events:
            metrics.BUS_PUBLISHED.labels(p, "position.event").inc(self.events)
        if self.fees:
            metrics.EXEC_FEES_USD.labels(p).inc(self.fees)
        if positions >= 0:
            metrics.EXEC_OPEN_POSITIONS.labels(p).set(positions)
            metrics.EXEC_OPEN_ORDERS.labels(p).set(positions)


class Executor:
    """State of one executor process (testable without a WorkerContext)."""

    def __init__(
        self,
        *,
        redis: Any,
        keys: Keys,
        settings: ExecutorSettings,
        limits: ExecutionLimits,
        venue: Venue,
        filters: dict[str, Filters],
        log: EventLog,
        exchange: Exchange | None = None,
        maxlen: int = 100_000,
        markets_loaded_at_s: float = 0.0,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.settings = settings
        self.limits = limits
        self.venue = venue
        self.filters = filters
        self.log = log
        self.exchange = exchange
        self.profile = keys.profile
        self.mode: ExecMode = venue.mode
        self.applier = Applier(redis, keys=keys, maxlen=maxlen)
        self._read = redis.register_script(MULTI_READ_LUA)
        self._resync = redis.register_script(RESYNC_NOTIONAL_LUA)
        self._sync_open_orders = redis.register_script(SYNC_OPEN_ORDERS_LUA)
        self._delete_held = redis.register_script(DELETE_IF_UNCHANGED_LUA)
        self._markets_loaded_at = markets_loaded_at_s
        self._lost_candidates: set[str] = set()

    # -- start-up ---------------------------------------------------------------------------------
    async def init_open_orders(self) -> None:
        """Create ``state:open_orders`` from ``state:positions`` if missing (router is fail-closed without it)."""
        await self.resync_open_notional()
        n = int(await self.redis.hlen(self.keys.positions))
        if await self.redis.set(self.keys.open_orders, n, nx=True):
            self.log.event("OPEN_ORDERS_INITIALISED", open_orders=n, source="state:positions")
        metrics.EXEC_OPEN_POSITIONS.labels(self.profile).set(n)

    async def refresh_filters(self, *, now_s: float) -> None:
        if self.exchange is None or now_s - self._markets_loaded_at < MARKETS_REFRESH_S:
            return
        self._markets_loaded_at = now_s
        try:
            self.filters.update(filters_by_symbol(await self.exchange.markets()))
        except Exception as exc:
            self.log.warn("MARKETS_UNAVAILABLE", error=f"{type(exc).__name__}: {exc}")

    # -- decisions --------------------------------------------------------------------------------
    async def handle(self, decisions: list[GateDecision], *, now_ms: int) -> None:
        """reads → plan (pure, :mod:`.batch`) → venue → transitions (pure) → one atomic write → report."""
        execs = [d for d in decisions if d.decision == "EXECUTE"]
        if not execs:
            return
        executed, pending, planner = await self.read_batch(execs, now_ms=now_ms)
        transitions: list[Transition] = []
        for d, done, raw in zip(execs, executed, pending, strict=True):
            if not planner.wanted(d, executed=done):
                continue  # exactly once: already executed (redelivery)
            step = planner.plan(d, raw)
            outcome: VenueFill | str | None = None
            if step.order is not None:
                try:
                    outcome = await self.venue.submit(step.order)
                except ExchangeError as exc:
                    outcome = exc.reason
            transitions.append(planner.settle(step, outcome))
        outcomes = await self.applier.apply_many(transitions, now_ms=now_ms)
        self._report(transitions, outcomes, positions=-1)  # gauges: the monitor, every interval
        if GUARD_FAILED in outcomes:
            raise GuardFailed("a position changed during the batch; retrying on fresh state")

    async def read_batch(
        self, execs: list[GateDecision], *, now_ms: int
    ) -> tuple[list[Any], list[Any], BatchPlanner]:
        """One consistent read: the executed ledger and pending intents of the batch, and a planner
        over the batch symbols' positions, snapshots and ``control:no_new_positions``."""
        k = self.keys
        ids = [d.intent_id for d in execs]
        symbols = sorted({d.symbol for d in execs})
        if any(s not in self.filters for s in symbols):
            await self.refresh_filters(now_s=now_ms / 1000.0)
        mr = MultiRead()
        mr.add("HMGET", k.executed_intents, *ids)
        mr.add("HMGET", k.pending_intents, *ids)
        mr.add("HMGET", k.positions, *symbols)
        mr.add("EXISTS", k.control_no_new_positions)
        mr.add("HGET", k.risk_state, OPEN_NOTIONAL)
        for s in symbols:
            mr.add("HMGET", k.position_snapshot(s), *QUOTE_FIELDS)
        res = await mr.run(self._read)
        stored = {s: _str(v) for s, v in zip(symbols, res[2], strict=True) if v is not None}
        positions, bad = parse_positions(stored)
        if bad:
            self.log.warn("POSITION_UNREADABLE", symbols=bad)
        open_notional = open_notional_of({OPEN_NOTIONAL: _str(res[4])} if res[4] is not None else {})
        planner = BatchPlanner(
            stored=stored, positions=positions, filters=self.filters, no_new_positions=bool(res[3]),
            snapshots={s: parse_snapshot(r) for s, r in zip(symbols, res[5:], strict=True)},
            limits=self.limits, sizing=size_limits(self.settings, self.limits, open_notional_usd=open_notional),
            mode=self.mode, now_ms=now_ms,
        )
        return res[0], res[1], planner

    async def sweep_lost(self, *, now_ms: int) -> int:
        """Answer pending intents whose decision can no longer arrive with REJECTED ``decision_lost``.

        A pending intent normally lives milliseconds. One that is older than 10 minutes, and still
        there one sweep later while the executor's group had nothing unread or unacked both times,
        lost its decision (trimmed unread, or dead-lettered as malformed); left alone it would
        hold its in-flight slot (duplicate/exposure at the gate) forever. Returns how many.
        """
        idle = await self._group_idle()
        pending = {_str(k): _str(v) for k, v in (await self.redis.hgetall(self.keys.pending_intents)).items()}
        old: dict[str, TradeIntent | None] = {}
        for iid, raw in pending.items():
            intent = pending_intent(raw)
            if intent is None or now_ms - intent.ts > LOST_MIN_AGE_MS:
                old[iid] = intent
        lost = [iid for iid in old if idle and iid in self._lost_candidates]
        self._lost_candidates = set(old) if idle else set()
        transitions: list[Transition] = []
        for iid in lost:
            intent = old[iid]
            d = GateDecision(decision_id=decision_id_for(iid), intent_id=iid,
                             symbol=intent.symbol if intent else "?", side=intent.side if intent else "BUY",
                             decision="EXECUTE", reason="none", kill_score=0.0, ts=now_ms)
            t = frees_in_flight(reject_unknown(d, mode=self.mode, now_ms=now_ms, reason=REJECT_DECISION_LOST), intent)
            self.log.warn("DECISION_LOST", intent_id=iid, symbol=d.symbol, note="answered REJECTED decision_lost")
            transitions.append(t)
        outcomes = await self.applier.apply_many(transitions, now_ms=now_ms)
        self._report(transitions, outcomes, positions=-1)
        return outcomes.count(APPLIED)

    async def _group_idle(self) -> bool:
        """True when the executor group has no unread and no unacked decisions."""
        try:
            groups = await self.redis.xinfo_groups(self.keys.gate_decision)
        except Exception:
            return False
        for g in groups:
            if _str(g["name"]) != GROUP_EXECUTOR:
                continue
            if int(g.get("pending") or 0):
                return False
            lag = g.get("lag")
            if lag is not None:
                return int(lag) == 0
            # lag unknown (entries were trimmed/deleted): idle when everything up to the last id was read
            info = await self.redis.xinfo_stream(self.keys.gate_decision)
            return _str(g["last-delivered-id"]) == _str(info["last-generated-id"])
        return False

    async def reject_failed(self, d: GateDecision, *, error: str, now_ms: int) -> None:
        """Answer a decision whose execution keeps failing with REJECTED ``executor_error`` (once)."""
        raw = await self.redis.hget(self.keys.pending_intents, d.intent_id)
        t = reject_unknown(d, mode=self.mode, now_ms=now_ms, reason=REJECT_EXECUTOR_ERROR)
        t = replace(frees_in_flight(t, pending_intent(raw)), venue_error=True)
        self.log.error("EXECUTION_FAILED", intent_id=d.intent_id, symbol=d.symbol, error=error,
                       note="answered REJECTED executor_error")
        self._report([t], await self.applier.apply_many([t], now_ms=now_ms), positions=-1)

    def _report(self, transitions: list[Transition], outcomes: list[int], *, positions: int) -> None:
        """One log line per applied event; metrics counted per batch (label lookups are not free)."""
        tally = _Tally(self.log)
        for t, outcome in zip(transitions, outcomes, strict=True):
            if outcome != APPLIED:
                if outcome == ALREADY_EXECUTED:
                    self.log.debug("ALREADY_EXECUTED", intent_id=t.ledger_intent, symbol=t.symbol)
                continue
            if t.result is not None:
                tally.result(t.result)
            if t.event is not None:
                tally.event(t.event)
        tally.count(self.profile, positions=positions)

    # -- SL/TP monitor ----------------------------------------------------------------------------
    async def marks(self, symbols: list[str], *, now_ms: int) -> dict[str, float]:
        """Mark prices from fresh snapshots, else from the exchange (when there is one)."""
        if not symbols:
            return {}
        mr = MultiRead()
        for s in symbols:
            mr.add("HMGET", self.keys.position_snapshot(s), *READ_FIELDS)
        out: dict[str, float] = {}
        max_age_ms = self.limits.max_price_age_ms
        for s, raw in zip(symbols, await mr.run(self._read), strict=True):
            snap = parse_snapshot(raw)
            if snap is not None and snap.mark_price > 0 and now_ms - snap.ts_ms <= max_age_ms:
                out[s] = snap.mark_price
        missing = [s for s in symbols if s not in out]
        if missing and self.exchange is not None:
            try:
                out.update({s: p for s, p in (await self.exchange.mark_prices(missing)).items() if p > 0})
            except Exception as exc:
                self.log.warn("MARK_PRICES_UNAVAILABLE", symbols=len(missing), error=type(exc).__name__)
        return out

    async def charge_funding(self, *, now_ms: int) -> int:
        """Paper: charge each open position the funding settlements it lived through since the last
        charge (the exchange's own rates: sim, replay ``<SYMBOL>_funding.csv``, Binance through ccxt).
        Testnet/live: the exchange charges its wallet itself. Returns the positions charged."""
        source = self.exchange
        if self.mode != "paper" or not isinstance(source, FundingSource):
            return 0
        stored = {_str(k): _str(v) for k, v in (await self.redis.hgetall(self.keys.positions)).items()}
        positions, _ = parse_positions(stored)
        transitions: list[Transition] = []
        for sym, pos in sorted(positions.items()):
            since = max(pos.funding_ts, pos.opened_ts)
            try:
                rates = await source.funding_rates(sym, since_ms=since + 1, until_ms=now_ms)
            except Exception as exc:
                self.log.warn("FUNDING_UNAVAILABLE", symbol=sym, error=f"{type(exc).__name__}: {exc}")
                continue
            charged = accrue_funding(pos, rates, now_ms=now_ms)
            if charged is not None:
                transitions.append(replace(funding_transition(pos, charged), expected=stored[sym]))
        outcomes = await self.applier.apply_many(transitions, now_ms=now_ms)
        for t, outcome in zip(transitions, outcomes, strict=True):
            if outcome == APPLIED and t.new_position is not None:
                self.log.event("FUNDING_CHARGED", symbol=t.symbol, side=t.new_position.side,
                               funding_usd=round(t.new_position.funding_usd, 8), settlement_ts=t.new_position.funding_ts)
        return outcomes.count(APPLIED)

    async def apply_held(
        self, positions: dict[str, Position], stored: dict[str, str], *, now_ms: int
    ) -> dict[str, str]:
        """Apply the router's verdicts on held positions (``state:held_signals``, :func:`plan_held`):
        write the renewals (compare-and-set, one script call; ``positions``/``stored`` are updated in place)
        and return the symbols to close on a reversing signal (→ the verdict as read). A verdict is deleted
        once applied or ignored, unless the router replaced it meanwhile; a close once the monitor has closed
        the position; a renewal whose position changed under us is tried again on the next pass."""
        raw = {_str(k): _str(v) for k, v in (await self.redis.hgetall(self.keys.held_signals)).items()}
        if not raw:
            return {}
        verdicts, bad = parse_held(raw)
        for sym in bad:
            self.log.warn("HELD_SIGNAL_MALFORMED", symbol=sym, raw=raw[sym][:200])
        plan = plan_held(positions, verdicts, time_exit_ms=self.limits.time_exit_ms,
                         maintenance_margin_rate=self.settings.maintenance_margin_rate)
        done = [*bad, *(held.symbol for held, _ in plan.ignored)]
        for held, reason in plan.ignored:
            self.log.event("HELD_SIGNAL_IGNORED", symbol=held.symbol, action=held.action, signal_id=held.signal_id,
                           reason=reason)
        transitions = [replace(renew_transition(old, new), expected=stored[held.symbol])
                       for held, old, new in plan.renewals]
        outcomes = await self.applier.apply_many(transitions, now_ms=now_ms)
        for (held, old, new), outcome in zip(plan.renewals, outcomes, strict=True):
            if outcome != APPLIED:
                continue
            done.append(held.symbol)
            positions[held.symbol], stored[held.symbol] = new, new.to_json()
            self.log.event("POSITION_RENEWED", symbol=held.symbol, side=old.side, signal_id=held.signal_id,
                           stop_loss=new.stop_loss, take_profit=new.take_profit, expires_ts=new.expires_ts,
                           hold_ev_bps=round(held.ev_bps, 2))
        for sym in done:
            await self.delete_held(sym, raw[sym])
        return {sym: raw[sym] for sym in plan.closing}

    async def delete_held(self, symbol: str, value: str) -> None:
        await self._delete_held(keys=[self.keys.held_signals], args=[symbol, value])

    async def resync_open_notional(self) -> float:
        """Recompute ``state:risk open_notional_usd`` from ``state:positions`` (atomic)."""
        return float(await self._resync(keys=[self.keys.positions, self.keys.risk_state]))

    async def sync_open_orders(self) -> None:
        """Paper only (Redis is the truth, no working orders): ``state:open_orders`` = open positions."""
        before, n = await self._sync_open_orders(keys=[self.keys.positions, self.keys.open_orders])
        if before is None or _str(before) != str(n):
            self.log.warn("OPEN_ORDERS_CORRECTED", before=_str(before) if before is not None else "missing",
                          open_orders=int(n))

    async def monitor_once(self, *, now_ms: int) -> int:
        """Check every open position against SL/TP; close the crossed ones. Returns closes applied."""
        await self.resync_open_notional()
        if self.mode == "paper":
            await self.sync_open_orders()
        stored = {_str(k): _str(v) for k, v in (await self.redis.hgetall(self.keys.positions)).items()}
        positions, _ = parse_positions(stored)
        closing = await self.apply_held(positions, stored, now_ms=now_ms)
        marks = await self.marks(sorted(positions), now_ms=now_ms)
        metrics.EXEC_UNREALIZED_PNL.labels(self.profile).set(unrealized_pnl(positions, marks))
        cooldown_ms = self.limits.cooldown_ms
        transitions: list[Transition] = []
        for ex in plan_exits(positions, marks, now_ms=now_ms, signalled=closing):
            sym, pos, reason = ex.position.symbol, ex.position, ex.reason
            try:
                fill = await self.venue.submit(ex.order)
            except ExchangeError as exc:
                self.log.warn("EXIT_FAILED", symbol=sym, reason=exc.reason, close_reason=reason)
                continue
            if fill.status != "FILLED":
                self.log.warn("EXIT_REJECTED", symbol=sym, reason=fill.reason, close_reason=reason)
                continue
            close = close_position(
                pos, qty=pos.qty, exit_price=fill.price, exit_fee=fill.fee_usd, reason=reason,
                cooldown_ms=cooldown_ms, now_ms=now_ms,
            )
            transitions.append(replace(close, expected=stored[sym]))
        outcomes = await self.applier.apply_many(transitions, now_ms=now_ms)
        for t, outcome in zip(transitions, outcomes, strict=True):
            if outcome == APPLIED and t.symbol in closing:
                await self.delete_held(t.symbol, closing[t.symbol])
        self._report(transitions, outcomes, positions=len(positions) - outcomes.count(APPLIED))
        risk_raw = await self.redis.hgetall(self.keys.risk_state)
        with contextlib.suppress(ValueError):
            metrics.EXEC_REALIZED_PNL.labels(self.profile).set(
                RiskState.from_hash(risk_raw).pnl_today(utc_day(now_ms))
            )
        return outcomes.count(APPLIED)


def build_venue(ctx: WorkerContext, config: ExecutorConfig, *, filters: dict[str, Filters]) -> Venue | None:
    """PaperVenue for paper; the exchange venue (imported lazily) for testnet/live; None if unavailable."""
    if config.mode == "paper":
        from quantum_trader.executor.paper import PaperVenue

        return PaperVenue(settings=config.settings, filters=filters, spread_bps=config.spread_bps)
    try:
        from quantum_trader.executor.venue_exchange import ExchangeVenue
    except ImportError as exc:
        ctx.log.error("VENUE_UNAVAILABLE", mode=config.mode, error=f"executor.venue_exchange: {exc}")
        return None
    venue: Venue = ExchangeVenue(
        exchange=ctx.exchange, settings=config.settings, mode=config.mode, clock=ctx.clock, log=ctx.log
    )
    return venue


async def _load_filters(ctx: WorkerContext) -> dict[str, Filters] | None:
    """Market filters from the exchange, retried with backoff until they load or the worker stops."""
    delay = 1.0
    while not ctx.stop.is_set():
        try:
            return filters_by_symbol(await ctx.exchange.markets())
        except Exception as exc:
            ctx.log.warn("MARKETS_UNAVAILABLE", error=f"{type(exc).__name__}: {exc}", retry_in_s=delay)
            if await ctx.sleep(delay):
                return None
            delay = min(delay * 2, 30.0)
    return None


async def _handle_batch(ctx: WorkerContext, executor: Executor, batch: list[Parsed[GateDecision]]) -> None:
    try:
        await executor.handle([p.message for p in batch], now_ms=ctx.clock.now_ms())
    except Exception as exc:
        # The bus retries a failing entry alone; on its last delivery answer it with a
        # REJECTED result instead of letting it be dead-lettered without one.
        if len(batch) != 1 or batch[0].deliveries < MAX_DELIVERIES:
            raise
        await executor.reject_failed(batch[0].message, error=f"{type(exc).__name__}: {exc}", now_ms=ctx.clock.now_ms())


async def _housekeeping(ctx: WorkerContext, executor: Executor, *, retention_s: float) -> None:
    """Every sweep interval: answer lost decisions, charge paper funding, prune the exactly-once ledgers."""
    await executor.sweep_lost(now_ms=ctx.clock.now_ms())
    await executor.charge_funding(now_ms=ctx.clock.now_ms())
    cutoff = ctx.clock.now_ms() - int(retention_s * 1000)
    pruned = await prune_ledgers(ctx.redis, keys=ctx.keys, older_than_ms=cutoff)
    if pruned:
        ctx.log.event("LEDGERS_PRUNED", entries=pruned, older_than_ms=cutoff)


async def monitor_loop(ctx: WorkerContext, executor: Executor, *, settings: ExecutorSettings) -> None:
    """SL/TP monitor every ``monitorInterval``; lost-decision sweep and ledger pruning every minute."""
    last_sweep = ctx.clock.now()
    while not ctx.stop.is_set():
        try:
            await executor.monitor_once(now_ms=ctx.clock.now_ms())
            if ctx.clock.now() - last_sweep >= LOST_SWEEP_INTERVAL_S:
                last_sweep = ctx.clock.now()
                await _housekeeping(ctx, executor, retention_s=settings.ledger_retention)
        except Exception as exc:
            ctx.error("monitor")
            ctx.log.error("MONITOR_FAILED", error=f"{type(exc).__name__}: {exc}")
        if await ctx.sleep(settings.monitor_interval):
            return


async def reconcile_loop(ctx: WorkerContext, venue: Venue, *, settings: ExecutorSettings) -> None:
    """Testnet/live: follow the exchange's positions every ``reconcileInterval``."""
    from quantum_trader.executor.reconcile import reconcile_once

    while not await ctx.sleep(settings.reconcile_interval):
        try:
            await reconcile_once(venue, redis=ctx.redis, keys=ctx.keys, bus=ctx.bus, clock=ctx.clock, log=ctx.log)
        except Exception as exc:
            ctx.error("reconcile")
            ctx.log.error("RECONCILE_FAILED", error=f"{type(exc).__name__}: {exc}")


async def _start(ctx: WorkerContext, config: ExecutorConfig) -> tuple[Executor, Venue] | None:
    """Markets, venue and executor for the profile's mode; None when stopping or refused (logged)."""
    filters = await _load_filters(ctx)
    if filters is None:
        return None
    venue = build_venue(ctx, config, filters=filters)
    if venue is None:
        ctx.log.error("EXECUTOR_REFUSED", mode=config.mode, note="no venue for this mode; not starting")
        await ctx.stop.wait()
        return None
    executor = Executor(
        redis=ctx.redis, keys=ctx.keys, settings=config.settings, limits=config.limits, venue=venue,
        filters=filters, log=ctx.log, exchange=ctx.exchange, markets_loaded_at_s=ctx.clock.now(),
    )
    await executor.init_open_orders()
    ctx.log.event("EXECUTOR_READY", mode=venue.mode, markets=len(filters), fee_bps=config.settings.fee_bps,
                  max_slippage_bps=config.settings.max_slippage_bps)
    return executor, venue


async def main(ctx: WorkerContext, config: ExecutorConfig) -> None:
    started = await _start(ctx, config)
    if started is None:
        return
    executor, venue = started
    settings = config.settings

    async def handler(batch: list[Parsed[GateDecision]]) -> None:
        await _handle_batch(ctx, executor, batch)

    ctx.mark_ready()
    tasks = [asyncio.create_task(monitor_loop(ctx, executor, settings=settings), name="executor-monitor")]
    if venue.mode != "paper":  # the exchange's positions are the truth: follow them
        tasks.append(asyncio.create_task(reconcile_loop(ctx, venue, settings=settings), name="executor-reconcile"))
    try:
        await ctx.consume(
            stream=ctx.keys.gate_decision, message_type=GateDecision, handler=handler, group=GROUP_EXECUTOR,
            max_deliveries=MAX_DELIVERIES, count=BATCH,
        )
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
