"""Simulated-exchange throughput: the universe's klines load, mark prices, tickers (printed figures).

Run: ``.venv/bin/python bench/bench_sim.py [--symbols 540] [--bars 500]``. Prints wall and CPU time
(the CPU time is the steadier figure on a noisy machine) for a cold cache (first cycle of a fresh
process) and a warm cache (the next cycle), plus bars generated per second.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from quantum_trader.core.clock import ManualClock
from quantum_trader.core.profile import ExchangeSettings
from quantum_trader.market.sim import SimExchange

NOW = 1_795_000_000_000


async def _klines_cycle(ex: SimExchange, symbols: list[str], bars: int) -> None:
    for s in symbols:
        await ex.klines(s, "15m", limit=bars)
        await ex.klines(s, "1h", limit=bars)


def _timed(label: str, fn: object, *, items: float = 0.0, unit: str = "") -> None:
    wall, cpu = time.perf_counter(), time.process_time()
    asyncio.run(fn)  # type: ignore[arg-type]
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    rate = f"  {items / wall:,.0f} {unit}/s" if items else ""
    print(f"{label:<44} wall {wall * 1000:8.1f} ms   cpu {cpu * 1000:8.1f} ms{rate}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--symbols", type=int, default=540)
    ap.add_argument("--bars", type=int, default=500)
    args = ap.parse_args()
    clock = ManualClock(NOW)
    ex = SimExchange(ExchangeSettings(seed=7), clock=clock, cache_days=16_384)  # private, cold cache
    markets = asyncio.run(ex.markets())
    usdt = [
        m.symbol for m in markets if m.quote == "USDT" and m.contract == "perpetual" and m.status == "TRADING"
    ]
    symbols = usdt[: args.symbols]
    n_bars = len(symbols) * args.bars * 2
    print(f"{len(symbols)} symbols x {args.bars} bars x (15m, 1h) = {n_bars:,} bars per cycle")
    _timed(
        "klines cycle, cold cache (target < 1500 ms)",
        _klines_cycle(ex, symbols, args.bars),
        items=n_bars,
        unit="bars",
    )
    _timed("klines cycle, warm cache", _klines_cycle(ex, symbols, args.bars), items=n_bars, unit="bars")
    clock.advance(900)
    _timed("klines cycle, 15 min later", _klines_cycle(ex, symbols, args.bars), items=n_bars, unit="bars")
    fresh = SimExchange(ExchangeSettings(seed=7), clock=ManualClock(NOW), cache_days=16_384)
    _timed("mark_prices(100), cold (target < 50 ms)", fresh.mark_prices(symbols[:100]))
    _timed("mark_prices(100), same minute (cached)", fresh.mark_prices(symbols[:100]))
    fresh.clock.advance(60)  # type: ignore[attr-defined]
    _timed("mark_prices(100), next minute", fresh.mark_prices(symbols[:100]))
    _timed("tickers (all symbols), warm day cache", ex.tickers())
    _timed(
        "klines 1m x 1500, one symbol, cold",
        fresh.klines("ETHUSDT", "1m", limit=1500),
        items=1500,
        unit="bars",
    )


if __name__ == "__main__":
    main()
