"""Naive baselines beside the model, block-bootstrap intervals and the gate that refuses a model
that does not beat them (real LightGBM, real scikit-learn, small planted markets)."""

from __future__ import annotations

import numpy as np
import pytest
from quantum_trader.ai.baselines import BASELINES, Baseline, fit_baseline, horizon_score
from quantum_trader.ai.bootstrap import one_sided_p, replicate_weights, replicates, span_ids, span_stats
from quantum_trader.ai.dataset import Dataset
from quantum_trader.ai.evaluation import auc, brier, ece, log_loss
from quantum_trader.ai.features import LAGS, WINDOW, return_lags
from quantum_trader.ai.synthetic import make_market
from quantum_trader.ai.training import TrainParams, TrainResult, quality_gate, train_walk_forward
from quantum_trader.core.profile import AiSettings
from sklearn.metrics import roc_auc_score

from .conftest import INTERACTION_HORIZONS


def test_report_carries_the_model_and_every_baseline_in_one_shape(trained: TrainResult) -> None:
    r = trained.report
    names = [b["name"] for b in r["baselines"]]
    assert names == list(BASELINES)
    for e in [r["model"], *r["baselines"]]:
        for m in ("auc", "log_loss", "brier"):
            lo, hi = e[f"{m}_ci"]
            assert lo <= e[m] <= hi and hi - lo > 0
        assert [f["fold"] for f in e["folds"]] == [f["fold"] for f in r["folds"][1:]]
    assert r["model"]["auc"] == r["auc"] and r["model"]["log_loss"] == r["log_loss"]
    assert r["vs_baseline"]["best_baseline"] == min(r["baselines"], key=lambda b: b["log_loss"])["name"]


def test_on_a_linear_planted_drift_the_linear_baseline_wins_and_the_gate_refuses_the_model(
    trained: TrainResult,
) -> None:
    r = trained.report
    assert r["vs_baseline"]["best_baseline"] == "linear"
    ok, reasons = quality_gate(r, AiSettings())
    assert not ok and reasons[0].startswith("not_better_than_baseline: linear log_loss")


def test_a_model_that_uses_a_non_linear_signal_beats_every_baseline_and_passes(
    interaction_trained: TrainResult,
) -> None:
    r = interaction_trained.report
    c = r["vs_baseline"]
    assert c["better"] and c["p_value"] < 0.05
    assert all(r["model"]["log_loss"] < b["log_loss"] for b in r["baselines"])
    assert quality_gate(r, AiSettings()) == (True, [])


def test_a_deliberately_weakened_model_with_one_lag_only_is_refused_by_the_gate(
    interaction_dataset: Dataset,
) -> None:
    params = TrainParams(horizons=INTERACTION_HORIZONS, rounds=60, metalabel_rounds=30, features=("ret_1",),
                         importance=False)
    weak = train_walk_forward(interaction_dataset, params=params, version="weak", timeframe="15m")
    ok, reasons = quality_gate(weak.report, AiSettings(min_auc=0.5))
    assert not ok and any(r.startswith("not_better_than_baseline") for r in reasons)
    assert weak.bundle.feature_names == ("ret_1",)


def test_permutation_importance_names_the_features_carrying_the_planted_signal(
    interaction_trained: TrainResult,
) -> None:
    imp = interaction_trained.report["importance"]
    top = [d["feature"] for d in imp[:4]]
    assert "ret_1" in top  # the planted drift is a function of the last return and the 16-bar trend
    assert imp[0]["log_loss_increase"] > 0.002
    assert imp[-1]["log_loss_increase"] < 0.0005


def test_the_fallback_is_the_best_baseline_calibrated_on_its_own_out_of_sample_record(
    trained: TrainResult, dataset: Dataset
) -> None:
    fb = trained.fallback
    assert fb.name == trained.report["vs_baseline"]["best_baseline"] == trained.report["fallback"]["name"]
    m = trained.oos_mask
    p = fb.p_up(dataset.lags[m])
    y = dataset.label_up(4)[m]
    assert ece(y, p) < 0.03 and auc(y, p) > 0.55
    np.testing.assert_array_equal(Baseline.from_dict(fb.to_dict()).p_up(dataset.lags[:50]), fb.p_up(dataset.lags[:50]))


