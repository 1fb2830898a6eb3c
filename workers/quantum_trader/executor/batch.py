"""The executor's batch decisions, pure: which EXECUTE decisions run, against which book, with what result.

No I/O and no clock reads. Per batch the shell reads the ledgers, pending intents, positions
and snapshots once, then for each decision in order:

1. :meth:`BatchPlanner.plan` — skip (already executed / repeated in the batch), answer REJECTED
   ``intent_unknown`` (no pending intent, or one for another symbol/side), or size an order
   (:func:`~quantum_trader.executor.core.plan_execution`, which may reject it by policy);
2. the shell submits the order to the venue (the only I/O in the loop);
3. :meth:`BatchPlanner.settle` — the venue's fill (or error reason) becomes a
   :class:`~quantum_trader.executor.core.Transition` with the in-flight slot it frees and the
   exact stored record it must find (compare-and-set guard); the planner's local book then
   shows the fill, so later decisions of the batch see earlier ones.

The whole batch's transitions are written by one script call (``APPLY_LUA``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Final

from quantum_trader.core.messages import ExecMode, GateDecision, MessageError, TradeIntent
from quantum_trader.core.profile import AiSettings, ExecutorSettings, GateSettings
from quantum_trader.executor.core import (
    Filters,
    Plan,
    SizeLimits,
    Transition,
    apply_fill,
    plan_execution,
    reject_transition,
)
from quantum_trader.executor.venue import VenueFill, VenueOrder
from quantum_trader.ledger.intents import flight_field, intent_notional, parse_intent_json
from quantum_trader.ledger.positions import Position
from quantum_trader.ledger.snapshots import SnapshotInfo
from quantum_trader.market.base import TIMEFRAME_MS

REJECT_INTENT_UNKNOWN: Final = "intent_unknown"


@dataclass(frozen=True, slots=True)
class ExecutionLimits:
    """Values the executor shares with the gate, declared once (``gate.*``) and passed explicitly."""

    cooldown_ms: int  # gate.cooldown: after a close, new risk on the symbol waits this long
    max_price_age_ms: float  # gate.maxSnapshotAge: an older snapshot price is stale
    time_exit_ms: int = 0  # ai.horizonBars × ai.timeframe: a position closes (reason time) this long after opening
    max_exposure_usd: float = float("inf")  # gate.maxExposureUsd: a size raised to the exchange minimum stays under it


def horizon_ms(ai: AiSettings) -> int:
    """The label horizon (``ai.horizonBars`` bars of ``ai.timeframe``) in ms: the time exit."""
    return ai.horizon_bars * TIMEFRAME_MS[ai.timeframe]


def limits_from(gate: GateSettings, ai: AiSettings) -> ExecutionLimits:
    """The gate's ``cooldown`` and ``maxSnapshotAge`` and the ai's label horizon as the executor uses them."""
    return ExecutionLimits(cooldown_ms=int(gate.cooldown * 1000), max_price_age_ms=gate.max_snapshot_age * 1000.0,
                           time_exit_ms=horizon_ms(ai), max_exposure_usd=gate.max_exposure_usd)


def size_limits(settings: ExecutorSettings, limits: ExecutionLimits, *, open_notional_usd: float) -> SizeLimits:
    """The raise-to-minimum limits at an open gross notional (unreadable = +inf: no raise, fail closed)."""
    return SizeLimits(max_position_usd=settings.max_position_usd,
                      exposure_room_usd=limits.max_exposure_usd - open_notional_usd,
                      maintenance_margin_rate=settings.maintenance_margin_rate)


def reject_unknown(d: GateDecision, *, mode: ExecMode, now_ms: int, reason: str = REJECT_INTENT_UNKNOWN) -> Transition:
    """REJECTED answer to a decision whose intent cannot be used (its ledger entry and pending slot go too)."""
    stub = TradeIntent(
        intent_id=d.intent_id, signal_id="", symbol=d.symbol, side=d.side, position_size_usd=1.0,
        leverage=1.0, entry_price=1.0, stop_loss=0.0, take_profit=0.0, confidence=0.0, score=0.0,
        rank=0, size_boost=1.0, ts=now_ms,
    )
    return reject_transition(stub, decision_id=d.decision_id, reason=reason, mode=mode, now_ms=now_ms)


def frees_in_flight(t: Transition, intent: TradeIntent | None) -> Transition:
    """The transition also frees the gate's in-flight slot of an opening intent (no-op for reduce-only)."""
    if intent is None or intent.reduce_only:
        return t
    return replace(t, in_flight_field=flight_field(intent.symbol, intent.side), in_flight_notional=intent_notional(intent))


