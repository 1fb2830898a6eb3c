"""Seed 000's lesson at the exchange layer: one unknown, delisted or failing symbol in a many-symbol
call is skipped with a reason (``unknown_symbol``) while every other symbol gets its result —
on the sim, the replay exchange, Binance (recorded replies) and any exchange without its own method."""

from __future__ import annotations

from pathlib import Path

import pytest
from quantum_trader.core.clock import ManualClock
from quantum_trader.core.profile import ExchangeSettings
from quantum_trader.market.base import ExchangeError, mark_prices_each
from quantum_trader.market.replay import ReplayExchange, write_csv
from quantum_trader.market.sim import SimExchange

from .test_binance_replay import Reply, fixture, make_exchange, recorded_market_data

NOW = 1_795_000_000_000
# seed 000: the AI's targets; WAVESUSDT was in the allowlist but not listed on the venue
INTENT_SYMBOLS = ["GALAUSDT", "MKRUSDT", "BTCUSDT", "ETHUSDT"]


def _sim() -> SimExchange:
    return SimExchange(ExchangeSettings(name="sim", seed=7), clock=ManualClock(NOW))


async def test_sim_prices_every_listed_symbol_and_names_the_unlisted_one() -> None:
    result = await _sim().mark_prices_each([*INTENT_SYMBOLS, "NOTLISTEDUSDT"])
    assert set(result.values) == set(INTENT_SYMBOLS)
    assert all(p > 0 for p in result.values.values())
    failure = result.failures["NOTLISTEDUSDT"]
    assert (failure.symbol, failure.reason) == ("NOTLISTEDUSDT", "unknown_symbol")


async def test_sim_whole_call_still_fails_closed_on_an_unlisted_symbol() -> None:
    with pytest.raises(ExchangeError) as err:
        await _sim().mark_prices(["BTCUSDT", "NOTLISTEDUSDT"])
    assert err.value.reason == "unknown_symbol"


async def test_sim_klines_each_skips_the_unlisted_symbol() -> None:
    result = await _sim().klines_each(["BTCUSDT", "NOTLISTEDUSDT", "GALAUSDT"], "15m", limit=20)
    assert {s: len(k) for s, k in result.values.items()} == {"BTCUSDT": 20, "GALAUSDT": 20}
    assert result.failures["NOTLISTEDUSDT"].reason == "unknown_symbol"


async def test_replay_without_the_symbols_file_reports_it_unknown(tmp_path: Path) -> None:
    sim = _sim()
    for sym in ("BTCUSDT", "GALAUSDT"):
        write_csv(tmp_path / f"{sym}_15m.csv", sim.history(sym, "15m", start_ms=NOW - 86_400_000, end_ms=NOW))
    replay = ReplayExchange(ExchangeSettings(name="replay", data=str(tmp_path)), clock=ManualClock(NOW))
    marks = await replay.mark_prices_each(["BTCUSDT", "WAVESUSDT", "GALAUSDT"])
    assert set(marks.values) == {"BTCUSDT", "GALAUSDT"}
    assert marks.failures["WAVESUSDT"].reason == "unknown_symbol"
    bars = await replay.klines_each(["WAVESUSDT", "BTCUSDT"], "15m", limit=5)
    assert list(bars.values) == ["BTCUSDT"] and bars.failures["WAVESUSDT"].reason == "unknown_symbol"


async def test_binance_unlisted_symbol_is_skipped_and_the_rest_priced_in_one_request() -> None:
    replay = recorded_market_data()
    ex = make_exchange(replay)
    result = await ex.mark_prices_each(["BTCUSDT", "ETHUSDT", "1000PEPEUSDT", "BNBUSDT", "MKRUSDT"])
    assert result.values == {
        "BTCUSDT": 91301.21536232, "ETHUSDT": 3034.5, "1000PEPEUSDT": 0.0058512, "BNBUSDT": 910.25
    }
    assert result.failures["MKRUSDT"].reason == "unknown_symbol"
    assert replay.count("GET", "/fapi/v1/premiumIndex") == 1
    await ex.close()


async def test_binance_symbol_the_exchange_refuses_does_not_cost_the_others_their_price() -> None:
    btc = next(p for p in fixture("premiumIndex.json") if p["symbol"] == "BTCUSDT")
    replay = recorded_market_data()
    replay.add("GET", "/fapi/v1/premiumIndex", Reply(body=btc), symbol="BTCUSDT")
    # listed (settling) in exchangeInfo, but the mark-price endpoint no longer knows it
    replay.add("GET", "/fapi/v1/premiumIndex", Reply(file="error_invalid_symbol.json", status=400), symbol="WAVESUSDT")
    ex = make_exchange(replay)
    result = await ex.mark_prices_each(["WAVESUSDT", "BTCUSDT"])
    assert result.values == {"BTCUSDT": 91301.21536232}
    assert result.failures["WAVESUSDT"].reason == "unknown_symbol"
    await ex.close()


class _WholeCallOnly:
    """An exchange without ``mark_prices_each`` whose one call fails whole on an unknown symbol."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    async def mark_prices(self, symbols: list[str]) -> dict[str, float]:
        self.calls.append(list(symbols))
        if "WAVESUSDT" in symbols:
            raise ExchangeError("unknown symbol WAVESUSDT", reason="invalid_symbol")
        return {s: 1.0 for s in symbols}


async def test_any_exchange_falls_back_to_per_symbol_calls_after_a_whole_call_fails() -> None:
    ex = _WholeCallOnly()
    result = await mark_prices_each(ex, ["GALAUSDT", "WAVESUSDT", "MKRUSDT"])
    assert result.values == {"GALAUSDT": 1.0, "MKRUSDT": 1.0}
    assert result.failures["WAVESUSDT"].reason == "unknown_symbol"
    assert ex.calls[0] == ["GALAUSDT", "WAVESUSDT", "MKRUSDT"] and len(ex.calls) == 4


async def test_adapters_own_method_is_used_when_present() -> None:
    result = await mark_prices_each(_sim(), ["BTCUSDT", "NOTLISTEDUSDT"])
    assert list(result.values) == ["BTCUSDT"] and "NOTLISTEDUSDT" in result.failures
