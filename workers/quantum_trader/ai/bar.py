"""The ai worker's bar-close decision (pure): the bars of a closed bar and the serving model → signals.

No I/O, no clock read: the shell (``ai/worker.on_bar_close``) reads the universe and the bars,
calls :func:`decide_bar` and :func:`bar_signals`, publishes and reports. Which model decides:
the promoted model (``bundle``) when one serves; else the last training run's best baseline
(``fallback``); else the explicit trend rule (``decide_fallback``, win = loss = the stop distance).
A symbol whose latest features are not finite is skipped (``SKIP_FEATURES_NAN``), like the
symbols :func:`~quantum_trader.ai.data.align` left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from quantum_trader.ai.baselines import Baseline
from quantum_trader.ai.data import SKIP_FEATURES_NAN, Aligned
from quantum_trader.ai.features import F64, latest_features, return_lags
from quantum_trader.ai.model import ModelBundle
from quantum_trader.ai.signals import Decision, decide_fallback, decide_model
from quantum_trader.core.messages import Signal


@dataclass(frozen=True, slots=True)
class BarDecision:
    """One bar's outcome: a decision per usable symbol, a reason per skipped one."""

    decisions: tuple[Decision, ...] = ()
    skipped: Mapping[str, str] = field(default_factory=dict)  # symbol → reason code


def signal_id(symbol: str, bar_close_ms: int) -> str:
    """Deterministic per symbol and bar: a restarted worker re-emits the same id (router dedups)."""
    return f"ai-{symbol}-{bar_close_ms}"


def decide_bar(
    aligned: Aligned,
    *,
    bundle: ModelBundle | None,
    fallback: Baseline | None,
    hold_below: float,
    fallback_stop_atr: float,
) -> BarDecision:
    """Features of every aligned symbol → the serving model's decisions (non-finite rows skipped)."""
    skipped = dict(aligned.skipped)
    if not aligned.symbols:
        return BarDecision(skipped=skipped)
    x = latest_features(aligned.bars)
    ok = np.all(np.isfinite(x), axis=1)
    for s in np.asarray(aligned.symbols)[~ok].tolist():
        skipped[str(s)] = SKIP_FEATURES_NAN
    syms = tuple(s for s, good in zip(aligned.symbols, ok.tolist(), strict=True) if good)
    if not syms:
        return BarDecision(skipped=skipped)
    xs, price = x[ok], aligned.bars.close[ok, -1]
    decisions = _decide(aligned, ok, syms, xs=xs, price=price, bundle=bundle, fallback=fallback,
                        hold_below=hold_below, fallback_stop_atr=fallback_stop_atr)
    return BarDecision(decisions=tuple(decisions), skipped=skipped)


def _decide(
    aligned: Aligned, ok: np.ndarray, syms: tuple[str, ...], *, xs: F64, price: F64, bundle: ModelBundle | None,
    fallback: Baseline | None, hold_below: float, fallback_stop_atr: float,
) -> list[Decision]:
    if bundle is not None:
        pred = bundle.predict(xs, hold_below=hold_below)
        return decide_model(syms, x=xs, price=price, p_up=pred.p_up, p_profit=pred.p_profit, hold_below=hold_below,
                            gate_threshold=bundle.metalabel_threshold, gate_filters=bundle.metalabel_filter,
                            sizes=bundle.exit_sizes)
    if fallback is not None:
        lags = return_lags(aligned.bars, latest=True)[ok]
        p_up = fallback.p_up(np.nan_to_num(lags))
        return decide_model(syms, x=xs, price=price, p_up=p_up, p_profit=np.zeros_like(p_up), hold_below=hold_below,
                            gate_threshold=np.inf, sizes=fallback.exit_sizes)
    return decide_fallback(syms, x=xs, price=price, hold_below=hold_below, stop_atr=fallback_stop_atr)


def bar_signals(
    decisions: tuple[Decision, ...], *, bar_close_ms: int, model: str, version: str, ts: int
) -> list[Signal]:
    """One ``Signal`` per decision (HOLD included), ids deterministic per symbol and bar."""
    return [
        Signal(signal_id=signal_id(d.symbol, bar_close_ms), symbol=d.symbol, side=d.side,
               confidence=d.confidence, model=model, model_version=version, price=d.price, atr=d.atr,
               regime=d.regime, rl_gate_pass=d.rl_gate_pass, win_atr=d.win_atr, loss_atr=d.loss_atr,
               hold_s=d.hold_s, ts=ts)
        for d in decisions
    ]
