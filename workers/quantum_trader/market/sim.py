"""The simulated exchange: a deterministic market that is a pure function of (seed, symbol, time).

Generative model (docs/market.md has the full write-up):

* **Daily layer** per symbol (spans of 1024 days from 2020-01-01, one RNG per span): a regime
  chain (range / trend / high-vol, geometric durations), a log-volatility AR(1), a trend drift in
  trend regimes, and the day's log-price increment ``ΔL_d = √96·σ_d·z_d + 96·μ_d``. Cumulating the
  increments gives the log price at every midnight (anchored so the price on 2026-01-01 is the
  listing's reference price). Pegged assets instead hold ``log(peg) + small noise``.
* **Intraday 15m layer** per (symbol, day), one RNG per group of 8 days: stochastic intraday
  volatility ``σ_t`` (AR(1) in logs, with a UTC seasonality), shocks ``ε_t`` and a *planted,
  non-linear, regime-dependent signal* ``r_t = σ_t·(ε_t + β_regime·f(s_{t−1})) + μ_d``: ``s`` is a
  same-day EMA of the bar's standardised moves and ``f`` an odd function orthogonal to its argument
  (small moves revert, large ones continue), so returns carry no linear autocorrelation from it.
  The shocks are conditioned (Gaussian kriging) on the day's increment from the daily layer, so
  each day ends where the next begins; the bars' variances add up to 1.5× the day's, so paths
  revert inside the day (1-day variance ratio ≈ 0.9). The oracle is exact up to a Gaussian
  moment-matching of the state's law.
* **Funding** every 8 h: 1 bp plus up to ±2 bps with the last 8 h's move, small noise.
* **1m layer** per (symbol, day): a Brownian bridge inside every 15m bar, mapped monotonically so
  the minute bars aggregate *exactly* to the 15m bar (open, high, low, close, volume).
  5m aggregates 1m; 1h, 4h and 1d aggregate 15m.

Nothing here reads a clock except :class:`SimExchange`, which asks its injected clock for "now".
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache
from statistics import NormalDist
from typing import ClassVar, Final, TypeVar

import numpy as np
import numpy.typing as npt

from quantum_trader.core.clock import Clock
from quantum_trader.core.profile import ExchangeSettings, FaultSettings
from quantum_trader.market.base import (
    TIMEFRAME_MS,
    ExchangeError,
    FundingRate,
    Klines,
    Market,
    OrderRequest,
    OrderResult,
    PerSymbol,
    Position,
    SymbolFailure,
    Ticker,
    per_symbol,
)
from quantum_trader.market.symbols import (
    Listing,
    filters_for_price,
    listings,
    min_notional_for,
    unit_hash,
)

_T = TypeVar("_T")
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

EPOCH_MS: Final = 1_577_836_800_000  # 2020-01-01T00:00:00Z: the sim's history starts here
DAY_MS: Final = 86_400_000
BAR_MS: Final = 900_000  # the 15m base bar
BARS: Final = 96  # 15m bars per day
MINUTES: Final = 15  # 1m bars per 15m bar
SPAN_DAYS: Final = 1024  # daily-layer spans, counted both ways from the reference day
REF_DAY: Final = 2192  # 2026-01-01: listing reference prices hold on this day (start of span 0)
DAY_GROUP: Final = 8  # days drawn from one RNG (the cache still holds single days)
MAX_LIMIT: Final = 200_000
TAKER_FEE: Final = 0.0004  # 4 bps

_N = NormalDist()
_ABS_MEAN: Final = math.sqrt(2.0 / math.pi)  # E|Z|
_ABS_SD: Final = math.sqrt(1.0 - 2.0 / math.pi)  # sd |Z|
FUNDING_MS: Final = 8 * 3_600_000  # perpetual funding every 8 h
FUNDING_BASE: Final = 1e-4  # 1 bp per 8 h: longs pay shorts on average
FUNDING_SWING: Final = 2e-4  # ± 2 bps with the last 8 h's move
FUNDING_NOISE: Final = 3e-5
FUNDING_CAP: Final = 3e-3
VOLUME_MOVE: Final = 0.35  # log-volume per sd of the bar's own |shock| (volume–|return| correlation)


def _bar_index() -> npt.NDArray[np.int64]:
    return np.arange(BARS, dtype=np.int64)


@dataclass(frozen=True, slots=True)
class ModelParams:
    """Parameters of the generative model (see docs/market.md for the facts the defaults produce)."""

    # β per regime (range, trend, high-vol): weight of the non-linear signal f(state) in each bar's
    # expected return, in units of the bar's volatility
    signal_beta: tuple[float, float, float] = (0.25, 0.35, 0.0)
    momentum_decay: float = 0.8  # a: EMA decay of the same-day state the signal reads (per 15m bar)
    signal_cap: float = 2.0  # |He3(x)/√6| is capped here before it is made orthogonal to x
    # weight of x itself in f: the state feeds on its own signal, which alone would add positive
    # autocorrelation; −0.3 cancels it (measured: 1h lag-1 autocorrelation ≈ 0)
    signal_linear: float = -0.3
    signal_he3: float = 1.0  # weight of the orthogonal non-linear part in f
    # Σ bar variances / the day's variance: > 1 makes the path revert inside the day (the daily layer
    # fixes the day's move), which sets the 1-day variance ratio of intraday returns
    intraday_excess: float = 1.5
    intraday_vol_phi: float = 0.92  # AR(1) of log σ_t per 15m bar
    intraday_vol_sd: float = 0.45  # stationary sd of log σ_t
    daily_vol_phi: float = 0.9  # AR(1) of the daily log-vol
    daily_vol_sd: float = 0.3  # stationary sd of the daily log-vol
    regime_mean_days: float = 6.0  # mean regime duration
    regime_probs: tuple[float, float, float] = (0.5, 0.35, 0.15)  # range, trend, high-vol
    regime_vol: tuple[float, float, float] = (0.75, 1.0, 2.0)  # volatility multiplier per regime
    trend_drift: float = 0.04  # trend regimes: drift per bar in units of that day's bar volatility
    wick_scale: float = 0.45  # intrabar excursion beyond open/close, in units of σ_t
    peg_noise: float = 1.5e-4  # pegged assets: sd of the daily log deviation from the peg
    price_band: float = 1.6  # B: log prices stay within about ±B of the reference price


REGIME_NAMES: Final = ("range", "trend", "high_vol")


@dataclass(frozen=True, slots=True)
class SymbolModel:
    """Static (seed-independent) character of one contract."""

    listing: Listing
    path_key: str  # the USDT perpetual whose price path this contract follows
    price_factor: float  # basis against the path (USDC twins, delivery contracts)
    daily_vol: float  # typical daily log-return sd
    quote_volume: float  # typical 24h quote volume (USD)
    spread_bps: float  # full bid/ask spread (bps)


def _path_key(listing: Listing) -> str:
    return f"{listing.base}USDT"


_MAJOR_VOLUME: Final = {
    "BTC": 1.5e10,
    "ETH": 9e9,
    "SOL": 2.5e9,
    "XRP": 1.5e9,
    "DOGE": 1.2e9,
    "BNB": 8e8,
    "ADA": 5e8,
    "TRX": 3e8,
}
_MAJOR_VOL: Final = {"BTC": 0.025, "ETH": 0.035, "BNB": 0.03, "TRX": 0.025}


def symbol_model(listing: Listing) -> SymbolModel:
    """The static character of a contract, from its name only (every seed shares it)."""
    key = _path_key(listing)
    u_vol = min(max(unit_hash("daily-vol", key), 1e-6), 1 - 1e-6)
    u_qv = min(max(unit_hash("quote-volume", key), 1e-6), 1 - 1e-6)
    if listing.peg is not None:
        daily_vol = 3e-4
    elif listing.asset_class == "stable":
        daily_vol = 0.009  # gold-backed tokens: gold-like volatility
    elif listing.asset_class == "major":
        daily_vol = _MAJOR_VOL.get(listing.base, 0.04)
    else:
        daily_vol = min(max(math.exp(math.log(0.055) + 0.3 * _N.inv_cdf(u_vol)), 0.025), 0.15)
    if listing.base in _MAJOR_VOLUME:
        qv = _MAJOR_VOLUME[listing.base]
    elif listing.base == "USDC":
        qv = 4e8
    elif listing.asset_class == "stable":
        qv = math.exp(math.log(1.5e7) + 1.0 * _N.inv_cdf(u_qv))
    else:
        # heavy tail: median 20M, a few symbols in the billions, ~5 % below 1M
        qv = math.exp(math.log(2e7) + 1.8 * _N.inv_cdf(u_qv))
    factor = 1.0
    if listing.quote == "USDC":
        qv *= 0.12
        factor = 1.0 + (unit_hash("usdc-basis", listing.symbol) - 0.5) * 4e-4
    if listing.contract == "delivery":
        qv *= 0.02
        factor = 1.0 + 0.002 + unit_hash("delivery-basis", listing.symbol) * 0.01
    if listing.status != "TRADING":
        qv = 0.0
    spread = min(max(0.1 * math.sqrt(1e9 / max(qv, 1.0)), 0.1), 30.0)
    if listing.peg is not None:
        spread = 0.2
    return SymbolModel(
        listing=listing,
        path_key=key,
        price_factor=factor,
        daily_vol=daily_vol,
        quote_volume=qv,
        spread_bps=spread,
    )


# -- seeded randomness ---------------------------------------------------------------------------


def _rng(*parts: object) -> np.random.Generator:
    """A PCG64 generator whose 128-bit state and increment come from BLAKE2b of the parts."""
    digest = hashlib.blake2b("|".join(str(p) for p in parts).encode(), digest_size=32).digest()
    bit_gen = np.random.PCG64(0)
    bit_gen.state = {
        "bit_generator": "PCG64",
        "state": {
            "state": int.from_bytes(digest[:16], "little"),
            "inc": int.from_bytes(digest[16:], "little") | 1,
        },
        "has_uint32": 0,
        "uinteger": 0,
    }
    return np.random.Generator(bit_gen)


def _ar1_matrix(n: int, phi: float) -> F64:
    """Lower-triangular M with M[t, k] = phi^(t−k): x = innov @ M.T is an AR(1) started at 0."""
    lag = np.subtract.outer(np.arange(n), np.arange(n))
    out: F64 = np.where(lag >= 0, phi ** lag.clip(0).astype(np.float64), 0.0)
    return out


_AR_CHUNK: Final = 32


@lru_cache(maxsize=16)
def _ar1_chunk(phi: float) -> tuple[F64, F64]:
    return _ar1_matrix(_AR_CHUNK, phi), phi ** np.arange(1, _AR_CHUNK + 1, dtype=np.float64)


def _ar1_filter(innov: F64, *, phi: float, init: float) -> F64:
    """x_t = phi·x_{t−1} + innov_t with x_{−1} = init (chunked: one matmul plus a short carry loop)."""
    n = innov.shape[0]
    rows = -(-n // _AR_CHUNK)
    padded = np.zeros(rows * _AR_CHUNK)
    padded[:n] = innov
    mat, powers = _ar1_chunk(phi)
    local = padded.reshape(rows, _AR_CHUNK) @ mat.T  # each chunk started at 0
    last = local[:, -1].tolist()
    carries = [init]
    decay = float(powers[-1])
    for r in range(rows - 1):
        carries.append(decay * carries[-1] + last[r])
    local += np.multiply.outer(np.asarray(carries), powers)
    out: F64 = local.reshape(-1)[:n]
    return out


# -- precomputed intraday matrices -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Signal:
    """The planted predictor f: bounded-ish, odd, E[f(Z)·Z] = 0 and E[f(Z)²] = 1 for Z ~ N(0, 1).

    f(x) = (clip(He3(x)/√6, ±cap) − κ·x) / ν: small moves of the state revert, large ones continue;
    being orthogonal to x, it adds no linear autocorrelation to returns (Stein's lemma), only
    non-linear predictability a model must find.
    """

    cap: float
    kappa: float
    norm: float
    linear: float
    he3: float
    nodes: F64  # Gauss–Hermite nodes and weights (probabilists'), for E[f(m + √q·Z)]
    weights: F64

    def __call__(self, x: F64) -> F64:
        he3 = np.clip((x * x * x - 3.0 * x) / math.sqrt(6.0), -self.cap, self.cap)
        out: F64 = self.he3 * (he3 - self.kappa * x) / self.norm + self.linear * x
        return out

    def moments(self, mean: F64, var: F64) -> tuple[F64, F64]:
        """E[f(Y)] and Var[f(Y)] for Y ~ N(mean, var) (elementwise)."""
        y = mean[..., None] + np.sqrt(var)[..., None] * self.nodes
        fy = self(y)
        m1: F64 = fy @ self.weights
        m2: F64 = (fy * fy) @ self.weights
        return m1, np.maximum(m2 - m1 * m1, 0.0)


@lru_cache(maxsize=8)
def make_signal(cap: float, linear: float = 0.0, he3_weight: float = 1.0) -> Signal:
    nodes, weights = np.polynomial.hermite_e.hermegauss(80)
    weights = weights / math.sqrt(2.0 * math.pi)
    he3 = np.clip((nodes**3 - 3.0 * nodes) / math.sqrt(6.0), -cap, cap)
    kappa = float(np.sum(weights * he3 * nodes))  # E[Z²] = 1
    norm = math.sqrt(float(np.sum(weights * (he3 - kappa * nodes) ** 2)))
    return Signal(cap=cap, kappa=kappa, norm=norm, linear=linear, he3=he3_weight, nodes=nodes, weights=weights)


@dataclass(frozen=True, slots=True)
class _Intraday:
    state_sd: F64  # sd of the same-day state after bar t: √(1 − a^{2(t+1)}) (it restarts at midnight)
    vol_ar_scaled: F64  # lower-triangular AR(1) matrix for log σ (innovation sd folded in)
    vol_init: F64  # phi^{t+1}
    log_season: F64  # log of the UTC intraday volatility profile (mean 1)
    log_activity: float  # log E[(σ/σ_day)^0.7]: normalises volume to the symbol's daily quote volume


def _intraday(params: ModelParams) -> _Intraday:
    a = params.momentum_decay
    idx = np.arange(BARS)
    lag = np.subtract.outer(idx, idx)  # t − k
    phi = params.intraday_vol_phi
    vol_ar = np.where(lag >= 0, phi ** lag.clip(0).astype(np.float64), 0.0)
    sd = params.intraday_vol_sd
    hours = (idx + 0.5) / 4.0
    season = (
        1.0 + 0.35 * np.exp(-(((hours - 14.5) / 2.5) ** 2)) + 0.15 * np.exp(-(((hours - 1.5) / 2.0) ** 2))
    )
    season = season / season.mean()
    return _Intraday(
        state_sd=np.sqrt(1.0 - a ** (2.0 * (idx + 1))),
        vol_ar_scaled=vol_ar * (sd * math.sqrt(1.0 - phi * phi)),
        vol_init=phi ** (idx + 1).astype(np.float64),
        log_season=np.log(season),
        log_activity=math.log(float(np.mean((season * math.exp(0.5 * sd * sd)) ** 0.7))),
    )


# -- the daily layer -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Span:
    sigma: F64  # per-15m-bar volatility of each day
    drift: F64  # per-bar drift of each day
    regime: npt.NDArray[np.int8]
    level: F64  # log level at each midnight relative to the span start (SPAN_DAYS + 1); pegs: absolute


@dataclass(frozen=True, slots=True)
class DayState:
    """The full latent state of a run of days (used by the oracle and to build bars)."""

    days: I64
    eps: F64  # (n, 96) shocks (conditioned on the day's increment)
    state: F64  # (n, 96) standardised same-day state after each bar (EMA of the observed standardised moves)
    sigma: F64  # (n, 96) bar volatility
    drift: F64  # (n,) per-bar drift
    beta: F64  # (n,) weight of the signal that day (by regime)
    ohlcv: F64  # (5, n·96) prices and base volume of the path (before the contract's basis)


class SimModel:
    """The market as a pure function of (seed, symbol, time), with bounded caches. Synchronous."""

    def __init__(self, seed: int, *, params: ModelParams | None = None, cache_days: int = 2_048) -> None:
        self.seed = seed
        self.params = params or ModelParams()
        self._mx = _intraday(self.params)
        self._signal = make_signal(self.params.signal_cap, self.params.signal_linear, self.params.signal_he3)
        self._listings = {x.symbol: x for x in listings()}
        self._models: dict[str, SymbolModel] = {}
        self._spans: OrderedDict[tuple[str, int], _Span] = OrderedDict()
        self._span_start: dict[tuple[str, int], float] = {}
        self._raw_starts: dict[tuple[str, int], float] = {}
        self._days: OrderedDict[tuple[str, int], F64] = OrderedDict()
        self._minutes: OrderedDict[tuple[str, int], F64] = OrderedDict()
        self._cache_days = cache_days
        self._marks: dict[tuple[str, int], float] = {}
        # the caches are not thread-safe; SimExchange generates bars in worker threads under this lock
        self.lock = threading.RLock()

    _shared: ClassVar[dict[int, SimModel]] = {}

    @classmethod
    def shared(cls, seed: int) -> SimModel:
        """The process-wide model of ``seed`` with default parameters: a pure function of (seed,
        symbol, time), so every exchange of this seed in the process can share its caches."""
        model = cls._shared.get(seed)
        if model is None:
            model = cls(seed)
            cls._shared[seed] = model
        return model

    # ---- static ----

    def listing(self, symbol: str) -> Listing:
        try:
            return self._listings[symbol]
        except KeyError:
            raise ExchangeError(f"unknown symbol {symbol}", reason="unknown_symbol") from None

    def character(self, symbol: str) -> SymbolModel:
        """The static character of a contract (volatility, volume, spread, which path it follows)."""
        m = self._models.get(symbol)
        if m is None:
            listing = self.listing(symbol)
            m = symbol_model(listing)
            self._models[symbol] = m
        return m

    def _path_listing(self, key: str) -> Listing:
        return self._listings.get(key) or self.listing(key)

    # ---- daily layer ----

    def _raw_span(self, key: str, span: int) -> tuple[F64, F64, npt.NDArray[np.int8], F64]:
        """Unsquashed daily layer of one span: (bar sigma, bar drift, regime, daily increments)."""
        p = self.params
        sm = self.character(key)
        rng = _rng(self.seed, key, "span", span)
        n = SPAN_DAYS
        segments = max(16, int(3 * n / p.regime_mean_days))  # enough regime spells to cover the span
        durations = rng.geometric(1.0 / p.regime_mean_days, size=segments)
        u = rng.random((2, segments))
        labels = np.searchsorted(np.cumsum(p.regime_probs)[:-1], u[0], side="right").astype(np.int8)
        signs = np.where(u[1] < 0.5, -1.0, 1.0)
        regime = np.repeat(labels, durations)[:n]
        trend_sign = np.repeat(signs, durations)[:n]
        if regime.shape[0] < n:  # astronomically unlikely: hold the last spell
            regime = np.pad(regime, (0, n - regime.shape[0]), mode="edge")
            trend_sign = np.pad(trend_sign, (0, n - trend_sign.shape[0]), mode="edge")
        hz = rng.standard_normal(n + 1)
        innov = hz[1:] * p.daily_vol_sd * math.sqrt(1.0 - p.daily_vol_phi**2)
        h = _ar1_filter(innov, phi=p.daily_vol_phi, init=float(hz[0]) * p.daily_vol_sd)
        vol_mult = np.asarray(p.regime_vol, dtype=np.float64)[regime]
        sigma = sm.daily_vol / math.sqrt(BARS) * vol_mult * np.exp(h - 0.5 * p.daily_vol_sd**2)
        z = rng.standard_normal(n)
        drift = np.where(regime == 1, trend_sign * p.trend_drift * sigma, 0.0)
        if self._path_listing(key).peg is not None:
            sigma = np.full(n, sm.daily_vol / math.sqrt(BARS))
            drift = np.zeros(n)
            regime = np.zeros(n, dtype=np.int8)
            return sigma, drift, regime, z  # pegs: z is the daily deviation from the peg
        return sigma, drift, regime, math.sqrt(BARS) * sigma * z + BARS * drift

    def _raw_start(self, key: str, span: int) -> float:
        """Unsquashed cumulative log-return from the reference day to the start of ``span``."""
        if span == 0:
            return 0.0
        cached = self._raw_starts.get((key, span))
        if cached is None:
            if span > 0:
                cached = self._raw_start(key, span - 1) + float(np.sum(self._raw_span(key, span - 1)[3]))
            else:
                cached = self._raw_start(key, span + 1) - float(np.sum(self._raw_span(key, span)[3]))
            self._raw_starts[(key, span)] = cached
        return cached

    def _span(self, key: str, span: int) -> _Span:
        """The daily layer of one span. Prices stay within about e^±B of the reference: each day's
        volatility and drift are scaled by sech²(C/B) of the unsquashed cumulative return C."""
        cached = self._spans.get((key, span))
        if cached is not None:
            self._spans.move_to_end((key, span))
            return cached
        sigma, drift, regime, inc = self._raw_span(key, span)
        listing = self._path_listing(key)
        if listing.peg is not None:
            level = math.log(listing.peg) + self.params.peg_noise * np.append(inc, 0.0)
        else:
            raw = self._raw_start(key, span) + np.concatenate(([0.0], np.cumsum(inc)))
            squash = 1.0 - np.tanh(0.5 * (raw[:-1] + raw[1:]) / self.params.price_band) ** 2
            sigma = sigma * squash
            drift = drift * squash
            level = np.concatenate(([0.0], np.cumsum(inc * squash)))
        out = _Span(sigma=sigma, drift=drift, regime=regime, level=level)
        self._spans[(key, span)] = out
        while len(self._spans) > 1024:
            self._spans.popitem(last=False)
        return out

    def _start_level(self, key: str, span: int) -> float:
        """Cumulative log-return from the reference day (span 0 starts there) to the start of ``span``."""
        if span == 0:
            return 0.0
        cached = self._span_start.get((key, span))
        if cached is None:
            if span > 0:
                cached = self._start_level(key, span - 1) + float(self._span(key, span - 1).level[-1])
            else:
                cached = self._start_level(key, span + 1) - float(self._span(key, span).level[-1])
            self._span_start[(key, span)] = cached
        return cached

    def _by_span(self, days: I64) -> list[tuple[int, npt.NDArray[np.bool_] | slice, I64]]:
        """Group days by span: (span, selector, index within the span)."""
        spans = (days - REF_DAY) // SPAN_DAYS
        first, last = int(spans[0]), int(spans[-1])
        if first == last and int(spans.min()) == first and int(spans.max()) == first:
            return [(first, slice(None), days - REF_DAY - first * SPAN_DAYS)]
        out: list[tuple[int, npt.NDArray[np.bool_] | slice, I64]] = []
        for sp in np.unique(spans).tolist():
            mask = spans == sp
            out.append((int(sp), mask, days[mask] - REF_DAY - int(sp) * SPAN_DAYS))
        return out

    def _levels(self, key: str, days: I64) -> F64:
        """Log price at the start (midnight UTC) of each day."""
        listing = self._path_listing(key)
        out = np.empty(days.shape[0])
        for sp, sel, idx in self._by_span(days):
            span = self._span(key, sp)
            if listing.peg is not None:
                out[sel] = span.level[idx]
            else:
                out[sel] = self._start_level(key, sp) + span.level[idx]
        if listing.peg is None:
            out += math.log(listing.ref_price)
        return out

    def _daily(self, key: str, days: I64) -> tuple[F64, F64, npt.NDArray[np.int8]]:
        sigma = np.empty(days.shape[0])
        drift = np.empty(days.shape[0])
        regime = np.empty(days.shape[0], dtype=np.int8)
        for sp, sel, idx in self._by_span(days):
            span = self._span(key, sp)
            sigma[sel] = span.sigma[idx]
            drift[sel] = span.drift[idx]
            regime[sel] = span.regime[idx]
        return sigma, drift, regime

    def regimes(self, symbol: str, days: I64) -> list[str]:
        """The latent regime name of each day (for diagnostics and tests)."""
        _, _, reg = self._daily(self.character(symbol).path_key, days)
        return [REGIME_NAMES[int(r)] for r in reg]

    # ---- intraday 15m layer ----

    def day_state(self, key: str, days: I64) -> DayState:
        """Generate the full state of the path ``key`` on ``days`` (uncached)."""
        p = self.params
        mx = self._mx
        n = days.shape[0]
        sm = self.character(key)
        width = 5 * BARS + 1  # ε, vol innovations, volume noise, two wick draws, initial log-vol
        draws = np.empty((n, width))
        groups = days // DAY_GROUP
        g_first, g_last = int(groups[0]), int(groups[-1])
        for grp in range(g_first, g_last + 1):
            sel = groups == grp
            if not sel.any():
                continue
            z = _rng(self.seed, key, "days", grp).standard_normal((DAY_GROUP, width))
            draws[sel] = z[days[sel] - grp * DAY_GROUP]
        eps0 = draws[:, :BARS]
        gn = draws[:, BARS : 2 * BARS]
        vn = draws[:, 2 * BARS : 3 * BARS]
        wick = np.abs(draws[:, 3 * BARS : 5 * BARS])
        g0 = draws[:, -1]
        if int(days[-1]) - int(days[0]) == n - 1:  # consecutive: one lookup for n + 1 midnights
            both = self._levels(key, np.arange(int(days[0]), int(days[-1]) + 2, dtype=np.int64))
            lvl0, lvl1 = both[:-1], both[1:]
        else:
            lvl0, lvl1 = self._levels(key, days), self._levels(key, days + 1)
        sig_d, drift_d, regime = self._daily(key, days)
        beta = np.asarray(p.signal_beta, dtype=np.float64)[regime]
        sd = p.intraday_vol_sd
        # einsum, not BLAS: each day's result must not depend on how many days are generated at once
        g = np.einsum("ij,kj->ik", gn, mx.vol_ar_scaled) + np.multiply.outer(g0 * sd, mx.vol_init)
        log_sigma_raw = mx.log_season + g
        sigma_raw = np.exp(log_sigma_raw)
        # the day's variance is 96·σ_d²: shocks plus the signal (variance 1 from the second bar on)
        infl = 1.0 + np.multiply.outer(beta * beta, (_bar_index() > 0).astype(np.float64))
        bar_var = np.einsum("ij,ij->i", sigma_raw * infl, sigma_raw)
        lam = math.sqrt(BARS * p.intraday_excess) * sig_d / np.sqrt(bar_var)
        sigma = sigma_raw * lam[:, None]
        target = (lvl1 - lvl0) - BARS * drift_d
        state, signal, eps = self._state_and_signal(eps0, sigma, beta, target)
        r = sigma * eps + signal
        r += drift_d[:, None]
        x = np.cumsum(r, axis=1)
        x += lvl0[:, None]
        x[:, -1] = lvl1
        ohlcv = np.empty((5, n, BARS))
        close = ohlcv[3]
        np.exp(x, out=close)
        opens = ohlcv[0]
        opens[:, 1:] = close[:, :-1]
        opens[:, 0] = np.exp(lvl0)
        half = 0.5 * p.wick_scale * sigma  # E|N(0,1)|·0.5·2 ≈ the old exponential scale
        np.multiply(np.maximum(opens, close), np.exp(half * wick[:, :BARS]), out=ohlcv[1])
        np.multiply(np.minimum(opens, close), np.exp(-half * wick[:, BARS:]), out=ohlcv[2])
        # volume: more when volatile (σ^0.7) and on the bar's own large moves (|ε|), UTC-seasonal,
        # lognormal noise; ≈ quote_volume per day
        typical = sm.daily_vol / math.sqrt(BARS)
        if sm.quote_volume > 0:
            move = (np.abs(r - drift_d[:, None]) / sigma - _ABS_MEAN) / _ABS_SD
            log_q = 0.7 * (log_sigma_raw + np.log(lam / typical)[:, None]) + VOLUME_MOVE * move + 0.3 * vn
            quote = np.exp(log_q + (math.log(sm.quote_volume / BARS) - 0.08 - mx.log_activity))
            np.divide(quote, close, out=ohlcv[4])
        else:  # listed but not trading: bars without volume
            ohlcv[4] = 0.0
        flat: F64 = ohlcv.reshape(5, n * BARS)
        return DayState(days=days, eps=eps, state=state, sigma=sigma, drift=drift_d, beta=beta, ohlcv=flat)

    def _state_and_signal(self, eps0: F64, sigma: F64, beta: F64, target: F64) -> tuple[F64, F64, F64]:
        """The day's bars as a forward Brownian bridge to ``target``, with the planted signal.

        Bar t moves ``r_t = signal_t + σ_t²·(T − X_{t−1} − signal_t)/V_t + σ_t·√(1 − σ_t²/V_t)·ε₀_t``:
        the signal ``σ_t·β·f(state_{t−1})``, the bridge's pull towards the day's target T (X the day's
        move so far, V_t = Σ_{j≥t} σ_j² the variance still to come) and the drawn shock. Without the
        signal this is exact bridge sampling (the law of shocks conditioned on their sum); the last
        bar lands on T. The state reads each bar's *observed* standardised move u_t = r_t/σ_t:
        ``state_t = a·state_{t−1} + √(1−a²)·u_t/√(1+β²)``, standardised — what a trader sees in recent
        returns given the volatility, so a model can in principle read it (conditioning the shocks
        after the state had read them, as the first version did, hid part of it from every model
        while the oracle knew it). Returns the state, the signal and the shocks ε = (r − signal)/σ.
        Sequential by nature: one pass over the 96 bars on (bar, day) rows, few array operations each.
        """
        a = self.params.momentum_decay
        sig = self._signal
        k1, cap = 1.0 / math.sqrt(6.0), sig.cap
        k2 = sig.he3 / sig.norm
        k3 = sig.linear - sig.he3 * sig.kappa / sig.norm
        inv_sd = (1.0 / self._mx.state_sd).tolist()
        scale = math.sqrt(1.0 - a * a) / np.sqrt(1.0 + beta * beta)
        eps_t = np.ascontiguousarray(eps0.T)  # (96, n): one contiguous row per bar
        s_t = np.ascontiguousarray(sigma.T)
        v2 = s_t * s_t
        left = np.cumsum(v2[::-1], axis=0)[::-1]  # V_t: variance of bars t … 95
        pull_w = v2 / left  # σ_t²/V_t (1 at the last bar)
        noise_w = s_t * np.sqrt(np.maximum(1.0 - pull_w, 0.0))
        state = np.empty_like(eps_t)
        signal = np.zeros_like(eps_t)  # σ_t·β·f(state_{t−1}): 0 for the first bar
        moves = np.empty_like(eps_t)  # r_t
        moved = np.zeros(eps_t.shape[1])  # X: the day's move so far
        acc = np.zeros(eps_t.shape[1])
        tmp = np.empty_like(acc)
        for t in range(BARS):
            if t:
                x = state[t - 1]
                np.multiply(x, x, out=tmp)
                tmp -= 3.0
                tmp *= x
                tmp *= k1
                np.minimum(tmp, cap, out=tmp)  # clip via two ufuncs: np.clip's wrapper costs more than the math
                np.maximum(tmp, -cap, out=tmp)
                tmp *= k2
                f = tmp + k3 * x
                f *= beta
                f *= s_t[t]
                signal[t] = f
            r = target - moved
            r -= signal[t]
            r *= pull_w[t]
            r += signal[t]
            r += noise_w[t] * eps_t[t]
            moved += r
            moves[t] = r
            r /= s_t[t]  # u_t, the observed standardised move
            r *= scale
            acc *= a
            acc += r
            np.multiply(acc, inv_sd[t], out=state[t])
        eps = (moves - signal) / s_t
        return np.ascontiguousarray(state.T), np.ascontiguousarray(signal.T), np.ascontiguousarray(eps.T)

    def _path_days(self, key: str, days: I64) -> F64:
        """15m OHLCV (5, n·96) of the path on consecutive ``days`` (cached per day)."""
        blocks: list[F64 | None] = []
        missing: list[int] = []
        for d in days.tolist():
            b = self._days.get((key, d))
            if b is None:
                missing.append(d)
            else:
                self._days.move_to_end((key, d))
            blocks.append(b)
        if missing:
            # generate whole RNG groups at once: neighbours are usually asked for next
            want = sorted(
                {g * DAY_GROUP + i for g in {d // DAY_GROUP for d in missing} for i in range(DAY_GROUP)}
            )
            st = self.day_state(key, np.asarray(want, dtype=np.int64))
            fresh = st.ohlcv.reshape(5, len(want), BARS)
            got: dict[int, F64] = {}
            asked = set(missing)
            for j, d in enumerate(want):
                if d in asked:  # the rest of the group is cheap to redo; keep the cache for asked days
                    blk = np.ascontiguousarray(fresh[:, j, :])
                    self._days[(key, d)] = blk
                    got[d] = blk
            while len(self._days) > self._cache_days:
                self._days.popitem(last=False)
            blocks = [b if b is not None else got[d] for b, d in zip(blocks, days.tolist(), strict=True)]
        return np.concatenate([b for b in blocks if b is not None], axis=1)

    # ---- 1m layer ----

    def _minute_rows(self, key: str, day: int, rows: slice) -> F64:
        """1m OHLCV (5, len(rows)·15) inside the 15m bars ``rows`` of ``day`` (exact aggregation)."""
        cached = self._minutes.get((key, day))
        if cached is not None:
            self._minutes.move_to_end((key, day))
            start = (rows.start or 0) * MINUTES
            stop = (BARS if rows.stop is None else rows.stop) * MINUTES
            return cached[:, start:stop]
        r0 = rows.start or 0
        r1 = BARS if rows.stop is None else rows.stop
        bars15 = self._path_days(key, np.array([day], dtype=np.int64))[:, r0:r1]
        n = r1 - r0
        bridge = np.empty((n, MINUTES))
        wick = np.empty((2, n, MINUTES))
        weights = np.empty((n, MINUTES))
        per_hour = 4
        for hour in range(r0 // per_hour, (r1 - 1) // per_hour + 1):
            rng = _rng(self.seed, key, "minutes", day, hour)  # one RNG per hour: a mark needs one
            hb = rng.standard_normal((per_hour, MINUTES))
            hw = rng.standard_exponential((2, per_hour, MINUTES))
            hg = rng.standard_gamma(2.0, (per_hour, MINUTES))
            lo, hi = max(r0, hour * per_hour), min(r1, (hour + 1) * per_hour)
            src = slice(lo - hour * per_hour, hi - hour * per_hour)
            dst = slice(lo - r0, hi - r0)
            bridge[dst], wick[:, dst], weights[dst] = hb[src], hw[:, src], hg[src]
        return _minutes_from_bars(bars15, bridge=bridge, wick=wick, weights=weights)

    def _minute_day(self, key: str, day: int) -> F64:
        cached = self._minutes.get((key, day))
        if cached is not None:
            self._minutes.move_to_end((key, day))
            return cached
        out = self._minute_rows(key, day, slice(0, BARS))
        self._minutes[(key, day)] = out
        while len(self._minutes) > 64:
            self._minutes.popitem(last=False)
        return out

    # ---- bars of any timeframe ----

    def bars(self, symbol: str, timeframe: str, *, first_ts: int, last_ts: int) -> Klines:
        """Bars with open times in [first_ts, last_ts] (aligned to the timeframe, clipped at the epoch)."""
        tf = _tf_ms(timeframe)
        sm = self.character(symbol)
        first_ts = max(first_ts, EPOCH_MS)
        first_ts = -(-(first_ts - EPOCH_MS) // tf) * tf + EPOCH_MS
        if last_ts < first_ts:
            return _empty(symbol, timeframe)
        d0 = (first_ts - EPOCH_MS) // DAY_MS
        d1 = (last_ts + tf - 1 - EPOCH_MS) // DAY_MS
        days = np.arange(d0, d1 + 1, dtype=np.int64)
        if tf >= BAR_MS:
            base = self._path_days(sm.path_key, days)
            base_ms = BAR_MS
        else:
            base = np.concatenate([self._minute_day(sm.path_key, int(d)) for d in days], axis=1)
            base_ms = 60_000
        k = tf // base_ms
        start = EPOCH_MS + int(d0) * DAY_MS
        agg = _aggregate(base, k)
        ts = start + np.arange(agg.shape[1], dtype=np.int64) * tf
        lo = (first_ts - start) // tf
        hi = (last_ts - start) // tf + 1
        agg = agg[:, lo:hi]
        f = sm.price_factor
        vol_share = 1.0 if sm.listing.symbol == sm.path_key else self._volume_share(sm)
        return Klines(
            symbol=symbol,
            timeframe=timeframe,
            ts=ts[lo:hi],
            open=agg[0] * f,
            high=agg[1] * f,
            low=agg[2] * f,
            close=agg[3] * f,
            volume=agg[4] * vol_share / f,
        )

    def _volume_share(self, sm: SymbolModel) -> float:
        path = self.character(sm.path_key)
        return sm.quote_volume / path.quote_volume if path.quote_volume > 0 else 0.0

    def last_closed(self, symbol: str, timeframe: str, *, end_ms: int, limit: int) -> Klines:
        """The last ``limit`` bars that closed at or before ``end_ms``."""
        tf = _tf_ms(timeframe)
        last = (end_ms - EPOCH_MS) // tf * tf + EPOCH_MS - tf
        return self.bars(symbol, timeframe, first_ts=last - (limit - 1) * tf, last_ts=last)

    def mark(self, symbol: str, now_ms: int) -> float:
        """The close of the last closed 1m bar (never a price from the future)."""
        sm = self.character(symbol)
        t = (now_ms - EPOCH_MS) // 60_000 * 60_000 - 60_000
        if t < 0:
            raise ExchangeError("no price before 2020-01-01", reason="no_data")
        day = t // DAY_MS
        row = (t % DAY_MS) // BAR_MS
        minute = (t % BAR_MS) // 60_000
        hit = self._marks.get((sm.path_key, t))
        if hit is None:
            cached = self._minutes.get((sm.path_key, int(day)))
            if cached is not None:
                hit = float(cached[3, row * MINUTES + minute])
            else:
                mins = self._minute_rows(sm.path_key, int(day), slice(int(row), int(row) + 1))
                hit = float(mins[3, minute])
            if len(self._marks) >= 8192:
                self._marks.clear()
            self._marks[(sm.path_key, t)] = hit
        return hit * sm.price_factor

    def ticker(self, symbol: str, now_ms: int) -> Ticker:
        sm = self.character(symbol)
        last = self.mark(symbol, now_ms)
        day = self.last_closed(symbol, "15m", end_ms=now_ms, limit=BARS)
        qv = float(np.sum(day.close * day.volume))
        tick = filters_for_price(sm.listing.ref_price).tick_size
        half = max(last * sm.spread_bps / 2e4, tick / 2)
        return Ticker(
            symbol=symbol, last=last, quote_volume_24h=qv, bid=last - half, ask=last + half, ts=now_ms
        )

    def half_spread(self, symbol: str, price: float) -> float:
        sm = self.character(symbol)
        tick = filters_for_price(sm.listing.ref_price).tick_size
        return max(price * sm.spread_bps / 2e4, tick / 2)

    # ---- funding ----

    def funding(self, symbol: str, *, first_ts: int, last_ts: int) -> list[FundingRate]:
        """Funding settlements every 8 h (00:00, 08:00, 16:00 UTC) with times in [first_ts, last_ts].

        rate = clip(base + 2 bps·tanh(z/2) + N(0, 0.3 bp), ±30 bps), z the path's log return over the
        8 h before the settlement in units of its typical 8 h volatility: longs pay more after rallies,
        as on real perpetuals; base = 1 bp per 8 h (0 for pegged assets).
        """
        sm = self.character(symbol)
        first = max(first_ts, EPOCH_MS + FUNDING_MS)
        first = -(-(first - EPOCH_MS) // FUNDING_MS) * FUNDING_MS + EPOCH_MS
        if last_ts < first:
            return []
        times = np.arange(first, last_ts + 1, FUNDING_MS, dtype=np.int64)
        hourly = self.bars(sm.path_key, "1h", first_ts=int(times[0]) - FUNDING_MS, last_ts=int(times[-1]) - 3_600_000)
        rows = ((times - FUNDING_MS) - int(hourly.ts[0])) // 3_600_000
        ret = np.log(hourly.close[rows + 7] / hourly.open[rows])
        z = ret / (sm.daily_vol * math.sqrt(1.0 / 3.0))
        k = (times - EPOCH_MS) // FUNDING_MS
        noise = np.empty(times.shape[0])
        for block in np.unique(k // 1024).tolist():
            sel = k // 1024 == block
            noise[sel] = _rng(self.seed, sm.path_key, "funding", block).standard_normal(1024)[k[sel] % 1024]
        pegged = self._path_listing(sm.path_key).peg is not None
        base = 0.0 if pegged else FUNDING_BASE
        swing = 0.0 if pegged else FUNDING_SWING
        rates = np.clip(base + swing * np.tanh(z / 2.0) + FUNDING_NOISE * noise, -FUNDING_CAP, FUNDING_CAP)
        return [FundingRate(ts=int(t), rate=float(r)) for t, r in zip(times.tolist(), rates.tolist(), strict=True)]

    # ---- the oracle ----

    def oracle_probability(self, symbol: str, timeframe: str, ts: npt.ArrayLike, horizon_bars: int) -> F64:
        """P(close[t+H] > close[t] | everything known at the close of bar t) under the model.

        ``ts`` are bar open times of ``timeframe`` (15m or coarser). The oracle knows the latent
        state (volatility path, regime drift, momentum state), so it bounds any model's skill.
        """
        tf = _tf_ms(timeframe)
        if tf < BAR_MS:
            raise ValueError("the oracle is defined for 15m and coarser timeframes")
        if horizon_bars < 1:
            raise ValueError("horizon_bars must be >= 1")
        k = tf // BAR_MS
        t_arr = np.asarray(ts, dtype=np.int64)
        if t_arr.size == 0:
            return np.empty(0)
        # index of the 15m bar whose close is "now" for each requested bar
        t15 = (t_arr - EPOCH_MS) // BAR_MS + (k - 1)
        h = horizon_bars * k
        d0 = int(t15.min()) // BARS
        d1 = (int(t15.max()) + h) // BARS
        key = self.character(symbol).path_key
        st = self.day_state(key, np.arange(d0, d1 + 1, dtype=np.int64))
        sigma = st.sigma.reshape(-1)
        drift = np.repeat(st.drift, BARS)
        sd_all = np.tile(self._mx.state_sd, st.days.shape[0])
        state = st.state.reshape(-1) * sd_all  # the state after bar t, unstandardised
        beta = np.repeat(st.beta, BARS)
        a = self.params.momentum_decay
        idx = t15 - d0 * BARS
        pos = (t15 % BARS).astype(np.int64)
        mean = self._bridge_pull(st, idx=idx, pos=pos, h=h)
        var = np.zeros(idx.shape[0])
        # moments of the state after bar t+j given the state after bar t, propagated step by step
        # (Gaussian moment matching: the signal feeds the state, so the law is near-Gaussian)
        s_mean, s_var = state[idx], np.zeros(idx.shape[0])
        for i in range(1, h + 1):
            u = idx + i
            same = (pos + i) < BARS
            sd_prev = self._mx.state_sd[np.minimum(pos + i - 1, BARS - 1)]
            f_mean, f_var = self._signal.moments(s_mean / sd_prev, s_var / (sd_prev * sd_prev))
            b = np.where(same, beta[u], 0.0)
            mean += drift[u] + b * sigma[u] * f_mean
            var += sigma[u] ** 2 * (1.0 + b * b * f_var)
            scale = math.sqrt(1.0 - a * a) / np.sqrt(1.0 + b * b)
            s_mean = a * s_mean + scale * b * f_mean
            s_var = a * a * s_var + scale * scale * (1.0 + b * b * f_var)
        z = mean / np.sqrt(var)
        return np.asarray(0.5 * (1.0 + _erf(z / math.sqrt(2.0))), dtype=np.float64)

    def _bridge_pull(self, st: DayState, *, idx: I64, pos: I64, h: int) -> F64:
        """Expected move over the rest of the horizon's same-day bars from the bridge's pull (see
        :meth:`_state_and_signal`): the day ends at a target T nobody knows before midnight, but the day's
        move so far X says something about it. With W the day's shock variance, w the part already
        realised and Var T = the day's variance (W·inflation/``intraday_excess``), X ≈ T·w/W + bridge
        noise, so E[T | X] = X·Cov(T, X)/Var X and the pull moves the next bars by
        (E[T | X] − X)·(variance of those bars)/(variance left). Signals are left out of this reading
        (a first-order term); without it the oracle missed a part of the predictability a model reading
        the day's move could use."""
        v2 = st.sigma * st.sigma  # (days, 96)
        cum = np.cumsum(v2, axis=1).reshape(-1)
        total = np.repeat(cum.reshape(-1, BARS)[:, -1], BARS)
        infl = 1.0 + np.multiply.outer(st.beta * st.beta, (_bar_index() > 0).astype(np.float64))
        var_t = np.repeat(np.einsum("ij,ij->i", v2, infl), BARS) / self.params.intraday_excess
        log_close = np.log(st.ohlcv[3])
        day_open = np.repeat(np.log(st.ohlcv[0].reshape(-1, BARS)[:, 0]), BARS)
        drift = np.repeat(st.drift, BARS)
        day_first = idx - pos  # flat index of the day's first bar
        moved = log_close[idx] - day_open[idx] - (pos + 1) * drift[idx]  # X after bar t, drift removed
        w = cum[idx]
        big_w = total[idx]
        last = np.minimum(pos + h, BARS - 1)
        ahead = cum[day_first + last] - w  # shock variance of the horizon's same-day bars
        left = big_w - w
        share = w / big_w
        var_x = var_t[idx] * share * share + w * (1.0 - share)
        gain = np.where(var_x > 0.0, var_t[idx] * share / np.where(var_x > 0.0, var_x, 1.0), 0.0)
        out: F64 = np.where(left > 0.0, (gain * moved - moved) * ahead / np.where(left > 0.0, left, 1.0), 0.0)
        return out


def _erf(x: F64) -> F64:
    return np.fromiter((math.erf(v) for v in x.tolist()), dtype=np.float64, count=x.shape[0])


def _minutes_from_bars(bars: F64, *, bridge: F64, wick: F64, weights: F64) -> F64:
    """1m bars inside 15m bars: a Brownian bridge mapped monotonically onto each bar's range.

    Above max(open, close) values are scaled so the highest minute high is the bar's high, below
    min(open, close) so the lowest low is the bar's low; in between they are unchanged. Open of
    the first minute, close of the last, the high, the low and the volume sum are exact.
    """
    po, ph, pl, pc, pv = bars
    lo_, lh, ll, lc = np.log(po), np.log(ph), np.log(pl), np.log(pc)
    n = po.shape[0]
    kk = np.arange(MINUTES + 1) / MINUTES
    walk = np.concatenate((np.zeros((n, 1)), np.cumsum(bridge, axis=1)), axis=1)
    scale = np.maximum(lh - ll, 1e-12) / (2.0 * math.sqrt(MINUTES))
    b = lo_[:, None] + np.multiply.outer(lc - lo_, kk) + scale[:, None] * (walk - walk[:, -1:] * kk)
    o, c = b[:, :-1], b[:, 1:]
    hi = np.maximum(o, c) + 0.4 * scale[:, None] * wick[0]
    lo = np.minimum(o, c) - 0.4 * scale[:, None] * wick[1]
    top = np.maximum(lo_, lc)[:, None]
    bot = np.minimum(lo_, lc)[:, None]
    up = (lh[:, None] - top) / np.maximum(hi.max(axis=1, keepdims=True) - top, 1e-300)
    dn = (bot - ll[:, None]) / np.maximum(bot - lo.min(axis=1, keepdims=True), 1e-300)

    def fmap(v: F64) -> F64:
        mapped: F64 = np.where(v > top, top + (v - top) * up, np.where(v < bot, bot - (bot - v) * dn, v))
        return mapped

    mo, mc, mh, ml = (np.exp(fmap(v)) for v in (o, c, hi, lo))
    ph2, pl2 = ph[:, None], pl[:, None]
    mo, mc, mh, ml = (np.clip(v, pl2, ph2) for v in (mo, mc, mh, ml))
    mo[:, 0] = po
    mc[:, -1] = pc
    mo[:, 1:] = mc[:, :-1]
    rows = np.arange(n)
    mh = np.maximum(mh, np.maximum(mo, mc))
    ml = np.minimum(ml, np.minimum(mo, mc))
    mh[rows, np.argmax(mh, axis=1)] = ph
    ml[rows, np.argmin(ml, axis=1)] = pl
    w = weights / weights.sum(axis=1, keepdims=True)
    mv = pv[:, None] * w
    return np.stack((mo, mh, ml, mc, mv)).reshape(5, n * MINUTES)


def _aggregate(base: F64, k: int) -> F64:
    if k == 1:
        return base
    n = base.shape[1] // k
    b = base[:, : n * k].reshape(5, n, k)
    return np.stack((b[0, :, 0], b[1].max(axis=1), b[2].min(axis=1), b[3, :, -1], b[4].sum(axis=1)))


def _tf_ms(timeframe: str) -> int:
    try:
        return TIMEFRAME_MS[timeframe]
    except KeyError:
        raise ExchangeError(f"unknown timeframe {timeframe!r}", reason="bad_timeframe") from None


def _empty(symbol: str, timeframe: str) -> Klines:
    z = np.empty(0)
    return Klines(symbol, timeframe, np.empty(0, dtype=np.int64), z, z, z, z, z)


# -- the paper order book ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Pos:
    qty: float  # signed: > 0 long, < 0 short
    entry: float
    realized: float = 0.0


def _on_step(qty: float, step: float) -> bool:
    n = qty / step
    return abs(n - round(n)) <= 1e-6 * max(1.0, abs(n))


def reject_share(client_order_id: str) -> float:
    """The deterministic number in [0, 1) that decides a fault-injected reject of this order."""
    return unit_hash("reject", client_order_id)


class PaperBook:
    """In-memory orders and net positions; idempotent by client order id."""

    def __init__(self, *, venue: str, taker_fee: float = TAKER_FEE, reject_rate: float = 0.0) -> None:
        self._venue = venue
        self._fee = taker_fee
        self._reject_rate = reject_rate
        self._orders: dict[str, OrderResult] = {}
        self._positions: dict[str, _Pos] = {}

    def get(self, client_order_id: str) -> OrderResult | None:
        return self._orders.get(client_order_id)

    def place(self, order: OrderRequest, *, market: Market, mark: float, half_spread: float) -> OrderResult:
        seen = self._orders.get(order.client_order_id)
        if seen is not None:
            return seen
        oid = f"{self._venue}-" + hashlib.sha256(order.client_order_id.encode()).hexdigest()[:16]
        res = self._decide(order, market=market, mark=mark, half_spread=half_spread, order_id=oid)
        self._orders[order.client_order_id] = res
        return res

    def _reject(self, order: OrderRequest, oid: str, reason: str, price: float = 0.0) -> OrderResult:
        return OrderResult(
            order_id=oid,
            client_order_id=order.client_order_id,
            symbol=order.symbol,
            side=order.side,
            status="REJECTED",
            qty=0.0,
            price=price,
            fee_usd=0.0,
            reason=reason,
        )

    def _decide(
        self, order: OrderRequest, *, market: Market, mark: float, half_spread: float, order_id: str
    ) -> OrderResult:
        if market.status != "TRADING":
            return self._reject(order, order_id, "symbol_not_trading")
        if self._reject_rate > 0 and reject_share(order.client_order_id) < self._reject_rate:
            return self._reject(order, order_id, "sim_reject")
        qty = order.qty
        if not math.isfinite(qty) or qty <= 0:
            return self._reject(order, order_id, "bad_qty")
        if not _on_step(qty, market.step_size):
            return self._reject(order, order_id, "step_size")
        if qty < market.min_qty - 1e-12:
            return self._reject(order, order_id, "min_qty")
        if qty > market.max_qty:
            return self._reject(order, order_id, "max_qty")
        pos = self._positions.get(order.symbol, _Pos(0.0, 0.0))
        signed = qty if order.side == "BUY" else -qty
        if order.reduce_only and (pos.qty == 0 or pos.qty * signed > 0 or qty > abs(pos.qty) + 1e-12):
            return self._reject(order, order_id, "reduce_only")
        if order.order_type != "MARKET":
            if order.stop_price <= 0:
                return self._reject(order, order_id, "bad_stop_price")
            return OrderResult(
                order_id=order_id,
                client_order_id=order.client_order_id,
                symbol=order.symbol,
                side=order.side,
                status="NEW",
                qty=qty,
                price=order.stop_price,
                fee_usd=0.0,
                extra={"order_type": order.order_type},
            )
        price = mark + half_spread if order.side == "BUY" else mark - half_spread
        notional = qty * price
        if notional < market.min_notional and not order.reduce_only:
            return self._reject(order, order_id, "min_notional", price)
        fee = notional * self._fee
        self._positions[order.symbol] = _apply(pos, signed, price)
        if abs(self._positions[order.symbol].qty) <= 1e-12:
            realized = self._positions[order.symbol].realized
            self._positions[order.symbol] = _Pos(0.0, 0.0, realized)
        slip = (price - mark) / mark * 1e4 if mark > 0 else 0.0
        return OrderResult(
            order_id=order_id,
            client_order_id=order.client_order_id,
            symbol=order.symbol,
            side=order.side,
            status="FILLED",
            qty=qty,
            price=price,
            fee_usd=fee,
            extra={
                "notional_usd": repr(notional),
                "mark_price": repr(mark),
                "slippage_bps": repr(abs(slip)),
            },
        )

    def cancel(self, client_order_id: str) -> None:
        seen = self._orders.get(client_order_id)
        if seen is not None and seen.status == "NEW":
            self._orders[client_order_id] = replace(seen, status="CANCELED")

    def open_symbols(self) -> list[str]:
        return [s for s, p in self._positions.items() if p.qty != 0]

    def positions(self, marks: dict[str, float]) -> list[Position]:
        out: list[Position] = []
        for sym, p in sorted(self._positions.items()):
            if p.qty == 0:
                continue
            m = marks.get(sym, p.entry)
            out.append(
                Position(
                    symbol=sym,
                    side="BUY" if p.qty > 0 else "SELL",
                    qty=abs(p.qty),
                    entry_price=p.entry,
                    unrealized_pnl=(m - p.entry) * p.qty,
                )
            )
        return out


def _apply(pos: _Pos, signed: float, price: float) -> _Pos:
    """Net a fill into a position (average entry when adding, realise PnL when reducing/flipping)."""
    if pos.qty == 0 or pos.qty * signed > 0:
        total = pos.qty + signed
        entry = (pos.entry * abs(pos.qty) + price * abs(signed)) / abs(total)
        return _Pos(total, entry, pos.realized)
    closing = min(abs(signed), abs(pos.qty))
    realized = pos.realized + closing * (price - pos.entry) * (1 if pos.qty > 0 else -1)
    total = pos.qty + signed
    if abs(total) <= 1e-12:
        return _Pos(0.0, 0.0, realized)
    if total * pos.qty > 0:
        return _Pos(total, pos.entry, realized)
    return _Pos(total, price, realized)


# -- the exchange ---------------------------------------------------------------------------------------


def market_of(listing: Listing) -> Market:
    f = filters_for_price(listing.ref_price, min_notional=min_notional_for(listing.asset_class))
    return Market(
        symbol=listing.symbol,
        base=listing.base,
        quote=listing.quote,
        contract=listing.contract,
        status=listing.status,
        tick_size=f.tick_size,
        step_size=f.step_size,
        min_notional=f.min_notional,
        max_qty=f.max_qty,
        min_qty=f.min_qty,
        asset_class=listing.asset_class,
        onboard_ms=EPOCH_MS,
    )


class SimExchange:
    """The simulated exchange (``name="sim"``): :class:`SimModel` + a paper book + fault injection."""

    name: str = "sim"

    def __init__(
        self,
        settings: ExchangeSettings,
        *,
        clock: Clock,
        params: ModelParams | None = None,
        cache_days: int | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.model = (
            SimModel.shared(settings.seed)
            if params is None and cache_days is None
            else SimModel(settings.seed, params=params, cache_days=cache_days or 16_384)
        )
        self._faults: FaultSettings = settings.faults
        self._book = PaperBook(venue="sim", reject_rate=self._faults.reject_rate)
        self._markets = {x.symbol: market_of(x) for x in listings()}
        self._repaired: set[tuple[str, str]] = set()

    @property
    def seed(self) -> int:
        return self.settings.seed

    async def _latency(self) -> None:
        if self._faults.latency_ms > 0:
            await asyncio.sleep(self._faults.latency_ms / 1000.0)

    def _market(self, symbol: str) -> Market:
        try:
            return self._markets[symbol]
        except KeyError:
            raise ExchangeError(f"unknown symbol {symbol}", reason="unknown_symbol") from None

    async def markets(self) -> list[Market]:
        await self._latency()
        if self._faults.discovery == "fail":
            raise ExchangeError(
                "market discovery failed (fault injection)", reason="discovery_failed", endpoint="markets"
            )
        return list(self._markets.values())

    async def tickers(self) -> dict[str, Ticker]:
        await self._latency()
        if self._faults.discovery == "fail":
            raise ExchangeError(
                "ticker discovery failed (fault injection)", reason="discovery_failed", endpoint="tickers"
            )
        now = self.clock.now_ms()
        symbols = [s for s, m in self._markets.items() if m.status == "TRADING"]
        return await self._off_loop(lambda: {s: self.model.ticker(s, now) for s in symbols})

    def is_stale(self, symbol: str, timeframe: str) -> bool:
        """Whether fault injection currently holds this symbol's klines back."""
        if symbol not in self._faults.stale_symbols and symbol not in self._faults.unrepairable_symbols:
            return False
        if symbol in self._faults.unrepairable_symbols:
            return True
        return (symbol, timeframe) not in self._repaired

    async def klines(self, symbol: str, timeframe: str, *, limit: int, end_ms: int | None = None) -> Klines:
        await self._latency()
        if self._faults.klines == "fail":
            raise ExchangeError("klines failed (fault injection)", reason="klines_failed", endpoint="klines")
        self._market(symbol)
        tf = _tf_ms(timeframe)
        if limit < 1 or limit > MAX_LIMIT:
            raise ExchangeError(f"limit must be in 1..{MAX_LIMIT}", reason="bad_limit", endpoint="klines")
        now = self.clock.now_ms()
        end = now if end_ms is None else min(end_ms, now)
        if self.is_stale(symbol, timeframe):
            end = min(end, now - self._faults.stale_bars * tf)
        return await self._off_loop(lambda: self.model.last_closed(symbol, timeframe, end_ms=end, limit=limit))

    async def _off_loop(self, work: Callable[[], _T]) -> _T:
        """Generate in a worker thread (under the model's lock) so the event loop stays responsive:
        in `qt run` a universe cycle would otherwise stall the other five workers for seconds."""

        def locked() -> _T:
            with self.model.lock:
                return work()

        return await asyncio.to_thread(locked)

    def history(self, symbol: str, timeframe: str, *, start_ms: int, end_ms: int) -> Klines:
        """Synchronous bulk history (training, backtests): closed bars opening in [start_ms, end_ms)."""
        tf = _tf_ms(timeframe)
        self._market(symbol)
        end = min(end_ms, self.clock.now_ms())
        last = (end - EPOCH_MS) // tf * tf + EPOCH_MS - tf
        with self.model.lock:
            return self.model.bars(symbol, timeframe, first_ts=start_ms, last_ts=last)

    async def backfill(self, symbol: str, timeframe: str) -> None:
        await self._latency()
        self._market(symbol)
        _tf_ms(timeframe)
        if symbol not in self._faults.unrepairable_symbols:
            self._repaired.add((symbol, timeframe))

    async def mark_prices(self, symbols: list[str]) -> dict[str, float]:
        await self._latency()
        now = self.clock.now_ms()
        for s in symbols:
            self._market(s)
        return await self._off_loop(lambda: {s: self.model.mark(s, now) for s in symbols})

    async def mark_prices_each(self, symbols: list[str]) -> PerSymbol[float]:
        """Mark prices per symbol: an unlisted symbol is ``unknown_symbol``, the rest are priced (one pass)."""
        known = [s for s in dict.fromkeys(symbols) if s in self._markets]
        failures = {
            s: SymbolFailure(s, "unknown_symbol", f"unknown symbol {s}") for s in symbols if s not in self._markets
        }
        return PerSymbol(values=await self.mark_prices(known) if known else {}, failures=failures)

    async def klines_each(
        self, symbols: list[str], timeframe: str, *, limit: int, end_ms: int | None = None
    ) -> PerSymbol[Klines]:
        """:meth:`klines` per symbol; a symbol that fails is reported with its reason, the rest proceed."""
        return await per_symbol(symbols, lambda s: self.klines(s, timeframe, limit=limit, end_ms=end_ms))

    async def positions(self) -> list[Position]:
        await self._latency()
        now = self.clock.now_ms()
        with self.model.lock:
            marks = {s: self.model.mark(s, now) for s in self._book.open_symbols()}
        return self._book.positions(marks)

    async def place_order(self, order: OrderRequest) -> OrderResult:
        await self._latency()
        seen = self._book.get(order.client_order_id)
        if seen is not None:
            return seen
        market = self._market(order.symbol)
        with self.model.lock:
            mark = self.model.mark(order.symbol, self.clock.now_ms())
        return self._book.place(
            order, market=market, mark=mark, half_spread=self.model.half_spread(order.symbol, mark)
        )

    async def fetch_order(self, symbol: str, client_order_id: str) -> OrderResult | None:
        await self._latency()
        res = self._book.get(client_order_id)
        return res if res is not None and res.symbol == symbol else None

    async def cancel_order(self, symbol: str, client_order_id: str) -> None:
        await self._latency()
        res = self._book.get(client_order_id)
        if res is None or res.symbol != symbol:
            raise ExchangeError(f"unknown order {client_order_id}", reason="unknown_order", endpoint="cancel")
        self._book.cancel(client_order_id)

    async def funding_rates(self, symbol: str, *, since_ms: int, until_ms: int) -> list[FundingRate]:
        """Funding settlements of ``symbol`` in [since_ms, until_ms] that happened by now."""
        await self._latency()
        self._market(symbol)
        last = min(until_ms, self.clock.now_ms())
        return await self._off_loop(lambda: self.model.funding(symbol, first_ts=since_ms, last_ts=last))

    async def close(self) -> None:
        return None

    def oracle_probability(self, symbol: str, timeframe: str, ts: npt.ArrayLike, horizon_bars: int) -> F64:
        """See :meth:`SimModel.oracle_probability`."""
        self._market(symbol)
        with self.model.lock:
            return self.model.oracle_probability(symbol, timeframe, ts, horizon_bars)
