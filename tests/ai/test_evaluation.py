from __future__ import annotations

import numpy as np
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
