"""Training guards run by ``qt train`` itself (pure): look-ahead in the features, implausible skill.

* **Look-ahead.** The training features of bar ``t`` (computed on the whole history) must equal
  the features computed on the history truncated right after bar ``t`` — the only data that
  existed at ``t``. :func:`lookahead_check` recomputes them at ``LOOKAHEAD_CUTS`` bars spread
  over the history, for every feature and every baseline input, and names each one that differs.
* **Implausible skill.** An out-of-sample AUC above :data:`AUC_CEILING` for the timeframe is
  not a discovery but a leak until shown otherwise (a feature that reads the next bar scores
  0.71 on the sim); such a version is refused with ``suspected_leakage``.

Both findings are gate reasons: the version is registered as rejected and never promoted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from quantum_trader.ai.features import FEATURE_NAMES, LAGS, WINDOW, Bars, feature_matrix, return_lags

F64 = npt.NDArray[np.float64]
FeatureFn = Callable[[Bars], F64]

LOOKAHEAD_CUTS: Final = 6
LOOKAHEAD_TOL: Final = 1e-9
# Directional out-of-sample AUC beyond which skill is presumed to be a leak (per signal timeframe).
AUC_CEILING: Final[dict[str, float]] = {"1m": 0.64, "5m": 0.67, "15m": 0.70, "1h": 0.72}
REASON_LOOKAHEAD: Final = "lookahead"
REASON_LEAKAGE: Final = "suspected_leakage"


def _cut(bars: Bars, end: int) -> Bars:
    return bars.head(end)


def lookahead_check(
    bars: Bars,
    *,
    cuts: int = LOOKAHEAD_CUTS,
    features: FeatureFn = feature_matrix,
    names: tuple[str, ...] = FEATURE_NAMES,
) -> dict[str, Any]:
    """Compare full-history features at bars ``t`` with features recomputed on bars ``0 … t``.

    Returns ``{"bars_checked": [...], "leaking": [names]}`` (baseline inputs appear as ``lag_k``).
    """
    lag_names = tuple(f"lag_{k}" for k in range(LAGS))
    if bars.n_bars < WINDOW + 2:
        return {"bars_checked": [], "leaking": []}
    full = np.concatenate([features(bars), return_lags(bars)], axis=2)
    at = np.unique(np.linspace(WINDOW, bars.n_bars - 2, cuts).astype(int)).tolist()
    leaking: set[str] = set()
    for t in at:
        part = _cut(bars, t + 1)
        trunc = np.concatenate([features(part)[:, -1, :], return_lags(part)[:, -1, :]], axis=1)
        diff = ~np.isclose(full[:, t, :], trunc, rtol=LOOKAHEAD_TOL, atol=LOOKAHEAD_TOL, equal_nan=True)
        for j in np.flatnonzero(diff.any(axis=0)):
            leaking.add((*names, *lag_names)[j])
    order = (*names, *lag_names)
    return {"bars_checked": at, "leaking": sorted(leaking, key=order.index)}


def guard_reasons(report: dict[str, Any], *, timeframe: str) -> list[str]:
    """Gate reasons from the report's guards (look-ahead findings, AUC above the ceiling)."""
    out = []
    look = report.get("guards", {}).get("lookahead")
    if isinstance(look, dict) and look.get("leaking"):
        out.append(f"{REASON_LOOKAHEAD}: features read bars after their own: {', '.join(look['leaking'])}")
    ceiling = AUC_CEILING.get(timeframe)
    auc = report.get("auc")
    if ceiling is not None and isinstance(auc, float) and auc > ceiling:
        out.append(f"{REASON_LEAKAGE}: out-of-sample AUC {auc:.4f} > {ceiling} for {timeframe} "
                   "(no directional model shows this without a leak; check features and labels)")
    return out
