"""Training rows, labels and walk-forward folds (pure numpy, no I/O).

* Rows: one per (symbol, bar) with a full feature window and a known future for
  every horizon; pooled across symbols (the model learns one mapping for all).
* Labels: direction of the log return over ``H`` bars — or, with :class:`ExitRules`, the
  triple-barrier label of :func:`barrier_labels` for the exit horizon. Training drops rows inside
  a dead band (``|return| ≤ DEAD_BAND_SIGMA · rv_16 · √H``) so noise is not
  labelled as signal; evaluation and calibration use every row (the question
  asked at inference is "P(close[t+H] > close[t])", with no dead band).
* Exits: with :class:`ExitRules` (the executor's stop-loss and take-profit in ATRs, from the
  profile's ``router.stopLossAtr`` / ``router.takeProfitAtr``, and a time exit at the label
  horizon) every row also carries the log return a long and a short opened at its close would
  have earned under those exits (:func:`exit_returns`); the meta-label model learns
  "profitable after costs" from these, not from a fixed-horizon sign.
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
from quantum_trader.core.profile import AiSettings, RouterSettings

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
    exit_long: F64 | None = None  # log return of a long under the exit rules (None: no rules given)
    exit_short: F64 | None = None  # the same for a short
    hold_long: F64 | None = None  # bars a long stays open under the exit rules (1 … horizon)
    hold_short: F64 | None = None  # the same for a short
    barrier_up: F64 | None = None  # barrier label of the exit horizon (see barrier_labels), 1.0 = up
    barrier_horizon: int = 0  # the horizon whose label is the barrier label (0: none)

    @property
    def n(self) -> int:
        return int(self.x.shape[0])

    def label_up(self, h: int) -> F64:
        """1.0 for "up" over ``h`` bars, else 0.0 (every row): the barrier label for the exit
        horizon when the dataset has exit rules, else whether the close ``h`` bars later is higher."""
        if self.barrier_up is not None and h == self.barrier_horizon:
            return self.barrier_up
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
            exit_long=None if self.exit_long is None else self.exit_long[mask],
            exit_short=None if self.exit_short is None else self.exit_short[mask],
            hold_long=None if self.hold_long is None else self.hold_long[mask],
            hold_short=None if self.hold_short is None else self.hold_short[mask],
            barrier_up=None if self.barrier_up is None else self.barrier_up[mask],
            barrier_horizon=self.barrier_horizon,
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
            exit_long=None if self.exit_long is None else self.exit_long[perm],
            exit_short=None if self.exit_short is None else self.exit_short[perm],
            hold_long=None if self.hold_long is None else self.hold_long[perm],
            hold_short=None if self.hold_short is None else self.hold_short[perm],
            barrier_up=None if self.barrier_up is None else self.barrier_up[perm],
            barrier_horizon=self.barrier_horizon,
        )


def forward_returns(close: F64, h: int) -> F64:
    """``log(close[t + h] / close[t])`` per symbol and bar; NaN where the future is unknown."""
    out = np.full_like(close, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        out[:, : close.shape[1] - h] = np.log(close[:, h:] / close[:, : close.shape[1] - h])
    return out


@dataclass(frozen=True, slots=True)
class ExitRules:
    """How a position opened at a bar's close ends: the first of stop, take-profit, time."""

    stop_atr: float  # stop-loss distance in ATR(14) (profile router.stopLossAtr, default 1.5)
    take_atr: float  # take-profit distance in ATR(14) (profile router.takeProfitAtr, default 3.0)
    horizon: int  # bars until the time exit (profile ai.horizonBars)

    @classmethod
    def from_settings(cls, router: RouterSettings, ai: AiSettings) -> ExitRules:
        """The exits ``qt train`` labels with: the profile's stop and take-profit, ``ai.horizonBars``."""
        return cls(stop_atr=router.stop_loss_atr, take_atr=router.take_profit_atr, horizon=ai.horizon_bars)


def exit_returns(bars: Bars, *, atr: F64, rules: ExitRules) -> tuple[F64, F64]:
    """``(long, short)`` log returns per (symbol, bar) of a position opened at the bar's close.

    The levels are ``close ± distance · atr`` (``atr`` in price units, per symbol and bar). Bars
    ``t+1 … t+horizon`` are scanned in order; a bar whose range crosses the stop exits at the stop,
    one that crosses the take-profit exits there, and a bar that crosses both counts as the stop
    (the conservative reading: bar data cannot tell which came first). No exit by the horizon: the
    close ``horizon`` bars later. NaN where the future or the ATR is unknown.
    """
    out_l, out_s, _, _ = exit_scan(bars, atr=atr, rules=rules)
    return out_l, out_s


