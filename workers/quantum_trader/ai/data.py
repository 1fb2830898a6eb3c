"""Klines → aligned 2-D bar arrays, with a reason for every symbol left out.

:func:`align` is pure (klines in, arrays + skip reasons out); :func:`fetch_klines`
is the only I/O: concurrent ``exchange.klines`` calls, each failure turned into a
skip reason instead of an exception.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from quantum_trader.ai.features import Bars
from quantum_trader.market.base import TIMEFRAME_MS, Exchange, ExchangeError, Klines

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

MAX_NAN_SHARE: Final = 0.05
FETCH_CONCURRENCY: Final = 32

# Skip reason codes (AI_SKIPPED label values; bounded set).
SKIP_TOO_LITTLE_HISTORY: Final = "too_little_history"
SKIP_STALE: Final = "stale"
SKIP_GAPS: Final = "gaps"
SKIP_NAN_HEAVY: Final = "nan_heavy"
SKIP_BAD_PRICES: Final = "bad_prices"
SKIP_FETCH_FAILED: Final = "fetch_failed"
SKIP_FEATURES_NAN: Final = "features_nan"


@dataclass(frozen=True, slots=True)
class Aligned:
    """Symbols on one bar grid. ``skipped`` maps each symbol left out to its reason code."""

    bars: Bars
    ts: I64
    symbols: tuple[str, ...]
    skipped: Mapping[str, str] = field(default_factory=dict)


def _ffill(x: F64) -> F64:
    """Forward-fill NaNs along the bar axis of a 1-D series (leading NaNs take the first value)."""
    bad = ~np.isfinite(x)
    if not bad.any():
        return x
    idx = np.where(~bad, np.arange(x.shape[0]), 0)
    np.maximum.accumulate(idx, out=idx)
    out = x[idx]
    first = np.flatnonzero(~bad)
    if first.size:
        out[: first[0]] = x[first[0]]
    return out


@dataclass(frozen=True, slots=True)
class _Block:
    """The candidates' bars stacked, ``(candidates, n_bars)`` each: NaN prices forward-filled where few."""

    ts: I64
    high: F64
    low: F64
    close: F64
    volume: F64
    nan_heavy: B  # more than max_nan_share non-finite prices, or the newest bar's: left unfilled


def _window(k: Klines | str, *, n_bars: int, last_open_ms: int) -> tuple[Klines, slice] | str:
    """The rows of the ``n_bars`` bars ending at the one opened at ``last_open_ms``, or why there are none."""
    if isinstance(k, str):
        return SKIP_FETCH_FAILED
    if len(k) == 0 or int(k.ts[-1]) < last_open_ms:
        return SKIP_STALE if len(k) else SKIP_TOO_LITTLE_HISTORY
    end = len(k) if int(k.ts[-1]) == last_open_ms else int(np.searchsorted(k.ts, last_open_ms, side="right"))
    if end < n_bars:
        return SKIP_TOO_LITTLE_HISTORY
    return k, slice(end - n_bars, end)


def _stack(cuts: list[tuple[Klines, slice]], *, max_nan_share: float) -> _Block:
    """One array per field, vectorised over the candidates; missing volume counts as none traded."""
    ts = np.vstack([k.ts[sl] for k, sl in cuts])
    high = np.vstack([k.high[sl] for k, sl in cuts]).astype(np.float64, copy=False)
    low = np.vstack([k.low[sl] for k, sl in cuts]).astype(np.float64, copy=False)
    close = np.vstack([k.close[sl] for k, sl in cuts]).astype(np.float64, copy=False)
    volume = np.vstack([k.volume[sl] for k, sl in cuts]).astype(np.float64, copy=False)
    bad = ~(np.isfinite(close) & np.isfinite(high) & np.isfinite(low))
    nan_heavy = (bad.mean(axis=1) > max_nan_share) | bad[:, -1]
    for i in np.flatnonzero(bad.any(axis=1) & ~nan_heavy):
        high[i], low[i], close[i] = _ffill(high[i].copy()), _ffill(low[i].copy()), _ffill(close[i].copy())
    volume = np.where(np.isfinite(volume), volume, 0.0)
    return _Block(ts=ts, high=high, low=low, close=close, volume=volume, nan_heavy=nan_heavy)


