"""The ai worker shell: at each ``ai.timeframe`` bar close, one signal per active universe symbol.

Loop (clock-aware, never trains):

* every ``POLL_S`` seconds of clock time, poll ``Keys.model_promoted``; a new version is
  loaded and verified (checksum, parse, feature list, smoke prediction) and swapped in
  without a restart; a corrupt version is logged (``MODEL_CORRUPT``), remembered and
  never retried, and the current model (or the fallback) stays in use;
* at start-up and then at each bar close: read the active universe (expired or missing →
  no symbols), fetch the last ``WINDOW`` closed bars per symbol, skip bad symbols with a
  reason (``AI_SKIPPED`` metric + log line), compute features for all symbols at once,
  batch-predict, publish one ``Signal`` per symbol (HOLD included) in one pipeline.

No promoted model: with ``ai.allowFallback`` the fallback runs — the best baseline of the
last ``qt train`` (``Keys.model_fallback``, recalibrated on its own out-of-sample record;
``model=fallback-<baseline>``), or, before any training, the explicit trend rule
(``model=fallback-trend``) — with gauge ``qt_ai_model_fallback`` = 1 and a ``MODEL_FALLBACK``
log line at start-up and at every bar close; without it (production) nothing is published and
``MODEL_MISSING`` is logged at every bar close.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from quantum_trader.ai import registry
from quantum_trader.ai.bar import BarDecision, bar_signals, decide_bar, signal_id
from quantum_trader.ai.baselines import Baseline
from quantum_trader.ai.data import align, fetch_klines, last_closed_open_ms
from quantum_trader.ai.features import WINDOW
from quantum_trader.ai.model import ArtifactError, ModelBundle
from quantum_trader.ai.signals import FALLBACK_MODEL, FALLBACK_VERSION, model_tag
from quantum_trader.core import metrics
from quantum_trader.core.messages import Signal
from quantum_trader.core.profile import AiSettings
from quantum_trader.core.service import WorkerContext
from quantum_trader.ledger.universe import active_symbols, parse_document
from quantum_trader.market.base import TIMEFRAME_MS

__all__ = ["AiConfig", "main", "on_bar_close", "signal_id"]  # signal_id: the backtest names signals alike

POLL_S: Final = 10.0
FETCH_BARS: Final = WINDOW


@dataclass
class _State:
    bundle: ModelBundle | None = None
    card: dict[str, Any] = field(default_factory=dict)
    bad_versions: set[str] = field(default_factory=set)
    fallback: Baseline | None = None  # the last training run's best baseline
    fallback_version: str = ""
    last_bar: int | None = None  # the last bar whose signals were decided
    fallback_since_ms: int = 0  # when the fallback began serving (its model age); 0 while a model serves
    no_universe_bar: int | None = None  # the bar for which AI_NO_UNIVERSE was last logged

    @property
    def model(self) -> str:
        if self.bundle:
            return model_tag(self.bundle.version)
        return f"fallback-{self.fallback.name}" if self.fallback else FALLBACK_MODEL

    @property
    def version(self) -> str:
        if self.bundle:
            return self.bundle.version
        return self.fallback_version if self.fallback else FALLBACK_VERSION


def _set_model_metrics(ctx: WorkerContext, state: _State, *, previous: str | None = None) -> None:
    p = ctx.profile_name
    metrics.AI_MODEL_FALLBACK.labels(p).set(0 if state.bundle else 1)
    if previous is not None and previous != state.version:
        metrics.AI_MODEL_INFO.labels(p, previous).set(0)
    metrics.AI_MODEL_INFO.labels(p, state.version).set(1)


async def reload_fallback(ctx: WorkerContext, state: _State) -> None:
    """With no promoted model: pick up the fallback baseline of the latest training run."""
    if state.bundle is not None:
        return
    try:
        got = await registry.load_fallback(ctx.redis, ctx.keys)
    except ArtifactError as exc:
        ctx.log.error("MODEL_FALLBACK_CORRUPT", reason=exc.reason, detail=exc.detail, serving=state.model)
        return
    if got is None or (state.fallback is not None and got[1] == state.fallback_version):
        return
    previous = state.version
    state.fallback, state.fallback_version = got
    _set_model_metrics(ctx, state, previous=previous)
    ctx.log.event("MODEL_FALLBACK_LOADED", model=state.model, version=state.fallback_version, previous=previous)


async def reload_model(ctx: WorkerContext, state: _State, *, settings: AiSettings) -> bool:
    """Poll the promoted version; swap in a new one if it verifies. Returns True when swapped."""
    ai = settings
    try:
        version = await registry.promoted_version(ctx.redis, ctx.keys)
        if version is None:
            await reload_fallback(ctx, state)
    except Exception as exc:  # Redis hiccup: keep serving the current model
        ctx.log.warn("MODEL_POLL_FAILED", error=type(exc).__name__)
        return False
    if version is None or (state.bundle is not None and version == state.bundle.version):
        return False
    if version in state.bad_versions:
        return False
    try:
        bundle, card = await registry.load_version(ctx.redis, ctx.keys, version)
        if bundle.timeframe != ai.timeframe:
            raise ArtifactError("timeframe_mismatch", f"model {bundle.timeframe}, profile {ai.timeframe}")
    except ArtifactError as exc:
        state.bad_versions.add(version)
        ctx.error("model_corrupt")
        ctx.log.error("MODEL_CORRUPT", version=version, reason=exc.reason, detail=exc.detail,
                      serving=state.model)
        return False
    previous = state.version
    state.bundle, state.card = bundle, card
    _set_model_metrics(ctx, state, previous=previous)
    oos = card.get("oos", {}) if isinstance(card.get("oos"), dict) else {}
    ctx.log.event("MODEL_LOADED", version=version, previous=previous, auc=oos.get("auc"), ece=oos.get("ece"),
                  trained_ms=card.get("created_ms"))
    return True


def _announce_missing(ctx: WorkerContext, state: _State, *, when: str, settings: AiSettings) -> None:
    ai = settings
    if state.bundle is not None:
        return
    if ai.allow_fallback:
        ctx.log.warn("MODEL_FALLBACK", model=state.model, reason="no promoted model", when=when,
                     fix="run `qt train` (promotes a version that passes the quality gate)")
    else:
        ctx.log.error("MODEL_MISSING", reason="no promoted model and ai.allowFallback is false",
                      when=when, effect="no signals")


async def on_bar_close(
    ctx: WorkerContext, state: _State, *, bar_open_ms: int, settings: AiSettings, fallback_stop_atr: float
) -> int | None:
    """Signals for the bar that opened at ``bar_open_ms`` (just closed): reads → core → writes → report.

    ``fallback_stop_atr``: ``router.stopLossAtr``, the untrained fallback's symmetric win/loss size.

    Returns how many were published, or None when there is no universe yet (the bar is retried
    at the next poll, so a universe published just after start-up still gets this bar's signals).
    """
    ai = settings
    bar_close_ms = bar_open_ms + TIMEFRAME_MS[ai.timeframe]
    if state.bundle is None and not ai.allow_fallback:
        _announce_missing(ctx, state, when=f"bar {bar_close_ms}", settings=ai)
        return 0
    now = ctx.clock.now_ms()
    symbols = await _read_universe(ctx, state, bar_open_ms=bar_open_ms, bar_close_ms=bar_close_ms, now_ms=now)
    if not symbols:
        return None
    _announce_missing(ctx, state, when=f"bar {bar_close_ms}", settings=ai)
    klines = await fetch_klines(ctx.exchange, symbols, timeframe=ai.timeframe, limit=FETCH_BARS,
                                end_ms=bar_close_ms)
    started = time.perf_counter()
    aligned = align(klines, n_bars=FETCH_BARS, last_open_ms=bar_open_ms, timeframe=ai.timeframe)
    bar = decide_bar(aligned, bundle=state.bundle, fallback=state.fallback, hold_below=ai.hold_below,
                     fallback_stop_atr=fallback_stop_atr)
    elapsed = time.perf_counter() - started
    signals = bar_signals(bar.decisions, bar_close_ms=bar_close_ms, model=state.model, version=state.version,
                          ts=ctx.clock.now_ms())
    if signals:
        await ctx.bus.publish_many([(ctx.keys.ai_signal, s) for s in signals])
    report_bar(ctx, state, bar, signals, klines=klines, bar_close_ms=bar_close_ms, elapsed_s=elapsed, now_ms=now)
    return len(signals)


async def _read_universe(
    ctx: WorkerContext, state: _State, *, bar_open_ms: int, bar_close_ms: int, now_ms: int
) -> list[str]:
    """The active universe's symbols (none: missing, expired or invalid — logged once per bar)."""
    symbols = active_symbols(parse_document(await ctx.redis.get(ctx.keys.universe_active)), now_ms=now_ms)
    if not symbols and state.no_universe_bar != bar_open_ms:
        state.no_universe_bar = bar_open_ms
        ctx.log.warn("AI_NO_UNIVERSE", reason="cfg:universe:active missing, expired or invalid",
                     bar=bar_close_ms, retry="at every model poll until the next bar close")
    return list(symbols)


def report_bar(
    ctx: WorkerContext, state: _State, bar: BarDecision, signals: list[Signal], *, klines: Mapping[str, Any],
    bar_close_ms: int, elapsed_s: float, now_ms: int,
) -> None:
    """One ``AI_SKIPPED`` line per skipped symbol, one ``AI_SIGNALS`` line per bar; metrics; the model's age."""
    p, model = ctx.profile_name, state.model
    metrics.AI_INFERENCE_SECONDS.labels(p).observe(elapsed_s)
    for symbol, reason in bar.skipped.items():
        metrics.AI_SKIPPED.labels(p, reason).inc()
        got = klines.get(symbol)
        detail = {"detail": got} if isinstance(got, str) else {}
        ctx.log.warn("AI_SKIPPED", symbol=symbol, reason=reason, bar=bar_close_ms, **detail)
    counts = {"BUY": 0, "SELL": 0, "HOLD": 0}
    for s in signals:
        counts[s.side] += 1
        metrics.AI_SIGNALS.labels(p, s.side, model).inc()
        metrics.AI_CONFIDENCE.labels(p).observe(s.confidence)
    created = state.card.get("created_ms")
    if state.bundle is not None and isinstance(created, int):
        state.fallback_since_ms = 0
        metrics.AI_MODEL_AGE.labels(p).set(max(0.0, (now_ms - created) / 1000.0))
    elif state.bundle is None:  # the fallback's age: how long it has served instead of a trained model
        state.fallback_since_ms = state.fallback_since_ms or now_ms
        metrics.AI_MODEL_AGE.labels(p).set(max(0.0, (now_ms - state.fallback_since_ms) / 1000.0))
    ctx.processed(len(signals))
    ctx.log.event("AI_SIGNALS", bar=bar_close_ms, model=model, published=len(signals), buy=counts["BUY"],
                  sell=counts["SELL"], hold=counts["HOLD"], skipped=len(bar.skipped),
                  inference_ms=round(elapsed_s * 1000, 3))


@dataclass(frozen=True, slots=True)
class AiConfig:
    """What the ai worker is given: its own section (built by ``quantum_trader.compose``)."""

    settings: AiSettings
    fallback_stop_atr: float  # router.stopLossAtr: the untrained fallback claims win = loss = this many ATRs


async def main(ctx: WorkerContext, config: AiConfig) -> None:
    ai = config.settings
    tf = TIMEFRAME_MS[ai.timeframe]
    state = _State()
    await reload_model(ctx, state, settings=ai)
    _set_model_metrics(ctx, state)
    _announce_missing(ctx, state, when="start-up", settings=ai)
    ctx.mark_ready()
    next_poll = ctx.clock.now_ms() + int(POLL_S * 1000)
    while not ctx.stop.is_set():
        now = ctx.clock.now_ms()
        if now >= next_poll:
            await reload_model(ctx, state, settings=ai)
            next_poll = now + int(POLL_S * 1000)
        bar_open = last_closed_open_ms(now, ai.timeframe)
        if bar_open != state.last_bar:
            try:
                if await on_bar_close(ctx, state, bar_open_ms=bar_open, settings=ai,
                                      fallback_stop_atr=config.fallback_stop_atr) is not None:
                    state.last_bar = bar_open
            except Exception as exc:  # one bad bar must not stop the worker
                state.last_bar = bar_open
                ctx.error("bar")
                ctx.log.error("AI_BAR_FAILED", bar=bar_open + tf, error=f"{type(exc).__name__}: {exc}"[:300])
        next_close = bar_open + 2 * tf  # close of the bar now forming
        wait_ms = max(1, min(next_close, next_poll) - ctx.clock.now_ms())
        if await ctx.sleep(wait_ms / 1000.0):
            return