def exit_scan(bars: Bars, *, atr: F64, rules: ExitRules) -> tuple[F64, F64, F64, F64]:
    """:func:`exit_returns` and the bars each position stayed open: ``(long, short, held_long,
    held_short)``; ``held`` is the bar of the first exit, 1 … horizon (the time exit: horizon)."""
    c, hi, lo = bars.close, bars.high, bars.low
    n = c.shape[1]
    h = rules.horizon
    out_l = np.full_like(c, np.nan)
    out_s = np.full_like(c, np.nan)
    held_l = np.full_like(c, np.nan)
    held_s = np.full_like(c, np.nan)
    if n <= h:
        return out_l, out_s, held_l, held_s
    m = n - h
    c0, a0 = c[:, :m], atr[:, :m]
    levels = {
        "l_stop": c0 - rules.stop_atr * a0, "l_take": c0 + rules.take_atr * a0,
        "s_stop": c0 + rules.stop_atr * a0, "s_take": c0 - rules.take_atr * a0,
    }
    exit_l = np.full_like(c0, np.nan)
    exit_s = np.full_like(c0, np.nan)
    bar_l = np.full_like(c0, float(h))
    bar_s = np.full_like(c0, float(h))
    for k in range(1, h + 1):
        bh, bl = hi[:, k : k + m], lo[:, k : k + m]
        open_l, open_s = np.isnan(exit_l), np.isnan(exit_s)
        l_stop, l_take = open_l & (bl <= levels["l_stop"]), open_l & (bh >= levels["l_take"])
        s_stop, s_take = open_s & (bh >= levels["s_stop"]), open_s & (bl <= levels["s_take"])
        exit_l = np.where(l_stop, levels["l_stop"], np.where(l_take, levels["l_take"], exit_l))
        exit_s = np.where(s_stop, levels["s_stop"], np.where(s_take, levels["s_take"], exit_s))
        bar_l = np.where(l_stop | l_take, float(k), bar_l)
        bar_s = np.where(s_stop | s_take, float(k), bar_s)
    last = c[:, h : h + m]
    exit_l = np.where(np.isnan(exit_l), last, exit_l)
    exit_s = np.where(np.isnan(exit_s), last, exit_s)
    with np.errstate(divide="ignore", invalid="ignore"):
        out_l[:, :m] = np.log(np.maximum(exit_l, 1e-300) / c0)
        out_s[:, :m] = -np.log(np.maximum(exit_s, 1e-300) / c0)
    held_l[:, :m] = bar_l
    held_s[:, :m] = bar_s
    bad = ~np.isfinite(a0)
    for arr in (out_l, out_s, held_l, held_s):
        arr[:, :m][bad] = np.nan
    return out_l, out_s, held_l, held_s


def barrier_labels(bars: Bars, *, atr: F64, rules: ExitRules) -> F64:
    """Triple-barrier direction label per (symbol, bar): 1.0 when the price reaches
    ``close + stop_atr · atr`` before ``close − stop_atr · atr`` within ``horizon`` bars, 0.0 when the
    lower one comes first; when neither is reached, or one bar crosses both, the sign of the
    return at the horizon (1.0 if the close is higher). NaN where the future is unknown.

    The barriers sit at the executor's stop distance: "up" means a long would not have been
    stopped before a short was (and a short would have been), which is the question a BUY/SELL
    signal under those exits asks; symmetric, so P(down) = 1 − P(up) stays true.
    """
    c, hi, lo = bars.close, bars.high, bars.low
    n, h = c.shape[1], rules.horizon
    out = np.full_like(c, np.nan)
    if n <= h:
        return out
    m = n - h
    c0, a0 = c[:, :m], atr[:, :m]
    upper, lower = c0 + rules.stop_atr * a0, c0 - rules.stop_atr * a0
    label = np.full_like(c0, np.nan)
    for k in range(1, h + 1):
        bh, bl = hi[:, k : k + m], lo[:, k : k + m]
        open_ = np.isnan(label)
        up, down = open_ & (bh >= upper), open_ & (bl <= lower)
        label = np.where(up & ~down, 1.0, np.where(down & ~up, 0.0, label))
        label = np.where(up & down, -1.0, label)  # ambiguous bar: decided by the horizon close below
    at_h = (c[:, h : h + m] > c0).astype(np.float64)
    label = np.where(np.isnan(label) | (label < 0), at_h, label)
    label[~np.isfinite(a0)] = np.nan
    out[:, :m] = label
    return out


def build_dataset(
    bars: Bars,
    *,
    ts: I64,
    symbols: tuple[str, ...],
    horizons: tuple[int, ...],
    oracle: F64 | None = None,
    exits: ExitRules | None = None,
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
    ex_l = ex_s = hold_l = hold_s = barrier = None
    if exits is not None:
        atr = feats[:, :, index("atr_pct")] * bars.close
        ex_l, ex_s, hold_l, hold_s = exit_scan(bars, atr=atr, rules=exits)
        barrier = barrier_labels(bars, atr=atr, rules=exits)
        ok &= np.isfinite(ex_l) & np.isfinite(ex_s) & np.isfinite(barrier)
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
        exit_long=None if ex_l is None else ex_l[sym_i, t_i],
        exit_short=None if ex_s is None else ex_s[sym_i, t_i],
        hold_long=None if hold_l is None else hold_l[sym_i, t_i],
        hold_short=None if hold_s is None else hold_s[sym_i, t_i],
        barrier_up=None if barrier is None else barrier[sym_i, t_i],
        barrier_horizon=0 if exits is None else exits.horizon,
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
    "ExitRules",
    "Fold",
    "barrier_labels",
    "block_edges",
    "build_dataset",
    "data_hash",
    "exit_returns",
    "exit_scan",
    "forward_returns",
    "walk_forward_folds",
]
