"""The ai worker's bar-close core (pure): which symbols are decided, by which model, as which signals."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from quantum_trader.ai.bar import bar_signals, decide_bar, signal_id
from quantum_trader.ai.data import SKIP_FEATURES_NAN, Aligned
from quantum_trader.ai.features import WINDOW
from quantum_trader.ai.model import ModelBundle
from quantum_trader.ai.signals import FALLBACK_MODEL
from quantum_trader.ai.synthetic import make_market
from quantum_trader.ai.training import TrainResult

MARKET = make_market(n_symbols=4, n_bars=WINDOW + 10, seed=3)


def aligned(*, poison: str | None = None, skipped: dict[str, str] | None = None) -> Aligned:
    bars = MARKET.bars
    if poison is not None:  # a symbol whose latest close is not finite: its features cannot be computed
        i = MARKET.symbols.index(poison)
        close = bars.close.copy()
        close[i, -1] = np.nan
        bars = replace(bars, close=close)
    return Aligned(bars=bars, ts=MARKET.ts, symbols=MARKET.symbols, skipped=skipped or {})


def test_symbol_with_non_finite_features_is_skipped_and_the_others_get_the_trend_rule() -> None:
    poisoned = MARKET.symbols[1]
    bar = decide_bar(aligned(poison=poisoned, skipped={"GONEUSDT": "too_few_bars"}), bundle=None, fallback=None,
                     hold_below=0.5, fallback_stop_atr=1.5)
    assert bar.skipped == {"GONEUSDT": "too_few_bars", poisoned: SKIP_FEATURES_NAN}
    assert [d.symbol for d in bar.decisions] == [s for s in MARKET.symbols if s != poisoned]
    clean = decide_bar(aligned(), bundle=None, fallback=None, hold_below=0.5, fallback_stop_atr=1.5)
    by_symbol = {d.symbol: d for d in clean.decisions}
    assert all(d == by_symbol[d.symbol] for d in bar.decisions)  # the others decide as without the poisoned one
    assert all(d.win_atr == d.loss_atr == 1.5 for d in bar.decisions)  # the trend rule's symmetric sizes


def test_no_aligned_symbol_decides_nothing_and_keeps_the_alignment_skips() -> None:
    empty = Aligned(bars=MARKET.bars, ts=MARKET.ts, symbols=(), skipped={"AUSDT": "stale"})
    bar = decide_bar(empty, bundle=None, fallback=None, hold_below=0.5, fallback_stop_atr=1.5)
    assert bar.decisions == () and bar.skipped == {"AUSDT": "stale"}


def test_a_serving_model_decides_instead_of_the_trend_rule(trained: TrainResult) -> None:
    bundle: ModelBundle = trained.bundle
    got = decide_bar(aligned(), bundle=bundle, fallback=None, hold_below=0.5, fallback_stop_atr=1.5)
    trend = decide_bar(aligned(), bundle=None, fallback=None, hold_below=0.5, fallback_stop_atr=1.5)
    assert [d.symbol for d in got.decisions] == list(MARKET.symbols)
    assert [d.confidence for d in got.decisions] != [d.confidence for d in trend.decisions]


def test_signals_carry_deterministic_ids_the_model_tag_and_every_side() -> None:
    bar = decide_bar(aligned(), bundle=None, fallback=None, hold_below=0.99, fallback_stop_atr=1.5)
    signals = bar_signals(bar.decisions, bar_close_ms=1_700_000_900_000, model=FALLBACK_MODEL, version="0", ts=7)
    assert [s.signal_id for s in signals] == [signal_id(s, 1_700_000_900_000) for s in MARKET.symbols]
    assert {s.side for s in signals} == {"HOLD"}  # hold_below 0.99: nothing is confident enough, HOLD still published
    assert all(s.model == FALLBACK_MODEL and s.ts == 7 for s in signals)
