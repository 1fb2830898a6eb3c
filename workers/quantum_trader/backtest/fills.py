"""Fills and exits over frozen bars (pure): the next available price, spread, slippage, fees, funding.

* **Paper fills** (``--fills paper``): exactly the live paper venue — the reference is the mark the
  executor planned with, half the profile's ``universe.spreadBps`` crossed; slippage, tick rounding
  and fee as below (used by the parity test).
* **Entry/exit fill**: the reference is the next available price after the decision — the open of
  the finest bar that opens at (or after) the decision time; half the symbol's spread is crossed
  (:func:`~quantum_trader.executor.core.quote`, as the paper venue), then the paper venue's own
  slippage and tick rounding (:func:`~quantum_trader.executor.core.paper_fill`, deterministic from
  the client order id), and the taker fee on the filled notional.
* **Exits** use the executor's own rule (:func:`~quantum_trader.executor.core.exit_reason`) on the
  finest bars: with 1m bars, on each bar's close — the mark the live SL/TP monitor sees; with
  coarser bars on the bar's low/high (intrabar excursions would otherwise be missed), filled at the
  level or at the open when the bar gapped through it, the stop first when a bar touches both.
  A position no level closed by its time exit (opened + the label horizon, as the executor's
  ``expires_ts``) closes then, at the mark (the close of the last bar closed by that time),
  reason ``time``; a level crossed on the bar that closes at that very time wins, as live.
* **Funding** at each funding time while the position is open: ``qty × entry × rate``, paid by
  longs and received by shorts when the rate is positive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

import numpy as np

from quantum_trader.backtest.data import Funding, Series
from quantum_trader.executor.core import paper_fill, quote
from quantum_trader.executor.venue import VenueFill, VenueOrder
from quantum_trader.market.base import TIMEFRAME_MS

Side = Literal["BUY", "SELL"]
SCAN_CHUNK: Final = 4096
END_OF_DATA: Final = "end_of_backtest"
TIME_EXIT: Final = "time"


@dataclass(frozen=True, slots=True)
class Fill:
    """A venue fill plus its cost breakdown (USD, all >= 0 when adverse)."""

    venue: VenueFill
    mid: float  # the reference before spread and slippage
    spread_usd: float
    slippage_usd: float


def fill(
    *, side: Side, qty: float, mid: float, spread_bps: float, tick: float, client_order_id: str,
    max_slippage_bps: float, fee_bps: float,
) -> Fill:
    direction = 1.0 if side == "BUY" else -1.0
    quoted = quote(side, mid=mid, spread_bps=spread_bps, tick=tick)
    order = VenueOrder(intent_id=client_order_id, client_order_id=client_order_id, symbol="", side=side, qty=qty,
                       reference_price=mid)
    venue = paper_fill(order, spread_bps=spread_bps, tick=tick, max_slippage_bps=max_slippage_bps, fee_bps=fee_bps)
    return Fill(venue=venue, mid=mid, spread_usd=(quoted - mid) * direction * qty,
                slippage_usd=(venue.price - quoted) * direction * qty)


def next_price(series: Series, timeframe: str, at_ms: int) -> float | None:
    """The open of the first bar opening at or after ``at_ms``; else the last close before it."""
    i = int(np.searchsorted(series.ts, at_ms, side="left"))
    if i < len(series):
        return float(series.open[i])
    return float(series.close[-1]) if len(series) else None


def mark_at(series: Series, timeframe: str, at_ms: int) -> float | None:
    """The close of the last bar closed at ``at_ms`` (the mark the live workers read)."""
    n = int(series.ts.searchsorted(at_ms - TIMEFRAME_MS[timeframe], side="right"))
    return float(series.close[n - 1]) if n else None


@dataclass(frozen=True, slots=True)
class Exit:
    at_ms: int  # when the exit happens (close of the bar that triggered it)
    reason: str  # stop_loss | take_profit | time | end_of_backtest
    mid: float  # the price before spread and slippage


def find_exit(
    series: Series, timeframe: str, *, side: Side, stop_loss: float, take_profit: float, opened_ms: int,
    end_ms: int, expires_ms: int,
) -> Exit:
    """The first SL/TP crossing after ``opened_ms`` on the finest bars, else the time exit at
    ``expires_ms`` (0 = none) when it comes by ``end_ms``, else the last mark before ``end_ms``."""
    tf = TIMEFRAME_MS[timeframe]
    timed = 0 < expires_ms <= end_ms
    until = expires_ms if timed else end_ms
    lo = int(np.searchsorted(series.ts, opened_ms, side="left"))
    hi = int(np.searchsorted(series.ts, until - tf, side="right"))  # bars closed by the time exit / end_ms
    long = side == "BUY"
    on_close = tf <= 60_000
    i = lo
    while i < hi:
        j = min(hi, i + SCAN_CHUNK)
        if on_close:
            c = series.close[i:j]
            sl = (c <= stop_loss) if long else (c >= stop_loss)
            tp = (c >= take_profit) if long else (c <= take_profit)
        else:
            low, high = series.low[i:j], series.high[i:j]
            sl = (low <= stop_loss) if long else (high >= stop_loss)
            tp = (high >= take_profit) if long else (low <= take_profit)
        if stop_loss <= 0:
            sl = np.zeros_like(sl)
        if take_profit <= 0:
            tp = np.zeros_like(tp)
        hit = np.flatnonzero(sl | tp)
        if hit.size:
            k = int(hit[0])
            at = int(series.ts[i + k]) + tf
            if on_close:
                return Exit(at, "stop_loss" if sl[k] else "take_profit", float(series.close[i + k]))
            o = float(series.open[i + k])
            if sl[k]:
                gapped = o <= stop_loss if long else o >= stop_loss
                return Exit(at, "stop_loss", o if gapped else stop_loss)
            gapped = o >= take_profit if long else o <= take_profit
            return Exit(at, "take_profit", o if gapped else take_profit)
        i = j
    if timed:
        mid = float(series.close[hi - 1]) if hi > 0 else next_price(series, timeframe, opened_ms) or 0.0
        return Exit(expires_ms, TIME_EXIT, mid)
    if hi > 0 and hi > lo:
        return Exit(int(series.ts[hi - 1]) + tf, END_OF_DATA, float(series.close[hi - 1]))
    last = next_price(series, timeframe, opened_ms) or 0.0
    return Exit(max(opened_ms, end_ms), END_OF_DATA, last)


def funding_usd(f: Funding, *, side: Side, notional: float, opened_ms: int, closed_ms: int) -> float:
    """Funding paid (> 0) or received (< 0) over (opened_ms, closed_ms]."""
    a = int(np.searchsorted(f.ts, opened_ms, side="right"))
    b = int(np.searchsorted(f.ts, closed_ms, side="right"))
    if b <= a:
        return 0.0
    total = float(f.rate[a:b].sum())
    return notional * total * (1.0 if side == "BUY" else -1.0)
