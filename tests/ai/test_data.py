from __future__ import annotations

import numpy as np
from quantum_trader.ai.data import (
    SKIP_FETCH_FAILED,
    SKIP_GAPS,
    SKIP_NAN_HEAVY,
    SKIP_STALE,
    SKIP_TOO_LITTLE_HISTORY,
    align,
    last_closed_open_ms,
)
from quantum_trader.market.base import Klines

TF = 900_000
LAST = 1_700_000_100_000 // TF * TF


def _k(symbol: str, n: int, *, last: int = LAST, close: np.ndarray | None = None) -> Klines:
    ts = last - (n - 1 - np.arange(n, dtype=np.int64)) * TF
    c = np.linspace(100, 110, n) if close is None else close
    return Klines(symbol, "15m", ts, c, c * 1.01, c * 0.99, c, np.full(n, 5.0))


def test_every_left_out_symbol_has_a_reason() -> None:
    nan_close = np.linspace(100, 110, 50)
    nan_close[::5] = np.nan
    gappy = _k("GAP", 51)
    gappy = Klines("GAP", "15m", np.delete(gappy.ts, 10), *(np.delete(a, 10) for a in
                   (gappy.open, gappy.high, gappy.low, gappy.close, gappy.volume)))
    out = align(
        {"OK": _k("OK", 60), "SHORT": _k("SHORT", 10), "OLD": _k("OLD", 60, last=LAST - 3 * TF),
         "NAN": _k("NAN", 50, close=nan_close), "GAP": gappy, "ERR": "rate_limited"},
        n_bars=50, last_open_ms=LAST, timeframe="15m",
    )
    assert out.symbols == ("OK",)
    assert out.bars.close.shape == (1, 50)
    assert out.skipped == {"SHORT": SKIP_TOO_LITTLE_HISTORY, "OLD": SKIP_STALE, "NAN": SKIP_NAN_HEAVY,
                           "GAP": SKIP_GAPS, "ERR": SKIP_FETCH_FAILED}


def test_a_few_nans_are_forward_filled() -> None:
    c = np.linspace(100, 110, 50)
    c[20] = np.nan
    out = align({"A": _k("A", 50, close=c)}, n_bars=50, last_open_ms=LAST, timeframe="15m")
    assert out.symbols == ("A",)
    assert out.bars.close[0, 20] == out.bars.close[0, 19]


def test_last_closed_bar_open_time() -> None:
    assert last_closed_open_ms(LAST + TF + 1, "15m") == LAST
    assert last_closed_open_ms(LAST + TF, "15m") == LAST
