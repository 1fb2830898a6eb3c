"""Vectorised features over a 2-D block of bars (symbols × bars), one timeframe at a time.

Pure numpy: no I/O, no clock. Every function takes ``(N, T)`` float64 arrays
(oldest bar first) and returns one value per row. Rows with bad input
(NaN, non-positive or constant prices, zero volume) get a problem code from
:func:`input_problems`; their feature values are meaningless and are never used.

``high``/``low`` may be only the last ``ATR_BARS + 1`` bars and ``volume`` only the
last day of bars (that is all the features read).

Definitions (documented in docs/universe.md, same in :mod:`.reference`):

- ``atr_pct``   mean true range of the last ``ATR_BARS`` bars / last close, in %.
- ``trend``     EMA(``EMA_SPAN``) slope: ema[-1] / ema[-1-SLOPE_BARS] - 1, in %.
                The EMA starts at the first close (ema[0] = close[0]).
- ``roc``       close[-1] / close[-1-ROC_BARS] - 1, in %.
- ``qvol_24h``  sum of close·volume over the last 24 h of bars (quote volume).
- ``er``        Kaufman efficiency ratio over the whole window: |c[-1]-c[0]| / sum |Δc|.
- ``hurst``     rescaled-range (R/S) Hurst exponent of log returns: slope of
                log mean(R/S) against log n over non-overlapping chunks of
                n = 8, 16, 32, 64, 128 returns (scales with at least 2 chunks,
                aligned to the latest return), minus the Anis-Lloyd-Peters
                small-sample bias (white noise → about 0.5, not 0.58).
- ``entropy``   normalised permutation entropy of closes, order 3, delay 1 (0..1).
- ``acf1``      lag-1 autocorrelation of log returns.
- ``lb_p``      Ljung-Box p-value of log returns over ``LB_LAGS`` lags.

The R/S estimate avoids a per-scale cumulative sum: one cumulative sum of the
returns serves every scale (the range of a chunk's mean-adjusted partial sums
does not depend on the chunk's starting level), and chunk sums / sums of squares
are computed once at the smallest scale and added pairwise for the larger ones.
"""

from __future__ import annotations

import functools
import math
from typing import Final

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

ATR_BARS: Final = 14
EMA_SPAN: Final = 20
SLOPE_BARS: Final = 10
ROC_BARS: Final = 12
HURST_SCALES: Final = (8, 16, 32, 64, 128)
LB_LAGS: Final = 10
MIN_FEATURE_BARS: Final = 50  # fewer bars than this cannot give the features above

# Problem codes of :func:`input_problems` (0 = fine), first match wins.
OK: Final = 0
PROBLEM_NAN: Final = 1
PROBLEM_BAD_PRICES: Final = 2
PROBLEM_CONSTANT: Final = 3
PROBLEM_ZERO_VOLUME: Final = 4

TIMEFRAME_FEATURES: Final = ("atr_pct", "trend", "roc", "qvol_24h", "er", "hurst", "entropy", "acf1", "lb_p")


def input_problems(
    *, close: F64, high: F64, low: F64, volume: F64, bars_per_day: int
) -> npt.NDArray[np.int8]:
    """One problem code per row (see ``PROBLEM_*``); 0 when the row is usable."""
    out = np.zeros(close.shape[0], dtype=np.int8)
    with np.errstate(invalid="ignore"):
        nan = ~(np.isfinite(close).all(1) & np.isfinite(high).all(1) & np.isfinite(low).all(1))
        nan |= ~np.isfinite(volume).all(1)
        bad = (close <= 0).any(1) | (low <= 0).any(1) | (high < low).any(1) | (volume < 0).any(1)
        constant = close.max(1) == close.min(1)
        zero_vol = volume[:, -bars_per_day:].sum(1) <= 0
    out[zero_vol] = PROBLEM_ZERO_VOLUME
    out[constant] = PROBLEM_CONSTANT
    out[bad] = PROBLEM_BAD_PRICES
    out[nan] = PROBLEM_NAN
    return out


def ema_weights(n: int, span: int = EMA_SPAN) -> F64:
    """Weights w (length n) with ``x @ w`` = the last value of the EMA of ``x`` (ema[0] = x[0])."""
    alpha = 2.0 / (span + 1.0)
    k = np.arange(n - 1, -1, -1, dtype=np.float64)  # age of each bar
    w = alpha * (1.0 - alpha) ** k
    w[0] = (1.0 - alpha) ** (n - 1)
    return w


