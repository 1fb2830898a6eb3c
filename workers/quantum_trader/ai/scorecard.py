"""The model beside its baselines on the same out-of-sample rows: metrics, intervals, the gate's test (pure).

Every predictor (the model and each baseline of :mod:`quantum_trader.ai.baselines`) is scored
on the same rows, pooled and per walk-forward fold, with 95 % block-bootstrap intervals
(:mod:`quantum_trader.ai.bootstrap`: each test fold cut into ``SPANS_PER_FOLD`` contiguous
spans of bars, ``N_BOOT`` replicates, the same replicates for every predictor).

The promotion test: the baseline with the lowest pooled log loss is "the best baseline";
the model beats it when its pooled log loss is lower *and* the paired bootstrap's one-sided
p-value (share of replicates in which the model's log loss is not lower) is below ``ALPHA``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from quantum_trader.ai.bootstrap import (
    N_BOOT,
    Replicates,
    interval,
    one_sided_p,
    replicate_weights,
    replicates,
    span_ids,
    span_stats,
)
from quantum_trader.ai.evaluation import auc, brier, log_loss

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

ALPHA: Final = 0.05
SPANS_PER_FOLD: Final = 10
REASON_NOT_BETTER: Final = "not_better_than_baseline"


def _r(v: float, nd: int = 5) -> float:
    return round(float(v), nd)


def _fold_metrics(y: F64, p: F64, *, fold_of: I64, fold_ks: list[int]) -> list[dict[str, Any]]:
    """AUC, log loss and Brier of every fold that has rows (``fold_of``: each row's fold position)."""
    return [
        {"fold": k, "auc": _r(auc(y[m], p[m]), 4), "log_loss": _r(log_loss(y[m], p[m])),
         "brier": _r(brier(y[m], p[m]))}
        for i, k in enumerate(fold_ks)
        for m in [fold_of == i]
        if m.any()
    ]


def _entry(name: str, y: F64, p: F64, rp: Replicates, *, fold_of: I64, fold_ks: list[int]) -> dict[str, Any]:
    """One predictor's pooled metrics with their bootstrap intervals, and its folds."""
    return {
        "name": name,
        "auc": _r(auc(y, p), 4),
        "auc_ci": [_r(v, 4) for v in interval(rp.auc)],
        "log_loss": _r(log_loss(y, p)),
        "log_loss_ci": [_r(v) for v in interval(rp.log_loss)],
        "brier": _r(brier(y, p)),
        "brier_ci": [_r(v) for v in interval(rp.brier)],
        "folds": _fold_metrics(y, p, fold_of=fold_of, fold_ks=fold_ks),
    }


def _comparison(model: Mapping[str, Any], baselines: list[dict[str, Any]], *, n_boot: int, n_spans: int
                ) -> dict[str, Any]:
    """The model against the best baseline (lowest pooled log loss): the promotion test's verdict."""
    best = min(baselines, key=lambda e: (e["log_loss"], e["name"]))
    m_ll, b_ll, p_val = float(model["log_loss"]), float(best["log_loss"]), float(best["p_model_better"])
    return {
        "best_baseline": best["name"],
        "baseline_log_loss": b_ll,
        "model_log_loss": m_ll,
        "delta_log_loss": _r(m_ll - b_ll, 6),
        "p_value": p_val,
        "alpha": ALPHA,
        "test": f"paired block bootstrap, {n_boot} replicates of {n_spans} time spans, one-sided",
        "better": m_ll < b_ll and p_val < ALPHA,
    }


def score(
    *,
    y: F64,
    t: I64,
    predictions: Mapping[str, F64],
    edges: list[tuple[int, int]],
    fold_ks: list[int],
    n_boot: int = N_BOOT,
    seed: int = 7,
) -> dict[str, Any]:
    """Metrics of every predictor; ``predictions["model"]`` is the model, the others baselines.

    ``edges`` are the test blocks ``[start, end]`` (bar indices) of the folds ``fold_ks``.
    Returns ``{"model": entry, "baselines": [entry, ...], "comparison": {...}}`` where an entry is
    ``{name, auc, auc_ci, log_loss, log_loss_ci, brier, brier_ci, folds: [...]}``.
    """
    span = span_ids(t, edges=edges, per_block=SPANS_PER_FOLD)
    n_spans = len(edges) * SPANS_PER_FOLD
    w = replicate_weights(n_spans, n_boot=n_boot, seed=seed)
    fold_of = span // SPANS_PER_FOLD
    reps = {name: replicates(span_stats(y, p, span, n_spans), w) for name, p in predictions.items()}
    entries = {name: _entry(name, y, p, reps[name], fold_of=fold_of, fold_ks=fold_ks)
               for name, p in predictions.items()}
    model_ll = reps["model"].log_loss
    baselines = [{**entries[n], "p_model_better": _r(one_sided_p(model_ll, reps[n].log_loss), 4)}
                 for n in predictions if n != "model"]
    return {
        "model": entries["model"],
        "baselines": baselines,
        "comparison": _comparison(entries["model"], baselines, n_boot=n_boot, n_spans=n_spans),
    }


def not_better_reason(comparison: Mapping[str, Any]) -> str | None:
    """The gate's reason when the model does not beat the best baseline, else None."""
    if comparison.get("better") is True:
        return None
    b, m, p = comparison["best_baseline"], comparison["model_log_loss"], comparison["p_value"]
    bl = comparison["baseline_log_loss"]
    if bl <= m:
        return f"{REASON_NOT_BETTER}: {b} log_loss {bl:.4f} <= model {m:.4f} (p={p:.2f})"
    return f"{REASON_NOT_BETTER}: {b} log_loss {bl:.4f} > model {m:.4f} but p={p:.2f} >= {ALPHA}"