def test_reversal_and_momentum_earn_a_scale_only_where_they_point_the_right_way() -> None:
    rng = np.random.default_rng(4)
    lags = rng.normal(size=(20_000, LAGS))
    score = horizon_score(lags, 4)
    y = (rng.random(20_000) < 1 / (1 + np.exp(0.5 * score))).astype(float)  # reverting
    rev = fit_baseline("reversal", lags=lags, y=y, horizon=4)
    mom = fit_baseline("momentum", lags=lags, y=y, horizon=4)
    assert rev.coef[0] > 0.3
    assert mom.coef[0] == 0.0 and abs(mom.p_up(lags).std()) < 1e-12  # a wrong-way rule is the base rate
    assert auc(y, rev.p_up(lags)) > 0.6


def test_baseline_documents_round_trip_and_malformed_ones_are_refused() -> None:
    b = Baseline(name="linear", horizon=4, coef=np.arange(LAGS, dtype=float) / 100, intercept=0.1)
    back = Baseline.from_dict(b.to_dict())
    assert back.name == "linear" and np.array_equal(back.coef, b.coef)
    for bad in ({"name": "linear", "horizon": 4, "coef": [1.0], "intercept": 0.0},
                {"name": "oracle", "horizon": 4, "coef": [], "intercept": 0.0},
                {"name": "reversal", "horizon": 4, "coef": [float("nan")], "intercept": 0.0}, {"name": "x"}):
        with pytest.raises(ValueError):
            Baseline.from_dict(bad)


def test_baseline_probability_from_bars_at_the_last_bar_equals_the_full_series() -> None:
    bars = make_market(n_symbols=4, n_bars=WINDOW + 40, seed=5).bars
    b = Baseline(name="reversal", horizon=4, coef=np.array([0.2]), intercept=0.0)
    full = b.p_up_from_bars(bars)
    assert np.isnan(full[:, : WINDOW - 1]).all() and np.isfinite(full[:, WINDOW - 1 :]).all()
    np.testing.assert_allclose(b.p_up_from_bars(bars, latest=True), full[:, -1], rtol=1e-12)
    lags = return_lags(bars)
    np.testing.assert_allclose(horizon_score(lags[:, -1], 4) * 2, np.log(bars.close[:, -1] / bars.close[:, -5])
                               / np.std(np.diff(np.log(bars.close[:, -97:]), axis=1), axis=1), rtol=1e-9)


def test_bootstrap_replicates_equal_scikit_learn_on_the_resampled_rows() -> None:
    rng = np.random.default_rng(6)
    t = np.repeat(np.arange(400), 5)
    y = (rng.random(2000) < 0.5).astype(float)
    p = np.clip(0.5 + 0.2 * (y - 0.5) + rng.normal(0, 0.15, 2000), 0.01, 0.99).round(2)  # ties included
    span = span_ids(t, edges=[(0, 199), (200, 399)], per_block=5)
    assert span.min() == 0 and span.max() == 9
    stats = span_stats(y, p, span, 10)
    w = replicate_weights(10, n_boot=20, seed=1)
    reps = replicates(stats, w)
    for b in range(3):
        rows = w[b][span]
        assert abs(reps.auc[b] - roc_auc_score(y, p, sample_weight=rows)) < 1e-12
        assert abs(reps.log_loss[b] - np.average(-(y * np.log(p) + (1 - y) * np.log(1 - p)), weights=rows)) < 1e-12
    ones = replicates(stats, np.ones((1, 10)))
    assert abs(ones.auc[0] - auc(y, p)) < 1e-12 and abs(ones.log_loss[0] - log_loss(y, p)) < 1e-12
    assert abs(replicates(stats, np.ones((1, 10))).brier[0] - brier(y, p)) < 1e-12


def test_one_sided_p_is_small_only_when_the_model_is_lower_in_nearly_every_replicate() -> None:
    a = np.linspace(0.60, 0.61, 1000)
    assert one_sided_p(a, a + 0.01) < 0.01
    assert one_sided_p(a + 0.01, a) > 0.99
    assert 0.3 < one_sided_p(a, np.roll(a, 500)) < 0.7


