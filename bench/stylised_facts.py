"""The sim's stylised facts beside real-market figures (printed; docs/market.md records a run).

Run: ``.venv/bin/python bench/stylised_facts.py [--seed 7] [--days 180] [--symbols 12]``.

For each symbol, over ``--days`` days of 1h bars ending 2026-11-01 (and 15m for the oracle):

* lag-1 autocorrelation of 1h log returns, and of their absolute values (volatility clustering);
* the 1-day variance ratio VR(24) = Var(24-bar sum) / (24 · Var(1h return)), from overlapping sums;
* excess kurtosis of 1h returns (fat tails);
* Spearman rank correlation of 1h quote volume with |1h return|;
* the oracle's AUC on 15m bars, horizon 4 bars (the best any model can do on the sim);
* mean funding rate per 8 h and the share of positive settlements, when the sim has funding.

The real-market column quotes the project's measurements on a real BTC 1h series (lag-1 −0.04,
VR(24) 0.90) and the usual range of the volume–|return| rank correlation on liquid markets (0.5–0.6);
it is a reference, not something this script measures.
"""

from __future__ import annotations

import argparse
import asyncio
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from quantum_trader.ai.evaluation import auc
from quantum_trader.core.clock import ManualClock
from quantum_trader.core.profile import ExchangeSettings
from quantum_trader.market.sim import SimExchange

END_MS = 1_793_491_200_000  # 2026-11-01T00:00Z
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT", "GALAUSDT", "MKRUSDT", "FILUSDT",
           "DOTUSDT", "APTUSDT", "SEIUSDT", "1000PEPEUSDT", "CRVUSDT", "HBARUSDT", "VETUSDT", "ZECUSDT")
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Facts:
    lag1: float
    abs_lag1: float
    vr24: float
    kurtosis: float
    volume_rank: float
    oracle_auc: float
    funding_mean_bps: float
    funding_positive: float


def _autocorr(x: F64, lag: int = 1) -> float:
    return float(np.corrcoef(x[lag:], x[:-lag])[0, 1])


def _variance_ratio(r: F64, q: int) -> float:
    sums = np.convolve(r - r.mean(), np.ones(q), mode="valid")
    return float(np.var(sums) / (q * np.var(r)))


def _rank(x: F64) -> F64:
    out = np.empty(x.shape[0])
    out[np.argsort(x, kind="stable")] = np.arange(x.shape[0], dtype=np.float64)
    return out



def measure(sim: SimExchange, symbol: str, days: int) -> Facts:
    start = END_MS - days * 86_400_000
    hourly = sim.history(symbol, "1h", start_ms=start, end_ms=END_MS)
    r = np.diff(np.log(hourly.close))
    vol = hourly.volume[1:] * hourly.close[1:]  # quote (USD) volume: base volume drifts with the price level
    k = r - r.mean()
    kurt = float(np.mean(k**4) / np.mean(k**2) ** 2 - 3.0)
    q15 = sim.history(symbol, "15m", start_ms=END_MS - min(days, 40) * 86_400_000, end_ms=END_MS)
    p = sim.model.oracle_probability(symbol, "15m", q15.ts[:-4], 4)
    up = q15.close[4:] > q15.close[:-4]
    funding_mean, funding_pos = math.nan, math.nan
    rates_fn = getattr(sim, "funding_rates", None)
    if rates_fn is not None:
        rates = np.asarray([f.rate for f in asyncio.run(rates_fn(symbol, since_ms=start, until_ms=END_MS))])
        if rates.size:
            funding_mean, funding_pos = float(rates.mean() * 1e4), float((rates > 0).mean())
    return Facts(
        lag1=_autocorr(r),
        abs_lag1=_autocorr(np.abs(r)),
        vr24=_variance_ratio(r, 24),
        kurtosis=kurt,
        volume_rank=float(np.corrcoef(_rank(vol), _rank(np.abs(r)))[0, 1]),
        oracle_auc=auc(up.astype(np.float64), p),
        funding_mean_bps=funding_mean,
        funding_positive=funding_pos,
    )


ROWS = (
    ("lag-1 autocorrelation, 1h returns", "lag1", "-0.04 (BTC 1h)", "{:+.3f}"),
    ("variance ratio VR(24), 1h returns", "vr24", "0.90 (BTC 1h)", "{:.2f}"),
    ("lag-1 autocorrelation of |1h return|", "abs_lag1", "clearly > 0 (clustering)", "{:.2f}"),
    ("excess kurtosis, 1h returns", "kurtosis", "> 0, often 5-20 (fat tails)", "{:.1f}"),
    ("rank corr(quote volume, |return|), 1h", "volume_rank", "0.5-0.6", "{:.2f}"),
    ("oracle AUC, 15m, 4 bars ahead", "oracle_auc", "- (sim only)", "{:.3f}"),
    ("funding, mean per 8h (bps)", "funding_mean_bps", "~1 (BTC, 0.01 %/8h)", "{:.2f}"),
    ("funding, share of positive settlements", "funding_positive", "mostly positive", "{:.2f}"),
)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--days", type=int, default=180)
    ap.add_argument("--symbols", type=int, default=12)
    args = ap.parse_args()
    sim = SimExchange(ExchangeSettings(seed=args.seed), clock=ManualClock(END_MS))
    symbols = SYMBOLS[: args.symbols]
    facts = [measure(sim, s, args.days) for s in symbols]
    print(f"sim seed {args.seed}: {len(symbols)} symbols x {args.days} days of 1h bars (oracle: 15m, <= 40 days)")
    print(f"{'fact':<40} {'sim median [min, max]':<30} real market")
    for label, attr, real, fmt in ROWS:
        vals = np.asarray([getattr(f, attr) for f in facts], dtype=np.float64)
        vals = vals[np.isfinite(vals)]
        if vals.size == 0:
            cell = "n/a"
        else:
            cell = f"{fmt.format(float(np.median(vals)))} [{fmt.format(float(vals.min()))}, {fmt.format(float(vals.max()))}]"
        print(f"{label:<40} {cell:<30} {real}")


if __name__ == "__main__":
    main()
