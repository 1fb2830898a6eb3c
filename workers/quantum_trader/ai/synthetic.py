"""A small planted-signal market for tests and benchmarks (pure numpy; not a trading venue).

Each symbol's 1-bar log return is ``r[t+1] = mu[t] + sigma * eps``, where the hidden
drift ``mu`` follows an AR(1) (``mu[t] = phi * mu[t-1] + eta``). Knowing ``mu[t]``,
the oracle probability that the close ``h`` bars later is higher is exact:
``Phi(E / sd)`` with ``E = mu[t] * sum_{k<h} phi^k`` and ``sd`` the noise of the
next ``h`` returns (return noise plus future drift innovations).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from quantum_trader.ai.features import Bars

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class SyntheticMarket:
    bars: Bars
    ts: I64
    symbols: tuple[str, ...]
    mu: F64
    phi: float
    sigma: F64  # per symbol
    eta_sd: F64  # per symbol

    def oracle(self, h: int) -> F64:
        """``(symbols, bars)`` P(close[t+h] > close[t] | mu[t])."""
        from scipy.special import ndtr

        k = np.arange(h)
        mean_gain = (self.phi**k).sum()
        # future innovation eta[t+j] (j = 1..h-1) moves returns t+j+1 .. t+h
        inno = np.array([((self.phi ** np.arange(h - j)).sum()) ** 2 for j in range(1, h)]).sum()
        sd = np.sqrt(h * self.sigma**2 + inno * self.eta_sd**2)
        out: F64 = ndtr(self.mu * mean_gain / sd[:, None])
        return out


def make_market(
    *,
    n_symbols: int,
    n_bars: int,
    seed: int = 0,
    phi: float = 0.98,
    signal: float = 0.3,
    tf_ms: int = 900_000,
    start_ms: int = 1_700_000_000_000 - 1_700_000_000_000 % 900_000,
) -> SyntheticMarket:
    """``signal`` = stationary sd of the drift relative to the per-bar return noise."""
    rng = np.random.default_rng(seed)
    sigma = rng.uniform(0.002, 0.008, n_symbols)
    mu_sd = signal * sigma
    eta_sd = mu_sd * np.sqrt(1.0 - phi**2)
    mu = np.empty((n_symbols, n_bars))
    mu[:, 0] = rng.normal(0.0, mu_sd)
    eta = rng.normal(0.0, 1.0, (n_symbols, n_bars)) * eta_sd[:, None]
    for t in range(1, n_bars):
        mu[:, t] = phi * mu[:, t - 1] + eta[:, t]
    r = np.zeros((n_symbols, n_bars))
    r[:, 1:] = mu[:, :-1] + rng.normal(0.0, 1.0, (n_symbols, n_bars - 1)) * sigma[:, None]
    price0 = rng.uniform(0.5, 50_000.0, n_symbols)
    close = price0[:, None] * np.exp(np.cumsum(r, axis=1))
    open_ = np.empty_like(close)
    open_[:, 0] = close[:, 0]
    open_[:, 1:] = close[:, :-1]
    wick = np.abs(rng.normal(0.0, 1.0, (2, n_symbols, n_bars))) * sigma[None, :, None] * 0.5
    high = np.maximum(open_, close) * (1.0 + wick[0])
    low = np.minimum(open_, close) * (1.0 - wick[1])
    volume = rng.lognormal(10.0, 0.5, (n_symbols, n_bars)) * (1.0 + 50.0 * np.abs(r))
    ts = (start_ms - (n_bars - 1 - np.arange(n_bars)) * tf_ms).astype(np.int64)
    symbols = tuple(f"SYN{i:03d}USDT" for i in range(n_symbols))
    return SyntheticMarket(
        bars=Bars(high=high, low=low, close=close, volume=volume, open_ms=ts),
        ts=ts,
        symbols=symbols,
        mu=mu,
        phi=phi,
        sigma=sigma,
        eta_sd=eta_sd,
    )


def make_interaction_market(
    *, n_symbols: int, n_bars: int, seed: int = 0, strength: float = 0.25, tf_ms: int = 900_000
) -> SyntheticMarket:
    """A market whose only predictability is non-linear: an interaction no lagged-return line can use.

    ``r[t+1] = strength · sigma · sign(r[t-15] + … + r[t]) · (|r[t]| / sigma − 0.8) + sigma · eps``:
    a large last return continues in the direction of the 16-bar trend, a small one reverses it.
    Its mean is zero given any single lag (so reversal, momentum and a linear model on lags find
    nothing), a model seeing both the 1-bar and the 16-bar return can use it, and one seeing the
    last bar only cannot. ``mu`` is the planted drift of the next bar (``phi`` = 0, no oracle horizon
    beyond 1 bar).
    """
    rng = np.random.default_rng(seed)
    sigma = rng.uniform(0.002, 0.008, n_symbols)
    eps = rng.normal(0.0, 1.0, (n_symbols, n_bars))
    r = np.zeros((n_symbols, n_bars))
    mu = np.zeros((n_symbols, n_bars))
    trend = np.zeros(n_symbols)
    for t in range(1, n_bars):
        r[:, t] = mu[:, t - 1] + sigma * eps[:, t]
        trend += r[:, t] - (r[:, t - 16] if t >= 16 else 0.0)
        mu[:, t] = strength * sigma * np.sign(trend) * (np.abs(r[:, t]) / sigma - 0.8)
    price0 = rng.uniform(0.5, 50_000.0, n_symbols)
    close = price0[:, None] * np.exp(np.cumsum(r, axis=1))
    open_ = np.concatenate([close[:, :1], close[:, :-1]], axis=1)
    wick = np.abs(rng.normal(0.0, 1.0, (2, n_symbols, n_bars))) * sigma[None, :, None] * 0.5
    start_ms = 1_700_000_000_000 - 1_700_000_000_000 % tf_ms
    ts = (start_ms - (n_bars - 1 - np.arange(n_bars)) * tf_ms).astype(np.int64)
    return SyntheticMarket(
        bars=Bars(high=np.maximum(open_, close) * (1.0 + wick[0]), low=np.minimum(open_, close) * (1.0 - wick[1]),
                  close=close, volume=rng.lognormal(10.0, 0.5, (n_symbols, n_bars)) * (1.0 + 50.0 * np.abs(r)),
                  open_ms=ts),
        ts=ts,
        symbols=tuple(f"NLN{i:03d}USDT" for i in range(n_symbols)),
        mu=mu,
        phi=0.0,
        sigma=sigma,
        eta_sd=np.zeros(n_symbols),
    )
