"""The gate's pure decision core: one verdict per intent, rules in a fixed order.

No I/O and no clock reads: the shell reads Redis into a :class:`GateView`,
passes ``now_ms`` and gets verdicts back. Rule order (DESIGN §3), first match
wins; reason strings are DESIGN §2's exactly:

 1. paused            — (not reduce-only) ``control:paused`` or ``spec.paused``  → ``paused``
                        (a pause stops new risk; exits and ``qt flatten`` still pass)
 2. duplicate         — intent already decided                                  → ``duplicate``
    stale intent      — (not reduce-only) older than ``gate.maxIntentAge``       → ``stale_intent``
    duplicate         — (not reduce-only) an open or in-flight EXECUTE position
                        on the same symbol and side                              → ``duplicate``
 3. allowlist         — symbol not in the resolved allowlist                     → ``symbol_not_in_allowlist:<SYM>``
                        (a reduce-only intent on a symbol with an open position
                        passes: an exit is never trapped by a universe change)
 4. snapshot          — no snapshot hash / no mark price                          → ``no_exchange_snapshot``
                        older than ``gate.maxSnapshotAge``                        → ``stale_snapshot``
 5. kill score        — ≥ critical (not reduce-only)                              → ``kill_score_critical``
                        ≥ warning (risk-increasing = not reduce-only)             → ``kill_score_warning_risk_increase``
 6. cooldown          — ``state:cooldowns[SYM]`` in the future (not reduce-only)  → ``cooldown:<SYM>``
 7. exposure          — open + in-flight gross notional + intent notional > max   → ``exposure_limit``
                        (also when a stored position is unreadable: fail closed)
 8. leverage          — intent leverage > ``gate.maxLeverage``                    → ``leverage_limit``
 9. daily loss        — realised PnL today ≤ −``gate.dailyLossLimitUsd``          → ``daily_loss_limit``

Reduce-only intents only lower risk, so rules 1 and 5–9 never block them.
Intent notional = ``position_size_usd × leverage`` (what the executor buys).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from quantum_trader.core.messages import SCHEMA_VERSION, Decision, GateDecision, TradeIntent
from quantum_trader.core.profile import GateSettings
from quantum_trader.ledger import allowlist as shared_allowlist
from quantum_trader.ledger import universe as shared_universe
from quantum_trader.ledger.allowlist import AllowlistConfig
from quantum_trader.ledger.cooldowns import parse_cooldowns
from quantum_trader.ledger.intents import intent_notional, parse_summary, summary_fields
from quantum_trader.ledger.ledgers import decision_id_for
from quantum_trader.ledger.positions import Position, parse_positions
from quantum_trader.ledger.risk import RiskState, open_notional, utc_day
from quantum_trader.ledger.snapshots import SnapshotInfo, parse_snapshot

# shared-state names the gate's callers (executor tests, backtest) import from here
__all__ = ["Position", "RiskState", "SnapshotInfo", "decision_id_for", "intent_notional", "utc_day"]

REASON_NONE: Final = "none"
REASON_PAUSED: Final = "paused"
REASON_DUPLICATE: Final = "duplicate"
REASON_NO_SNAPSHOT: Final = "no_exchange_snapshot"
REASON_STALE_SNAPSHOT: Final = "stale_snapshot"
REASON_STALE_INTENT: Final = "stale_intent"
REASON_KILL_CRITICAL: Final = "kill_score_critical"
REASON_KILL_WARNING: Final = "kill_score_warning_risk_increase"
REASON_EXPOSURE: Final = "exposure_limit"
REASON_LEVERAGE: Final = "leverage_limit"
REASON_DAILY_LOSS: Final = "daily_loss_limit"
REASON_ALLOWLIST: Final = "symbol_not_in_allowlist"  # + ":<SYM>"
REASON_COOLDOWN: Final = "cooldown"  # + ":<SYM>"
#: every reason code a BLOCKED decision can carry (the part before ``:``), in rule order
REASONS: Final = (
    REASON_PAUSED, REASON_DUPLICATE, REASON_STALE_INTENT, REASON_ALLOWLIST, REASON_NO_SNAPSHOT,
    REASON_STALE_SNAPSHOT, REASON_KILL_CRITICAL, REASON_KILL_WARNING, REASON_COOLDOWN, REASON_EXPOSURE,
    REASON_LEVERAGE, REASON_DAILY_LOSS,
)

AllowlistTier = shared_allowlist.Tier


def reason_not_in_allowlist(symbol: str) -> str:
    return f"{REASON_ALLOWLIST}:{symbol}"


def reason_cooldown(symbol: str) -> str:
    return f"{REASON_COOLDOWN}:{symbol}"


# -- allowlist ---------------------------------------------------------------------------------


def resolve_allowlist(
    *,
    source: Literal["universe", "env"],
    active: str | bytes | None,
    last_ok: str | bytes | None,
    profile_allowlist: Iterable[str],
    now_ms: int,
) -> tuple[frozenset[str], AllowlistTier]:
    """The gate's allowlist and the tier that served it — the shared resolver
    (:mod:`quantum_trader.ledger.allowlist`) the snapshot worker uses too, on the stored texts.

    ``env``: the profile list only. ``universe``: ``cfg:universe:active`` if it
    is consistent, ``valid_until`` is in the future and it lists symbols; else
    ``cfg:universe:last_ok`` under the same conditions; else the profile list
    (possibly empty: then every intent is blocked — fail closed).
    """
    resolved = shared_allowlist.resolve(
        AllowlistConfig(source=source, symbols=tuple(profile_allowlist)),
        active=shared_universe.read_raw(active),
        last_ok=shared_universe.read_raw(last_ok),
        now_ms=now_ms,
    )
    return resolved.as_set, resolved.source


# -- kill score --------------------------------------------------------------------------------


def kill_score(risk: RiskState, *, settings: GateSettings, now_ms: int) -> float:
    """Kill score in [0, 1]: the worst (max) of three normalised components.

    drawdown = (equity peak − realised PnL total) / ``killDrawdownUsd`` (persists until reset);
    streak = consecutive losing closes today (UTC) / ``killLossStreak``;
    errors = execution error-rate EWMA, decayed with a 10-minute half-life since its last
    update, / ``killErrorRate`` (0 → any error gives 1).
    Each component is clipped to [0, 1]; max is used so any one alone can stop trading.
    """
    drawdown = risk.drawdown_usd / settings.kill_drawdown_usd
    streak = risk.loss_streak_on(utc_day(now_ms)) / settings.kill_loss_streak
    rate = risk.error_rate_at(now_ms)
    if settings.kill_error_rate > 0:
        errors = rate / settings.kill_error_rate
    else:
        errors = 1.0 if rate > 0 else 0.0
    return min(1.0, max(0.0, drawdown, streak, errors))


# -- decisions ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GateView:
    """Everything the rules read, gathered by the shell in one round trip."""

    paused: bool
    allowlist: frozenset[str]
    positions: Mapping[str, Position]  # at least every symbol of the batch
    snapshots: Mapping[str, SnapshotInfo]
    cooldowns: Mapping[str, int]  # symbol → epoch ms until which new risk is blocked
    risk: RiskState
    kill_score: float
    decided: frozenset[str] = frozenset()  # intent ids already in the decision ledger
    # opening EXECUTEs not yet executed: their (symbol, side) and summed notional (USD)
    in_flight: frozenset[tuple[str, str]] = frozenset()
    in_flight_notional: float = 0.0
    exposure_unknown: bool = False  # a malformed position: exposure cannot be known → fail closed
    # gross notional of ALL open positions (executor-maintained); None → sum of ``positions``
    open_notional_usd: float | None = None

    def open_notional(self) -> float:
        if self.open_notional_usd is not None:
            return max(0.0, self.open_notional_usd)
        return sum(p.notional_usd for p in self.positions.values())


# -- the view from raw reads (fail-closed rules) ----------------------------------------------


@dataclass(frozen=True, slots=True)
class GateReads:
    """The raw replies of the shell's one consistent read, per batch (bytes or str values)."""

    symbols: tuple[str, ...]  # the batch's symbols, sorted
    intent_ids: tuple[str, ...]  # the batch's intent ids, in order
    paused: bool  # control:paused exists or spec.paused
    positions: Mapping[str, str | bytes]  # state:positions of the batch symbols that have one
    universe_active: str | bytes | None
    universe_last_ok: str | bytes | None
    cooldowns: Sequence[object]  # HMGET state:cooldowns *symbols
    risk: Mapping[str, str]  # HGETALL state:risk
    summary: Sequence[object]  # HMGET state:pending_summary *summary_fields(symbols)
    decided: Sequence[object]  # HMGET state:decided_intents *intent_ids
    snapshots: Sequence[list[object] | None]  # HMGET snapshot:<SYM> mark_price ts, per symbol


