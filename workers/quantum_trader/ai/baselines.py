"""Naive baselines every trained model must beat, and the fallback built from the best of them (pure).

All baselines predict P(close[t+H] > close[t]) from :func:`~quantum_trader.ai.features.return_lags`
(the last ``LAGS`` 1-bar returns in units of the current 96-bar volatility), and all are
logistic in their inputs, ``P = sigmoid(inputs · coef + intercept)``:

| name | inputs | fitted |
|---|---|---|
| ``base_rate`` | none | the intercept: the training rows' share of ups |
| ``reversal`` | −(return over the last H bars) / (rv_96 · √H) | scale and intercept only (Platt); a negative scale — the score pointing the wrong way in training — is set to 0, i.e. the base rate |
| ``momentum`` | +(the same return) | as reversal |
| ``linear`` | the 16 lagged vol-normalised 1-bar returns | L2-regularised logistic regression |

The scores of ``reversal`` and ``momentum`` are fixed rules (no fitted direction or weights);
only their mapping to a probability is fitted, on the fold's training rows, so their log loss
is comparable with the model's. ``H`` above is the label horizon, capped at ``LAGS`` bars.

The fallback served when no model is promoted is the baseline with the lowest out-of-sample
log loss, refitted on every row and then recalibrated (Platt: scale and intercept on its
log-odds) on its own out-of-sample record of the same run (:func:`recalibrate`), so its
confidence is the one it has shown.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from quantum_trader.ai.evaluation import fit_logistic, logit, sigmoid
from quantum_trader.ai.exits import ExitSizes
from quantum_trader.ai.features import LAGS, Bars, return_lags

F64 = npt.NDArray[np.float64]

BASELINES: Final = ("base_rate", "reversal", "momentum", "linear")
LINEAR_L2: Final = 1e-3  # penalty l2·n/2·|coef|² (scikit-learn C = 1/(l2·n))
_P_FLOOR: Final = 1e-4


def horizon_score(lags: F64, horizon: int) -> F64:
    """Return over the last ``min(horizon, LAGS)`` bars in units of rv_96 · √bars."""
    k = min(horizon, LAGS)
    out: F64 = lags[:, :k].sum(axis=1) / math.sqrt(k)
    return out


def baseline_inputs(name: str, lags: F64, horizon: int) -> F64:
    if name == "base_rate":
        return np.zeros((lags.shape[0], 0))
    if name == "reversal":
        return -horizon_score(lags, horizon)[:, None]
    if name == "momentum":
        return horizon_score(lags, horizon)[:, None]
    if name == "linear":
        return lags
    raise ValueError(f"unknown baseline {name!r}")


@dataclass(frozen=True, slots=True)
class Baseline:
    """A fitted baseline: ``P(up) = sigmoid(baseline_inputs(name) · coef + intercept)``."""

    name: str
    horizon: int
    coef: F64
    intercept: float
    exit_sizes: ExitSizes | None = None  # its OOS win/loss sizes under the exits, when measured

    def p_up(self, lags: F64) -> F64:
        """P(up over ``horizon``) for rows of :func:`return_lags` ``(rows, LAGS)``."""
        z = baseline_inputs(self.name, lags, self.horizon)
        out: F64 = np.clip(sigmoid(z @ self.coef + self.intercept), _P_FLOOR, 1.0 - _P_FLOOR)
        return out

    def p_up_from_bars(self, bars: Bars, *, latest: bool = False) -> F64:
        """P(up) at every bar ``(symbols, bars)`` (NaN in the warm-up), or at the last bar ``(symbols,)``."""
        lags = return_lags(bars, latest=latest)
        flat = lags.reshape(-1, LAGS)
        ok = np.all(np.isfinite(flat), axis=1)
        out = np.full(flat.shape[0], np.nan)
        if ok.any():
            out[ok] = self.p_up(flat[ok])
        res: F64 = out.reshape(lags.shape[:-1])
        return res

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"name": self.name, "horizon": self.horizon, "coef": [float(c) for c in self.coef],
                               "intercept": float(self.intercept)}
        if self.exit_sizes is not None:
            doc["exit_sizes"] = self.exit_sizes.to_dict()
        return doc

    @classmethod
    def from_dict(cls, doc: Any) -> Baseline:
        """Parse :meth:`to_dict` output; ``ValueError`` on anything malformed."""
        try:
            sizes = doc.get("exit_sizes")
            b = cls(name=str(doc["name"]), horizon=int(doc["horizon"]),
                    coef=np.asarray(doc["coef"], dtype=np.float64), intercept=float(doc["intercept"]),
                    exit_sizes=None if sizes is None else ExitSizes.from_dict(sizes))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed baseline: {type(exc).__name__}: {exc}") from None
        width = baseline_inputs(b.name, np.zeros((1, LAGS)), b.horizon).shape[1]
        if b.coef.shape != (width,) or not (np.all(np.isfinite(b.coef)) and math.isfinite(b.intercept)):
            raise ValueError(f"malformed baseline: {b.name} needs {width} finite coefficients")
        return b


def _rate_logit(y: F64) -> float:
    rate = float(np.clip(np.mean(y), 1e-3, 1.0 - 1e-3))
    return math.log(rate / (1.0 - rate))


def fit_baseline(name: str, *, lags: F64, y: F64, horizon: int) -> Baseline:
    """Fit ``name`` on training rows (``y`` = 1.0 for up)."""
    z = baseline_inputs(name, lags, horizon)
    if name == "base_rate":
        return Baseline(name=name, horizon=horizon, coef=np.zeros(0), intercept=_rate_logit(y))
    if name in ("reversal", "momentum"):
        coef, icpt = fit_logistic(z, y, l2=0.0)
        if coef[0] <= 0.0:  # the rule points the wrong way on these rows: it earns no confidence
            return Baseline(name=name, horizon=horizon, coef=np.zeros(1), intercept=_rate_logit(y))
        return Baseline(name=name, horizon=horizon, coef=coef, intercept=icpt)
    coef, icpt = fit_logistic(z, y, l2=LINEAR_L2)
    return Baseline(name=name, horizon=horizon, coef=coef, intercept=icpt)


def recalibrate(b: Baseline, *, p_oos: F64, y_oos: F64) -> Baseline:
    """``b`` with its log-odds rescaled by a Platt fit on its out-of-sample record (scale ≥ 0)."""
    if b.coef.shape[0] == 0:
        return Baseline(name=b.name, horizon=b.horizon, coef=b.coef, intercept=_rate_logit(y_oos))
    (a,), c = fit_logistic(logit(p_oos)[:, None], y_oos, l2=0.0)
    a = max(float(a), 0.0)
    return Baseline(name=b.name, horizon=b.horizon, coef=b.coef * a, intercept=b.intercept * a + c)
