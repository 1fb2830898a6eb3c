"""Router decision core (seed 001): capacity- and quality-aware best-of-N batching.

Pure: frozen data in, frozen data out; no I/O and no clock reads (``now_ms`` is
an argument). The shell (:mod:`quantum_trader.router.worker`) buffers admitted
signals, gathers a :class:`BatchInput` every ``candidateWindow`` (or when
``batchSize`` are buffered), calls :func:`decide_batch`, publishes the intents
and the drop records, emits the log events and acknowledges everything.

Stages of one batch, each a one-verb function, in this order:

1. ``paused``            control flag present → every candidate dropped (``paused``)
2. ``read capacity``     ``state:open_orders`` missing/unparseable → ``capacity_unknown``
3. ``compute slots``     slots = max - open ≤ 0 → ``capacity_full``;
                         open ≥ target → only super-confidence candidates
                         (``SUPER_SIGNAL_BYPASS``, else ``target_reached``);
                         allowed = min(desired, slots, maxNewPerCycle)
4. ``drop stale``        signal already older than ``candidateWindow`` when the router read it
                         (consumer lag, backlog after a restart) → ``stale``; a fresh signal
                         then waits at most one window in the buffer
5. ``drop duplicates``   signal already routed, or a second signal for a symbol → ``duplicate`` (the
                         best-ranked one is kept);
                         symbol already has an open position (one per symbol): the signal's
                         expected value of holding on, without a round trip to pay
                         (:func:`hold_edge`), decides — positive on the position's side →
                         ``position_renewed`` (the position takes the signal's SL/TP and time
                         exit), positive on the other side → ``position_reversed`` (the position
                         is closed); both go to ``state:held_signals`` for the executor
                         (ledger/held.py); else → ``position_open
6. ``filter tradable``   symbol outside ``cfg:tradable_symbols`` → ``not_tradable``;
                         ATR ≤ 0 → ``invalid_atr``; expected net return ≤ 0 under the SL/TP
                         exits after round-trip costs → ``negative_edge:ev_bps=…`` (:func:`expected_edge`)
7. ``rank``              by expected value (:func:`expected_edge`, bps), then score = confidence
                         + 0.02·rl_gate_pass + 0.01·(regime known), newest, signal id
8. ``select``            best ``allowed``; the rest → ``not_selected``
9. ``size``              base size × boost (rank 1 ≥ 0.90 → ×1.30, rank 2 ≥ 0.85 → ×1.10)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from quantum_trader.core.costs import EntryCosts as EntryCosts
from quantum_trader.core.costs import entry_costs as entry_costs
from quantum_trader.core.costs import net_edge_bps
from quantum_trader.core.messages import RouterFate, Side, Signal, TradeIntent
from quantum_trader.core.profile import RouterSettings, SizeBoostSettings
from quantum_trader.ledger.demand import NOT_TRADABLE as NOT_TRADABLE
from quantum_trader.ledger.held import HeldSignal
from quantum_trader.ledger.open_orders import read_capacity as read_capacity
from quantum_trader.market.base import FundingRate

# -- reason codes (RouterFate.reason, ROUTER_DROPS{reason}) -------------------------------------
HOLD: Final = "hold"
LOW_CONFIDENCE: Final = "low_confidence"
PAUSED: Final = "paused"
CAPACITY_UNKNOWN: Final = "capacity_unknown"
CAPACITY_FULL: Final = "capacity_full"
TARGET_REACHED: Final = "target_reached"
STALE: Final = "stale"
DUPLICATE: Final = "duplicate"
NOT_SELECTED: Final = "not_selected"
INVALID_ATR: Final = "invalid_atr"
POSITION_OPEN: Final = "position_open"
POSITION_RENEWED: Final = "position_renewed"  # + ":hold_ev_bps=…" (not an intent: a verdict on the held position)
POSITION_REVERSED: Final = "position_reversed"  # + ":hold_ev_bps=…"
HELD_VERDICTS: Final = frozenset({POSITION_RENEWED, POSITION_REVERSED})  # acted on: not turned away
NEGATIVE_EDGE: Final = "negative_edge"

REASONS: Final = (
    HOLD,
    LOW_CONFIDENCE,
    PAUSED,
    CAPACITY_UNKNOWN,
    CAPACITY_FULL,
    TARGET_REACHED,
    STALE,
    DUPLICATE,
    NOT_TRADABLE,
    NOT_SELECTED,
    INVALID_ATR,
    POSITION_OPEN,
    NEGATIVE_EDGE,
    POSITION_RENEWED,
    POSITION_REVERSED,
)

RL_GATE_BONUS: Final = 0.02
REGIME_BONUS: Final = 0.01
UNKNOWN_REGIMES: Final = frozenset({"", "unknown", "none", "n/a"})
INTENT_PREFIX: Final = "int-"
TOP_LOGGED: Final = 3

Outcome = Literal[
    "empty",
    "paused",
    "capacity_unknown",
    "capacity_full",
    "target_reached",
    "published",
    "none_selected",
]


@dataclass(frozen=True, slots=True)
class LogEvent:
    """One log line the shell emits: ``EVENT k=v ...``."""

    event: str
    fields: Mapping[str, object] = field(default_factory=dict)
    level: Literal["info", "warn"] = "info"


@dataclass(frozen=True, slots=True)
class Candidate:
    """An admitted signal waiting in the buffer."""

    entry_id: str
    signal: Signal
    received_ms: int  # when the router read it (clock ms)


@dataclass(frozen=True, slots=True)
class BatchInput:
    """Everything one decision needs, gathered by the shell."""

    candidates: tuple[Candidate, ...]
    open_orders_raw: str | None  # state:open_orders as read (None: key missing)
    paused: bool
    tradable: frozenset[str] | None  # cfg:tradable_symbols (None: missing or empty)
    already_routed: frozenset[str]  # signal ids of candidates already turned into intents
    now_ms: int
    open_symbols: frozenset[str] = frozenset()  # symbols with an open position (state:positions)
    # the side of each open position whose record could be read (a symbol missing here: no verdict, position_open)
    open_sides: Mapping[str, Side] = field(default_factory=dict)
    # funding rate per symbol, bps per 8 h, positive = longs pay (funding_bps_8h of the venue's settlements)
    funding_bps_8h: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Slots:
    open: int
    slots: int  # max - open
    desired: int  # target - open (0 when at/above target)
    allowed: int  # min(desired or burst, slots, burst)
    super_only: bool


@dataclass(frozen=True, slots=True)
class BatchResult:
    outcome: Outcome
    intents: tuple[TradeIntent, ...]
    drops: tuple[RouterFate, ...]
    events: tuple[LogEvent, ...]
    open_orders: int | None
    slots: Slots | None
    held: tuple[HeldSignal, ...] = ()  # verdicts on held positions → state:held_signals


# -- admission (per signal, before buffering) -------------------------------------------------


def screen(signal: Signal, *, settings: RouterSettings) -> str | None:
    """The reason a signal never enters the buffer, or None when it is admitted."""
    if signal.side == "HOLD":
        return HOLD
    if signal.confidence < settings.min_confidence:
        return LOW_CONFIDENCE
    return None


def screen_event(signal: Signal, reason: str, *, settings: RouterSettings) -> LogEvent:
    if reason == LOW_CONFIDENCE:
        return LogEvent(
            "LOW_CONFIDENCE_DROP",
            {
                "symbol": signal.symbol,
                "side": signal.side,
                "conf": signal.confidence,
                "min": settings.min_confidence,
                "signal_id": signal.signal_id,
            },
        )
    return LogEvent("HOLD_DROP", {"symbol": signal.symbol, "signal_id": signal.signal_id})


def fate(signal: Signal, reason: str, *, now_ms: int) -> RouterFate:
    """The drop record of a signal (stream:router.drop)."""
    return RouterFate(
        signal_id=signal.signal_id,
        symbol=signal.symbol,
        side=signal.side,
        confidence=signal.confidence,
        reason=reason,
        ts=now_ms,
    )


# -- stages -----------------------------------------------------------------------------------


def compute_slots(open_orders: int, *, settings: RouterSettings) -> Slots:
    slots = settings.max_open_orders - open_orders
    if open_orders >= settings.target_open_orders:
        allowed = max(0, min(slots, settings.max_new_per_cycle))
        return Slots(open=open_orders, slots=slots, desired=0, allowed=allowed, super_only=True)
    desired = settings.target_open_orders - open_orders
    allowed = max(0, min(desired, slots, settings.max_new_per_cycle))
    return Slots(open=open_orders, slots=slots, desired=desired, allowed=allowed, super_only=False)


def score(signal: Signal) -> float:
    """confidence + 0.02 if the RL gate passed + 0.01 if the regime is known."""
    bonus = RL_GATE_BONUS if signal.rl_gate_pass else 0.0
    if signal.regime.strip().lower() not in UNKNOWN_REGIMES:
        bonus += REGIME_BONUS
    return round(signal.confidence + bonus, 6)


def is_stale(signal: Signal, *, received_ms: int, window_s: float) -> bool:
    """Older than the window when read: it can no longer compete with the batch it lands in."""
    return received_ms - signal.ts > int(window_s * 1000)


def rank(
    candidates: Iterable[Candidate], *, settings: RouterSettings, costs: EntryCosts,
    funding_bps_8h: Mapping[str, float] | None = None,
) -> list[Candidate]:
    """Best first: expected value (bps), then score, confidence, newest, signal id (deterministic)."""
    funding = funding_bps_8h or {}

    def key(c: Candidate) -> tuple[float, float, float, int, str]:
        edge = expected_edge(c.signal, settings=settings, costs=costs, funding_bps_8h=funding.get(c.signal.symbol))
        ev = round(edge.ev_bps, 9)
        return (-ev, -score(c.signal), -c.signal.confidence, -c.signal.ts, c.signal.signal_id)

    return sorted(candidates, key=key)


def size_boost(rank_no: int, confidence: float, *, boost: SizeBoostSettings) -> float:
    if rank_no == 1 and confidence >= boost.rank1_confidence:
        return boost.rank1_factor
    if rank_no == 2 and confidence >= boost.rank2_confidence:
        return boost.rank2_factor
    return 1.0


def intent_id_for(signal_id: str) -> str:
    """Deterministic: a redelivered signal yields the same intent id."""
    return INTENT_PREFIX + signal_id


def exit_levels(signal: Signal, *, settings: RouterSettings) -> tuple[float, float]:
    """(stop loss, take profit) of a position on the signal's side at its price: ``stopLossAtr`` and
    ``takeProfitAtr`` ATRs away (0 when a level would fall below zero)."""
    sl_dist = signal.atr * settings.stop_loss_atr
    tp_dist = signal.atr * settings.take_profit_atr
    if signal.side == "BUY":
        stop_loss, take_profit = signal.price - sl_dist, signal.price + tp_dist
    else:
        stop_loss, take_profit = signal.price + sl_dist, signal.price - tp_dist
    return max(0.0, stop_loss), max(0.0, take_profit)


def build_intent(
    signal: Signal, *, rank_no: int, settings: RouterSettings, base_size_usd: float, now_ms: int
) -> TradeIntent:
    factor = size_boost(rank_no, signal.confidence, boost=settings.size_boost)
    price = signal.price
    stop_loss, take_profit = exit_levels(signal, settings=settings)
    side: Literal["BUY", "SELL"] = "BUY" if signal.side == "BUY" else "SELL"
    return TradeIntent(
        intent_id=intent_id_for(signal.signal_id),
        signal_id=signal.signal_id,
        symbol=signal.symbol,
        side=side,
        position_size_usd=round(base_size_usd * factor, 8),
        leverage=settings.leverage,
        entry_price=price,
        stop_loss=stop_loss,
        take_profit=take_profit,
        confidence=signal.confidence,
        score=score(signal),
        rank=rank_no,
        size_boost=factor,
        reduce_only=False,
        ts=now_ms,
    )


# -- the batch --------------------------------------------------------------------------------


class _Acc:
    """Collects drops and events while the stages run."""

    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms
        self.drops: list[RouterFate] = []
        self.events: list[LogEvent] = []
        self.held: list[HeldSignal] = []

    def drop(self, cands: Iterable[Candidate], reason: str) -> None:
        for c in cands:
            self.drops.append(fate(c.signal, reason, now_ms=self.now_ms))

    def log(self, event: str, level: Literal["info", "warn"] = "info", **fields: object) -> None:
        self.events.append(LogEvent(event, fields, level))


def _result(
    acc: _Acc,
    outcome: Outcome,
    *,
    intents: Sequence[TradeIntent] = (),
    open_orders: int | None = None,
    slots: Slots | None = None,
) -> BatchResult:
    return BatchResult(
        outcome=outcome,
        intents=tuple(intents),
        drops=tuple(acc.drops),
        events=tuple(acc.events),
        open_orders=open_orders,
        slots=slots,
        held=tuple(acc.held),
    )


def drop_stale(cands: Sequence[Candidate], acc: _Acc, *, window_s: float) -> list[Candidate]:
    kept: list[Candidate] = []
    for c in cands:
        if is_stale(c.signal, received_ms=c.received_ms, window_s=window_s):
            acc.drop([c], STALE)
            acc.log(
                "STALE_DROP",
                symbol=c.signal.symbol,
                signal_id=c.signal.signal_id,
                age_ms=c.received_ms - c.signal.ts,
                window_ms=int(window_s * 1000),
            )
        else:
            kept.append(c)
    return kept


def drop_duplicates(
    cands: Sequence[Candidate], acc: _Acc, *, already_routed: frozenset[str], settings: RouterSettings,
    costs: EntryCosts,
) -> list[Candidate]:
    """One candidate per signal id and per symbol (the best-ranked); never a routed signal again."""
    kept: list[Candidate] = []
    seen_ids: set[str] = set()
    seen_symbols: set[str] = set()
    for c in rank(cands, settings=settings, costs=costs):
        s = c.signal
        if s.signal_id in already_routed or s.signal_id in seen_ids or s.symbol in seen_symbols:
            why = "already_routed" if s.signal_id in already_routed else "same_batch"
            acc.drop([c], DUPLICATE)
            acc.log("DUPLICATE_DROP", symbol=s.symbol, signal_id=s.signal_id, why=why)
            seen_ids.add(s.signal_id)
            continue
        seen_ids.add(s.signal_id)
        seen_symbols.add(s.symbol)
        kept.append(c)
    return kept


def filter_tradable(
    cands: Sequence[Candidate], acc: _Acc, *, tradable: frozenset[str] | None, enabled: bool
) -> list[Candidate]:
    """With ``filterTradable``, drop symbols outside ``cfg:tradable_symbols`` (missing set: drop all)."""
    if not enabled:
        return list(cands)
    kept: list[Candidate] = []
    for c in cands:
        if tradable is not None and c.signal.symbol in tradable:
            kept.append(c)
        else:
            acc.drop([c], NOT_TRADABLE)
            acc.log(
                "NOT_TRADABLE",
                symbol=c.signal.symbol,
                signal_id=c.signal.signal_id,
                tradable_set="missing" if tradable is None else len(tradable),
            )
    return kept


def drop_invalid(cands: Sequence[Candidate], acc: _Acc) -> list[Candidate]:
    """No stop loss can be placed without an ATR."""
    kept: list[Candidate] = []
    for c in cands:
        if c.signal.atr <= 0.0:
            acc.drop([c], INVALID_ATR)
            acc.log("INVALID_ATR_DROP", symbol=c.signal.symbol, signal_id=c.signal.signal_id, atr=c.signal.atr)
        else:
            kept.append(c)
    return kept


# -- expected value ----------------------------------------------------------------------------


_NO_COSTS: Final = EntryCosts(fee_bps=0.0, spread_bps=0.0, slippage_bps=0.0)
FUNDING_PERIOD_S: Final = 8 * 3600.0
FUNDING_MAX_AGE_MS: Final = 24 * 3600 * 1000  # a last settlement older than this says nothing of the next


def funding_bps_8h(rates: Sequence[FundingRate], *, now_ms: int) -> float | None:
    """The funding rate an entry at ``now_ms`` expects, in bps per 8 h: the last settlement at or before
    ``now_ms`` (the usual forecast of the next one), scaled from the venue's settlement interval (the
    gap between the last two settlements; 8 h when only one is known) to 8 h. None when no settlement
    in the last 24 h is known — the entry rule then says ``funding=unknown``."""
    past = [r for r in rates if r.ts <= now_ms]
    if not past or now_ms - past[-1].ts > FUNDING_MAX_AGE_MS:
        return None
    interval_s = (past[-1].ts - past[-2].ts) / 1000.0 if len(past) >= 2 else FUNDING_PERIOD_S
    if interval_s <= 0.0:
        return None
    return past[-1].rate * 10_000.0 * FUNDING_PERIOD_S / interval_s


@dataclass(frozen=True, slots=True)
class Edge:
    """Expected net return of an entry under the exit rules, in bps of notional."""

    p: float  # calibrated probability that the trade goes the signal's way (its barrier label comes true)
    win_bps: float  # mean win: the model's win_atr × ATR / price, else takeProfitAtr × ATR / price
    loss_bps: float  # mean loss: the model's loss_atr × ATR / price, else stopLossAtr × ATR / price
    cost_bps: float  # round-trip costs
    funding_bps: float | None = None  # funding over the expected holding time (cost, signed); None: unknown
    sizes: Literal["model", "sl_tp"] = "sl_tp"  # where win/loss came from

    @property
    def ev_bps(self) -> float:
        return net_edge_bps(self.p, win_bps=self.win_bps, loss_bps=self.loss_bps, cost_bps=self.cost_bps,
                            funding_bps=self.funding_bps or 0.0)

    def reason(self) -> str:
        """``negative_edge:ev_bps=…,p=…,win_bps=…,loss_bps=…,cost_bps=…,funding_bps=…|funding=unknown,sizes=…``
        (what ``qt why`` shows)."""
        funding = "funding=unknown" if self.funding_bps is None else f"funding_bps={self.funding_bps:.2f}"
        return (f"{NEGATIVE_EDGE}:ev_bps={self.ev_bps:.1f},p={self.p:.3f},win_bps={self.win_bps:.1f},"
                f"loss_bps={self.loss_bps:.1f},cost_bps={self.cost_bps:.1f},{funding},sizes={self.sizes}")


def expected_edge(
    signal: Signal, *, settings: RouterSettings, costs: EntryCosts, funding_bps_8h: float | None = None
) -> Edge:
    """EV = p·win − (1−p)·loss − costs − funding, in bps of notional.

    ``p`` is the signal's calibrated confidence: the chance that its barrier label comes true. Win and
    loss are the model's out-of-sample mean win and loss under the real exits (stop, take-profit,
    time), carried on the signal as ``win_atr`` / ``loss_atr``; a signal without them (0) is valued at
    the router's own take-profit and stop distances. Funding: ``funding_bps_8h`` (bps per 8 h, positive
    = longs pay) over the signal's expected holding time ``hold_s``, when both are known; otherwise
    ``funding_bps`` is None and the reason says ``funding=unknown``.
    """
    atr_bps = signal.atr / signal.price * 10_000.0 if signal.price > 0 else 0.0
    measured = signal.win_atr > 0.0 and signal.loss_atr > 0.0
    win_atr = signal.win_atr if measured else settings.take_profit_atr
    loss_atr = signal.loss_atr if measured else settings.stop_loss_atr
    funding: float | None = None
    if funding_bps_8h is not None and signal.hold_s > 0.0:
        direction = 1.0 if signal.side == "BUY" else -1.0
        funding = direction * funding_bps_8h * signal.hold_s / FUNDING_PERIOD_S
    return Edge(
        p=signal.confidence,
        win_bps=win_atr * atr_bps,
        loss_bps=loss_atr * atr_bps,
        cost_bps=costs.round_trip_bps,
        funding_bps=funding,
        sizes="model" if measured else "sl_tp",
    )


def drop_negative_edge(
    cands: Sequence[Candidate], acc: _Acc, *, settings: RouterSettings, costs: EntryCosts,
    funding_bps_8h: Mapping[str, float],
) -> list[Candidate]:
    """An entry whose expected net return is not positive → ``negative_edge`` (with its numbers)."""
    kept: list[Candidate] = []
    for c in cands:
        edge = expected_edge(c.signal, settings=settings, costs=costs,
                             funding_bps_8h=funding_bps_8h.get(c.signal.symbol))
        if edge.ev_bps > 0.0:
            kept.append(c)
            continue
        acc.drop([c], edge.reason())
        acc.log("NEGATIVE_EDGE_DROP", symbol=c.signal.symbol, signal_id=c.signal.signal_id, ev_bps=round(edge.ev_bps, 2),
                p=c.signal.confidence, win_bps=round(edge.win_bps, 2), loss_bps=round(edge.loss_bps, 2),
                cost_bps=round(edge.cost_bps, 2),
                funding_bps="unknown" if edge.funding_bps is None else round(edge.funding_bps, 3), sizes=edge.sizes)
    return kept


def hold_edge(signal: Signal, *, settings: RouterSettings, funding_bps_8h: float | None = None) -> Edge:
    """The signal's expected value over its horizon with no round trip to pay: what holding a position
    on the signal's side is worth from now on (the fees, spread and slippage of its exit are paid
    whether it closes now or later). > 0: a position on the signal's side is worth renewing, a
    position on the other side is worth less than closing it now (its value is −EV)."""
    return expected_edge(signal, settings=settings, costs=_NO_COSTS, funding_bps_8h=funding_bps_8h)


def act_on_held(
    cands: Sequence[Candidate], acc: _Acc, *, open_symbols: frozenset[str], open_sides: Mapping[str, Side],
    settings: RouterSettings, funding_bps_8h: Mapping[str, float],
) -> list[Candidate]:
    """A candidate for a symbol with an open position cannot open a trade (one position per symbol); its
    verdict on the position goes to ``acc.held``: ``position_renewed`` / ``position_reversed`` when
    :func:`hold_edge` is positive (with a usable ATR and price), else ``position_open``."""
    kept: list[Candidate] = []
    for c in cands:
        s = c.signal
        if s.symbol not in open_symbols:
            kept.append(c)
            continue
        side = open_sides.get(s.symbol)
        edge = hold_edge(s, settings=settings, funding_bps_8h=funding_bps_8h.get(s.symbol))
        if side is None or s.atr <= 0.0 or s.price <= 0.0 or edge.ev_bps <= 0.0:
            acc.drop([c], POSITION_OPEN)
            acc.log("POSITION_OPEN_DROP", symbol=s.symbol, signal_id=s.signal_id)
            continue
        renew = s.side == side
        stop_loss, take_profit = exit_levels(s, settings=settings)
        acc.held.append(HeldSignal(symbol=s.symbol, action="renew" if renew else "close",
                                   side="BUY" if s.side == "BUY" else "SELL", signal_id=s.signal_id,
                                   stop_loss=stop_loss, take_profit=take_profit, ts=s.ts, ev_bps=edge.ev_bps))
        reason = POSITION_RENEWED if renew else POSITION_REVERSED
        acc.drop([c], f"{reason}:hold_ev_bps={edge.ev_bps:.1f}")
        acc.log("HELD_RENEW" if renew else "HELD_CLOSE", symbol=s.symbol, signal_id=s.signal_id, side=s.side,
                position_side=side, hold_ev_bps=round(edge.ev_bps, 2))
    return kept


def _fmt_score(value: float) -> str:
    return f"{value:.3f}"


def decide_batch(
    inp: BatchInput, *, settings: RouterSettings, base_size_usd: float, costs: EntryCosts | None = None
) -> BatchResult:
    """Decide one batch: which buffered candidates become intents, and why the others do not.

    ``costs``: the round-trip costs of the entry rule in expected value (default :class:`EntryCosts`)."""
    acc = _Acc(inp.now_ms)
    costs = costs or EntryCosts()
    cands = list(inp.candidates)
    if not cands:
        return _result(acc, "empty")
    capacity = _capacity(inp, cands, acc, settings=settings)
    if isinstance(capacity, BatchResult):
        return capacity
    open_orders, slots = capacity
    cands = drop_stale(cands, acc, window_s=settings.candidate_window)
    cands = drop_duplicates(cands, acc, already_routed=inp.already_routed, settings=settings, costs=costs)
    cands = act_on_held(cands, acc, open_symbols=inp.open_symbols, open_sides=inp.open_sides, settings=settings,
                        funding_bps_8h=inp.funding_bps_8h)
    cands = filter_tradable(cands, acc, tradable=inp.tradable, enabled=settings.filter_tradable)
    cands = drop_invalid(cands, acc)
    cands = drop_negative_edge(cands, acc, settings=settings, costs=costs, funding_bps_8h=inp.funding_bps_8h)
    allowed = slots.allowed
    if slots.super_only:
        cands = _supers_only(cands, acc, open_orders=open_orders, settings=settings)
        if not cands:
            return _result(acc, "target_reached", open_orders=open_orders, slots=slots)
        allowed = min(allowed, len(cands))
    intents = _select(cands, acc, allowed=allowed, open_orders=open_orders, slots=slots, settings=settings,
                      costs=costs, base_size_usd=base_size_usd, now_ms=inp.now_ms)
    return _result(
        acc, "published" if intents else "none_selected", intents=intents, open_orders=open_orders, slots=slots
    )


def _capacity(
    inp: BatchInput, cands: list[Candidate], acc: _Acc, *, settings: RouterSettings
) -> tuple[int, Slots] | BatchResult:
    """Paused, unknown or full capacity drop the whole batch (fail closed); else (open orders, slots)."""
    if inp.paused:
        acc.drop(cands, PAUSED)
        acc.log("PAUSED", "warn", dropped=len(cands))
        return _result(acc, "paused")
    open_orders = read_capacity(inp.open_orders_raw)
    if open_orders is None:
        acc.drop(cands, CAPACITY_UNKNOWN)
        acc.log(
            "CAPACITY_UNKNOWN",
            "warn",
            state="missing" if inp.open_orders_raw is None else "unparseable",
            raw=inp.open_orders_raw if inp.open_orders_raw is not None else "",
            dropped=len(cands),
        )
        return _result(acc, "capacity_unknown")
    slots = compute_slots(open_orders, settings=settings)
    if slots.slots <= 0:
        acc.drop(cands, CAPACITY_FULL)
        acc.log("CAPACITY_FULL", "warn", open=open_orders, max=settings.max_open_orders)
        return _result(acc, "capacity_full", open_orders=open_orders, slots=slots)
    return open_orders, slots


def _supers_only(
    cands: list[Candidate], acc: _Acc, *, open_orders: int, settings: RouterSettings
) -> list[Candidate]:
    """At or above target: only super signals may pass; the rest → ``target_reached``."""
    supers = [c for c in cands if c.signal.confidence >= settings.super_confidence]
    acc.drop([c for c in cands if c.signal.confidence < settings.super_confidence], TARGET_REACHED)
    if not supers:
        acc.log("TARGET_REACHED", open=open_orders, target=settings.target_open_orders)
    else:
        acc.log("SUPER_SIGNAL_BYPASS", open=open_orders, target=settings.target_open_orders, count=len(supers))
    return supers


def _select(
    cands: list[Candidate],
    acc: _Acc,
    *,
    allowed: int,
    open_orders: int,
    slots: Slots,
    settings: RouterSettings,
    costs: EntryCosts,
    base_size_usd: float,
    now_ms: int,
) -> list[TradeIntent]:
    """Rank by expected value, keep the best ``allowed`` (the rest → ``not_selected``) and size their intents."""
    ranked = rank(cands, settings=settings, costs=costs)
    chosen = ranked[:allowed]
    acc.drop(ranked[allowed:], NOT_SELECTED)
    acc.log(
        "BEST_OF_PUBLISH",
        count=len(chosen),
        allowed=allowed,
        open=open_orders,
        slots=slots.slots,
        top=[[c.signal.symbol, c.signal.side, _fmt_score(score(c.signal)),
              round(expected_edge(c.signal, settings=settings, costs=costs).ev_bps, 1)] for c in ranked[:TOP_LOGGED]],
    )
    intents: list[TradeIntent] = []
    for rank_no, c in enumerate(chosen, start=1):
        intent = build_intent(c.signal, rank_no=rank_no, settings=settings, base_size_usd=base_size_usd, now_ms=now_ms)
        intents.append(intent)
        acc.log(f"RANK_{rank_no}", symbol=intent.symbol, side=intent.side, conf=intent.confidence,
                score=_fmt_score(intent.score), intent_id=intent.intent_id)
        if intent.size_boost > 1.0:
            acc.log("SIZE_BOOST", rank=rank_no, conf=intent.confidence, factor=f"{intent.size_boost:.2f}",
                    size_from=f"{base_size_usd:g}", size_to=f"{intent.position_size_usd:g}")
    return intents


def due(*, buffered: int, oldest_buffered_ms: int | None, now_ms: int, settings: RouterSettings) -> bool:
    """A batch is due when ``batchSize`` are buffered or the oldest has waited ``candidateWindow``."""
    if buffered == 0 or oldest_buffered_ms is None:
        return False
    if buffered >= settings.batch_size:
        return True
    return now_ms - oldest_buffered_ms >= int(settings.candidate_window * 1000)