@dataclass(frozen=True, slots=True)
class ViewReport:
    """What the shell reports about a view: unreadable state (fail closed) and the allowlist tier."""

    unreadable_positions: tuple[str, ...] = ()
    risk_error: str = ""  # non-empty: state:risk unreadable, kill score 1
    tier: AllowlistTier = "profile"


def build_view(
    reads: GateReads, *, settings: GateSettings, allowlist: AllowlistConfig, now_ms: int
) -> tuple[GateView, ViewReport]:
    """The rules' view from raw reads; anything unreadable fails closed:

    a malformed position → ``exposure_limit``; malformed ``state:risk`` → kill score 1; an
    unreadable open notional, in-flight notional → +inf (``exposure_limit``); an unreadable
    cooldown never expires; an unreadable in-flight count is busy (``duplicate``).
    """
    positions, bad = parse_positions(reads.positions)
    risk_error = ""
    try:
        risk = RiskState.from_hash(reads.risk)
        score = kill_score(risk, settings=settings, now_ms=now_ms)
    except ValueError as exc:
        risk, score, risk_error = RiskState(), 1.0, str(exc)
    resolved, tier = resolve_allowlist(
        source=allowlist.source, active=reads.universe_active, last_ok=reads.universe_last_ok,
        profile_allowlist=allowlist.symbols, now_ms=now_ms,
    )
    in_flight, in_flight_notional = parse_summary(summary_fields(reads.symbols), reads.summary)
    snaps = {s: parse_snapshot(r) for s, r in zip(reads.symbols, reads.snapshots, strict=True)}
    view = GateView(
        paused=reads.paused,
        allowlist=resolved,
        positions=positions,
        snapshots={s: v for s, v in snaps.items() if v is not None},
        cooldowns=parse_cooldowns(reads.symbols, reads.cooldowns),
        risk=risk,
        kill_score=score,
        decided=frozenset(i for i, d in zip(reads.intent_ids, reads.decided, strict=True) if d is not None),
        in_flight=in_flight,
        in_flight_notional=in_flight_notional,
        exposure_unknown=bool(bad),
        open_notional_usd=open_notional(reads.risk),
    )
    return view, ViewReport(unreadable_positions=tuple(bad), risk_error=risk_error, tier=tier)


