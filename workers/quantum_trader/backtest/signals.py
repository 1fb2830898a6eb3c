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
from quantum_trader.ai.features import WINDOW, Bars, feature_matrix
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
from quantum_trader.backtest.history import ModelSlot, UniverseEvent, serving
from quantum_trader.core.messages import SCHEMA_VERSION, Signal
from quantum_trader.core.profile import AiSettings
from quantum_trader.market.base import TIMEFRAME_MS
from quantum_trader.universe.publication import active_symbols

F64 = npt.NDArray[np.float64]
ORACLE_MODEL: Final = "oracle"


@dataclass
class SignalPlan:
    """Signals per decision time (bar close, ms), and what the ai stage skipped."""

    steps: list[int]
    by_step: dict[int, list[Signal]]
    skipped: Counter[str] = field(default_factory=Counter)
    rows: int = 0
    no_universe_steps: int = 0
    fallback_steps: int = 0


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


def _features(data: MarketData, symbol: str, timeframe: str, rows: list[int]) -> F64:
    """Feature rows ``rows`` of a symbol, computed over the one slice of bars they need."""
    s = data.get(symbol, timeframe)
    lo, hi = min(rows) - WINDOW + 1, max(rows) + 1
    bars = Bars(high=s.high[None, lo:hi], low=s.low[None, lo:hi], close=s.close[None, lo:hi],
                volume=s.volume[None, lo:hi])
    x: F64 = feature_matrix(bars)[0][np.asarray(rows) - lo]
    return x


def plan_signals(
    data: MarketData,
    *,
    ai: AiSettings,
    steps: list[int],
    universe: Sequence[UniverseEvent],
    models: Sequence[ModelSlot],
    oracle: bool = False,
) -> SignalPlan:
    """Every signal the ai worker would publish at each step (``oracle``: the sim's true P(up))."""
    tf = TIMEFRAME_MS[ai.timeframe]
    plan = SignalPlan(steps=steps, by_step={})
    wanted: list[tuple[int, str, int, str]] = []  # (step, symbol, bar index, model key)
    slot_of: dict[str, ModelSlot | None] = {}
    ui = 0
    for t in steps:
        ui, event = universe_at(universe, t, index=ui)
        symbols = active_symbols(event.document if event else None, now_ms=t)
        if not symbols:
            plan.no_universe_steps += 1
            continue
        slot = serving(list(models), t)
        if oracle:
            key = ORACLE_MODEL
        elif slot is None:
            if not ai.allow_fallback:
                plan.skipped["model_missing"] += len(symbols)
                continue
            key = FALLBACK_MODEL
            plan.fallback_steps += 1
        else:
            key = slot.version
        slot_of[key] = None if oracle else slot
        bar_open = t - tf
        for sym in symbols:
            ts = data.get(sym, ai.timeframe).ts
            i = int(np.searchsorted(ts, bar_open))
            if i >= ts.shape[0] or ts[i] != bar_open:
                plan.skipped[SKIP_STALE if i > 0 else SKIP_TOO_LITTLE_HISTORY] += 1
            elif not _window_ok(ts, i, tf):
                plan.skipped[SKIP_GAPS if i >= WINDOW - 1 else SKIP_TOO_LITTLE_HISTORY] += 1
            else:
                wanted.append((t, sym, i, key))
    per_symbol: dict[str, list[int]] = {}
    for _, sym, i, _ in wanted:
        per_symbol.setdefault(sym, []).append(i)
    feats = {sym: dict(zip(rows, _features(data, sym, ai.timeframe, rows), strict=True))
             for sym, rows in per_symbol.items()}
    groups: dict[str, list[tuple[int, str, int]]] = {}
    for t, sym, i, key in wanted:
        if np.all(np.isfinite(feats[sym][i])):
            groups.setdefault(key, []).append((t, sym, i))
        else:
            plan.skipped[SKIP_FEATURES_NAN] += 1
    for key, rows in groups.items():
        x = np.vstack([feats[sym][i] for _, sym, i in rows])
        price = np.array([data.get(sym, ai.timeframe).close[i] for _, sym, i in rows])
        names = tuple(sym for _, sym, _ in rows)
        slot = slot_of.get(key)
        decisions: list[Decision]
        if key == ORACLE_MODEL:
            assert_oracle = data.oracle
            if assert_oracle is None:
                raise ValueError("this data source has no oracle")
            p_up = np.empty(len(rows))
            by_sym: dict[str, list[int]] = {}
            for j, (_, sym, _) in enumerate(rows):
                by_sym.setdefault(sym, []).append(j)
            for sym, js in by_sym.items():
                ts = data.get(sym, ai.timeframe).ts[[rows[j][2] for j in js]]
                p_up[js] = assert_oracle(sym, ai.timeframe, ts, ai.horizon_bars)
            decisions = decide_model(names, x=x, price=price, p_up=p_up, p_profit=np.zeros(len(rows)),
                                     hold_below=ai.hold_below, gate_threshold=np.inf)
            model, version = ORACLE_MODEL, ORACLE_MODEL
        elif slot is None or slot.bundle is None:
            decisions = decide_fallback(names, x=x, price=price, hold_below=ai.hold_below)
            model, version = FALLBACK_MODEL, FALLBACK_VERSION
        else:
            pred = slot.bundle.predict(x, hold_below=ai.hold_below)
            decisions = decide_model(names, x=x, price=price, p_up=pred.p_up, p_profit=pred.p_profit,
                                     hold_below=ai.hold_below, gate_threshold=slot.bundle.metalabel_threshold)
            model, version = model_tag(slot.version), slot.version
        for (t, sym, _), d in zip(rows, decisions, strict=True):
            plan.by_step.setdefault(t, []).append(Signal.model_construct(
                v=SCHEMA_VERSION, ts=t, signal_id=signal_id(sym, t), symbol=sym, side=d.side,
                confidence=d.confidence, model=model, model_version=version, price=d.price, atr=d.atr,
                regime=d.regime, rl_gate_pass=d.rl_gate_pass,
            ))
        plan.rows += len(rows)
    return plan
