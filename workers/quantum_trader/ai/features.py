"""The AI feature set: 27 features per symbol and bar, vectorised over all symbols (pure numpy).

Inputs are 2-D arrays ``(symbols, bars)`` of one timeframe, oldest bar first, all
symbols on the same bar grid, and that grid's bar open times (epoch ms UTC). Every
feature at bar ``t`` is a function of bars ``t - WINDOW + 1 .. t`` only (the bar that just closed and earlier): nothing after
the bar close is ever read. Two evaluation modes share one definition:

* :func:`feature_matrix` — every bar (training): ``(S, T, F)``, NaN during warm-up;
* :func:`latest_features` — only the last bar (inference): ``(S, F)``; it equals
  ``feature_matrix(...)[:, -1, :]`` (a test checks this) but costs a fraction.

EMAs are finite exponentially weighted means over ``3.5 × span`` bars (an FIR
kernel, weights normalised to 1), so a feature never depends on where a fetched
window starts. "Slow" features use spans ``SLOW_FACTOR`` (4) times longer: on the
default 15m timeframe they are the 1h EMAs. Price-level features (EMA gaps and
slopes, MACD) are divided by the ATR, returns by realised volatility, so the
features of different symbols are comparable and can be pooled.

| # | name | definition (at bar t) |
|---|---|---|
| 0 | ret_1 | log return over 1 bar / (rv_96 · √1) |
| 1 | ret_4 | log return over 4 bars / (rv_96 · √4) |
| 2 | ret_16 | log return over 16 bars / (rv_96 · √16) |
| 3 | ret_64 | log return over 64 bars / (rv_96 · √64) |
| 4 | atr_pct | ATR(14, simple mean of true range) / close |
| 5 | rsi_14 | up / (up + down) − 0.5 over 14 price changes (Cutler RSI, centred) |
| 6 | ema_gap_20 | (close − EMA20) / ATR |
| 7 | ema_slope_20 | (EMA20[t] − EMA20[t−1]) / ATR |
| 8 | ema_slope_50 | (EMA50[t] − EMA50[t−1]) / ATR |
| 9 | ema_gap_slow | (close − EMA(20·4)) / ATR — 1h EMA20 on 15m bars |
| 10 | ema_slope_slow | (EMA(20·4)[t] − EMA(20·4)[t−4]) / ATR — 1h EMA20 slope per hour |
| 11 | macd | (EMA12 − EMA26) / ATR |
| 12 | macd_hist | (MACD − EMA9(MACD)) / ATR |
| 13 | bb_width | 2 · std20(close) / mean20(close) |
| 14 | bb_pos | (close − mean20) / (2 · std20), clipped to ±3 |
| 15 | volume_z | z-score of log(1 + volume) over 96 bars |
| 16 | range_pos | position of close in the 48-bar high–low range, −0.5 … 0.5 |
| 17 | rv_16 | standard deviation of 1-bar log returns over 16 bars |
| 18 | vol_regime | log(rv_16 / rv_96) — volatility regime (>0: expanding) |
| 19 | efficiency_16 | Kaufman efficiency ratio over 16 bars (0 = noise, 1 = straight line) |
| 20 | ret_2 | log return over 2 bars / (rv_96 · √2) |
| 21 | ret_8 | log return over 8 bars / (rv_96 · √8) |
| 22 | ema_gap_5 | (close − EMA5) / ATR — distance from a short moving average |
| 23 | ema_gap_10 | (close − EMA10) / ATR |
| 24 | range_pos_16 | position of close in the 16-bar high–low range, −0.5 … 0.5 |
| 25 | volume_surprise | log(1 + volume) − its mean over the previous 16 bars |
| 26 | hour_utc | hour of the UTC day at the bar's open, fractional (14.25 = 14:15) — intraday seasonality |

:func:`return_lags` gives the 1-bar returns of the last ``LAGS`` bars in units of the current
``rv_96`` (lag 0 = the bar that just closed): the inputs of the naive baselines
(:mod:`quantum_trader.ai.baselines`); their sum over the first ``k`` lags is ``ret_k · √k``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

FEATURE_NAMES: Final[tuple[str, ...]] = (
    "ret_1",
    "ret_4",
    "ret_16",
    "ret_64",
    "atr_pct",
    "rsi_14",
    "ema_gap_20",
    "ema_slope_20",
    "ema_slope_50",
    "ema_gap_slow",
    "ema_slope_slow",
    "macd",
    "macd_hist",
    "bb_width",
    "bb_pos",
    "volume_z",
    "range_pos",
    "rv_16",
    "vol_regime",
    "efficiency_16",
    "ret_2",
    "ret_8",
    "ema_gap_5",
    "ema_gap_10",
    "range_pos_16",
    "volume_surprise",
    "hour_utc",
)
N_FEATURES: Final = len(FEATURE_NAMES)
SLOW_FACTOR: Final = 4
EMA_TAPS_PER_SPAN: Final = 3.5
ATR_BARS: Final = 14
RV_LONG: Final = 96
LAGS: Final = 16
_EPS: Final = 1e-12
HOUR_MS: Final = 3_600_000
DAY_MS: Final = 86_400_000


def _ema_kernel(span: int) -> F64:
    """FIR weights ``w[j]`` for lag ``j`` (0 = current bar) of a finite EMA, summing to 1."""
    alpha = 2.0 / (span + 1.0)
    taps = math.ceil(EMA_TAPS_PER_SPAN * span)
    w = alpha * (1.0 - alpha) ** np.arange(taps, dtype=np.float64)
    out: F64 = w / w.sum()
    return out


def _pad(kernel: F64, length: int) -> F64:
    out = np.zeros(length, dtype=np.float64)
    out[: kernel.shape[0]] = kernel
    return out


def _shift(kernel: F64, lag: int, length: int) -> F64:
    """The kernel of ``x[t - lag]`` filtered by ``kernel``."""
    out = np.zeros(length, dtype=np.float64)
    out[lag : lag + kernel.shape[0]] = kernel
    return out


def _linear_kernels() -> tuple[F64, int]:
    """The price-linear features as one ``(taps, 7)`` matrix of lag weights (column order below)."""
    e12, e26, e20, e50 = (_ema_kernel(s) for s in (12, 26, 20, 50))
    eslow = _ema_kernel(20 * SLOW_FACTOR)
    e9 = _ema_kernel(9)
    e5, e10 = _ema_kernel(5), _ema_kernel(10)
    macd_len = max(e12.shape[0], e26.shape[0])
    macd = _pad(e12, macd_len) - _pad(e26, macd_len)
    macd_sig = np.convolve(e9, macd)  # EMA9 of the MACD series, as lag weights on close
    taps = max(
        macd_sig.shape[0], eslow.shape[0] + SLOW_FACTOR, e50.shape[0] + 1, e20.shape[0] + 1
    )
    ident = np.zeros(taps)
    ident[0] = 1.0
    cols = [
        ident - _pad(e20, taps),  # ema_gap_20
        _pad(e20, taps) - _shift(e20, 1, taps),  # ema_slope_20
        _pad(e50, taps) - _shift(e50, 1, taps),  # ema_slope_50
        ident - _pad(eslow, taps),  # ema_gap_slow
        _pad(eslow, taps) - _shift(eslow, SLOW_FACTOR, taps),  # ema_slope_slow
        _pad(macd, taps),  # macd
        _pad(macd, taps) - _pad(macd_sig, taps),  # macd_hist
        ident - _pad(e5, taps),  # ema_gap_5
        ident - _pad(e10, taps),  # ema_gap_10
    ]
    # Reverse the lag axis so that ``window[:, -taps:] @ K`` applies lag 0 to the newest bar.
    k: F64 = np.ascontiguousarray(np.stack(cols, axis=1)[::-1, :])
    return k, taps


_KERNELS, _TAPS = _linear_kernels()
_LINEAR_NAMES: Final = ("ema_gap_20", "ema_slope_20", "ema_slope_50", "ema_gap_slow", "ema_slope_slow", "macd",
                        "macd_hist", "ema_gap_5", "ema_gap_10")  # the kernels' columns, in order
WINDOW: Final[int] = max(_TAPS, RV_LONG + 1, 64 + 1)
"""Bars each feature vector needs (the newest bar included); fewer gives NaN."""


@dataclass(frozen=True, slots=True)
class Bars:
    """OHLCV of several symbols on one bar grid: each array ``(symbols, bars)``, oldest first."""

    high: F64
    low: F64
    close: F64
    volume: F64
    open_ms: I64  # (bars,) the grid's bar open times, epoch ms UTC

    @property
    def n_symbols(self) -> int:
        return int(self.close.shape[0])

    @property
    def n_bars(self) -> int:
        return int(self.close.shape[1])

    def tail(self, n: int) -> Bars:
        return Bars(self.high[:, -n:], self.low[:, -n:], self.close[:, -n:], self.volume[:, -n:], self.open_ms[-n:])

    def head(self, n: int) -> Bars:
        """The first ``n`` bars (history truncated at bar ``n``)."""
        return Bars(self.high[:, :n], self.low[:, :n], self.close[:, :n], self.volume[:, :n], self.open_ms[:n])


class _Ops:
    """Window primitives in one of two modes: every bar (``latest=False``) or the last bar only."""

    def __init__(self, n_bars: int, *, latest: bool) -> None:
        self.latest = latest
        self.n = n_bars

    def cur(self, x: F64) -> F64:
        return x[:, -1:] if self.latest else x

    def lag(self, x: F64, k: int) -> F64:
        """``x[t - k]`` aligned with ``t`` (NaN before the series starts)."""
        if self.latest:
            return x[:, -1 - k : x.shape[1] - k]
        out = np.full_like(x, np.nan)
        out[:, k:] = x[:, : x.shape[1] - k]
        return out

    def window(self, x: F64, n: int) -> F64:
        """``(S, T', n)`` windows ending at each evaluated bar (series right-aligned with the bars)."""
        if self.latest:
            return x[:, None, -n:]
        return sliding_window_view(x, n, axis=1)

    def aligned(self, reduced: F64, n: int, series_len: int) -> F64:
        """Left-pad a reduced window result to the bar grid (series may be shorter than the bars)."""
        if self.latest:
            return reduced
        out = np.full((reduced.shape[0], self.n), np.nan)
        out[:, self.n - reduced.shape[1] :] = reduced
        return out

    def mean(self, x: F64, n: int) -> F64:
        return self.aligned(self.window(x, n).mean(axis=2), n, x.shape[1])

    def lag_mean(self, x: F64, n: int) -> F64:
        """Mean of the ``n`` values before each bar (the bar itself excluded)."""
        if self.latest:
            out: F64 = x[:, -1 - n : -1].mean(axis=1, keepdims=True)
            return out
        return self.lag(self.mean(x, n), 1)

    def std(self, x: F64, n: int) -> F64:
        return self.aligned(self.window(x, n).std(axis=2), n, x.shape[1])

    def sum(self, x: F64, n: int) -> F64:
        return self.aligned(self.window(x, n).sum(axis=2), n, x.shape[1])

    def max(self, x: F64, n: int) -> F64:
        return self.aligned(self.window(x, n).max(axis=2), n, x.shape[1])

    def min(self, x: F64, n: int) -> F64:
        return self.aligned(self.window(x, n).min(axis=2), n, x.shape[1])

    def linear(self, close: F64) -> F64:
        """The price-linear kernels: ``(S, T, 9)`` or ``(S, 1, 9)``."""
        if self.latest:
            out: F64 = (close[:, -_TAPS:] @ _KERNELS)[:, None, :]
            return out
        win = sliding_window_view(close, _TAPS, axis=1)  # (S, T - taps + 1, taps)
        vals = win @ _KERNELS
        full = np.full((close.shape[0], self.n, _KERNELS.shape[1]), np.nan)
        full[:, self.n - vals.shape[1] :, :] = vals
        return full


def _safe_div(num: F64, den: F64) -> F64:
    with np.errstate(divide="ignore", invalid="ignore"):
        out: F64 = np.where(np.abs(den) > _EPS, num / np.where(np.abs(den) > _EPS, den, 1.0), 0.0)
    return out


@dataclass(frozen=True, slots=True)
class _Series:
    """The derived series the features read, cut in last-bar mode to the bars they need."""

    p: F64  # log close (the newest RV_LONG + 1 bars in last-bar mode)
    r1: F64  # 1-bar log returns, right-aligned with the bars (one element shorter than p)
    tr: F64  # true range (the newest ATR_BARS in last-bar mode)
    dc: F64  # 1-bar close changes, aligned with tr
    lv: F64  # log(1 + volume) (the newest RV_LONG bars in last-bar mode)


def _series(bars: Bars, *, latest: bool) -> _Series:
    """Log prices, returns, true range, close changes and log volume, from the bars each mode reads."""
    c, h, lo, v = bars.close, bars.high, bars.low, bars.volume

    def tail(x: F64, n: int) -> F64:
        """In last-bar mode only the newest ``n`` bars of a series are ever read: derive from those."""
        return x[:, -n:] if latest else x

    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.log(tail(c, RV_LONG + 1))
    r1 = np.diff(p, axis=1)
    c15, h15, lo15 = tail(c, ATR_BARS + 1), tail(h, ATR_BARS + 1), tail(lo, ATR_BARS + 1)
    prev_c = c15[:, :-1]
    tr = np.maximum(
        h15[:, 1:] - lo15[:, 1:], np.maximum(np.abs(h15[:, 1:] - prev_c), np.abs(lo15[:, 1:] - prev_c))
    )
    dc = np.diff(c15, axis=1)
    lv = np.log1p(np.maximum(tail(v, RV_LONG), 0.0))
    return _Series(p=p, r1=r1, tr=tr, dc=dc, lv=lv)


def _returns(ops: _Ops, s: _Series, rv96: F64) -> dict[str, F64]:
    """ret_k: log return over k bars in units of rv_96 · √k."""
    p_t = ops.cur(s.p)
    return {f"ret_{k}": _safe_div(p_t - ops.lag(s.p, k), rv96 * math.sqrt(k)) for k in (1, 2, 4, 8, 16, 64)}


def _rsi(ops: _Ops, s: _Series) -> F64:
    """Cutler RSI over 14 price changes, centred on 0 (0 when the price did not move)."""
    up = ops.mean(np.maximum(s.dc, 0.0), 14)
    down = ops.mean(np.maximum(-s.dc, 0.0), 14)
    rsi = _safe_div(up, up + down) - 0.5
    out: F64 = np.where(up + down > _EPS, rsi, 0.0)
    return out


def _trend(ops: _Ops, close: F64, atr: F64) -> dict[str, F64]:
    """The price-linear features (EMA gaps and slopes, MACD) in units of the ATR."""
    lin_atr = _safe_div(ops.linear(close), atr[:, :, None])
    return {name: lin_atr[:, :, j] for j, name in enumerate(_LINEAR_NAMES)}


def _bands(ops: _Ops, close: F64, close_t: F64) -> dict[str, F64]:
    """Bollinger width and the close's position in the bands (20 bars)."""
    mean20 = ops.mean(close, 20)
    std20 = ops.std(close, 20)
    return {
        "bb_width": _safe_div(2.0 * std20, mean20),
        "bb_pos": np.clip(_safe_div(close_t - mean20, 2.0 * std20), -3.0, 3.0),
    }


def _ranges(ops: _Ops, bars: Bars, close_t: F64) -> dict[str, F64]:
    """Position of the close in the 48- and 16-bar high-low range, −0.5 … 0.5."""
    out: dict[str, F64] = {}
    for name, n in (("range_pos", 48), ("range_pos_16", 16)):
        hi, lo = ops.max(bars.high, n), ops.min(bars.low, n)
        out[name] = _safe_div(close_t - lo, hi - lo) - 0.5
    return out


def _volume(ops: _Ops, lv: F64) -> dict[str, F64]:
    """Volume z-score over 96 bars, and its surprise against the previous 16 bars."""
    volume_z = np.clip(_safe_div(ops.cur(lv) - ops.mean(lv, RV_LONG), ops.std(lv, RV_LONG)), -6.0, 6.0)
    lv17 = lv[:, -17:] if ops.latest else lv
    return {"volume_z": volume_z, "volume_surprise": np.clip(ops.cur(lv17) - ops.lag_mean(lv17, 16), -6.0, 6.0)}


def _volatility(ops: _Ops, s: _Series, rv16: F64, rv96: F64) -> dict[str, F64]:
    """Short realised volatility, its regime against the long one, and the 16-bar efficiency ratio."""
    path = ops.sum(np.abs(s.r1[:, -16:] if ops.latest else s.r1), 16)
    return {
        "rv_16": rv16,
        "vol_regime": np.log(_safe_div(rv16, rv96) + _EPS),
        "efficiency_16": _safe_div(np.abs(ops.cur(s.p) - ops.lag(s.p, 16)), path),
    }


def _hour_utc(ops: _Ops, bars: Bars) -> F64:
    """Hour of the UTC day at each bar's open (fractional), the same for every symbol."""
    hours = (np.asarray(bars.open_ms, dtype=np.int64) % DAY_MS).astype(np.float64) / HOUR_MS
    out: F64 = np.broadcast_to(ops.cur(hours[None, :]), (bars.n_symbols, 1 if ops.latest else bars.n_bars)).copy()
    return out


def _stack(cols: dict[str, F64], *, latest: bool) -> F64:
    """The named columns in FEATURE_NAMES order; warm-up rows and non-finite values NaN."""
    out = np.stack([cols[name] for name in FEATURE_NAMES], axis=2)
    if not latest:
        out[:, : WINDOW - 1, :] = np.nan  # warm-up: not every feature has its full window yet
    out[~np.isfinite(out)] = np.nan
    return out


def _compute(bars: Bars, *, latest: bool) -> F64:
    """Every feature at every bar (``latest=False``) or at the last bar only; NaN where unknown."""
    if bars.n_bars < 2:
        raise ValueError("at least two bars are needed")
    if bars.open_ms.shape != (bars.n_bars,):
        raise ValueError(f"open_ms has shape {bars.open_ms.shape}, the bars {bars.n_bars}")
    if bars.n_bars < WINDOW:  # not one full window: every feature is unknown
        return np.full((bars.n_symbols, 1 if latest else bars.n_bars, N_FEATURES), np.nan)
    if latest and bars.n_bars > WINDOW + 1:
        bars = bars.tail(WINDOW + 1)
    ops = _Ops(bars.n_bars, latest=latest)
    s = _series(bars, latest=latest)
    rv16, rv96 = ops.std(s.r1, 16), ops.std(s.r1, RV_LONG)
    atr = ops.mean(s.tr, ATR_BARS)
    close_t = ops.cur(bars.close)
    cols = {
        **_returns(ops, s, rv96),
        "atr_pct": _safe_div(atr, close_t),
        "rsi_14": _rsi(ops, s),
        **_trend(ops, bars.close, atr),
        **_bands(ops, bars.close, close_t),
        **_volume(ops, s.lv),
        **_ranges(ops, bars, close_t),
        **_volatility(ops, s, rv16, rv96),
        "hour_utc": _hour_utc(ops, bars),
    }
    return _stack(cols, latest=latest)


def feature_matrix(bars: Bars) -> F64:
    """Features at every bar: ``(symbols, bars, N_FEATURES)``; the first ``WINDOW - 1`` bars are NaN."""
    return _compute(bars, latest=False)


def latest_features(bars: Bars) -> F64:
    """Features at the last bar only: ``(symbols, N_FEATURES)``; NaN rows when fewer than WINDOW bars."""
    out: F64 = _compute(bars, latest=True)[:, 0, :]
    return out


def index(name: str) -> int:
    """Column of a feature by name."""
    return FEATURE_NAMES.index(name)


def return_lags(bars: Bars, *, latest: bool = False) -> F64:
    """1-bar log returns at lags ``0 … LAGS − 1`` in units of the current ``rv_96``.

    ``(symbols, bars, LAGS)`` with NaN during the same warm-up as the features, or with
    ``latest`` the last bar only: ``(symbols, LAGS)``. Reads bars ``t − 96 − 1 … t`` only.
    """
    if bars.n_bars < WINDOW:
        shape = (bars.n_symbols, LAGS) if latest else (bars.n_symbols, bars.n_bars, LAGS)
        return np.full(shape, np.nan)
    c = bars.close[:, -(RV_LONG + 1) :] if latest else bars.close
    with np.errstate(divide="ignore", invalid="ignore"):
        r1 = np.diff(np.log(c), axis=1)
    ops = _Ops(c.shape[1] - 1, latest=latest)
    rv96 = ops.std(r1, RV_LONG)  # (S, T - 1) or (S, 1)
    cols = [_safe_div(ops.lag(r1, k) if not latest else r1[:, r1.shape[1] - 1 - k : r1.shape[1] - k], rv96)
            for k in range(LAGS)]
    out: F64 = np.stack(cols, axis=2)
    out[~np.isfinite(out)] = np.nan
    if latest:
        lat: F64 = out[:, 0, :]
        return lat
    full = np.full((bars.n_symbols, bars.n_bars, LAGS), np.nan)
    full[:, 1:, :] = out
    full[:, : WINDOW - 1, :] = np.nan
    return full