def atr_pct(*, close: F64, high: F64, low: F64, bars: int = ATR_BARS) -> F64:
    h = high[:, -bars:]
    lo = low[:, -bars:]
    prev = close[:, -bars - 1 : -1]
    tr = np.maximum(h - lo, np.maximum(np.abs(h - prev), np.abs(lo - prev)))
    result: F64 = tr.mean(1) / close[:, -1] * 100.0
    return result


def ema_slope(close: F64, *, span: int = EMA_SPAN, lag: int = SLOPE_BARS) -> F64:
    t = close.shape[1]
    last = close @ ema_weights(t, span)
    before = close[:, : t - lag] @ ema_weights(t - lag, span)
    result: F64 = (last / before - 1.0) * 100.0
    return result


def roc(close: F64, *, bars: int = ROC_BARS) -> F64:
    result: F64 = (close[:, -1] / close[:, -1 - bars] - 1.0) * 100.0
    return result


def quote_volume(*, close: F64, volume: F64, bars: int) -> F64:
    result: F64 = np.einsum("ij,ij->i", close[:, -bars:], volume[:, -bars:])
    return result


def efficiency_ratio(close: F64) -> F64:
    path = np.abs(np.diff(close, axis=1)).sum(1)
    result: F64 = np.abs(close[:, -1] - close[:, 0]) / path
    return result


def log_returns(close: F64) -> F64:
    result: F64 = np.diff(np.log(close), axis=1)
    return result


def hurst_scales(n_returns: int) -> tuple[int, ...]:
    """The R/S chunk sizes used for a series of ``n_returns`` returns (each with >= 2 chunks)."""
    return tuple(s for s in HURST_SCALES if n_returns // s >= 2)


@functools.lru_cache(maxsize=64)
def expected_rs(n: int) -> float:
    """Anis-Lloyd expected R/S of n white-noise returns, with Peters' (n - 1/2)/n correction."""
    total = sum(math.sqrt((n - i) / i) for i in range(1, n))
    if n <= 340:
        gamma_ratio = math.exp(math.lgamma((n - 1) / 2.0) - math.lgamma(n / 2.0)) / math.sqrt(math.pi)
    else:
        gamma_ratio = 1.0 / math.sqrt(n * math.pi / 2.0)
    return (n - 0.5) / n * gamma_ratio * total


@functools.lru_cache(maxsize=64)
def small_sample_bias(scales: tuple[int, ...]) -> float:
    """Slope of log E[R/S] against log n over ``scales`` minus 0.5: what raw R/S overstates for white noise."""
    x = np.log(np.asarray(scales, dtype=np.float64))
    y = np.log(np.asarray([expected_rs(n) for n in scales]))
    xc = x - x.mean()
    return float(xc @ (y - y.mean()) / (xc @ xc)) - 0.5


def hurst_rs(returns: F64, *, corrected: bool = True) -> F64:
    """R/S Hurst exponent per row (NaN when fewer than two scales fit or the series is flat).

    Raw R/S overstates H for short chunks (white noise gives about 0.58 with these scales);
    ``corrected`` (the default, used for the vetoes) subtracts the Anis-Lloyd-Peters expected
    slope so that white noise gives about 0.5 and a veto on H > 0.6 means real persistence.

    Chunks are aligned to the most recent return, so every chunk of size 2n is two chunks of
    size n: chunk sums and sums of squares are computed once at the smallest scale and added up
    pairwise for the larger ones. One cumulative sum (in the transposed bars × symbols layout,
    so reductions run over a leading axis with long contiguous inner loops) gives the partial
    sums of every scale; one work buffer is reused for all scales.
    """
    n_rows, length = returns.shape
    scales = hurst_scales(length)
    if len(scales) < 2:
        return np.full(n_rows, np.nan)
    r_t = np.ascontiguousarray(returns.T)  # (L, N)
    csum = np.cumsum(r_t, axis=0)  # partial sums; a chunk's starting level cancels in max - min
    base = scales[0]
    m0 = length // base
    start0 = length - m0 * base
    chunks0 = r_t[start0:].reshape(m0, base, n_rows)
    sums0 = chunks0.sum(1)  # (m0, N)
    squares0 = np.einsum("ijk,ijk->ik", chunks0, chunks0)
    work = np.empty(length * n_rows)
    log_rs = np.empty((len(scales), n_rows))
    for j, n in enumerate(scales):
        m = length // n
        group = n // base
        sums = sums0[m0 - m * group :].reshape(m, group, n_rows).sum(1)
        squares = squares0[m0 - m * group :].reshape(m, group, n_rows).sum(1)
        mean = sums / n
        var = squares / n - mean * mean
        dev = work[: m * n * n_rows].reshape(m, n, n_rows)
        np.multiply(np.arange(1, n + 1, dtype=np.float64)[None, :, None], mean[:, None, :], out=dev)
        np.subtract(csum[length - m * n :].reshape(m, n, n_rows), dev, out=dev)
        spread = dev.max(1) - dev.min(1)
        valid = var > 1e-24
        rs = np.where(valid, spread / np.sqrt(np.where(valid, var, 1.0)), 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            log_rs[j] = np.log(rs.sum(0) / valid.sum(0))
    x = np.log(np.asarray(scales, dtype=np.float64))
    xc = x - x.mean()
    result: F64 = xc @ (log_rs - log_rs.mean(0)) / (xc @ xc)
    if corrected:
        result -= small_sample_bias(scales)
    return result


def permutation_entropy(close: F64) -> F64:
    """Normalised permutation entropy of order 3 (6 ordinal patterns), 0 = predictable, 1 = noise."""
    a, b, c = close[:, :-2], close[:, 1:-1], close[:, 2:]
    code = (a < b).view(np.uint8) << 2
    code |= (b < c).view(np.uint8) << 1
    code |= (a < c).view(np.uint8)
    n_rows, width = code.shape
    offsets = (np.arange(n_rows, dtype=np.int64) * 8)[:, None]
    counts = np.bincount((code + offsets).ravel(), minlength=8 * n_rows).reshape(n_rows, 8)
    p = counts / float(width)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p), 0.0)
    result: F64 = -terms.sum(1) / np.log(6.0)
    return result


