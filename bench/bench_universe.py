"""Universe compute: vectorised vs per-symbol loop, same run, same synthetic data.

    .venv/bin/python bench/bench_universe.py [--symbols 540] [--bars 500] [--repeat 15] [--json]

One full compute cycle = features (ATR%, EMA slope, ROC, 24h quote volume) and
predictability (efficiency ratio, R/S Hurst, permutation entropy, lag-1
autocorrelation, Ljung-Box) on 15m and 1h, then vetoes, score, rank and
selection, over ``symbols`` × ``bars`` × 2 timeframes of synthetic random walks
generated here (seeded). Figures (median of ``repeat`` runs after a warm-up):

- vector (2-D arrays): from (symbols × bars) arrays — the issue's < 60 ms target;
- vector (from klines): the worker's path, including stacking per-symbol klines into 2-D arrays;
- per-symbol numpy loop: the same numpy feature code called one symbol (row) at a time — the baseline;
- per-symbol textbook loop: :mod:`quantum_trader.universe.reference` (recursive EMA, R/S with a loop
  over chunks, pure-Python permutation entropy) — the test oracle, for scale;
- Hurst alone: this R/S (one cumulative sum for all scales) vs a naive 2-D R/S (per-scale reshape + cumsum).

The machine is shared and noisy, so the ratios matter more than the absolute times.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from quantum_trader.core.profile import UniverseSettings
from quantum_trader.market.base import TIMEFRAME_MS, Klines
from quantum_trader.universe import features as ft
from quantum_trader.universe.model import Candidate
from quantum_trader.universe.selection import Table, block_features, compute_selection, decide

TIMEFRAMES = ("15m", "1h")
NOW_MS = 1_800_000_000_000


def synthetic(n_sym: int, bars: int, seed: int = 42) -> tuple[list[Candidate], dict[str, dict[str, Klines]]]:
    rng = np.random.default_rng(seed)
    classes: tuple[Any, ...] = ("major",) * 10 + ("alt",) * (n_sym - 10)
    cands: list[Candidate] = []
    data: dict[str, dict[str, Klines]] = {}
    for i in range(n_sym):
        sym = f"S{i:03d}USDT"
        cands.append(Candidate(symbol=sym, base=sym[:-4], quote="USDT", asset_class=classes[i],
                               volume_24h=float(rng.uniform(1e6, 1e9)), spread_bps=float(rng.uniform(0.5, 8))))
        data[sym] = {}
        drift, vol, phi = rng.normal(0, 0.0008), rng.uniform(0.003, 0.02), rng.uniform(-0.2, 0.3)
        for tf in TIMEFRAMES:
            scale = 2.0 if tf == "1h" else 1.0
            eps = rng.normal(drift * scale, vol * scale, bars)
            r = eps.copy()
            r[1:] += phi * eps[:-1]  # a little autocorrelation so the predictability features vary
            close = 100 * np.exp(np.cumsum(r))
            wick = np.abs(rng.normal(0, vol * scale / 2, bars))
            tf_ms = TIMEFRAME_MS[tf]
            data[sym][tf] = Klines(
                symbol=sym, timeframe=tf, ts=NOW_MS - tf_ms * np.arange(bars, 0, -1, dtype=np.int64),
                open=close.copy(), high=close * (1 + wick), low=close * (1 - wick), close=close,
                volume=rng.uniform(100, 10_000, bars),
            )
    return cands, data


def blocks(cands: list[Candidate], data: dict[str, dict[str, Klines]]) -> dict[str, dict[str, ft.F64]]:
    return {
        tf: {attr: np.stack([getattr(data[c.symbol][tf], attr) for c in cands]) for attr in ("close", "high", "low", "volume")}
        for tf in TIMEFRAMES
    }


def vector_from_arrays(cands: list[Candidate], blks: dict[str, dict[str, ft.F64]], settings: UniverseSettings) -> int:
    tables: dict[str, Table] = {}
    for tf in TIMEFRAMES:
        feats, problems = block_features(blks[tf], bars_per_day=86_400_000 // TIMEFRAME_MS[tf])
        reasons = np.where(problems == ft.OK, "", "bad").astype(object)
        tables[tf] = (feats, reasons)
    return len(decide(candidates=cands, tables=tables, settings=settings).selected)


def hurst_naive_2d(returns: ft.F64) -> ft.F64:
    """The straightforward vectorised R/S: per scale, reshape, demean, cumsum, range/std, then a fit."""
    n_rows, length = returns.shape
    scales = ft.hurst_scales(length)
    logs = []
    for n in scales:
        m = length // n
        chunks = returns[:, length - m * n:].reshape(n_rows, m, n)
        dev = np.cumsum(chunks - chunks.mean(2, keepdims=True), axis=2)
        rs = (dev.max(2) - dev.min(2)) / chunks.std(2)
        logs.append(np.log(rs.mean(1)))
    y = np.stack(logs, axis=1)
    x = np.log(np.asarray(scales, dtype=np.float64))
    return np.asarray([np.polyfit(x, row, 1)[0] for row in y]) if n_rows < 2 else (
        (y - y.mean(1, keepdims=True)) @ (x - x.mean()) / ((x - x.mean()) @ (x - x.mean()))
    )


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float, float]:
    """(median wall ms, min wall ms, median CPU ms). CPU time excludes waiting for a busy CPU."""
    fn()  # warm-up
    wall, cpu = [], []
    for _ in range(repeat):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        wall.append((time.perf_counter() - t0) * 1000.0)
        cpu.append((time.process_time() - c0) * 1000.0)
    return statistics.median(wall), min(wall), statistics.median(cpu)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=540)
    ap.add_argument("--bars", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--loop-repeat", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    settings = UniverseSettings.model_validate({"bars": args.bars, "timeframes": list(TIMEFRAMES)})
    cands, data = synthetic(args.symbols, args.bars)
    blks = blocks(cands, data)
    rets = ft.log_returns(blks["1h"]["close"])

    vec_arrays = timed(lambda: vector_from_arrays(cands, blks, settings), args.repeat)
    vec_klines = timed(lambda: compute_selection(candidates=cands, data=data, settings=settings), args.repeat)
    rowwise = timed(lambda: compute_selection(candidates=cands, data=data, settings=settings, engine="rowwise"),
                    args.loop_repeat)
    loop = timed(lambda: compute_selection(candidates=cands, data=data, settings=settings, engine="loop"),
                 args.loop_repeat)
    hurst_fast = timed(lambda: ft.hurst_rs(rets), args.repeat)
    hurst_naive = timed(lambda: hurst_naive_2d(rets), args.repeat)
    if not np.allclose(ft.hurst_rs(rets, corrected=False), hurst_naive_2d(rets), atol=1e-9):
        raise SystemExit("hurst implementations disagree")
    same = [r.symbol for r in compute_selection(candidates=cands, data=data, settings=settings).selected] == [
        r.symbol for r in compute_selection(candidates=cands, data=data, settings=settings, engine="loop").selected
    ]
    result = {
        "symbols": args.symbols, "bars": args.bars, "timeframes": list(TIMEFRAMES),
        "vector_arrays_ms": round(vec_arrays[0], 2), "vector_arrays_min_ms": round(vec_arrays[1], 2),
        "vector_arrays_cpu_ms": round(vec_arrays[2], 2),
        "vector_klines_ms": round(vec_klines[0], 2), "vector_klines_min_ms": round(vec_klines[1], 2),
        "vector_klines_cpu_ms": round(vec_klines[2], 2), "rowwise_cpu_ms": round(rowwise[2], 1),
        "rowwise_ms": round(rowwise[0], 1), "rowwise_min_ms": round(rowwise[1], 1),
        "loop_ms": round(loop[0], 1), "loop_min_ms": round(loop[1], 1),
        "speedup_arrays": round(rowwise[0] / vec_arrays[0], 1),
        "speedup_klines": round(rowwise[0] / vec_klines[0], 1),
        "speedup_vs_textbook_loop": round(loop[0] / vec_klines[0], 1),
        "hurst_ms": round(hurst_fast[0], 2), "hurst_naive_2d_ms": round(hurst_naive[0], 2),
        "hurst_speedup": round(hurst_naive[0] / hurst_fast[0], 2),
        "same_selection": same, "target_ms": 60, "meets_target": vec_arrays[0] < 60, "meets_target_best": vec_arrays[1] < 60,
        "meets_target_cpu": vec_arrays[2] < 60,
        "load_average_1m": round(os.getloadavg()[0], 2), "cpus": os.cpu_count(),
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"universe compute, {args.symbols} symbols x {args.bars} bars x {len(TIMEFRAMES)} timeframes "
          f"(median of {args.repeat}; loops: {args.loop_repeat}); load average {result['load_average_1m']} "
          f"on {result['cpus']} CPUs")
    print("  (wall ms: median, min; CPU ms: median — CPU time is what the compute costs on a busy machine)")
    print(f"  vector, from 2-D arrays    {vec_arrays[0]:8.1f} ms  (min {vec_arrays[1]:.1f}, CPU {vec_arrays[2]:.1f})  "
          f"target < 60 ms: median {'yes' if vec_arrays[0] < 60 else 'NO'}, best {'yes' if vec_arrays[1] < 60 else 'NO'}, "
          f"CPU {'yes' if vec_arrays[2] < 60 else 'NO'}")
    print(f"  vector, from klines        {vec_klines[0]:8.1f} ms  (min {vec_klines[1]:.1f}, CPU {vec_klines[2]:.1f})  "
          "incl. stacking")
    print(f"  per-symbol numpy loop      {rowwise[0]:8.1f} ms  (min {rowwise[1]:.1f}, CPU {rowwise[2]:.1f})  "
          "same code, one row at a time")
    print(f"  per-symbol textbook loop   {loop[0]:8.1f} ms  (min {loop[1]:.1f})  recursive EMA, chunk-loop R/S")
    print(f"  speed-up vs numpy loop     {result['speedup_arrays']:8.1f} x (arrays)  "
          f"{result['speedup_klines']:.1f} x (klines)   vs textbook loop "
          f"{result['speedup_vs_textbook_loop']:.1f} x (klines)  same selection: {same}")
    print(f"  Hurst 1h: {hurst_fast[0]:.2f} ms vs naive 2-D R/S {hurst_naive[0]:.2f} ms "
          f"({result['hurst_speedup']:.2f} x)")


if __name__ == "__main__":
    main()
