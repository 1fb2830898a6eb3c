"""The backtest's exits and fills agree with the executor's: levels first, then the time exit at the horizon."""

from __future__ import annotations

import numpy as np
from quantum_trader.backtest.data import Series
from quantum_trader.backtest.fills import END_OF_DATA, find_exit

T0 = 1_700_000_000_000
MIN = 60_000


def minutes(closes: list[float]) -> Series:
    c = np.array(closes, dtype=np.float64)
    ts = T0 + MIN * np.arange(len(c), dtype=np.int64)
    return Series(ts, c.copy(), c + 0.5, c - 0.5, c, np.ones_like(c))


def test_a_position_no_level_closed_exits_at_its_horizon_at_the_mark_then() -> None:
    s = minutes([100.0, 101.0, 102.0, 103.0, 104.0, 105.0])
    e = find_exit(s, "1m", side="BUY", stop_loss=90.0, take_profit=120.0, opened_ms=T0, end_ms=T0 + 6 * MIN,
                  expires_ms=T0 + 3 * MIN)
    assert (e.at_ms, e.reason, e.mid) == (T0 + 3 * MIN, "time", 102.0)  # the close of the bar closing at 3m


def test_a_level_crossed_on_the_bar_closing_at_the_horizon_wins_over_the_time_exit() -> None:
    s = minutes([100.0, 101.0, 121.0, 103.0])
    e = find_exit(s, "1m", side="BUY", stop_loss=90.0, take_profit=120.0, opened_ms=T0, end_ms=T0 + 4 * MIN,
                  expires_ms=T0 + 3 * MIN)
    assert (e.at_ms, e.reason) == (T0 + 3 * MIN, "take_profit")


def test_a_horizon_beyond_the_span_ends_with_the_backtest_and_none_never_times_out() -> None:
    s = minutes([100.0, 101.0, 102.0])
    late = find_exit(s, "1m", side="SELL", stop_loss=110.0, take_profit=80.0, opened_ms=T0, end_ms=T0 + 3 * MIN,
                     expires_ms=T0 + 60 * MIN)
    never = find_exit(s, "1m", side="SELL", stop_loss=110.0, take_profit=80.0, opened_ms=T0, end_ms=T0 + 3 * MIN,
                      expires_ms=0)
    assert late.reason == never.reason == END_OF_DATA and late.mid == never.mid == 102.0


def test_the_backtest_router_knows_the_sources_settlements_never_the_assumed_default() -> None:
    from quantum_trader.backtest.data import Funding, MarketData

    h = 3_600_000
    settled = Funding(ts=np.array([8 * h, 16 * h, 24 * h], dtype=np.int64), rate=np.array([1e-4, 2e-4, 3e-4]))
    data = MarketData(source="t", markets={}, series={}, finest={}, spread_bps={},
                      funding_loader=lambda sym, _s, _e: settled if sym == "BTCUSDT" else None)
    last_two = data.known_settlements("BTCUSDT", start_ms=0, end_ms=48 * h, now_ms=20 * h)
    assert [(r.ts, r.rate) for r in last_two] == [(8 * h, 1e-4), (16 * h, 2e-4)]  # what happened by now
    assert data.known_settlements("ETHUSDT", start_ms=0, end_ms=48 * h, now_ms=20 * h) == []  # assumed: unknown
    assert data.funding_for("ETHUSDT", 0, 48 * h).rate.size > 0  # though trades are still charged the default