def autocorrelations(returns: F64, lags: int = LB_LAGS) -> F64:
    """(N, lags) autocorrelations rho_1..rho_lags of each row."""
    centred = returns - returns.mean(1, keepdims=True)
    denom = np.einsum("ij,ij->i", centred, centred)
    out = np.empty((returns.shape[0], lags))
    with np.errstate(invalid="ignore", divide="ignore"):
        for k in range(1, lags + 1):
            out[:, k - 1] = np.einsum("ij,ij->i", centred[:, k:], centred[:, :-k]) / denom
    return out


def ljung_box_p(rho: F64, n: int) -> F64:
    """Ljung-Box p-value from autocorrelations ``rho`` (N, h) of series of length ``n``."""
    h = rho.shape[1]
    k = np.arange(1, h + 1, dtype=np.float64)
    q = n * (n + 2.0) * ((rho * rho) / (n - k)).sum(1)
    return chi2_sf(q, dof=h)


def chi2_sf(x: F64, *, dof: int) -> F64:
    """Survival function of the chi-square distribution.

    For an even ``dof`` = 2m it is the closed form ``exp(-x/2)·Σ_{i<m} (x/2)^i / i!`` (pure
    numpy: importing scipy.special would cost the idle worker ~27 MB of RSS); odd ``dof``
    falls back to scipy.
    """
    if dof % 2:
        from scipy.special import gammaincc

        odd: F64 = gammaincc(dof / 2.0, x / 2.0)
        return odd
    half = np.asarray(x, dtype=np.float64) / 2.0
    term = np.ones_like(half)
    total = np.ones_like(half)
    for i in range(1, dof // 2):
        term = term * half / i
        total = total + term
    with np.errstate(over="ignore", invalid="ignore"):
        result: F64 = np.where(np.isnan(half), np.nan, np.exp(-half) * total)
    return result


def timeframe_features(
    *, close: F64, high: F64, low: F64, volume: F64, bars_per_day: int
) -> dict[str, F64]:
    """All features of one timeframe for an (N, T) block; keys are ``TIMEFRAME_FEATURES``."""
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        rets = log_returns(close)
        rho = autocorrelations(rets)
        return {
            "atr_pct": atr_pct(close=close, high=high, low=low),
            "trend": ema_slope(close),
            "roc": roc(close),
            "qvol_24h": quote_volume(close=close, volume=volume, bars=bars_per_day),
            "er": efficiency_ratio(close),
            "hurst": hurst_rs(rets),
            "entropy": permutation_entropy(close),
            "acf1": rho[:, 0].copy(),
            "lb_p": ljung_box_p(rho, rets.shape[1]),
        }
