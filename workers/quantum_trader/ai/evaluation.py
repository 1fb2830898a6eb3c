"""Out-of-sample metrics: AUC, log loss, Brier, ECE, hit rate per confidence bucket.

The conventions the report relies on: AUC 0.5 when one class is absent, probabilities clipped to
``[1e-6, 1 − 1e-6]`` before a log loss, ECE over 10 equal-count bins. AUC, log loss and Brier are
the textbook formulas in numpy (the same numbers as scikit-learn's ``roc_auc_score``, ``log_loss``
and ``brier_score_loss`` without their per-call input validation, which cost more than the sums
in a walk-forward that computes hundreds of them); ECE uses ``calibration_curve``; the logistic
fit is Newton's method on scikit-learn's objective (falling back to ``LogisticRegression`` should
it not converge). scikit-learn is imported inside the functions so that the ai worker, which only
needs :func:`sigmoid`, never loads it.
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

    The per-bin observed frequency and mean prediction come from
    ``sklearn.calibration.calibration_curve(strategy="quantile")``; scikit-learn does not return
    the bin sizes, so the weights are the counts in the same quantile bins (its edges, its
    ``searchsorted`` rule, empty bins dropped as it drops them). Equal-count bins, because a
    weak-signal model's predictions crowd around 0.5 and equal-width bins would put almost
    everything in two bins.
    """
    from sklearn.calibration import calibration_curve

    n = y.shape[0]
    if n == 0:
        return 0.0
    if np.all(y > 0.5) or np.all(y <= 0.5):  # calibration_curve needs both classes
        return float(abs(float(np.mean(p)) - float(np.mean(y > 0.5))))
    prob_true, prob_pred = calibration_curve(y > 0.5, p, n_bins=bins, strategy="quantile")
    edges = np.percentile(p, np.linspace(0.0, 1.0, bins + 1) * 100)
    counts = np.bincount(np.searchsorted(edges[1:-1], p), minlength=bins)
    counts = counts[counts > 0]
    return float(np.sum(counts * np.abs(prob_true - prob_pred)) / n)


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


def fit_logistic(x: F64, y: F64, *, l2: float = 1e-3) -> tuple[F64, float]:
    """L2-regularised logistic regression (``sklearn.linear_model.LogisticRegression``): (coef, intercept).

    The penalty is ``l2 · n / 2 · |coef|²`` (scikit-learn's ``C = 1 / (l2 · n)``; the intercept is
    not penalised); ``l2 = 0`` fits without a penalty. Used for the stacked meta model (a
    multivariate Platt scaling of the base models' out-of-fold logits) and the linear baseline.
    """
    newton = _newton_logistic(x, y, l2=l2)
    if newton is not None:
        return newton
    from sklearn.linear_model import LogisticRegression

    n = x.shape[0]
    model = (
        LogisticRegression(C=1.0 / (l2 * n), max_iter=500, tol=1e-8)
        if l2 > 0
        else LogisticRegression(C=np.inf, max_iter=500, tol=1e-8)
    )
    model.fit(x, y > 0.5)
    return np.asarray(model.coef_[0], dtype=np.float64).copy(), float(model.intercept_[0])


def _newton_logistic(x: F64, y: F64, *, l2: float, max_iter: int = 50) -> tuple[F64, float] | None:
    """:func:`fit_logistic`'s objective, Σ log loss + l2·n/2·|coef|², minimised by Newton's method (a few
    iterations for the handful of inputs used here, converged to ~1e-12 instead of L-BFGS's 1e-8);
    None when it does not converge (e.g. separable data without a penalty): then scikit-learn fits."""
    n, d = x.shape
    target = (y > 0.5).astype(np.float64)
    xt = np.hstack([x, np.ones((n, 1))])
    lam = np.full(d + 1, l2 * n)
    lam[-1] = 0.0  # the intercept is not penalised
    w = np.zeros(d + 1)
    for _ in range(max_iter):
        prob = sigmoid(xt @ w)
        grad = xt.T @ (prob - target) + lam * w
        hess = (xt * (prob * (1.0 - prob))[:, None]).T @ xt + np.diag(lam)
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            return None
        w = w - step
        if not np.all(np.isfinite(w)) or np.max(np.abs(w)) > 50.0:
            return None
        if np.max(np.abs(step)) <= 1e-12 * (1.0 + np.max(np.abs(w))):
            return w[:-1].copy(), float(w[-1])
    return None