@dataclass(frozen=True, slots=True)
class Verdict:
    intent_id: str
    decision: Decision
    reason: str
    kill_score: float

    @property
    def execute(self) -> bool:
        return self.decision == "EXECUTE"


def _blocked_reason(
    intent: TradeIntent,
    view: GateView,
    *,
    settings: GateSettings,
    now_ms: int,
    today: str,
    decided: frozenset[str] | set[str],
    in_flight: frozenset[tuple[str, str]] | set[tuple[str, str]],
    in_flight_notional: float,
    open_notional: float,
) -> str:
    sym = intent.symbol
    reduce_only = intent.reduce_only
    if view.paused and not reduce_only:
        return REASON_PAUSED  # a pause stops new risk; an exit (qt flatten) still goes through
    if intent.intent_id in decided:
        return REASON_DUPLICATE
    if not reduce_only and now_ms - intent.ts > settings.max_intent_age * 1000.0:
        return REASON_STALE_INTENT  # a delayed opening intent acts on a market that has moved on
    if not reduce_only:
        pos = view.positions.get(sym)
        if pos is not None and pos.side == intent.side:
            return REASON_DUPLICATE
        if (sym, intent.side) in in_flight:
            return REASON_DUPLICATE
    if sym not in view.allowlist and not (reduce_only and sym in view.positions):
        return reason_not_in_allowlist(sym)
    snap = view.snapshots.get(sym)
    if snap is None or snap.mark_price <= 0:
        return REASON_NO_SNAPSHOT
    if now_ms - snap.ts_ms > settings.max_snapshot_age * 1000.0:
        return REASON_STALE_SNAPSHOT
    if reduce_only:
        return REASON_NONE
    if view.kill_score >= settings.kill_score_critical:
        return REASON_KILL_CRITICAL
    if view.kill_score >= settings.kill_score_warning:
        return REASON_KILL_WARNING
    if view.cooldowns.get(sym, 0) > now_ms:
        return reason_cooldown(sym)
    gross = open_notional + max(0.0, in_flight_notional)
    if view.exposure_unknown or gross + intent_notional(intent) > settings.max_exposure_usd:
        return REASON_EXPOSURE
    if intent.leverage > settings.max_leverage:
        return REASON_LEVERAGE
    if view.risk.pnl_today(today) <= -settings.daily_loss_limit_usd:
        return REASON_DAILY_LOSS
    return REASON_NONE


