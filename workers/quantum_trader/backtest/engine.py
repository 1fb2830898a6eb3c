"""The trading loop: the router, snapshot, gate and executor cores at each decision time, in order.

State lives in plain objects (:class:`Book`, mirroring what the executor's Lua script writes to
``state:positions`` / ``state:risk`` / ``state:cooldowns``); every decision is made by the
workers' own pure functions with the reason codes they use live:

1. exits due by now (SL/TP found on the finest bars when the position opened) are applied with
   :func:`~quantum_trader.executor.core.close_position`, so realised PnL, the loss streak and the
   cooldown move exactly as the executor moves them;
2. snapshot core: allowlist tier, candidates, snapshots at the mark → ``cfg:tradable_symbols``;
3. router core: :func:`screen` each signal, then :func:`decide_batch` on the admitted ones; its verdicts
   on held positions go through the executor core's :func:`held_outcome` as the live monitor applies them
   one finest bar later (a renewal re-finds the position's exit from there; a close exits at that mark);
4. gate core: :func:`decide_batch` against a :class:`GateView` of the book;
5. executor core: :func:`plan_execution` → fill → :func:`apply_fill`.

Nothing here reads a clock, a file or Redis.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final, Literal, cast

import numpy as np

from quantum_trader.backtest.data import MarketData
from quantum_trader.backtest.fills import END_OF_DATA, Exit, fill, find_exit, funding_usd, mark_at, next_price
from quantum_trader.backtest.history import UniverseEvent
from quantum_trader.backtest.signals import Pending, SignalPlan, universe_at
from quantum_trader.core.messages import Signal, TradeIntent
from quantum_trader.core.profile import TradingProfileSpec
from quantum_trader.executor.batch import horizon_ms, limits_from, size_limits
from quantum_trader.executor.core import (
    Filters,
    SizeLimits,
    Transition,
    apply_fill,
    close_position,
    exit_client_order_id,
    floor_to_step,
    held_outcome,
    opening_qty,
    plan_execution,
    reject_transition,
)
from quantum_trader.gate import core as gate
from quantum_trader.gate.core import GateView, SnapshotInfo, kill_score
from quantum_trader.ledger.held import HeldSignal
from quantum_trader.ledger.positions import Position
from quantum_trader.ledger.risk import ERROR_RATE_ALPHA, RiskState, utc_day
from quantum_trader.market.base import TIMEFRAME_MS
from quantum_trader.router import core as router
from quantum_trader.router.core import BatchInput, Candidate
from quantum_trader.snapshot import core as snap

Tick = Callable[[int], None]
COUNTERFACTUAL_STAGES: Final = ("router", "gate", "executor")
SCREEN_ONLY: Final = frozenset({router.HOLD, router.LOW_CONFIDENCE})
FUNDING_LOOKBACK_MS: Final = 32 * 3600 * 1000  # a day and one 8 h settlement period


@dataclass(frozen=True, slots=True)
class Trade:
    """One closed round trip (a row of trades.csv)."""

    symbol: str
    side: str
    entry_ts: int
    exit_ts: int
    entry_price: float
    exit_price: float
    qty: float
    fees_usd: float
    funding_usd: float
    spread_usd: float
    slippage_usd: float
    gross_pnl_usd: float
    pnl_usd: float  # net: realised PnL after fees, minus funding
    exit_reason: str
    confidence: float
    model_version: str
    intent_id: str


@dataclass
class _Open:
    position: Position
    exit: Exit
    confidence: float
    model_version: str
    entry_mid: float
    entry_spread: float
    entry_slippage: float


@dataclass
class Book:
    """What the executor keeps in Redis, kept in memory; :meth:`apply` mirrors the Lua script."""

    positions: dict[str, Position] = field(default_factory=dict)
    risk: RiskState = field(default_factory=RiskState)
    cooldowns: dict[str, int] = field(default_factory=dict)
    executed: set[str] = field(default_factory=set)
    decided: set[str] = field(default_factory=set)
    open_notional: float = 0.0

    def apply(self, t: Transition, *, now_ms: int) -> None:
        if t.ledger_intent:
            self.executed.add(t.ledger_intent)
        old = self.positions.get(t.symbol)
        if t.op != "none":
            if old is not None:
                self.open_notional -= old.notional_usd
            if t.op == "set" and t.new_position is not None:
                self.positions[t.symbol] = t.new_position
                self.open_notional += t.new_position.notional_usd
            else:
                self.positions.pop(t.symbol, None)
        r = self.risk
        if t.realized_pnl is not None:
            day = utc_day(now_ms)
            if r.day != day:
                r = replace(r, day=day, realized_pnl_today=0.0, loss_streak=0)
            total = r.realized_pnl_total + t.realized_pnl
            r = replace(
                r,
                realized_pnl_today=r.realized_pnl_today + t.realized_pnl,
                realized_pnl_total=total,
                equity_peak=max(r.equity_peak, total),
                loss_streak=r.loss_streak + 1 if t.realized_pnl < 0 else 0,
            )
        if t.cooldown_until_ms is not None:
            self.cooldowns[t.symbol] = t.cooldown_until_ms
        if t.venue_error is not None:
            rate = r.error_rate_at(now_ms) * (1 - ERROR_RATE_ALPHA) + ERROR_RATE_ALPHA * float(t.venue_error)
            r = replace(r, error_rate=rate, error_ts=now_ms, executions=r.executions + 1)
        self.risk = r


@dataclass
class Funnel:
    """Counts per stage and reason, and what turned-away trades would have earned."""

    signals: Counter[str] = field(default_factory=Counter)  # BUY / SELL / HOLD
    router: Counter[str] = field(default_factory=Counter)  # drop reason → count; "intent" for intents
    gate: Counter[str] = field(default_factory=Counter)  # EXECUTE or the BLOCKED reason
    executor: Counter[str] = field(default_factory=Counter)  # FILLED or the REJECTED reason
    exits: Counter[str] = field(default_factory=Counter)
    snapshot: Counter[str] = field(default_factory=Counter)  # allowlist tier per step
    would: dict[tuple[str, str], list[float]] = field(default_factory=dict)  # (stage, reason) → [n, net pnl]


@dataclass
class Record:
    """The decision trail (for the parity test) and the equity path."""

    intents: list[TradeIntent] = field(default_factory=list)
    decisions: list[tuple[str, str, str]] = field(default_factory=list)  # (intent_id, decision, reason)
    fills: list[tuple[str, str, float, float]] = field(default_factory=list)  # (intent_id, status/reason, qty, px)
    equity: list[tuple[int, float, float]] = field(default_factory=list)  # (ts, realised net, unrealised)
    open_count: list[int] = field(default_factory=list)
    gross_exposure: list[float] = field(default_factory=list)


@dataclass
class Result:
    trades: list[Trade]
    funnel: Funnel
    record: Record
    data_points: int
    symbols_read: list[str]


class Engine:
    """One backtest over a signal plan (deterministic: same inputs, same trades)."""

    def __init__(
        self, data: MarketData, *, spec: TradingProfileSpec, universe: Sequence[UniverseEvent], end_ms: int,
        counterfactuals: bool = True, paper_fills: bool = False,
    ) -> None:
        self.data = data
        self.spec = spec
        self.universe = list(universe)
        self.end_ms = end_ms
        self.counterfactuals = counterfactuals
        self.paper_fills = paper_fills  # the live paper venue: fill at the mark across the profile's spread
        self.filters = {s: Filters.from_market(m) for s, m in data.markets.items()}
        self.book = Book()
        self.funnel = Funnel()
        self.record = Record()
        self.trades: list[Trade] = []
        self._open: dict[str, _Open] = {}
        self._exits: list[tuple[int, str]] = []
        self._routed: set[str] = set()
        self._recent_intents: dict[str, int] = {}
        self._demand: dict[str, int] = {}
        self._realised_net = 0.0
        self._symbols_seen: set[str] = set()
        self._start = 0
        self._views: dict[str, snap.UniverseView | None] = {}
        self._turned_away: list[tuple[str, str, Signal, int]] = []
        self._allow: dict[tuple[str | None, str | None, bool, bool], tuple[snap.Allowlist, frozenset[str]]] = {}
        self._steps = np.zeros(0, dtype=np.int64)
        self._step_pos: dict[int, int] = {}
        self._step_marks: dict[str, list[float]] = {}

    # -- prices ---------------------------------------------------------------------------------

    def _finest(self, symbol: str) -> tuple[Any, str]:
        tf = self.data.finest[symbol]
        return self.data.get(symbol, tf), tf

    def _spread(self, symbol: str) -> float:
        # the live paper venue charges the profile's spread around the mark; the market fill the symbol's own
        return self.spec.universe.spread_bps if self.paper_fills else self.data.spread_bps[symbol]

    @property
    def _funding_start(self) -> int:
        """Settlements are read from a day and a settlement period before the span: the entry rule at the
        first step knows the last settlement before it, as the live router's exchange call does."""
        return self._start - FUNDING_LOOKBACK_MS

    def _funding_bps(self, admitted: Sequence[Candidate], now: int) -> dict[str, float]:
        """Each candidate symbol's expected funding (bps per 8 h) from the source's own settlements only."""
        out: dict[str, float] = {}
        for sym in {c.signal.symbol for c in admitted}:
            rates = self.data.known_settlements(sym, start_ms=self._funding_start, end_ms=self.end_ms, now_ms=now)
            bps = router.funding_bps_8h(rates, now_ms=now)
            if bps is not None:
                out[sym] = bps
        return out

    def mark(self, symbol: str, at_ms: int) -> float | None:
        """:func:`mark_at`; at decision times from one vectorised lookup per symbol over every step."""
        pos = self._step_pos.get(at_ms)
        if pos is None:
            series, tf = self._finest(symbol)
            return mark_at(series, tf, at_ms)
        marks = self._step_marks.get(symbol)
        if marks is None:
            series, tf = self._finest(symbol)
            n = series.ts.searchsorted(self._steps - TIMEFRAME_MS[tf], side="right")  # mark_at's rule
            marks = self._step_marks[symbol] = np.where(n > 0, series.close[np.maximum(n - 1, 0)], np.nan).tolist()
        m = marks[pos]
        return None if m != m else m  # NaN: no bar closed yet

    # -- the loop -------------------------------------------------------------------------------

    def run(self, plan: SignalPlan, *, tick: Tick | None = None) -> Result:
        ui = 0
        self._steps = np.asarray(plan.steps, dtype=np.int64)
        self._step_pos = {t: i for i, t in enumerate(plan.steps)}
        self._step_marks.clear()
        self._start = plan.steps[0] if plan.steps else self.end_ms
        for step in plan.steps:
            self._close_due(step)
            ui, event = universe_at(self.universe, step, index=ui)
            self._step(step, event, plan.by_step.get(step, []))
            self._sample(step)
            if tick is not None:
                tick(step)
        self._close_due(self.end_ms + 1)
        symbols = sorted({s for s in self._symbols_seen})
        return Result(self.trades, self.funnel, self.record, plan.data_points, symbols)

    def _step(self, now: int, event: UniverseEvent | None, pending: list[Pending]) -> None:
        active_raw = event.active if event else None
        last_ok_raw = self._last_ok(event)
        view = self._parsed(active_raw)
        last_ok_view = self._parsed(last_ok_raw)
        admitted: list[Candidate] = []
        for p in pending:  # the router's admission screen, on the decision before it is a message
            self.funnel.signals[p.decision.side] += 1
            why = router.screen(cast(Signal, p.decision), settings=self.spec.router)
            if why is None:
                s = p.signal()
                admitted.append(Candidate(entry_id=s.signal_id, signal=s, received_ms=now))
            else:
                self.funnel.router[why] += 1
        if not admitted:
            return
        # snapshot: allowlist → candidates → snapshots at the mark → tradable symbols
        allow, gate_allow = self._allowlists(now, active_raw, last_ok_raw, view, last_ok_view)
        self.funnel.snapshot[allow.source] += 1
        self._recent_intents = snap.remember(self._recent_intents, (), now_ms=now,
                                             window_s=self.spec.snapshot.intent_window)
        self._demand = snap.remember(self._demand, (), now_ms=now, window_s=self.spec.snapshot.intent_window)
        top_k = snap.compute_top_k(ewma_latency_s=0.0, settings=self.spec.snapshot)
        cands = snap.choose_candidates(allowlist=allow, recent_intents=self._recent_intents, demand=self._demand,
                                       positions=self.book.positions.keys(), top_k=top_k,
                                       settings=self.spec.snapshot)
        marks: dict[str, float] = {}
        for sym in cands.symbols:
            if sym in self.data.markets:
                m = self.mark(sym, now)
                if m is not None:
                    marks[sym] = m
        rows, _missing = snap.build_snapshots(cands.symbols, marks=marks, positions={}, now_ms=now)
        tradable = snap.tradable_symbols(rows, allowlist=allow)
        # router: one batch of the admitted signals
        batch = router.decide_batch(
            BatchInput(candidates=tuple(admitted), open_orders_raw=str(len(self.book.positions)), paused=False,
                       tradable=tradable or None,
                       already_routed=frozenset(c.entry_id for c in admitted if c.entry_id in self._routed), now_ms=now,
                       open_symbols=frozenset(self.book.positions),
                       open_sides={s: p.side for s, p in self.book.positions.items()},
                       funding_bps_8h=self._funding_bps(admitted, now)),
            settings=self.spec.router, base_size_usd=self.spec.executor.base_size_usd,
            costs=router.entry_costs(executor=self.spec.executor, universe=self.spec.universe),
        )
        by_id = {c.signal.signal_id: c.signal for c in admitted}
        for d in batch.drops:
            code = d.reason.split(":")[0]  # negative_edge:ev_bps=… → negative_edge
            self.funnel.router[code] += 1
            if d.reason == router.NOT_TRADABLE:
                self._demand[d.symbol] = now
            if self.counterfactuals and code not in SCREEN_ONLY and code not in router.HELD_VERDICTS:
                self._would("router", code, by_id[d.signal_id], now)
        for held in batch.held:
            self._apply_held(held, now)
        if not batch.intents:
            return
        for intent in batch.intents:
            self._routed.add(intent.signal_id)
            self._recent_intents[intent.symbol] = now
            self.funnel.router["intent"] += 1
            self.record.intents.append(intent)
        self._gate_and_execute(list(batch.intents), now=now, allowlist=gate_allow, marks=marks, by_id=by_id)

    def _parsed(self, raw: str | None) -> snap.UniverseView | None:
        """The snapshot core's parse of a universe document, once per distinct document."""
        if raw is None:
            return None
        view = self._views.get(raw)
        if view is None:
            view = self._views[raw] = snap.parse_universe(raw)
        return view

    def _allowlists(
        self, now: int, active_raw: str | None, last_ok_raw: str | None, view: snap.UniverseView | None,
        last_ok_view: snap.UniverseView | None,
    ) -> tuple[snap.Allowlist, frozenset[str]]:
        """The snapshot's and the gate's allowlist; they depend on time only through each document's
        expiry, so they are resolved once per (documents, still valid) and reused."""
        key = (active_raw, last_ok_raw, view is not None and now < view.valid_until,
               last_ok_view is not None and now < last_ok_view.valid_until)
        hit = self._allow.get(key)
        if hit is None:
            allow = snap.resolve_allowlist(self.spec.snapshot, active=view, last_ok=last_ok_view, now_ms=now)
            gate_allow, _tier = gate.resolve_allowlist(
                source=self.spec.snapshot.allowlist_source, active=active_raw, last_ok=last_ok_raw,
                profile_allowlist=self.spec.snapshot.allowlist, now_ms=now,
            )
            hit = self._allow[key] = (allow, gate_allow)
            self._symbols_seen.update(allow.symbols)
        return hit

    def _last_ok(self, event: UniverseEvent | None) -> str | None:
        if event is None:
            return None
        if event.last_ok is not None:
            return event.last_ok
        for e in reversed(self.universe):
            if e.at_ms <= event.at_ms and e.last_ok is not None:
                return e.last_ok
        return None

    def _gate_and_execute(
        self, intents: list[TradeIntent], *, now: int, allowlist: frozenset[str], marks: dict[str, float],
        by_id: dict[str, Signal],
    ) -> None:
        g = self.spec.gate
        wanted = {i.symbol for i in intents}  # the gate reads the snapshots of the intents' symbols only
        snapshots = {s: SnapshotInfo(mark_price=m, ts_ms=now) for s, m in marks.items() if s in wanted}
        view = GateView(
            paused=False, allowlist=allowlist, positions=dict(self.book.positions), snapshots=snapshots,
            cooldowns=self.book.cooldowns, risk=self.book.risk,
            kill_score=kill_score(self.book.risk, settings=g, now_ms=now), decided=frozenset(i.intent_id for i in intents if i.intent_id in self.book.decided),
            open_notional_usd=self.book.open_notional,
        )
        verdicts = gate.decide_batch(intents, view, settings=g, now_ms=now)
        for intent, v in zip(intents, verdicts, strict=True):
            self.book.decided.add(intent.intent_id)
            self.record.decisions.append((intent.intent_id, v.decision, v.reason))
            key = "EXECUTE" if v.execute else v.reason.split(":")[0]
            self.funnel.gate[key] += 1
            if not v.execute:
                if self.counterfactuals:
                    self._would("gate", key, by_id[intent.signal_id], now)
                continue
            self._execute(intent, now=now, mark=marks.get(intent.symbol), by_id=by_id)

    def _execute(self, intent: TradeIntent, *, now: int, mark: float | None, by_id: dict[str, Signal]) -> None:
        ex = self.spec.executor
        decision_id = gate.decision_id_for(intent.intent_id)
        position = self.book.positions.get(intent.symbol)
        plan = plan_execution(
            intent, position=position, mark_price=mark, mark_ts_ms=now if mark is not None else None,
            filters=self.filters.get(intent.symbol), no_new_positions=False,
            max_price_age_ms=self.spec.gate.max_snapshot_age * 1000.0, sizing=self._sizing(), now_ms=now,
        )
        if plan.order is None:
            t = reject_transition(intent, decision_id=decision_id, reason=plan.reason, mode="paper", now_ms=now)
            self.book.apply(t, now_ms=now)
            code = plan.reason.split(":")[0]  # below_min_notional:need_usd=… → below_min_notional
            self.funnel.executor[code] += 1
            self.record.fills.append((intent.intent_id, plan.reason, 0.0, 0.0))
            if self.counterfactuals:
                self._would("executor", code, by_id[intent.signal_id], now)
            return
        series, tf = self._finest(intent.symbol)
        mid = plan.order.reference_price if self.paper_fills else next_price(series, tf, now) or mark or 0.0
        f = fill(side=intent.side, qty=plan.order.qty, mid=mid, spread_bps=self._spread(intent.symbol),
                 tick=self.filters[intent.symbol].tick_size, client_order_id=plan.order.client_order_id,
                 max_slippage_bps=ex.max_slippage_bps, fee_bps=ex.fee_bps)
        t = apply_fill(intent, plan=plan, fill=f.venue, position=position, decision_id=decision_id, mode="paper",
                       cooldown_ms=int(self.spec.gate.cooldown * 1000), time_exit_ms=horizon_ms(self.spec.ai),
                       now_ms=now)
        self.book.apply(t, now_ms=now)
        self.funnel.executor["FILLED"] += 1
        self.record.fills.append((intent.intent_id, "FILLED", f.venue.qty, f.venue.price))
        pos = t.new_position
        if pos is None:
            return
        exit_ = find_exit(series, tf, side=pos.side, stop_loss=pos.stop_loss, take_profit=pos.take_profit,
                          opened_ms=now, end_ms=self.end_ms, expires_ms=pos.expires_ts)
        signal = by_id[intent.signal_id]
        self._open[pos.symbol] = _Open(pos, exit_, intent.confidence, signal.model_version, f.mid,
                                       f.spread_usd, f.slippage_usd)
        heapq.heappush(self._exits, (exit_.at_ms, pos.symbol))

    def _sizing(self) -> SizeLimits:
        """The executor's raise-to-minimum limits against the book's open gross notional, as live."""
        return size_limits(self.spec.executor, limits_from(self.spec.gate, self.spec.ai),
                           open_notional_usd=self.book.open_notional)

    def _apply_held(self, held: HeldSignal, now: int) -> None:
        """The router's verdict on a held position, as the live monitor applies it at its next pass (the
        close of the next finest bar): a renewal takes the signal's levels and time exit and re-finds the
        exit from there; a close exits at that bar's mark (``signal``). Superseded heap entries are skipped."""
        op = self._open.get(held.symbol)
        if op is None:
            return
        series, tf = self._finest(held.symbol)
        out = held_outcome(op.position, held, time_exit_ms=horizon_ms(self.spec.ai),
                           maintenance_margin_rate=self.spec.executor.maintenance_margin_rate)
        if out.kind == "renew" and out.position is not None:
            pos = out.position
            self.book.positions[pos.symbol] = pos  # same qty and entry: the open notional is unchanged
            op.position = pos
            op.exit = find_exit(series, tf, side=pos.side, stop_loss=pos.stop_loss, take_profit=pos.take_profit,
                                opened_ms=now, end_ms=self.end_ms, expires_ms=pos.expires_ts)
        elif out.kind == "close":
            at = now + TIMEFRAME_MS[tf]
            mark = mark_at(series, tf, at)
            if at > self.end_ms or mark is None:
                return
            op.exit = Exit(at, "signal", mark)
        else:
            return
        heapq.heappush(self._exits, (op.exit.at_ms, held.symbol))

    def _close_due(self, now: int) -> None:
        while self._exits and self._exits[0][0] <= now:
            at, symbol = heapq.heappop(self._exits)
            op = self._open.get(symbol)
            if op is None or op.exit.at_ms != at:
                continue  # superseded by a renewal or a signal close
            del self._open[symbol]
            self._close(op, at=at)

    def _close(self, op: _Open, *, at: int) -> None:
        pos, ex = op.position, self.spec.executor
        side: Literal["BUY", "SELL"] = "SELL" if pos.side == "BUY" else "BUY"
        f = fill(side=side, qty=pos.qty, mid=op.exit.mid, spread_bps=self._spread(pos.symbol),
                 tick=self.filters[pos.symbol].tick_size, client_order_id=exit_client_order_id(pos),
                 max_slippage_bps=ex.max_slippage_bps, fee_bps=ex.fee_bps)
        reason = op.exit.reason
        t = close_position(pos, qty=pos.qty, exit_price=f.venue.price, exit_fee=f.venue.fee_usd,
                           reason="manual" if reason == END_OF_DATA else reason,  # type: ignore[arg-type]
                           cooldown_ms=int(self.spec.gate.cooldown * 1000), now_ms=at)
        self.book.apply(t, now_ms=at)
        funding = funding_usd(self.data.funding_for(pos.symbol, self._funding_start, self.end_ms), side=pos.side,
                              notional=pos.notional_usd, opened_ms=pos.opened_ts, closed_ms=at)
        realised = t.realized_pnl or 0.0
        net = realised - funding
        self._realised_net += net
        self.funnel.exits[reason] += 1
        self.trades.append(Trade(
            symbol=pos.symbol, side=pos.side, entry_ts=pos.opened_ts, exit_ts=at, entry_price=pos.entry_price,
            exit_price=f.venue.price, qty=pos.qty, fees_usd=pos.entry_fee_usd + f.venue.fee_usd,
            funding_usd=funding, spread_usd=op.entry_spread + f.spread_usd,
            slippage_usd=op.entry_slippage + f.slippage_usd,
            gross_pnl_usd=(op.exit.mid - op.entry_mid) * pos.qty * pos.direction, pnl_usd=net,
            exit_reason=reason, confidence=op.confidence, model_version=op.model_version,
            intent_id=pos.intent_id,
        ))

    def _sample(self, now: int) -> None:
        unreal = 0.0
        gross = 0.0
        for s, p in self.book.positions.items():
            m = self.mark(s, now)
            if m is not None:
                unreal += (m - p.entry_price) * p.qty * p.direction
                gross += p.qty * m
        self.record.equity.append((now, self._realised_net, unreal))
        self.record.open_count.append(len(self.book.positions))
        self.record.gross_exposure.append(gross)

    # -- what turned-away trades would have earned -----------------------------------------------

    def _would(self, stage: str, reason: str, signal: Signal, now: int) -> None:
        """Remember a turned-away trade; :meth:`counterfactuals_run` prices it after the loop."""
        self._turned_away.append((stage, reason, signal, now))

    def price_turned_away(self) -> None:
        """Net PnL of every trade a dropped signal would have opened (same sizing, fills and exits)."""
        for stage, reason, signal, now in self._turned_away:
            self._price_one(stage, reason, signal, now)
        self._turned_away.clear()

    def _price_one(self, stage: str, reason: str, signal: Signal, now: int) -> None:
        acc = self.funnel.would.setdefault((stage, reason), [0.0, 0.0])
        if signal.side == "HOLD" or signal.atr <= 0 or signal.symbol not in self.filters:
            return
        intent = router.build_intent(signal, rank_no=1, settings=self.spec.router,
                                     base_size_usd=self.spec.executor.base_size_usd, now_ms=now)
        series, tf = self._finest(signal.symbol)
        mark = mark_at(series, tf, now)
        if mark is None:
            return
        filt = self.filters[signal.symbol]
        sized = opening_qty(floor_to_step(intent.position_size_usd * intent.leverage / mark, filt.step_size),
                            filters=filt, price=mark, sizing=self._sizing())
        if isinstance(sized, str):
            return
        qty = sized
        ex = self.spec.executor
        mid = next_price(series, tf, now) or mark
        entry = fill(side=intent.side, qty=qty, mid=mid, spread_bps=self._spread(signal.symbol),
                     tick=filt.tick_size, client_order_id=intent.intent_id, max_slippage_bps=ex.max_slippage_bps,
                     fee_bps=ex.fee_bps)
        e = find_exit(series, tf, side=intent.side, stop_loss=intent.stop_loss, take_profit=intent.take_profit,
                      opened_ms=now, end_ms=self.end_ms, expires_ms=now + horizon_ms(self.spec.ai))
        out = fill(side="SELL" if intent.side == "BUY" else "BUY", qty=qty, mid=e.mid,
                   spread_bps=self._spread(signal.symbol), tick=filt.tick_size,
                   client_order_id="X-" + intent.intent_id, max_slippage_bps=ex.max_slippage_bps, fee_bps=ex.fee_bps)
        direction = 1.0 if intent.side == "BUY" else -1.0
        pnl = (out.venue.price - entry.venue.price) * qty * direction - entry.venue.fee_usd - out.venue.fee_usd
        pnl -= funding_usd(self.data.funding_for(signal.symbol, self._funding_start, self.end_ms), side=intent.side,
                           notional=qty * entry.venue.price, opened_ms=now, closed_ms=e.at_ms)
        acc[0] += 1
        acc[1] += pnl