def _screen(block: _Block, grid: I64) -> tuple[list[tuple[int, str]], B]:
    """``(candidate, reason)`` of every row left out (gaps first, then NaN-heavy, then bad prices), and the keep mask."""
    gaps = np.any(block.ts != grid[None, :], axis=1)
    nan_heavy = block.nan_heavy
    with np.errstate(invalid="ignore"):
        bad_prices = (np.nanmin(block.close, axis=1) <= 0.0) | (np.nanmin(block.low, axis=1) <= 0.0)
    keep = np.ones(block.ts.shape[0], dtype=bool)
    dropped: list[tuple[int, str]] = []
    for reason, mask in ((SKIP_GAPS, gaps), (SKIP_NAN_HEAVY, nan_heavy & ~gaps),
                         (SKIP_BAD_PRICES, bad_prices & ~gaps & ~nan_heavy)):
        dropped += [(int(i), reason) for i in np.flatnonzero(mask & keep)]
        keep &= ~mask
    return dropped, keep


def align(
    klines: Mapping[str, Klines | str],
    *,
    n_bars: int,
    last_open_ms: int,
    timeframe: str,
    max_nan_share: float = MAX_NAN_SHARE,
) -> Aligned:
    """The last ``n_bars`` bars of every usable symbol, ending at the bar opened at ``last_open_ms``.

    A value that is a string is a fetch failure reason. Symbols are kept in input order.
    """
    tf = TIMEFRAME_MS[timeframe]
    grid = last_open_ms - (n_bars - 1 - np.arange(n_bars, dtype=np.int64)) * tf
    skipped: dict[str, str] = {}
    cand: list[str] = []
    cuts: list[tuple[Klines, slice]] = []
    for symbol, k in klines.items():  # cheap per-symbol checks; the array work is vectorised below
        cut = _window(k, n_bars=n_bars, last_open_ms=last_open_ms)
        if isinstance(cut, str):
            skipped[symbol] = cut
            continue
        cand.append(symbol)
        cuts.append(cut)
    if not cand:
        empty = np.zeros((0, n_bars))
        return Aligned(bars=Bars(empty, empty, empty, empty, grid), ts=grid, symbols=(), skipped=skipped)
    block = _stack(cuts, max_nan_share=max_nan_share)
    dropped, keep = _screen(block, grid)
    skipped.update((cand[i], reason) for i, reason in dropped)
    bars = Bars(high=block.high[keep], low=block.low[keep], close=block.close[keep], volume=block.volume[keep], open_ms=grid)
    return Aligned(bars=bars, ts=grid, symbols=tuple(s for s, k in zip(cand, keep.tolist(), strict=True) if k),
                  skipped=skipped)


def last_closed_open_ms(now_ms: int, timeframe: str) -> int:
    """Open time of the newest bar that has closed at ``now_ms``."""
    tf = TIMEFRAME_MS[timeframe]
    return now_ms // tf * tf - tf


async def fetch_klines(
    exchange: Exchange,
    symbols: Sequence[str],
    *,
    timeframe: str,
    limit: int,
    end_ms: int,
    concurrency: int = FETCH_CONCURRENCY,
) -> dict[str, Klines | str]:
    """``symbol → Klines`` or ``symbol → error reason`` (never raises for one bad symbol)."""
    sem = asyncio.Semaphore(concurrency)

    async def one(symbol: str) -> Klines | str:
        async with sem:
            try:
                return await exchange.klines(symbol, timeframe, limit=limit, end_ms=end_ms)
            except ExchangeError as exc:
                return exc.reason
            except (OSError, TimeoutError, ValueError) as exc:
                return type(exc).__name__

    results = await asyncio.gather(*(one(s) for s in symbols))
    return dict(zip(symbols, results, strict=True))
