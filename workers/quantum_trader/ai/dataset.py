"""Training rows, labels and walk-forward folds (pure numpy, no I/O).

* Rows: one per (symbol, bar) with a full feature window and a known future for
  every horizon; pooled across symbols (the model learns one mapping for all).
* Labels: direction of the log return over ``H`` bars. Training drops rows inside
  a dead band (``|return| ≤ DEAD_BAND_SIGMA · rv_16 · √H``) so noise is not
  labelled as signal; evaluation and calibration use every row (the question
  asked at inference is "P(close[t+H] > close[t])", with no dead band).
* Folds: time is cut into ``n_blocks`` contiguous blocks of bars; the model for
  block ``k`` trains only on bars before it, minus a gap of ``purge + embargo``
  bars so that no training label window ``[t, t + max(H)]`` reaches into the
  test block or the embargo before it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from quantum_trader.ai.features import WINDOW, Bars, feature_matrix, index, return_lags

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

DEAD_BAND_SIGMA: Final = 0.25


@dataclass(frozen=True, slots=True)
class Dataset:
    """Pooled rows. ``fwd[h]`` is the forward log return over ``h`` bars of each row."""

    x: F64  # (N, F)
    fwd: Mapping[int, F64]
    t: I64  # bar index on the common grid
    sym: I64  # symbol index
    ts: I64  # bar open time (ms)
    rv: F64  # rv_16 at the row (for the dead band)
    symbols: tuple[str, ...]
    lags: F64  # (N, LAGS) 1-bar returns at lags 0..LAGS-1 in units of rv_96 (baseline inputs)
    oracle: F64 | None = None  # P(up over primary horizon) from the data generator, when known

    @property
    def n(self) -> int:
        return int(self.x.shape[0])

    def label_up(self, h: int) -> F64:
        """1.0 where the close ``h`` bars later is higher, else 0.0 (every row)."""
        out: F64 = (self.fwd[h] > 0.0).astype(np.float64)
        return out

    def trainable(self, h: int, *, dead_band: float = DEAD_BAND_SIGMA) -> B:
        """Rows outside the dead band of horizon ``h``."""
        band = dead_band * self.rv * np.sqrt(float(h))
        out: B = np.abs(self.fwd[h]) > band
        return out

    def subset(self, mask: B) -> Dataset:
        return Dataset(
            x=self.x[mask],
            fwd={h: f[mask] for h, f in self.fwd.items()},
            t=self.t[mask],
            sym=self.sym[mask],
            ts=self.ts[mask],
            rv=self.rv[mask],
            symbols=self.symbols,
            lags=self.lags[mask],
            oracle=None if self.oracle is None else self.oracle[mask],
        )

    def with_permuted_returns(self, seed: int) -> Dataset:
        """The same rows with forward returns shuffled across rows (destroys any real signal)."""
        perm = np.random.default_rng(seed).permutation(self.n)
        return Dataset(
            x=self.x,
            fwd={h: f[perm] for h, f in self.fwd.items()},
            t=self.t,
            sym=self.sym,
            ts=self.ts,
            rv=self.rv[perm],
            symbols=self.symbols,
            lags=self.lags,
            oracle=None,
        )


def forward_returns(close: F64, h: int) -> F64:
    """``log(close[t + h] / close[t])`` per symbol and bar; NaN where the future is unknown."""
    out = np.full_like(close, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        out[:, : close.shape[1] - h] = np.log(close[:, h:] / close[:, : close.shape[1] - h])
    return out


def build_dataset(
    bars: Bars,
    *,
    ts: I64,
    symbols: tuple[str, ...],
    horizons: tuple[int, ...],
    oracle: F64 | None = None,
) -> Dataset:
    """Pool every (symbol, bar) that has a full feature window and a known future for all horizons.

    ``ts`` is the bar grid (open times, ms) shared by all symbols; ``oracle`` an optional
    ``(symbols, bars)`` array of P(up over the first horizon).
    """
    if bars.n_symbols != len(symbols) or bars.n_bars != ts.shape[0]:
        raise ValueError("bars, symbols and ts disagree in shape")
    feats = feature_matrix(bars)
    lags = return_lags(bars)
    fwd = {h: forward_returns(bars.close, h) for h in horizons}
    ok = np.all(np.isfinite(feats), axis=2) & np.all(np.isfinite(lags), axis=2)
    for f in fwd.values():
        ok &= np.isfinite(f)
    if oracle is not None:
        ok &= np.isfinite(oracle)
    sym_i, t_i = np.nonzero(ok)
    order = np.lexsort((sym_i, t_i))  # time-major: rows sorted by bar, then symbol
    sym_i, t_i = sym_i[order], t_i[order]
    return Dataset(
        x=np.ascontiguousarray(feats[sym_i, t_i, :]),
        fwd={h: f[sym_i, t_i] for h, f in fwd.items()},
        t=t_i.astype(np.int64),
        sym=sym_i.astype(np.int64),
        ts=ts[t_i].astype(np.int64),
        rv=feats[sym_i, t_i, index("rv_16")],
        symbols=symbols,
        lags=np.ascontiguousarray(lags[sym_i, t_i, :]),
        oracle=None if oracle is None else oracle[sym_i, t_i],
    )


@dataclass(frozen=True, slots=True)
class Fold:
    """One walk-forward step: train strictly before ``test_start - gap``; test on the block."""

    k: int
    test_start: int  # first bar index of the test block
    test_end: int  # last bar index of the test block (inclusive)
    train_end: int  # last bar index a training row may have (inclusive)

    def train_mask(self, t: I64) -> B:
        out: B = t <= self.train_end
        return out

    def test_mask(self, t: I64) -> B:
        out: B = (t >= self.test_start) & (t <= self.test_end)
        return out


def block_edges(t: I64, n_blocks: int) -> list[tuple[int, int]]:
    """``n_blocks`` contiguous, equal spans of the bars present in ``t`` (inclusive edges)."""
    if n_blocks < 2:
        raise ValueError("need at least two blocks")
    lo, hi = int(t.min()), int(t.max())
    cuts = np.linspace(lo, hi + 1, n_blocks + 1).round().astype(int)
    return [(int(cuts[i]), int(cuts[i + 1]) - 1) for i in range(n_blocks)]


def walk_forward_folds(t: I64, *, n_blocks: int, purge: int, embargo: int, first: int = 1) -> list[Fold]:
    """Folds for test blocks ``first .. n_blocks - 1``.

    A training row at bar ``t`` has a label window ``[t, t + purge]`` (``purge`` = the
    longest horizon); it must end before the embargo that precedes the test block:
    ``t + purge < test_start - embargo``.
    """
    if purge < 0 or embargo < 0:
        raise ValueError("purge and embargo must be >= 0")
    edges = block_edges(t, n_blocks)
    folds = []
    for k in range(first, n_blocks):
        start, end = edges[k]
        folds.append(Fold(k=k, test_start=start, test_end=end, train_end=start - embargo - purge - 1))
    return folds


def data_hash(bars: Bars, *, ts: I64, symbols: tuple[str, ...]) -> str:
    """First 16 hex of a SHA-256 over the symbols, the bar grid and the OHLCV values."""
    h = hashlib.sha256()
    h.update(",".join(symbols).encode())
    h.update(np.ascontiguousarray(ts, dtype=np.int64).tobytes())
    for arr in (bars.high, bars.low, bars.close, bars.volume):
        h.update(np.ascontiguousarray(arr, dtype=np.float64).tobytes())
    return h.hexdigest()[:16]


__all__ = [
    "DEAD_BAND_SIGMA",
    "WINDOW",
    "Dataset",
    "Fold",
    "block_edges",
    "build_dataset",
    "data_hash",
    "forward_returns",
    "walk_forward_folds",
]
