"""The ai worker's signals for every bar close of the span, computed in bulk.

What the worker does at each ``ai.timeframe`` bar close — active universe symbols, the last
``WINDOW`` bars, features, the promoted model (or the fallback), :func:`decide_model` — is done
here for the whole span at once, without changing what any signal says:

* features come from :func:`~quantum_trader.ai.features.feature_matrix` over each symbol's series
  (every feature at bar t reads bars up to t only; a test in the ai package keeps it equal to the
  worker's ``latest_features``);
* a row exists only where the worker's :func:`~quantum_trader.ai.data.align` would keep the symbol
  (the bar that just closed is present, the window has no gap, no NaN);
* each model predicts all the rows it serves in one call — only rows at or after its promotion,
  so the model deciding at t was trained on bars that closed before t.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from quantum_trader.ai.data import SKIP_FEATURES_NAN, SKIP_GAPS, SKIP_STALE, SKIP_TOO_LITTLE_HISTORY
from quantum_trader.ai.features import WINDOW, Bars, feature_matrix, return_lags
from quantum_trader.ai.signals import (
    FALLBACK_MODEL,
    FALLBACK_VERSION,
    Decision,
    decide_fallback,
    decide_model,
    model_tag,
)
from quantum_trader.ai.worker import signal_id
from quantum_trader.backtest.data import MarketData
from quantum_trader.backtest.history import ModelSlot, UniverseEvent, fallback_at, oracle_sizes_at, serving
from quantum_trader.core.messages import SCHEMA_VERSION, Signal
from quantum_trader.core.profile import AiSettings
from quantum_trader.market.base import TIMEFRAME_MS
from quantum_trader.universe.publication import active_symbols

F64 = npt.NDArray[np.float64]
ORACLE_MODEL: Final = "oracle"
BASELINE_PREFIX: Final = "baseline:"


@dataclass(frozen=True, slots=True)
class Pending:
    """A decided signal not yet built as a message (most are HOLD or below the router's minimum)."""

    decision: Decision
    ts: int
    model: str
    version: str

    def signal(self) -> Signal:
        d = self.decision
        return Signal.model_construct(
            v=SCHEMA_VERSION, ts=self.ts, signal_id=signal_id(d.symbol, self.ts), symbol=d.symbol, side=d.side,
            confidence=d.confidence, model=self.model, model_version=self.version, price=d.price, atr=d.atr,
            regime=d.regime, rl_gate_pass=d.rl_gate_pass, win_atr=d.win_atr, loss_atr=d.loss_atr, hold_s=d.hold_s,
        )


@dataclass
class SignalPlan:
    """Signals per decision time (bar close, ms), and what the ai stage skipped."""

    steps: list[int]
    by_step: dict[int, list[Pending]]
    skipped: Counter[str] = field(default_factory=Counter)
    rows: int = 0
    no_universe_steps: int = 0
    fallback_steps: int = 0
    data_points: int = 0  # finest-timeframe bars of the symbols while they were in the active universe
    by_model: Counter[str] = field(default_factory=Counter)  # decision rows per model tag (e.g. fallback-reversal)


def decision_times(*, start_ms: int, end_ms: int, timeframe: str) -> list[int]:
    """Bar closes of ``timeframe`` in [start_ms, end_ms)."""
    tf = TIMEFRAME_MS[timeframe]
    first = -(-start_ms // tf) * tf
    return list(range(first, end_ms, tf))


def universe_at(events: Sequence[UniverseEvent], at_ms: int, *, index: int) -> tuple[int, UniverseEvent | None]:
    """Advance ``index`` through ``events`` to the newest published document at ``at_ms``."""
    cur: UniverseEvent | None = None
    i = index
    while i < len(events) and events[i].at_ms <= at_ms:
        i += 1
    for j in range(i - 1, -1, -1):
        if events[j].ok:
            cur = events[j]
            break
    return i, cur


def _window_ok(ts: npt.NDArray[np.int64], i: int, tf: int) -> bool:
    """The ``WINDOW`` bars ending at ``i`` exist and have no gap (what ``align`` demands)."""
    return i >= WINDOW - 1 and int(ts[i] - ts[i - WINDOW + 1]) == (WINDOW - 1) * tf


def _features(data: MarketData, symbol: str, timeframe: str, rows: list[int], *, lags: bool) -> tuple[F64, F64]:
    """Feature rows ``rows`` (ascending) of a symbol, computed over the one slice of bars they need,
    and with ``lags`` the fallback baselines' return lags of the same rows."""
    s = data.get(symbol, timeframe)
    lo, hi = min(rows) - WINDOW + 1, max(rows) + 1
    bars = Bars(high=s.high[None, lo:hi], low=s.low[None, lo:hi], close=s.close[None, lo:hi],
                volume=s.volume[None, lo:hi], open_ms=s.ts[lo:hi])
    at = np.asarray(rows) - lo
    x: F64 = feature_matrix(bars)[0][at]
    lag: F64 = return_lags(bars)[0][at] if lags else np.zeros((len(rows), 0))
    return x, lag


def plan_signals(
    data: MarketData,
    *,
    ai: AiSettings,
    steps: list[int],
    universe: Sequence[UniverseEvent],
    models: Sequence[ModelSlot],
    stop_atr: float,
    oracle: bool = False,
    baseline: bool = False,
) -> SignalPlan:
    """Every signal the ai worker would publish at each step (``oracle``: the sim's true P(up);
    ``baseline``: the counterfactual — the best baseline of the newest training by then, recalibrated,
    at every step, whether or not a model was promoted; steps before any training are skipped).
    ``stop_atr``: ``router.stopLossAtr``, the untrained fallback's symmetric win/loss size."""
    tf = TIMEFRAME_MS[ai.timeframe]
    plan = SignalPlan(steps=steps, by_step={})
    active: dict[str, list[tuple[int, int, int]]] = {}  # symbol → (step, rank in step, model key index)
    keys: list[str] = []
    slot_of: dict[str, ModelSlot | None] = {}
    ui = 0
    known: dict[tuple[int, bool], list[str]] = {}
    for t in steps:
        ui, event = universe_at(universe, t, index=ui)
        doc = event.document if event else None
        key_u = (id(doc), doc is not None and t < int(doc.get("valid_until", 0)))
        symbols = known.get(key_u)
        if symbols is None:
            symbols = known[key_u] = active_symbols(doc, now_ms=t)
        if not symbols:
            plan.no_universe_steps += 1
            continue
        slot = serving(list(models), t)
        if oracle:
            slot = oracle_sizes_at(list(models), t)
            key = ORACLE_MODEL if slot is None else f"{ORACLE_MODEL}@{slot.version}"
        elif baseline:
            slot = fallback_at(list(models), t)
            if slot is None:
                plan.skipped["no_baseline_yet"] += len(symbols)
                continue
            key = BASELINE_PREFIX + slot.version
        elif slot is None:
            if not ai.allow_fallback:
                plan.skipped["model_missing"] += len(symbols)
                continue
            slot = fallback_at(list(models), t)
            key = FALLBACK_MODEL if slot is None else BASELINE_PREFIX + slot.version
            plan.fallback_steps += 1
        else:
            key = slot.version
        if key not in slot_of:
            keys.append(key)
        slot_of[key] = slot
        k = keys.index(key)
        for rank, sym in enumerate(symbols):
            active.setdefault(sym, []).append((t, rank, k))
    for sym, entries in active.items():
        plan.data_points += len(entries) * max(1, tf // TIMEFRAME_MS[data.finest.get(sym, ai.timeframe)])
    # per symbol, vectorised: the bar that just closed, its window, its features
    names_all: list[str] = []
    parts: list[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64],
                      npt.NDArray[np.int64], F64, F64, F64]] = []
    need_lags = any(k.startswith(BASELINE_PREFIX) for k in keys)
    for sym, entries in active.items():
        arr = np.asarray(entries, dtype=np.int64)
        t_s, rank_s, key_s = arr[:, 0], arr[:, 1], arr[:, 2]
        series = data.get(sym, ai.timeframe)
        ts = series.ts
        i = ts.searchsorted(t_s - tf)
        present = i < ts.shape[0]
        present[present] = ts[i[present]] == (t_s - tf)[present]
        full = present & (i >= WINDOW - 1)
        full[full] = (ts[i[full]] - ts[i[full] - WINDOW + 1]) == (WINDOW - 1) * tf
        plan.skipped[SKIP_STALE] += int(np.sum(~present & (i > 0)))
        plan.skipped[SKIP_TOO_LITTLE_HISTORY] += int(np.sum(~present & (i == 0)) + np.sum(present & (i < WINDOW - 1)))
        plan.skipped[SKIP_GAPS] += int(np.sum(present & (i >= WINDOW - 1) & ~full))
        if not full.any():
            continue
        rows = i[full]
        x, lag = _features(data, sym, ai.timeframe, rows.tolist(), lags=need_lags)
        finite = np.all(np.isfinite(x), axis=1)
        plan.skipped[SKIP_FEATURES_NAN] += int(np.sum(~finite))
        parts.append((t_s[full][finite], rank_s[full][finite], key_s[full][finite],
                      np.full(int(finite.sum()), len(names_all), dtype=np.int64), x[finite], series.close[rows[finite]],
                      lag[finite]))
        names_all.append(sym)
    for key in [] if not parts else keys:
        k = keys.index(key)
        t_all = np.concatenate([p[0] for p in parts])
        sel = np.concatenate([p[2] for p in parts]) == k
        if not sel.any():
            continue
        rank_all = np.concatenate([p[1] for p in parts])[sel]
        t_all = t_all[sel]
        order = np.lexsort((rank_all, t_all))  # step order, then universe rank (the worker's order)
        x = np.concatenate([p[4] for p in parts])[sel][order]
        price = np.concatenate([p[5] for p in parts])[sel][order]
        sym_idx = np.concatenate([p[3] for p in parts])[sel][order]
        t_sorted = t_all[order]
        names = tuple(names_all[j] for j in sym_idx.tolist())
        rows_t = t_sorted.tolist()
        slot = slot_of.get(key)
        decisions: list[Decision]
        if key.split("@")[0] == ORACLE_MODEL:
            oracle_fn = data.oracle
            if oracle_fn is None:
                raise ValueError("this data source has no oracle")
            p_up = np.empty(len(rows_t))
            for j, sym in enumerate(names_all):
                js = np.flatnonzero(sym_idx == j)
                if js.size:
                    p_up[js] = oracle_fn(sym, ai.timeframe, t_sorted[js] - tf, ai.horizon_bars)
            decisions = decide_model(names, x=x, price=price, p_up=p_up, p_profit=np.zeros(len(rows_t)),
                                     hold_below=ai.hold_below, gate_threshold=np.inf,
                                     sizes=None if slot is None else slot.oracle_sizes)
            model, version = ORACLE_MODEL, ORACLE_MODEL
        elif slot is not None and key.startswith(BASELINE_PREFIX) and slot.fallback is not None:
            lags = np.concatenate([p[6] for p in parts])[sel][order]
            p_up = slot.fallback.p_up(np.nan_to_num(lags))
            decisions = decide_model(names, x=x, price=price, p_up=p_up, p_profit=np.zeros_like(p_up),
                                     hold_below=ai.hold_below, gate_threshold=np.inf, sizes=slot.fallback.exit_sizes)
            model, version = f"fallback-{slot.fallback.name}", slot.version
        elif slot is None or slot.bundle is None:
            decisions = decide_fallback(names, x=x, price=price, hold_below=ai.hold_below, stop_atr=stop_atr)
            model, version = FALLBACK_MODEL, FALLBACK_VERSION
        else:
            pred = slot.bundle.predict(x, hold_below=ai.hold_below)
            decisions = decide_model(names, x=x, price=price, p_up=pred.p_up, p_profit=pred.p_profit,
                                     hold_below=ai.hold_below, gate_threshold=slot.bundle.metalabel_threshold,
                                     gate_filters=slot.bundle.metalabel_filter, sizes=slot.bundle.exit_sizes)
            model, version = model_tag(slot.version), slot.version
        for t, d in zip(rows_t, decisions, strict=True):
            plan.by_step.setdefault(t, []).append(Pending(d, t, model, version))
        plan.rows += len(rows_t)
        plan.by_model[model] += len(rows_t)
    return plan
