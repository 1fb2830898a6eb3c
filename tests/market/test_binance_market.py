"""Binance adapter: market data parsing, filters and rounding, klines pagination and gap backfill,
retries and the shared weight budget — all against recorded replies (no sockets)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import redis.asyncio as aredis
from quantum_trader.core.clock import ManualClock
from quantum_trader.market import binance_parse as bp
from quantum_trader.market.base import Exchange, ExchangeError
from quantum_trader.market.binance import make_client
from quantum_trader.market.binance_budget import attach_shared_budget

from .test_binance_replay import NOW_MS, Replay, Reply, fixture, logged, make_exchange, recorded_market_data

H = 3_600_000


# -- exchangeInfo → filters ------------------------------------------------------------------------


async def test_exchange_info_filters_parse_into_markets() -> None:
    ex = make_exchange(recorded_market_data())
    markets = {m.symbol: m for m in await ex.markets()}  # ccxt's load_markets → unified markets → Market
    btc = markets["BTCUSDT"]
    assert (btc.tick_size, btc.step_size, btc.min_notional) == (0.1, 0.001, 100.0)
    assert btc.max_qty == 120.0  # MARKET_LOT_SIZE is tighter than LOT_SIZE for market orders
    assert btc.min_qty == 0.001
    assert (btc.contract, btc.status, btc.asset_class, btc.quote) == ("perpetual", "TRADING", "major", "USDT")
    pepe = markets["1000PEPEUSDT"]
    assert (pepe.base, pepe.tick_size, pepe.step_size, pepe.min_notional, pepe.asset_class) == (
        "1000PEPE", 1e-7, 1.0, 5.0, "alt"
    )
    assert markets["BTCUSDT_261225"].contract == "delivery"
    assert markets["WAVESUSDT"].status == "SETTLING"
    assert markets["ETHUSDT"].onboard_ms == 1569398400000
    await ex.close()


def without_lot_size() -> dict[str, Any]:
    """The recorded BTCUSDT entry with its LOT_SIZE filter removed."""
    btc = next(s for s in fixture("exchangeInfo.json")["symbols"] if s["symbol"] == "BTCUSDT")
    return {**btc, "filters": [f for f in btc["filters"] if f["filterType"] != "LOT_SIZE"]}


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"timezone": "UTC"}, "symbols"),
        ({"symbols": [without_lot_size()]}, "LOT_SIZE"),
        ([], "symbols"),
    ],
)
async def test_malformed_exchange_info_raises_naming_the_endpoint(body: Any, needle: str) -> None:
    ex = make_exchange(Replay().add("GET", "/fapi/v1/exchangeInfo", Reply(body=body)))
    with pytest.raises(ExchangeError) as err:
        await ex.markets()
    await ex.close()
    assert err.value.reason == "malformed_response"
    assert err.value.endpoint == "GET /fapi/v1/exchangeInfo"
    assert needle in str(err.value)


async def test_rounding_quantities_down_to_step_and_prices_to_tick() -> None:
    assert bp.round_to_step(0.0029, 0.001) == 0.002
    assert bp.round_to_step(0.003, 0.001) == 0.003  # exact multiples survive float noise
    assert bp.round_to_step(17094.9, 1.0) == 17094.0
    assert bp.round_to_tick(91310.46, 0.1) == 91310.5
    assert bp.round_to_tick(0.00585127, 0.0000001) == 0.0058513
    client = make_client(testnet=False, enable_rate_limit=False)  # ccxt formats what is sent
    recorded_market_data().bind(client)
    await client.load_markets()
    assert client.price_to_precision("1000PEPE/USDT:USDT", 0.0058513) == "0.0058513"  # never "5.8513e-03"
    assert client.amount_to_precision("BTC/USDT:USDT", 0.002) == "0.002"
    await client.close()


async def test_markets_come_from_recorded_exchange_info() -> None:
    ex = make_exchange(recorded_market_data())
    assert isinstance(ex, Exchange)
    symbols = [m.symbol for m in await ex.markets()]
    assert {"BTCUSDT", "ETHUSDT", "1000PEPEUSDT", "BTCUSDT_261225", "WAVESUSDT"} <= set(symbols)
    await ex.close()


# -- tickers and mark prices -------------------------------------------------------------------------


async def test_tickers_join_quote_volume_and_book_prices() -> None:
    ex = make_exchange(recorded_market_data())
    tickers = await ex.tickers()
    btc = tickers["BTCUSDT"]
    assert (btc.last, btc.quote_volume_24h, btc.bid, btc.ask) == (91296.6, 16692743210.45, 91296.5, 91296.6)
    assert tickers["1000PEPEUSDT"].quote_volume_24h == 604863962.31
    bnb = tickers["BNBUSDT"]  # not in the recorded book ticker: bid = ask = last
    assert bnb.bid == bnb.ask == bnb.last == 910.3
    await ex.close()


async def test_mark_prices_for_few_symbols_use_per_symbol_calls() -> None:
    replay = recorded_market_data()
    ex = make_exchange(replay)
    assert await ex.mark_prices(["BNBUSDT"]) == {"BNBUSDT": 910.25}
    assert replay.calls[-1].params == {"symbol": "BNBUSDT"}
    marks = await ex.mark_prices(["BTCUSDT", "ETHUSDT", "1000PEPEUSDT", "BNBUSDT", "NOPEUSDT"])
    assert marks == {"BTCUSDT": 91301.21536232, "ETHUSDT": 3034.5, "1000PEPEUSDT": 0.0058512, "BNBUSDT": 910.25}
    assert replay.calls[-1].params == {}
    await ex.close()


# -- klines -------------------------------------------------------------------------------------------


async def test_klines_are_fetched_in_pages_and_joined() -> None:
    replay = recorded_market_data()
    first = NOW_MS - 8 * H
    replay.add("GET", "/fapi/v1/klines", Reply(file="klines_BTCUSDT_1h_page1.json"), startTime=str(first))
    replay.add("GET", "/fapi/v1/klines", Reply(file="klines_BTCUSDT_1h_page2.json"), startTime=str(first + 5 * H))
    ex = make_exchange(replay, klines_page_limit=5)
    k = await ex.klines("BTCUSDT", "1h", limit=8, end_ms=NOW_MS + 10 * 60_000)  # 12:10: the 12:00 bar is open
    assert len(k) == 8
    assert k.ts.tolist() == [first + i * H for i in range(8)]
    assert k.close[0] == 91037.0 and k.volume[-1] == pytest.approx(857.123)
    pages = [c.params for c in replay.calls if c.path == "/fapi/v1/klines"]
    assert [(p["startTime"], p["limit"]) for p in pages] == [(str(first), "5"), (str(first + 5 * H), "3")]
    assert all(p["endTime"] == str(NOW_MS - H) and p["interval"] == "1h" for p in pages)
    await ex.close()


async def test_klines_default_page_is_ccxts_1000_bars() -> None:
    end = NOW_MS

    def serve(params: dict[str, str]) -> list[list[Any]]:
        start, limit = int(params["startTime"]), int(params["limit"])
        return [[start + i * 900_000, "1", "2", "0.5", "1.5", "10", 0, "0", 1, "0", "0", "0"] for i in range(limit)]

    replay = recorded_market_data().add("GET", "/fapi/v1/klines", Reply(fn=serve))
    ex = make_exchange(replay)
    k = await ex.klines("ETHUSDT", "15m", limit=2000, end_ms=end)
    assert len(k) == 2000 and k.ts[-1] == end - 900_000
    # 1000 bars is ccxt's page cap and Binance's weight-5 tier: fewer weight per bar than 1500 (weight 10)
    assert [c.params["limit"] for c in replay.calls if c.path == "/fapi/v1/klines"] == ["1000", "1000"]
    await ex.close()


async def test_kline_gap_is_refetched_and_filled(caplog: pytest.LogCaptureFixture) -> None:
    replay = recorded_market_data()
    first = NOW_MS - 8 * H
    replay.add("GET", "/fapi/v1/klines", Reply(file="klines_ETHUSDT_1h_gap_page.json"), startTime=str(first))
    replay.add(
        "GET", "/fapi/v1/klines", Reply(file="klines_ETHUSDT_1h_gap_refetch.json"), startTime=str(first + 2 * H)
    )
    ex = make_exchange(replay)
    with caplog.at_level(logging.INFO):
        k = await ex.klines("ETHUSDT", "1h", limit=8, end_ms=NOW_MS)
    assert k.ts.tolist() == [first + i * H for i in range(8)]
    refetch = [c.params for c in replay.calls if c.path == "/fapi/v1/klines"][-1]
    assert (refetch["startTime"], refetch["endTime"], refetch["limit"]) == (str(first + 2 * H), str(first + 2 * H), "1")
    assert "KLINES_GAP_BACKFILL" in logged(caplog) and "still_missing=0" in logged(caplog)
    await ex.close()


async def test_malformed_kline_row_is_an_error_naming_the_endpoint() -> None:
    replay = recorded_market_data().add("GET", "/fapi/v1/klines", Reply(body=[[NOW_MS - 2 * H, "x", "2", "0", "1", "1"]]))
    ex = make_exchange(replay)
    with pytest.raises(ExchangeError) as err:
        await ex.klines("BTCUSDT", "1h", limit=3, end_ms=NOW_MS)
    assert err.value.endpoint == "GET /fapi/v1/klines" and err.value.reason == "malformed_response"
    await ex.close()


def test_unsupported_timeframe_is_rejected() -> None:
    with pytest.raises(ExchangeError, match="unsupported timeframe"):
        bp.kline_window(timeframe="7m", limit=10, end_ms=NOW_MS)


# -- retries, error mapping -------------------------------------------------------------------------


async def test_transient_5xx_and_429_are_retried_with_backoff() -> None:
    clock = ManualClock(NOW_MS)
    replay = recorded_market_data()
    replay.add(
        "GET",
        "/fapi/v1/ticker/24hr",
        Reply(body="<html>502 Bad Gateway</html>", status=502),
        Reply(file="error_rate_limited.json", status=429),
        Reply(file="ticker_24hr.json"),
    )
    ex = make_exchange(replay, clock=clock, rand=lambda: 0.0)
    tickers = await ex.tickers()
    assert "BTCUSDT" in tickers
    assert replay.count("GET", "/fapi/v1/ticker/24hr") == 3
    # 502: 0.5 s · 2^0 · (0.5 + 0) = 0.25 s; 429 on the 2nd try backs off harder: 0.5 s · 2^3 · 0.5 = 2 s
    assert clock.now_ms() - NOW_MS == 250 + 2000
    await ex.close()


async def test_persistent_rate_limit_gives_up_with_reason_rate_limited() -> None:
    replay = recorded_market_data().add(
        "GET", "/fapi/v1/ticker/24hr", Reply(file="error_rate_limited.json", status=429)
    )
    ex = make_exchange(replay, max_attempts=3)
    with pytest.raises(ExchangeError) as err:
        await ex.tickers()
    assert err.value.reason == "rate_limited" and err.value.endpoint == "GET /fapi/v1/ticker/24hr"
    assert replay.count("GET", "/fapi/v1/ticker/24hr") == 3
    await ex.close()


@pytest.mark.parametrize(
    ("kind", "message", "reason"),
    [
        ("other", 'binanceusdm {"code":-4164,"msg":"Order\'s notional must be no smaller than 100"}', "min_notional"),
        ("other", "binanceusdm Margin is insufficient.", "insufficient_margin"),
        ("other", 'binanceusdm {"code":-1013,"msg":"Filter failure: PRICE_FILTER"}', "price_filter"),
        ("other", 'binanceusdm {"code":-1013,"msg":"Filter failure: MARKET_LOT_SIZE"}', "lot_size"),
        ("other", 'binanceusdm {"code":-1013,"msg":"Filter failure: MIN_NOTIONAL"}', "min_notional"),
        ("other", 'binanceusdm {"code":-2022,"msg":"ReduceOnly Order is rejected."}', "reduce_only_rejected"),
        ("rate_limit", "binanceusdm 429 Too Many Requests", "rate_limited"),
        ("bad_symbol", "binanceusdm Invalid symbol.", "invalid_symbol"),
        ("other", 'binanceusdm {"code":-1007,"msg":"Timeout waiting for response"}', "timeout"),
        ("timeout", "binanceusdm POST https://fapi.binance.com/fapi/v1/order", "timeout"),
        ("other", 'binanceusdm {"code":-9999,"msg":"something new"}', "exchange_error"),
    ],
)
def test_exchange_errors_map_to_reason_codes(kind: bp.ErrorKind, message: str, reason: str) -> None:
    assert bp.reason_for_error(kind=kind, message=message) == reason


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    assert bp.backoff_delay(0, base=0.5, cap=8, rand=0.0) == 0.25
    assert bp.backoff_delay(3, base=0.5, cap=8, rand=0.999) == pytest.approx(4.0, rel=1e-3)
    assert bp.backoff_delay(10, base=0.5, cap=8, rand=1.0) == 8.0


# -- the shared weight budget (real Redis) ----------------------------------------------------------


async def test_shared_weight_budget_makes_the_second_worker_wait_for_the_next_minute(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = aredis.Redis.from_url(redis_url, decode_responses=True)
    clock = ManualClock(NOW_MS + 1_000)
    worker_a = make_exchange(recorded_market_data(), clock=clock, redis=client, budget=50)
    worker_b = make_exchange(recorded_market_data(), clock=clock, redis=client, budget=50)
    await worker_a.tickers()  # weight 40 + 5 of 50 this minute
    assert clock.now_ms() == NOW_MS + 1_000
    with caplog.at_level(logging.INFO):
        await worker_b.tickers()  # 45 + 40 > 50: waits for the next window
    assert clock.now_ms() >= NOW_MS + 60_000
    assert "RATE_BUDGET_WAIT" in caplog.text
    stored = await client.hgetall("quantum:{test}:exchange:weight")
    assert stored == {"window": str((NOW_MS + 60_000) // 60_000), "used": "45"}
    assert await client.pttl("quantum:{test}:exchange:weight") > 0
    await worker_a.close()
    await worker_b.close()
    await client.aclose()


async def test_attach_shared_budget_only_touches_adapters_with_weights(redis_url: str) -> None:
    client = aredis.Redis.from_url(redis_url, decode_responses=True)
    clock = ManualClock(NOW_MS)
    ex = make_exchange(recorded_market_data(), clock=clock)
    assert attach_shared_budget(ex, redis=client, key="quantum:{test}:exchange:weight", clock=clock)
    assert not attach_shared_budget(object(), redis=client, key="k", clock=clock)
    await ex.tickers()
    assert await client.hget("quantum:{test}:exchange:weight", "used") == "46"  # exchangeInfo 1 + 40 + 5
    await ex.close()
    await client.aclose()


async def test_unreachable_budget_redis_does_not_stop_market_data() -> None:
    dead = aredis.Redis.from_url("redis://127.0.0.1:1", socket_connect_timeout=0.2)
    ex = make_exchange(recorded_market_data(), redis=dead)
    assert "BTCUSDT" in await ex.tickers()
    await ex.close()
    await dead.aclose()