def _verdict(intent: TradeIntent, reason: str, view: GateView) -> Verdict:
    return Verdict(
        intent_id=intent.intent_id,
        decision="EXECUTE" if reason == REASON_NONE else "BLOCKED",
        reason=reason,
        kill_score=view.kill_score,
    )


def decide(intent: TradeIntent, view: GateView, *, settings: GateSettings, now_ms: int) -> Verdict:
    """The verdict for one intent against one view."""
    reason = _blocked_reason(
        intent,
        view,
        settings=settings,
        now_ms=now_ms,
        today=utc_day(now_ms),
        decided=view.decided,
        in_flight=view.in_flight,
        in_flight_notional=view.in_flight_notional,
        open_notional=view.open_notional(),
    )
    return _verdict(intent, reason, view)


def decide_batch(
    intents: Sequence[TradeIntent], view: GateView, *, settings: GateSettings, now_ms: int
) -> list[Verdict]:
    """Verdicts in order, exactly as :func:`decide` one by one, except that each intent joins
    the decided set and each opening EXECUTE the in-flight set (and notional) before the next
    intent is judged: two intents of one batch cannot both open the same symbol/side or
    jointly exceed the exposure limit."""
    today = utc_day(now_ms)
    open_notional = view.open_notional()
    decided = set(view.decided)
    in_flight = set(view.in_flight)
    flight_notional = view.in_flight_notional
    out: list[Verdict] = []
    for intent in intents:
        reason = _blocked_reason(
            intent,
            view,
            settings=settings,
            now_ms=now_ms,
            today=today,
            decided=decided,
            in_flight=in_flight,
            in_flight_notional=flight_notional,
            open_notional=open_notional,
        )
        verdict = _verdict(intent, reason, view)
        out.append(verdict)
        decided.add(intent.intent_id)
        if verdict.execute and not intent.reduce_only:
            in_flight.add((intent.symbol, intent.side))
            flight_notional += intent_notional(intent)
    return out


def decision_fields(intent: TradeIntent, verdict: Verdict, *, now_ms: int) -> dict[str, str]:
    """``to_decision(...).to_fields()`` without building the model (hot path; a test keeps them equal)."""
    return {
        "v": SCHEMA_VERSION,
        "ts": str(now_ms),
        "decision_id": decision_id_for(intent.intent_id),
        "intent_id": intent.intent_id,
        "symbol": intent.symbol,
        "side": intent.side,
        "decision": verdict.decision,
        "reason": verdict.reason,
        "kill_score": repr(round(verdict.kill_score, 6)),
    }


def to_decision(intent: TradeIntent, verdict: Verdict, *, now_ms: int) -> GateDecision:
    return GateDecision(
        decision_id=decision_id_for(intent.intent_id),
        intent_id=intent.intent_id,
        symbol=intent.symbol,
        side=intent.side,
        decision=verdict.decision,
        reason=verdict.reason,
        kill_score=round(verdict.kill_score, 6),
        ts=now_ms,
    )
