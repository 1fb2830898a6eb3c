"""What depends only on market data, computed before the trading loop: universe and models.

* :func:`universe_schedule` — the universe worker's cycle (:func:`~quantum_trader.universe.cycle.run_cycle`,
  unchanged) every ``universe.refreshInterval`` from the start, against a :class:`FrozenExchange`
  whose clock stands at the cycle's time; each ok cycle becomes the document ``publish`` would
  write (``cfg:universe:active``, and ``last_ok`` when every check passed).
* :func:`walk_forward_models` — ``qt train``'s procedure at the start and every retrain interval:
  the ``ai.trainSymbols`` most liquid symbols, ``ai.historyBars`` bars that closed *before* that
  time, walk-forward training, the quality gate. A version that fails the gate is not promoted
  (the previous one, or the fallback, keeps serving) — as live.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from quantum_trader.ai.baselines import Baseline
from quantum_trader.ai.data import align, fetch_klines, last_closed_open_ms
from quantum_trader.ai.dataset import ExitRules, build_dataset, data_hash
from quantum_trader.ai.exits import ExitSizes
from quantum_trader.ai.model import ModelBundle
from quantum_trader.ai.training import (
    TrainingError,
    TrainParams,
    exit_sizes,
    quality_gate,
    train_walk_forward,
)
from quantum_trader.backtest.data import FrozenExchange, MarketData
from quantum_trader.core.clock import DataClock
from quantum_trader.core.profile import TradingProfileSpec
from quantum_trader.market.base import ExchangeError
from quantum_trader.universe import publication as pub
from quantum_trader.universe.cycle import run_cycle, symbol_rows

Tick = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class UniverseEvent:
    """One universe cycle: what it published (``active``/``last_ok`` JSON text) or why it failed closed."""

    at_ms: int
    ok: bool
    active: str | None
    last_ok: str | None
    document: dict[str, Any] | None
    reason: str = ""
    detail: str = ""


async def universe_schedule(
    data: MarketData, *, spec: TradingProfileSpec, start_ms: int, end_ms: int, tick: Tick
) -> list[UniverseEvent]:
    clock = DataClock(start_ms)
    ex = FrozenExchange(data, clock=clock, timeframes=spec.universe.timeframes)
    step = int(spec.universe.refresh_interval * 1000)
    out: list[UniverseEvent] = []
    previous: dict[str, Any] | None = None
    t = start_ms
    while t < end_ms:
        clock.advance_to(t)
        result = await run_cycle(ex, universe=spec.universe, health=spec.health, now_ms=t)
        if not result.ok:
            out.append(UniverseEvent(t, False, None, None, None, result.reason, result.detail))
        else:
            rows = symbol_rows(result)
            new_hash = pub.universe_hash(r["symbol"] for r in rows)
            checks = result.checks()
            doc = pub.build_document(
                symbols=rows, timeframes=result.timeframes, generated_at=t, valid_for_s=spec.universe.valid_for,
                hash_since=pub.next_hash_since(previous, new_hash=new_hash, generated_at=t), checks=checks,
            )
            text = json.dumps(doc, separators=(",", ":"), allow_nan=False)
            out.append(UniverseEvent(t, True, text, text if all(checks.values()) else None, doc))
            previous = doc
        tick("universe")
        t += step
    return out


@dataclass(frozen=True, slots=True)
class ModelSlot:
    """One retraining: the version, its training window, and whether it was promoted."""

    version: str
    active_from: int  # epoch ms: serves from here when promoted
    train_start: int  # first training bar open (ms)
    train_end: int  # last training bar close (ms): always <= active_from
    bundle: ModelBundle | None
    promoted: bool
    reasons: tuple[str, ...]
    seconds: float
    auc: float | None = None
    ece: float | None = None
    fallback: Baseline | None = None  # the run's best baseline: serves while nothing is promoted
    # the oracle's own win/loss sizes and holding time under the exits, measured on this training window
    # (sim only): the oracle's signals are valued like the model's, by their own record
    oracle_sizes: ExitSizes | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "train_start": self.train_start,
            "train_end": self.train_end,
            "active_from": self.active_from,
            "promoted": self.promoted,
            "reasons": list(self.reasons),
            "oos_auc": self.auc,
            "oos_ece": self.ece,
            "fallback": self.fallback.name if self.fallback is not None else None,
        }


async def train_at(data: MarketData, *, spec: TradingProfileSpec, at_ms: int) -> ModelSlot:
    """``qt train`` as of ``at_ms`` (data that closed before it only)."""
    from quantum_trader.ai.command import _training_symbols, version_for  # imports redis: only when training

    ai = spec.ai
    started = time.perf_counter()
    clock = DataClock(at_ms)
    ex = FrozenExchange(data, clock=clock, timeframes=(*spec.universe.timeframes, ai.timeframe))
    last_open = last_closed_open_ms(at_ms, ai.timeframe)
    try:
        symbols = await _training_symbols(ex, ai.train_symbols)
        klines = await fetch_klines(ex, symbols, timeframe=ai.timeframe, limit=ai.history_bars, end_ms=at_ms)
        aligned = align(klines, n_bars=ai.history_bars, last_open_ms=last_open, timeframe=ai.timeframe)
        if not aligned.symbols:
            raise TrainingError(f"no symbol has {ai.history_bars} clean {ai.timeframe} bars before this time "
                                f"(spec.ai.historyBars; {dict(list(aligned.skipped.items())[:3])})")
        oracle = None
        if data.oracle is not None:
            try:
                oracle = np.vstack([data.oracle(s, ai.timeframe, aligned.ts, ai.horizon_bars)
                                    for s in aligned.symbols])
            except (ValueError, ExchangeError):
                oracle = None
        params = TrainParams.from_settings(ai, importance=False)  # report-only: the backtest never shows it
        exits = ExitRules.from_settings(spec.router, ai)  # the labels qt train uses: barriers at the real exits
        ds = build_dataset(aligned.bars, ts=aligned.ts, symbols=aligned.symbols, horizons=params.horizons,
                           oracle=oracle, exits=exits)
        version = version_for(at_ms, data_hash(aligned.bars, ts=aligned.ts, symbols=aligned.symbols))
        result = train_walk_forward(ds, params=params, version=version, timeframe=ai.timeframe)
    except TrainingError as exc:
        return ModelSlot(version="untrained", active_from=at_ms, train_start=0, train_end=0, bundle=None,
                         promoted=False, reasons=(f"training_failed: {exc}",),
                         seconds=time.perf_counter() - started)
    passed, reasons = quality_gate(result.report, ai)
    tf_ms = int(aligned.ts[1] - aligned.ts[0]) if aligned.ts.shape[0] > 1 else 0
    oracle_sizes = None if ds.oracle is None else exit_sizes(
        ds, rows=np.ones(ds.n, dtype=bool), p_up=ds.oracle, hold_below=ai.hold_below, bar_s=tf_ms / 1000.0)
    return ModelSlot(
        version=version, active_from=at_ms, train_start=int(aligned.ts[0]), train_end=int(aligned.ts[-1]) + tf_ms,
        bundle=result.bundle, promoted=passed, reasons=tuple(reasons), seconds=time.perf_counter() - started,
        auc=float(result.report["auc"]), ece=float(result.report["ece"]), fallback=result.fallback,
        oracle_sizes=oracle_sizes,
    )


async def walk_forward_models(
    data: MarketData, *, spec: TradingProfileSpec, start_ms: int, end_ms: int, every_s: float, tick: Tick
) -> list[ModelSlot]:
    out: list[ModelSlot] = []
    t = start_ms
    step = max(1, int(every_s * 1000))
    while t < end_ms:
        out.append(await train_at(data, spec=spec, at_ms=t))
        tick("training")
        t += step
    return out


_SHARED: tuple[MarketData, TradingProfileSpec] | None = None  # what forked training processes read


def _train_in_child(at_ms: int) -> ModelSlot:
    if _SHARED is None:
        raise RuntimeError("no data shared with the training process")
    data, spec = _SHARED
    return asyncio.run(train_at(data, spec=spec, at_ms=at_ms))


def train_walk_forward_models(
    data: MarketData, *, spec: TradingProfileSpec, start_ms: int, end_ms: int, every_s: float, jobs: int, tick: Tick
) -> list[ModelSlot]:
    """:func:`walk_forward_models` with the trainings spread over ``jobs`` processes.

    The trainings are independent (each reads only the bars before its own time), so they run in
    forked processes that share the loaded data; each trains single-threaded (``TrainParams.threads``,
    as ``qt train``) with its fixed seed, and the slots come back in time order: the same models as
    one process, sooner. ``jobs`` 1 (or a platform without ``fork``) trains in this process.
    """
    global _SHARED
    times = list(range(start_ms, end_ms, max(1, int(every_s * 1000))))
    jobs = min(jobs, len(times))
    if jobs <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        return asyncio.run(walk_forward_models(data, spec=spec, start_ms=start_ms, end_ms=end_ms, every_s=every_s,
                                               tick=tick))
    _SHARED = (data, spec)
    try:
        out: list[ModelSlot] = []
        with multiprocessing.get_context("fork").Pool(processes=jobs) as pool:
            for slot in pool.imap(_train_in_child, times):
                out.append(slot)
                tick("training")
        return out
    finally:
        _SHARED = None


def _newest(slots: list[ModelSlot], at_ms: int, keep: Callable[[ModelSlot], bool]) -> ModelSlot | None:
    """The newest slot active by ``at_ms`` that ``keep`` accepts (slots are in time order)."""
    best: ModelSlot | None = None
    for s in slots:
        if s.active_from <= at_ms and keep(s):
            best = s
    return best


def fallback_at(slots: list[ModelSlot], at_ms: int) -> ModelSlot | None:
    """The newest training run by ``at_ms`` that left a fallback baseline (``Keys.model_fallback``)."""
    return _newest(slots, at_ms, lambda s: s.fallback is not None)


def oracle_sizes_at(slots: list[ModelSlot], at_ms: int) -> ModelSlot | None:
    """The newest training run by ``at_ms`` that measured the oracle's exit sizes."""
    return _newest(slots, at_ms, lambda s: s.oracle_sizes is not None)