def pending_intent(raw: str | bytes | None) -> TradeIntent | None:
    """A ``state:pending_intents`` value, or None when absent or unreadable."""
    if raw is None:
        return None
    try:
        return parse_intent_json(raw)
    except (MessageError, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class Step:
    """One decision's plan: a transition decided without the venue, or an order to submit."""

    decision: GateDecision
    intent: TradeIntent | None
    plan: Plan | None = None
    decided: Transition | None = None  # set: no venue call

    @property
    def order(self) -> VenueOrder | None:
        return self.plan.order if self.plan is not None and self.decided is None else None


class BatchPlanner:
    """Plans one batch in order against a local copy of the book (no I/O; the copy is the planner's own)."""

    def __init__(
        self,
        *,
        stored: Mapping[str, str],
        positions: Mapping[str, Position],
        snapshots: Mapping[str, SnapshotInfo | None],
        filters: Mapping[str, Filters],
        no_new_positions: bool,
        limits: ExecutionLimits,
        sizing: SizeLimits,
        mode: ExecMode,
        now_ms: int,
    ) -> None:
        self.stored = dict(stored)  # symbol → the exact stored record (compare-and-set guard)
        self.positions = dict(positions)
        self.snapshots = snapshots
        self.filters = filters
        self.no_new = no_new_positions
        self.limits = limits
        self.sizing = sizing  # its exposure room shrinks with each opening fill of the batch
        self.mode = mode
        self.now_ms = now_ms
        self.seen: set[str] = set()

    def wanted(self, d: GateDecision, *, executed: object) -> bool:
        """False for a decision already executed (redelivery) or repeated within the batch."""
        if executed is not None or d.intent_id in self.seen:
            return False
        self.seen.add(d.intent_id)
        return True

    def plan(self, d: GateDecision, raw_intent: str | bytes | None) -> Step:
        intent = pending_intent(raw_intent)
        if intent is None or intent.symbol != d.symbol or intent.side != d.side:
            return Step(d, None, decided=reject_unknown(d, mode=self.mode, now_ms=self.now_ms))
        snap = self.snapshots.get(intent.symbol)
        plan = plan_execution(
            intent,
            position=self.positions.get(intent.symbol),
            mark_price=snap.mark_price if snap else None,
            mark_ts_ms=snap.ts_ms if snap else None,
            filters=self.filters.get(intent.symbol),
            no_new_positions=self.no_new,
            max_price_age_ms=self.limits.max_price_age_ms,
            sizing=self.sizing,
            now_ms=self.now_ms,
        )
        if plan.order is None:
            t = reject_transition(intent, decision_id=d.decision_id, reason=plan.reason, mode=self.mode,
                                  now_ms=self.now_ms)
            return Step(d, intent, plan, decided=t)
        if snap is not None and snap.bid > 0:  # the quote the order crosses (paper), when the snapshot has one
            plan = replace(plan, order=replace(plan.order, bid=snap.bid, ask=snap.ask))
        return Step(d, intent, plan)

    def settle(self, step: Step, outcome: VenueFill | str | None = None) -> Transition:
        """The step's transition (``outcome``: the venue's fill, or its error reason), recorded in the book."""
        if step.decided is not None or step.intent is None or step.plan is None:
            t = step.decided if step.decided is not None else reject_unknown(step.decision, mode=self.mode,
                                                                              now_ms=self.now_ms)
            return self._record(frees_in_flight(t, step.intent) if step.intent is not None else t)
        intent, d = step.intent, step.decision
        if isinstance(outcome, VenueFill):
            t = apply_fill(intent, plan=step.plan, fill=outcome, position=self.positions.get(intent.symbol),
                           decision_id=d.decision_id, mode=self.mode, cooldown_ms=self.limits.cooldown_ms,
                           time_exit_ms=self.limits.time_exit_ms, now_ms=self.now_ms)
        else:
            t = reject_transition(intent, decision_id=d.decision_id, reason=outcome or "venue_rejected",
                                  mode=self.mode, now_ms=self.now_ms, venue_error=True)
        return self._record(frees_in_flight(t, intent))

    def _record(self, t: Transition) -> Transition:
        if t.expected is not None:
            t = replace(t, expected=self.stored.get(t.symbol, ""))
        old = self.positions.get(t.symbol)
        if t.op != "none":
            grown = (t.new_position.notional_usd if t.op == "set" and t.new_position is not None else 0.0) - (
                old.notional_usd if old is not None else 0.0)
            self.sizing = replace(self.sizing, exposure_room_usd=self.sizing.exposure_room_usd - grown)
        if t.op == "set" and t.new_position is not None:
            self.positions[t.symbol] = t.new_position
            self.stored[t.symbol] = t.new_position.to_json()
        elif t.op == "del":
            self.positions.pop(t.symbol, None)
            self.stored.pop(t.symbol, None)
        return t
