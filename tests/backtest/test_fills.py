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
