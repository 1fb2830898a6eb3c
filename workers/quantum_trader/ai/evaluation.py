"""Out-of-sample metrics (pure numpy): AUC, log loss, Brier, ECE, hit rate per confidence bucket."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

ECE_BINS: Final = 10
CONFIDENCE_BUCKETS: Final = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.9, 1.0)
_CLIP: Final = 1e-6


def _average_ranks(x: F64) -> F64:
    """1-based ranks with ties averaged."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    ranks = np.empty(x.shape[0], dtype=np.float64)
    # boundaries of runs of equal values
    starts = np.r_[0, np.flatnonzero(np.diff(xs)) + 1]
    ends = np.r_[starts[1:], xs.shape[0]]
    avg = (starts + ends + 1) / 2.0  # mean of 1-based ranks start+1 .. end
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def auc(y: F64, p: F64) -> float:
    """Area under the ROC curve (Mann–Whitney); 0.5 when one class is absent."""
    pos = y > 0.5
    n_pos = int(pos.sum())
    n_neg = int(y.shape[0] - n_pos)
    if n_pos == 0 or n_neg == 0:
        return 0.5
    r = _average_ranks(p)
    return float((r[pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def log_loss(y: F64, p: F64) -> float:
    q = np.clip(p, _CLIP, 1.0 - _CLIP)
    return float(-np.mean(y * np.log(q) + (1.0 - y) * np.log(1.0 - q)))


def brier(y: F64, p: F64) -> float:
    return float(np.mean((p - y) ** 2))


def ece(y: F64, p: F64, *, bins: int = ECE_BINS) -> float:
    """Expected calibration error of P(up) over ``bins`` equal-count bins of the prediction.

    Equal-count (quantile) bins, because predictions of a weak-signal model crowd
    around 0.5 and equal-width bins would put almost everything in two bins.
    """
    n = y.shape[0]
    if n == 0:
        return 0.0
    order = np.argsort(p, kind="mergesort")
    total = 0.0
    for chunk in np.array_split(order, min(bins, n)):
        if chunk.shape[0]:
            total += chunk.shape[0] * abs(float(p[chunk].mean()) - float(y[chunk].mean()))
    return float(total / n)


@dataclass(frozen=True, slots=True)
class Bucket:
    lo: float
    hi: float
    count: int
    mean_confidence: float
    hit_rate: float


def confidence_buckets(y: F64, p: F64) -> list[Bucket]:
    """Hit rate of the chosen side (BUY if p ≥ 0.5) per bucket of confidence = max(p, 1 − p)."""
    conf = np.maximum(p, 1.0 - p)
    hit = np.where(p >= 0.5, y, 1.0 - y)
    out = []
    edges = CONFIDENCE_BUCKETS
    for i in range(len(edges) - 1):
        lo, hi = edges[i], edges[i + 1]
        m = (conf >= lo) & ((conf < hi) if i < len(edges) - 2 else (conf <= hi))
        c = int(m.sum())
        out.append(
            Bucket(
                lo=lo,
                hi=hi,
                count=c,
                mean_confidence=float(conf[m].mean()) if c else 0.0,
                hit_rate=float(hit[m].mean()) if c else 0.0,
            )
        )
    return out


def logit(p: F64) -> F64:
    q = np.clip(p, _CLIP, 1.0 - _CLIP)
    out: F64 = np.log(q / (1.0 - q))
    return out


def sigmoid(z: F64) -> F64:
    out: F64 = 1.0 / (1.0 + np.exp(-np.clip(z, -50.0, 50.0)))
    return out


def fit_logistic(x: F64, y: F64, *, l2: float = 1e-3, iters: int = 50) -> tuple[F64, float]:
    """L2-regularised logistic regression by Newton's method: returns (coef, intercept).

    Used for the stacked meta model (a multivariate Platt scaling of the base models'
    out-of-fold logits); ``l2`` does not apply to the intercept.
    """
    n, d = x.shape
    xa = np.hstack([x, np.ones((n, 1))])
    w = np.zeros(d + 1)
    reg = np.full(d + 1, l2 * n)
    reg[-1] = 0.0
    for _ in range(iters):
        p = sigmoid(xa @ w)
        g = xa.T @ (p - y) + reg * w
        hess = (xa * (p * (1.0 - p))[:, None]).T @ xa + np.diag(reg) + 1e-9 * np.eye(d + 1)
        step = np.linalg.solve(hess, g)
        w -= step
        if float(np.max(np.abs(step))) < 1e-10:
            break
    return w[:-1].copy(), float(w[-1])
