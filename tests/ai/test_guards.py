"""qt train's own guards: look-ahead in features (truncated-history recompute), implausible AUC, stacking."""

from __future__ import annotations

import numpy as np
from quantum_trader.ai.features import WINDOW, Bars, feature_matrix, index
from quantum_trader.ai.guards import guard_reasons, lookahead_check
from quantum_trader.ai.synthetic import make_market
from quantum_trader.ai.training import TrainResult, quality_gate
from quantum_trader.core.profile import AiSettings

from .conftest import beats_baselines


def _bars() -> Bars:
    return make_market(n_symbols=3, n_bars=WINDOW + 120, seed=9).bars


def test_the_shipped_features_and_baseline_inputs_read_no_later_bar() -> None:
    got = lookahead_check(_bars())
    assert len(got["bars_checked"]) >= 5 and got["leaking"] == []


def test_a_feature_that_reads_the_next_bar_is_named() -> None:
    def leaky(bars: Bars) -> np.ndarray:
        x = feature_matrix(bars)
        x[:, :-1, index("ema_gap_5")] = x[:, 1:, index("ret_1")]  # tomorrow's return, today
        return x

    assert lookahead_check(_bars(), features=leaky)["leaking"] == ["ema_gap_5"]


def test_lookahead_and_implausible_auc_are_gate_reasons(trained: TrainResult) -> None:
    report = beats_baselines(trained.report)
    leak = {**report, "guards": {"lookahead": {"bars_checked": [1], "leaking": ["ret_1"]}}}
    ok, reasons = quality_gate(leak, AiSettings(min_auc=0.5))
    assert not ok and reasons == ["lookahead: features read bars after their own: ret_1"]
    too_good = {**report, "auc": 0.71}
    assert guard_reasons(too_good, timeframe="15m")[0].startswith("suspected_leakage: out-of-sample AUC 0.7100")
    assert guard_reasons(too_good, timeframe="1h") == []


def test_stacking_is_kept_only_when_it_beats_the_primary_model_out_of_sample(trained: TrainResult) -> None:
    st = trained.report["stacking"]
    assert st["kept"] == (st["stack_log_loss"] < st["single_log_loss"])
    coef = trained.bundle.meta_coef
    assert (coef[1] != 0.0) == st["kept"]