def serving(slots: list[ModelSlot], at_ms: int) -> ModelSlot | None:
    """The promoted model serving at ``at_ms``: the newest promoted slot active by then."""
    return _newest(slots, at_ms, lambda s: s.promoted and s.bundle is not None)


def history_shortfall(spec: TradingProfileSpec, *, symbols: int, bars_available: int) -> str | None:
    """Why ``ai.historyBars`` cannot give walk-forward training enough rows, naming the setting to change.

    Rows per symbol = historyBars − (feature window − 1) − the longest label horizon; the first
    walk-forward fold trains on one of ``n_blocks`` time blocks minus the purge/embargo gap, of which
    about three quarters survive the dead band, and needs ``MIN_TRAIN_ROWS``. None when the settings
    suffice (training may still refuse for other reasons).
    """
    from quantum_trader.ai.features import WINDOW
    from quantum_trader.ai.training import MIN_TRAIN_ROWS

    ai = spec.ai
    params = TrainParams.from_settings(ai)
    lost = WINDOW - 1 + max(params.horizons)
    gap = params.purge_bars + params.embargo_bars
    n = max(1, min(symbols, ai.train_symbols))
    need = max(MIN_TRAIN_ROWS * 4, params.n_blocks * (-(-MIN_TRAIN_ROWS * 4 // 3) + gap * n))
    rows = max(0, ai.history_bars - lost) * n
    if rows >= need:
        return None
    bars = -(-need // n) + lost
    fix = f"set spec.ai.historyBars to at least about {bars}"
    if bars > bars_available:
        fix = (f"the data has only {bars_available} {ai.timeframe} bars per symbol: add history or symbols "
               f"(spec.ai.trainSymbols), or use a shorter spec.ai.timeframe")
    return (f"spec.ai.historyBars {ai.history_bars} leaves {rows} training rows from {n} symbol"
            f"{'s' if n != 1 else ''} (need {need}): {fix}")
