from __future__ import annotations

import numpy as np
import pytest
from quantum_trader.ai import evaluation as ev
from quantum_trader.ai.evaluation import auc, brier, confidence_buckets, ece, fit_logistic, log_loss, sigmoid


def test_auc_matches_pairwise_definition_with_ties() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300).astype(float)
    p = np.round(rng.random(300), 1)
    pos, neg = p[y == 1], p[y == 0]
    pairs = (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()
    assert abs(auc(y, p) - pairs) < 1e-12


def test_auc_of_a_perfect_and_a_constant_predictor() -> None:
    y = np.array([0.0, 0.0, 1.0, 1.0])
    assert auc(y, np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert auc(y, np.full(4, 0.5)) == 0.5
    assert auc(np.ones(3), np.array([0.1, 0.2, 0.3])) == 0.5


def test_ece_is_small_for_calibrated_and_large_for_overconfident_predictions() -> None:
    rng = np.random.default_rng(1)
    p = rng.uniform(0.3, 0.7, 50_000)
    y = (rng.random(50_000) < p).astype(float)
    assert ece(y, p) < 0.01
    over = np.clip(0.5 + (p - 0.5) * 3, 0, 1)
    assert ece(y, over) > 0.05


def test_log_loss_and_brier_of_a_coin() -> None:
    y = np.array([0.0, 1.0])
    p = np.array([0.5, 0.5])
    assert abs(log_loss(y, p) - np.log(2)) < 1e-12
    assert brier(y, p) == 0.25


def test_confidence_buckets_count_hits_of_the_chosen_side() -> None:
    y = np.array([1.0, 0.0, 0.0, 1.0])
    p = np.array([0.52, 0.48, 0.9, 0.1])  # hit, hit, miss, miss
    b = {(x.lo, x.hi): x for x in confidence_buckets(y, p)}
    assert b[(0.5, 0.55)].count == 2 and b[(0.5, 0.55)].hit_rate == 1.0
    assert b[(0.9, 1.0)].count == 2 and b[(0.9, 1.0)].hit_rate == 0.0


def test_logistic_fit_recovers_known_coefficients() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(20_000, 2))
    y = (rng.random(20_000) < sigmoid(x @ np.array([1.5, -0.5]) + 0.3)).astype(float)
    coef, icpt = fit_logistic(x, y, l2=0.0)
    np.testing.assert_allclose(coef, [1.5, -0.5], atol=0.08)
    assert abs(icpt - 0.3) < 0.06


def test_logistic_penalty_shrinks_coefficients_but_not_the_intercept() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2_000, 1))
    y = (rng.random(2_000) < sigmoid(2.0 * x[:, 0] + 1.0)).astype(float)
    free, _ = fit_logistic(x, y, l2=0.0)
    shrunk, icpt = fit_logistic(x, y, l2=1.0)
    assert 0 < shrunk[0] < 0.5 * free[0]
    assert icpt > 0.5  # the base rate (~0.7) is still fitted


def test_log_loss_clips_certain_mistakes_to_a_finite_value() -> None:
    y = np.array([1.0, 0.0])
    assert abs(log_loss(y, np.array([0.0, 1.0])) + np.log(1e-6)) < 1e-9


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_give_scikit_learns_numbers(seed: int) -> None:
    """The hot-path metrics are vectorised numpy (scikit-learn's per-call validation cost more than the
    sums in a walk-forward with bootstrap intervals); scikit-learn is the reference they must equal."""
    from sklearn.metrics import brier_score_loss, roc_auc_score
    from sklearn.metrics import log_loss as sk_log_loss

    rng = np.random.default_rng(seed)
    y = (rng.random(3000) < 0.45).astype(np.float64)
    p = np.round(rng.random(3000), 2)  # many ties
    p[:5] = [0.0, 1.0, 1e-9, 1 - 1e-9, 0.5]
    assert ev.auc(y, p) == pytest.approx(roc_auc_score(y > 0.5, p), abs=1e-12)
    clipped = np.clip(p, 1e-6, 1 - 1e-6)
    assert ev.log_loss(y, p) == pytest.approx(sk_log_loss(y > 0.5, clipped, labels=[False, True]), abs=1e-12)
    assert ev.brier(y, p) == pytest.approx(brier_score_loss(y > 0.5, p), abs=1e-12)


def test_logistic_fit_gives_scikit_learns_coefficients() -> None:
    """Newton's method on scikit-learn's objective (C = 1 / (l2·n), intercept not penalised) lands where
    scikit-learn's own solver does."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(3)
    x = rng.normal(size=(4000, 4))
    y = (rng.random(4000) < ev.sigmoid(x @ np.array([0.8, -0.5, 0.0, 0.2]) - 0.1)).astype(np.float64)
    l2 = 1e-3
    coef, intercept = ev.fit_logistic(x, y, l2=l2)
    ref = LogisticRegression(C=1.0 / (l2 * x.shape[0]), tol=1e-10, max_iter=10_000).fit(x, y > 0.5)
    np.testing.assert_allclose(coef, ref.coef_[0], atol=1e-5)
    assert intercept == pytest.approx(float(ref.intercept_[0]), abs=1e-5)


def test_ece_gives_the_number_scikit_learns_calibration_curve_gives() -> None:
    from sklearn.calibration import calibration_curve

    rng = np.random.default_rng(5)
    p = np.round(rng.beta(5, 5, 4000), 3)  # crowded around 0.5, with ties at the bin edges
    y = (rng.random(4000) < np.clip(p + 0.05, 0, 1)).astype(np.float64)
    prob_true, prob_pred = calibration_curve(y > 0.5, p, n_bins=10, strategy="quantile")
    edges = np.percentile(p, np.linspace(0, 100, 11))
    counts = np.bincount(np.searchsorted(edges[1:-1], p), minlength=10)
    counts = counts[counts > 0]
    assert ece(y, p) == pytest.approx(float(np.sum(counts * np.abs(prob_true - prob_pred)) / 4000), abs=1e-12)


def test_logistic_fit_without_penalty_on_separable_data_stops_finite_and_points_the_right_way() -> None:
    x = np.array([[-2.0], [-1.0], [-0.5], [0.5], [1.0], [2.0]])
    y = np.array([0.0, 0.0, 0.0, 1.0, 1.0, 1.0])
    coef, intercept = fit_logistic(x, y, l2=0.0)
    assert np.all(np.isfinite(coef)) and np.isfinite(intercept)
    assert coef[0] > 5.0 and np.all(np.where(y > 0.5, sigmoid(x @ coef + intercept) > 0.99, True))
