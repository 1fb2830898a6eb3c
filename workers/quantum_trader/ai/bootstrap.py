"""Block bootstrap of out-of-sample metrics and the paired comparison behind the promotion gate (pure numpy).

Rows of one bar are correlated across symbols and overlapping label windows correlate
neighbouring bars, so rows are not resampled one by one: the out-of-sample bars are cut
into ``n_blocks`` contiguous spans of time (each walk-forward test block into equal parts)
and whole spans are resampled with replacement. Every predictor is scored on the *same*
resampled spans (a paired bootstrap), so the difference of two predictors' log losses has
its own distribution and a one-sided p-value.

Each replicate is a vector of span multiplicities ``w``; log loss and Brier are row means,
so a replicate is ``Σ w·sum / Σ w·count`` over per-span sums. The AUC of a replicate is
exact too: it counts (positive, negative) pairs, and pairs between spans ``i`` and ``j``
appear ``w_i · w_j`` times, so one ``spans × spans`` matrix of pair counts per predictor
gives every replicate's AUC (tested against scikit-learn's ``roc_auc_score`` with the
replicate's row weights).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

N_BOOT: Final = 1000
CONFIDENCE: Final = 0.95
_CLIP: Final = 1e-6


def span_ids(t: I64, *, edges: list[tuple[int, int]], per_block: int) -> I64:
    """Span index of each row: every test block ``[start, end]`` cut into ``per_block`` equal spans of bars."""
    out = np.full(t.shape[0], -1, dtype=np.int64)
    for b, (start, end) in enumerate(edges):
        cuts = np.linspace(start, end + 1, per_block + 1)
        inside = (t >= start) & (t <= end)
        out[inside] = b * per_block + np.clip(np.searchsorted(cuts, t[inside], side="right") - 1, 0, per_block - 1)
    return out


def replicate_weights(n_spans: int, *, n_boot: int = N_BOOT, seed: int = 7) -> F64:
    """``(n_boot, n_spans)`` multiplicities of each span in each bootstrap replicate."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_spans, size=(n_boot, n_spans))
    out: F64 = np.zeros((n_boot, n_spans))
    np.add.at(out, (np.repeat(np.arange(n_boot), n_spans), draws.ravel()), 1.0)
    return out


@dataclass(frozen=True, slots=True)
class SpanStats:
    """Per-span sufficient statistics of one predictor's out-of-sample record."""

    count: F64  # rows per span
    ll_sum: F64  # sum of per-row log loss
    brier_sum: F64  # sum of per-row squared error
    pos: F64  # positives per span
    neg: F64  # negatives per span
    pairs: F64  # (spans, spans): positive in span i ranked above negative in span j (ties 1/2)


def span_stats(y: F64, p: F64, span: I64, n_spans: int) -> SpanStats:
    q = np.clip(p, _CLIP, 1.0 - _CLIP)
    pos_mask = y > 0.5
    ll = -np.where(pos_mask, np.log(q), np.log(1.0 - q))
    count = np.bincount(span, minlength=n_spans).astype(np.float64)
    pairs = np.zeros((n_spans, n_spans))
    order = np.lexsort((p, span))  # by span, then score: each span's rows sorted once
    bounds = np.searchsorted(span[order], np.arange(n_spans + 1))
    groups = [order[bounds[j] : bounds[j + 1]] for j in range(n_spans)]
    negs = [p[g[~pos_mask[g]]] for g in groups]
    for i, g in enumerate(groups):
        pi = p[g[pos_mask[g]]]
        if not pi.size:
            continue
        for j, nj in enumerate(negs):
            if nj.size:
                lo = np.searchsorted(nj, pi, side="left")
                hi = np.searchsorted(nj, pi, side="right")
                pairs[i, j] = float(lo.sum()) + 0.5 * float((hi - lo).sum())
    pos = np.bincount(span, weights=pos_mask.astype(np.float64), minlength=n_spans).astype(np.float64)
    return SpanStats(
        count=count,
        ll_sum=np.bincount(span, weights=ll, minlength=n_spans).astype(np.float64),
        brier_sum=np.bincount(span, weights=(p - y) ** 2, minlength=n_spans).astype(np.float64),
        pos=pos,
        neg=count - pos,
        pairs=pairs,
    )


@dataclass(frozen=True, slots=True)
class Replicates:
    auc: F64
    log_loss: F64
    brier: F64


def replicates(s: SpanStats, w: F64) -> Replicates:
    """Every bootstrap replicate's AUC, log loss and Brier (``w``: :func:`replicate_weights`)."""
    n = w @ s.count
    pairs = np.einsum("bi,ij,bj->b", w, s.pairs, w)
    den = (w @ s.pos) * (w @ s.neg)
    auc = np.where(den > 0, pairs / np.where(den > 0, den, 1.0), 0.5)
    return Replicates(auc=auc, log_loss=(w @ s.ll_sum) / n, brier=(w @ s.brier_sum) / n)


def interval(values: F64, *, confidence: float = CONFIDENCE) -> list[float]:
    """Percentile interval ``[lo, hi]`` of bootstrap replicates."""
    a = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(values, [a, 1.0 - a])
    return [float(lo), float(hi)]


def one_sided_p(model_ll: F64, other_ll: F64) -> float:
    """Bootstrap p-value of "the model's log loss is not lower than the other's": the share of paired
    replicates in which it is not lower (at least ``1 / (replicates + 1)``)."""
    d = model_ll - other_ll
    return float((np.count_nonzero(d >= 0.0) + 1) / (d.shape[0] + 1))
