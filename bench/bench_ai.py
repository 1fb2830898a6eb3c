"""AI benchmark: bar-close inference for 540 symbols (features + batch predict) vs a per-row loop,
and walk-forward training time for the default history (ai.trainSymbols × ai.historyBars).

    .venv/bin/python bench/bench_ai.py [--symbols 540] [--repeat 50] [--quick]

Market data comes from the simulated exchange (seed 7). The machine is noisy, so every figure
is printed next to a baseline measured in the same run (ratios), as the notes recommend.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from quantum_trader.ai.data import align, fetch_klines, last_closed_open_ms
from quantum_trader.ai.dataset import build_dataset
from quantum_trader.ai.features import WINDOW, Bars, latest_features
from quantum_trader.ai.model import ModelBundle
from quantum_trader.ai.training import TrainParams, train_walk_forward
from quantum_trader.core.clock import ManualClock
from quantum_trader.core.profile import AiSettings, ExchangeSettings
from quantum_trader.market.sim import SimExchange

NOW = 1_763_700_000_000


BEST: dict[int, float] = {}


def timed(fn: Callable[[], Any], repeat: int) -> float:
    """Median wall time of ``fn`` in milliseconds (the best run is kept in BEST[id(fn)])."""
    fn()
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    BEST[id(fn)] = min(samples)
    return statistics.median(samples)


async def load(ex: SimExchange, symbols: list[str], *, bars: int) -> Any:
    kl = await fetch_klines(ex, symbols, timeframe="15m", limit=bars, end_ms=NOW)
    return align(kl, n_bars=bars, last_open_ms=last_closed_open_ms(NOW, "15m"), timeframe="15m")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--symbols", type=int, default=540)
    ap.add_argument("--repeat", type=int, default=100)
    ap.add_argument("--quick", action="store_true", help="3 time blocks instead of 6 (faster training)")
    args = ap.parse_args()
    ai = AiSettings()
    ex = SimExchange(ExchangeSettings(seed=7), clock=ManualClock(NOW))
    markets = asyncio.run(ex.markets())
    universe = [m.symbol for m in markets if m.status == "TRADING" and m.asset_class != "stable"][: args.symbols]
    train_syms = universe[: ai.train_symbols]

    t0 = time.perf_counter()
    hist = asyncio.run(load(ex, train_syms, bars=ai.history_bars))
    fetch_hist_s = time.perf_counter() - t0
    params = TrainParams.from_settings(ai)
    ds = build_dataset(hist.bars, ts=hist.ts, symbols=hist.symbols, horizons=params.horizons)
    print(f"training data: {len(hist.symbols)} symbols × {ai.history_bars} bars → {ds.n:,} rows "
          f"(fetch {fetch_hist_s:.2f} s)")
    if args.quick:
        params = TrainParams.from_settings(ai, n_blocks=3)
    t0 = time.perf_counter()
    res = train_walk_forward(ds, params=params, version="bench", timeframe="15m")
    train_s = time.perf_counter() - t0
    bundle: ModelBundle = res.bundle
    lgb_fits = 2 * (params.n_blocks - 1) + (params.n_blocks - 2) + 3
    print(f"walk-forward training ({params.n_blocks} blocks, {lgb_fits} LightGBM fits, {params.rounds} rounds, "
          f"{params.threads} thread): {train_s:.1f} s  (OOS AUC {res.report['auc']})")
    t0 = time.perf_counter()
    x1 = ds.x
    booster = bundle.boosters[0]
    import lightgbm

    single = lightgbm.train(params.lgb_params(), lightgbm.Dataset(x1, label=ds.label_up(4)),
                            num_boost_round=params.rounds)
    one_fit_s = time.perf_counter() - t0
    print(f"  baseline in the same run: one LightGBM fit on all {ds.n:,} rows: {one_fit_s:.2f} s "
          f"→ training = {train_s / one_fit_s:.1f} × one fit")
    del single

    live = asyncio.run(load(ex, universe, bars=WINDOW))
    bars: Bars = live.bars
    n = bars.n_symbols
    print(f"\nmachine load (1-min average): {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"bar-close inference for {n} symbols ({WINDOW} bars each), median of {args.repeat}:")

    def batch() -> None:
        bundle.predict(latest_features(bars), hold_below=ai.hold_below)

    x = latest_features(bars)

    def feat() -> None:
        latest_features(bars)

    def pred() -> None:
        bundle.predict(x, hold_below=ai.hold_below)

    feat_ms = timed(feat, args.repeat)
    pred_ms = timed(pred, args.repeat)
    best_by = {"feat": BEST[id(feat)], "pred": BEST[id(pred)]}
    total_ms = timed(batch, args.repeat)
    total_best = BEST[id(batch)]
    base_ms = timed(lambda: booster.predict(x, num_threads=1), args.repeat)

    def per_row() -> None:
        for i in range(n):
            row = Bars(bars.high[i : i + 1], bars.low[i : i + 1], bars.close[i : i + 1], bars.volume[i : i + 1],
                       bars.open_ms)
            bundle.predict(latest_features(row), hold_below=ai.hold_below)

    def per_row_booster() -> None:
        for i in range(n):
            booster.predict(x[i : i + 1], num_threads=1)

    loop_ms = timed(per_row, max(3, args.repeat // 10))
    loop_booster_ms = timed(per_row_booster, max(3, args.repeat // 10))
    raw = _as_klines(live)
    align_ms = timed(lambda: align(raw, n_bars=WINDOW, last_open_ms=int(live.ts[-1]), timeframe="15m"),
                     max(3, args.repeat // 5))
    print(f"  features (vectorised, 2-D)             {feat_ms:8.2f} ms   (best {best_by['feat']:.2f} ms)")
    print(f"  predict (2 base + meta + meta-label)   {pred_ms:8.2f} ms   (best {best_by['pred']:.2f} ms)")
    print(f"  features + predict (batch)             {total_ms:8.2f} ms   (best {total_best:.2f} ms)  "
          f"target < 10 ms: {'MET' if total_ms < 10 else 'MISSED'} (median)")
    print(f"  per-row loop (features + predict)      {loop_ms:8.2f} ms   batch is {loop_ms / total_ms:.0f}× faster")
    print(f"  baseline: one booster, batch           {base_ms:8.2f} ms")
    print(f"  baseline: one booster, per-row loop    {loop_booster_ms:8.2f} ms   "
          f"({loop_booster_ms / base_ms:.0f}× the batch)")
    print(f"  (not counted) klines → aligned arrays   {align_ms:8.2f} ms")
    return 0


def _as_klines(live: Any) -> dict[str, Any]:
    from quantum_trader.market.base import Klines

    b = live.bars
    return {
        s: Klines(s, "15m", live.ts, b.close[i], b.high[i], b.low[i], b.close[i], b.volume[i])
        for i, s in enumerate(live.symbols)
    }


if __name__ == "__main__":
    sys.exit(main())
