"""Out-of-sample metrics: AUC, log loss, Brier, ECE, hit rate per confidence bucket; the logistic fit.

The conventions the report relies on: AUC 0.5 when one class is absent, probabilities clipped to
``[1e-6, 1 − 1e-6]`` before a log loss, ECE over 10 equal-count bins. Everything here is vectorised
numpy that gives scikit-learn's numbers (``roc_auc_score``, ``log_loss``, ``brier_score_loss``,
``calibration_curve(strategy="quantile")``, ``LogisticRegression``'s objective) — tests hold them to
scikit-learn's output, which the dev tools install. scikit-learn is not a runtime dependency: a
walk-forward computes thousands of these figures and its per-call input validation cost more than
the sums (training ran 5× slower through it), and without it the user install is 35 MB smaller.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

ECE_BINS: Final = 10
CONFIDENCE_BUCKETS: Final = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.9, 1.0)
_CLIP: Final = 1e-6


def _clip(p: F64) -> F64:
    out: F64 = np.clip(p, _CLIP, 1.0 - _CLIP)
    return out


def auc(y: F64, p: F64) -> float:
    """Area under the ROC curve (as ``sklearn.metrics.roc_auc_score``); 0.5 when one class is absent.

    The Mann–Whitney form: (Σ ranks of the positives − P(P+1)/2) / (P·N), tied scores sharing their
    average rank — P(score of a random positive > a random negative) + ½ P(tie)."""
    pos_mask = y > 0.5
    pos = int(np.count_nonzero(pos_mask))
    n = y.shape[0]
    if pos == 0 or pos == n:
        return 0.5
    order = np.argsort(p, kind="mergesort")
    sp = p[order]
    starts = np.flatnonzero(np.r_[True, sp[1:] != sp[:-1]])
    ends = np.r_[starts[1:], n]
    avg = (starts + ends + 1) / 2.0  # average 1-based rank of each tie group
    ranks = np.empty(n)
    ranks[order] = np.repeat(avg, ends - starts)
    return float((ranks[pos_mask].sum() - pos * (pos + 1) / 2.0) / (pos * (n - pos)))


def log_loss(y: F64, p: F64) -> float:
    """Mean binary cross-entropy (as ``sklearn.metrics.log_loss``) of P(y = 1) clipped to [1e-6, 1 − 1e-6]."""
    q = _clip(np.asarray(p, dtype=np.float64))
    return float(-np.mean(np.where(y > 0.5, np.log(q), np.log1p(-q))))


def brier(y: F64, p: F64) -> float:
    """Mean squared error of P(y = 1) (as ``sklearn.metrics.brier_score_loss``)."""
    return float(np.mean(((y > 0.5).astype(np.float64) - p) ** 2))


def ece(y: F64, p: F64, *, bins: int = ECE_BINS) -> float:
    """Expected calibration error of P(up) over ``bins`` equal-count bins of the prediction.

    The bins are scikit-learn's ``calibration_curve(strategy="quantile")`` bins (percentile edges,
    ``searchsorted`` on the inner edges, empty bins dropped), weighted by their counts. Equal-count
    bins, because a weak-signal model's predictions crowd around 0.5 and equal-width bins would put
    almost everything in two bins.
    """
    n = y.shape[0]
    if n == 0:
        return 0.0
    edges = np.percentile(p, np.linspace(0.0, 1.0, bins + 1) * 100)
    ids = np.searchsorted(edges[1:-1], p)
    total = np.bincount(ids, minlength=bins)
    hits = np.bincount(ids, weights=(y > 0.5).astype(np.float64), minlength=bins)
    pred = np.bincount(ids, weights=p, minlength=bins)
    used = total > 0
    gap = np.abs(hits[used] - pred[used])  # = count · |observed frequency − mean prediction|
    return float(np.sum(gap) / n)


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


def fit_logistic(x: F64, y: F64, *, l2: float = 1e-3, max_iter: int = 100) -> tuple[F64, float]:
    """L2-regularised logistic regression: (coef, intercept), scikit-learn's ``LogisticRegression``
    objective — Σ log loss + ``l2 · n / 2 · |coef|²`` (its ``C = 1 / (l2 · n)``; the intercept is not
    penalised); ``l2 = 0`` fits without a penalty. Used for the stacked meta model (a multivariate Platt
    scaling of the base models' out-of-fold logits) and the linear baseline.

    Newton's method with a backtracking line search (a handful of iterations for the few inputs used
    here, converged to ~1e-12). Without a penalty on separable data the optimum is at infinity: the
    fit stops once a coefficient passes ±50 (every probability already saturated), as a solver stops
    at its iteration limit.
    """
    n, d = x.shape
    target = (y > 0.5).astype(np.float64)
    xt = np.hstack([x, np.ones((n, 1))])
    lam = np.full(d + 1, l2 * n)
    lam[-1] = 0.0  # the intercept is not penalised

    def objective(w: F64) -> float:
        z = xt @ w
        return float(np.sum(np.logaddexp(0.0, z) - target * z) + 0.5 * np.sum(lam * w * w))

    w = np.zeros(d + 1)
    f = objective(w)
    for _ in range(max_iter):
        prob = sigmoid(xt @ w)
        grad = xt.T @ (prob - target) + lam * w
        hess = (xt * (prob * (1.0 - prob))[:, None]).T @ xt + np.diag(lam) + 1e-12 * np.eye(d + 1)
        step = np.linalg.lstsq(hess, grad, rcond=None)[0]
        scale, decrease = 1.0, float(grad @ step)
        while True:  # Armijo backtracking: a full Newton step where it helps, shorter where it would overshoot
            cand = w - scale * step
            f_cand = objective(cand)
            if f_cand <= f - 1e-4 * scale * decrease or scale < 1e-10:
                break
            scale *= 0.5
        moved = float(np.max(np.abs(scale * step)))
        w, f = cand, f_cand
        if moved <= 1e-12 * (1.0 + float(np.max(np.abs(w)))) or float(np.max(np.abs(w))) > 50.0:
            break
    return w[:-1].copy(), float(w[-1])
