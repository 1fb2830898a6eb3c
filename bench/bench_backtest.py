"""qt backtest: decision-pipeline rate, start-up, walk-forward training, peak memory — one run, own baselines.

    .venv/bin/python bench/bench_backtest.py [--symbols 10] [--days 365] [--quick]

Data: the sim's bars written as replay CSV files into a temporary folder (so the run reads
files, as a user's backtest does). One data point = one bar of one symbol at the finest
timeframe the run reads (15m here). Figures:

1. **pipeline**: 10 symbols × one year of 15m bars (350k data points) through features,
   inference (the fallback model: no training), router, snapshot, gate, executor and exits —
   data points/s; target ≥ 40,000/s (350k in < 9 s). Baseline in the same run: a bare Python
   loop that touches every data point once (one float comparison) — the floor of any per-bar
   Python event loop. Universe cycles are timed separately (refresh 24h here).
2. **walk-forward**: one symbol, two years of 1h bars, retrained weekly (104 trainings,
   ai.historyBars 4400 — what `qt train` asks for one symbol; the default 2000 leaves too few rows), end to end,
   the trainings in one process per CPU (``qt backtest``'s default ``--jobs``); target < 30 s (a third of
   FreqAI's 86 s for the same shape); trainings and their time apart, and their sum (one process).
3. **start-up**: ``qt backtest --help`` in a fresh interpreter (imports), against ``python -c pass``;
   target < 2 s.
4. **memory**: peak RSS of a 50-symbol × one-year pipeline run in a child process.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from quantum_trader.backtest.command import Progress, execute
from quantum_trader.backtest.data import load_replay
from quantum_trader.core.clock import DataClock
from quantum_trader.core.profile import ExchangeSettings, parse_profile
from quantum_trader.market.replay import write_csv
from quantum_trader.market.sim import SimExchange

END = 1_704_067_200_000  # 2024-01-01
DAY = 86_400_000
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT", "ADAUSDT", "BNBUSDT", "TRXUSDT", "LINKUSDT",
           "AVAXUSDT", "DOTUSDT", "LTCUSDT", "BCHUSDT", "NEARUSDT", "UNIUSDT", "ATOMUSDT", "ETCUSDT", "FILUSDT",
           "APTUSDT", "ARBUSDT", "OPUSDT", "INJUSDT", "SUIUSDT", "AAVEUSDT", "MKRUSDT", "RUNEUSDT", "TIAUSDT",
           "SEIUSDT", "WLDUSDT", "PEPEUSDT", "SHIBUSDT", "BONKUSDT", "WIFUSDT", "FETUSDT", "RENDERUSDT",
           "GALAUSDT", "SANDUSDT", "MANAUSDT", "AXSUSDT", "CRVUSDT", "LDOUSDT", "STXUSDT", "IMXUSDT", "ALGOUSDT",
           "XLMUSDT", "HBARUSDT", "VETUSDT", "EGLDUSDT", "THETAUSDT", "FLOWUSDT")


def record(folder: Path, symbols: tuple[str, ...], *, days: int, timeframe: str) -> None:
    sim = SimExchange(ExchangeSettings(), clock=DataClock(END))
    known = {m.symbol for m in sim._markets.values()}
    for s in symbols:
        if s in known:
            write_csv(folder / f"{s}_{timeframe}.csv", sim.history(s, timeframe, start_ms=END - days * DAY, end_ms=END))


def profile(data: Path, **spec: Any) -> Any:
    doc = {"apiVersion": "quantumtrader.io/v1alpha1", "kind": "TradingProfile", "metadata": {"name": "bench"},
           "spec": {"exchange": {"name": "replay", "data": str(data)}, **spec}}
    return parse_profile(doc)


def pipeline(data: Path, *, symbols: int, days: int) -> dict[str, Any]:
    p = profile(data, universe={"size": min(10, symbols), "refreshInterval": "24h", "validFor": "25h",
                                "minQuoteVolume24h": 0},
                ai={"trainSymbols": 1})
    d = load_replay(p.spec.exchange)
    start = END - days * DAY + 22 * DAY
    t0, c0 = time.perf_counter(), time.process_time()
    run = execute(p, start=start, end=END, data=d, retrain_s=1e12, models=[], in_sample=False,
                  progress=Progress(sys.stderr, enabled=False), oracle=False)
    total, cpu = time.perf_counter() - t0, time.process_time() - c0
    points = run.result.data_points
    pipe = run.timings["signals"] + run.timings["trading"]
    # baseline: a bare Python loop touching each data point once
    closes = [d.get(s, "15m").close.tolist() for s in run.result.symbols_read]
    b0 = time.perf_counter()
    n = 0
    for series in closes:
        for c in series:
            if c > 0.0:
                n += 1
    bare = time.perf_counter() - b0
    return {"data_points": points, "pipeline_s": round(pipe, 3), "points_per_s": round(points / pipe),
            "bare_loop_s": round(bare, 3), "pipeline_vs_bare_loop": round(pipe / bare, 2),
            "universe_cycles": len(run.universe), "universe_s": round(run.timings["universe"], 2),
            "trades": len(run.result.trades), "end_to_end_s": round(total, 2), "end_to_end_cpu_s": round(cpu, 2)}


def walk_forward(data: Path) -> dict[str, Any]:
    p = profile(data, universe={"size": 1, "refreshInterval": "24h", "validFor": "25h", "timeframes": ["1h"],
                                "minQuoteVolume24h": 0},
                ai={"timeframe": "1h", "historyBars": 4400, "trainSymbols": 1})
    t0, c0, k0 = time.perf_counter(), time.process_time(), resource.getrusage(resource.RUSAGE_CHILDREN)
    d = load_replay(p.spec.exchange)
    start = END - 2 * 365 * DAY + 190 * DAY  # after the 4400-bar training window
    jobs = os.cpu_count() or 1  # what `qt backtest` uses by default (--jobs)
    run = execute(p, start=start, end=END, data=d, retrain_s=7 * 86400, models=None, in_sample=False,
                  progress=Progress(sys.stderr, enabled=False), oracle=False, jobs=jobs)
    total = time.perf_counter() - t0
    k1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = time.process_time() - c0 + (k1.ru_utime + k1.ru_stime) - (k0.ru_utime + k0.ru_stime)
    return {"bars": len(d.get("BTCUSDT", "1h")), "trainings": len(run.models), "cpu_s": round(cpu, 2),
            "promoted": sum(m.promoted for m in run.models), "training_s": round(run.timings["training"], 2),
            "jobs": jobs, "training_one_process_s": round(sum(m.seconds for m in run.models), 2),
            "end_to_end_s": round(total, 2), "trades": len(run.result.trades)}


def startup() -> dict[str, Any]:
    def best(cmd: list[str]) -> float:
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            times.append(time.perf_counter() - t0)
        return min(times)

    qt = best([sys.executable, "-m", "quantum_trader.cli", "backtest", "--help"])
    bare = best([sys.executable, "-c", "pass"])
    return {"qt_backtest_help_s": round(qt, 3), "python_bare_s": round(bare, 3)}


def memory(data: Path, days: int) -> dict[str, Any]:
    here, folder = str(Path(__file__).parent), str(data)
    code = (
        "import resource, sys, json\n"
        f"sys.path.insert(0, {here!r})\n"
        "import bench_backtest as b\n"
        "from pathlib import Path\n"
        f"r = b.pipeline(Path({folder!r}), symbols=50, days={days})\n"
        "r['peak_rss_mb'] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)\n"
        "print(json.dumps(r))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--quick", action="store_true", help="60 days, no memory run")
    args = ap.parse_args()
    days = 60 if args.quick else args.days
    with tempfile.TemporaryDirectory() as tmp:
        ten, fifty, hourly = Path(tmp, "ten"), Path(tmp, "fifty"), Path(tmp, "hourly")
        for f in (ten, fifty, hourly):
            f.mkdir()
        record(ten, SYMBOLS[:10], days=days, timeframe="15m")
        record(hourly, ("BTCUSDT",), days=2 * 365, timeframe="1h")
        out: dict[str, Any] = {"startup": startup()}
        s = out["startup"]
        print(f"start-up: qt backtest --help {s['qt_backtest_help_s']:.2f} s (python alone {s['python_bare_s']:.2f} s;"
              f" target < 2 s)", flush=True)
        out["pipeline"] = pipeline(ten, symbols=10, days=days)
        pp = out["pipeline"]
        print(f"pipeline: {pp['data_points']:,} data points (15m) in {pp['pipeline_s']:.2f} s = "
              f"{pp['points_per_s']:,}/s (target >= 40,000/s); bare Python loop over the same points "
              f"{pp['bare_loop_s']:.3f} s (pipeline = {pp['pipeline_vs_bare_loop']}x it); universe "
              f"{pp['universe_cycles']} cycles {pp['universe_s']} s; {pp['trades']} trades; end to end "
              f"{pp['end_to_end_s']} s (CPU {pp['end_to_end_cpu_s']} s)", flush=True)
        out["walk_forward"] = wf = walk_forward(hourly)
        print(f"walk-forward: 1 symbol, {wf['bars']:,} 1h bars, weekly: {wf['trainings']} trainings "
              f"({wf['promoted']} promoted) {wf['training_s']} s in {wf['jobs']} processes (their sum, what one "
              f"process takes: {wf['training_one_process_s']} s, {wf['training_one_process_s'] / max(1, wf['trainings']):.2f}"
              f" s per training), end to end {wf['end_to_end_s']} s, CPU {wf['cpu_s']} s with its training processes "
              f"(target < 30 s; FreqAI 86 s)", flush=True)
        if not args.quick:
            record(fifty, SYMBOLS, days=days, timeframe="15m")
            out["memory_50_symbols"] = m = memory(fifty, days)
            print(f"memory: 50 symbols × {days} days of 15m ({m['data_points']:,} data points read): peak RSS "
                  f"{m['peak_rss_mb']} MB; pipeline {m['points_per_s']:,}/s", flush=True)
    load = os.getloadavg()
    out["load_average"] = [round(x, 2) for x in load]
    print(f"load average {load[0]:.1f} on {os.cpu_count()} CPUs (above the CPU count, wall times include waiting for "
          "other processes; the CPU figures do not)", flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
