"""Per-symbol reference implementation of :mod:`.features` (the straightforward way).

One symbol at a time, 1-D numpy, a recursive EMA and a textbook R/S Hurst with
a loop over chunks. It is the test oracle for the vectorised code and the
baseline of ``bench/bench_universe.py``; the worker never uses it.
"""

from __future__ import annotations

import math

import numpy as np

from quantum_trader.universe.features import (
    ATR_BARS,
    EMA_SPAN,
    F64,
    HURST_SCALES,
    LB_LAGS,
    ROC_BARS,
    SLOPE_BARS,
    expected_rs,
)


def ema_series(x: F64, span: int = EMA_SPAN) -> F64:
    alpha = 2.0 / (span + 1.0)
    out = np.empty_like(x)
    out[0] = x[0]
    for i in range(1, x.shape[0]):
        out[i] = alpha * x[i] + (1.0 - alpha) * out[i - 1]
    return out


def hurst_rs_1d(returns: F64, *, corrected: bool = True) -> float:
    length = returns.shape[0]
    xs: list[float] = []
    ys: list[float] = []
    for n in HURST_SCALES:
        m = length // n
        if m < 2:
            continue
        chunks = returns[length - m * n :].reshape(m, n)
        values: list[float] = []
        for chunk in chunks:
            dev = np.cumsum(chunk - chunk.mean())
            s = float(chunk.std())
            if s > 1e-12:
                values.append(float(dev.max() - dev.min()) / s)
        xs.append(math.log(n))
        ys.append(math.log(float(np.mean(values))) if values else math.nan)
    if len(xs) < 2:
        return math.nan
    slope = float(np.polyfit(np.asarray(xs), np.asarray(ys), 1)[0])
    if corrected:
        used = tuple(n for n in HURST_SCALES if length // n >= 2)
        ex = np.log(np.asarray(used, dtype=np.float64))
        ey = np.log(np.asarray([expected_rs(n) for n in used]))
        slope -= float(np.polyfit(ex, ey, 1)[0]) - 0.5
    return slope


def permutation_entropy_1d(x: F64) -> float:
    counts: dict[tuple[int, ...], int] = {}
    for i in range(x.shape[0] - 2):
        a, b, c = float(x[i]), float(x[i + 1]), float(x[i + 2])
        key = (int(a < b), int(b < c), int(a < c))
        counts[key] = counts.get(key, 0) + 1
    total = sum(counts.values())
    h = -sum((v / total) * math.log(v / total) for v in counts.values())
    return h / math.log(6.0)


def symbol_features(*, close: F64, high: F64, low: F64, volume: F64, bars_per_day: int) -> dict[str, float]:
    """The features of :func:`.features.timeframe_features` for one symbol."""
    from scipy.stats import chi2

    ema = ema_series(close)
    prev = close[-ATR_BARS - 1 : -1]
    h, lo = high[-ATR_BARS:], low[-ATR_BARS:]
    tr = np.maximum(h - lo, np.maximum(np.abs(h - prev), np.abs(lo - prev)))
    rets = np.diff(np.log(close))
    centred = rets - rets.mean()
    denom = float(centred @ centred)
    rho = [float(centred[k:] @ centred[:-k]) / denom for k in range(1, LB_LAGS + 1)]
    n = rets.shape[0]
    q = n * (n + 2.0) * sum(r * r / (n - k) for k, r in enumerate(rho, start=1))
    return {
        "atr_pct": float(tr.mean() / close[-1] * 100.0),
        "trend": float((ema[-1] / ema[-1 - SLOPE_BARS] - 1.0) * 100.0),
        "roc": float((close[-1] / close[-1 - ROC_BARS] - 1.0) * 100.0),
        "qvol_24h": float(close[-bars_per_day:] @ volume[-bars_per_day:]),
        "er": float(abs(close[-1] - close[0]) / np.abs(np.diff(close)).sum()),
        "hurst": hurst_rs_1d(rets),
        "entropy": permutation_entropy_1d(close),
        "acf1": rho[0],
        "lb_p": float(chi2.sf(q, LB_LAGS)),
    }
