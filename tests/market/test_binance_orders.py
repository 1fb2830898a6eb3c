"""Binance adapter: orders (client order id, reduce-only, SL/TP algo orders), rejections with reason
codes, idempotent submission after timeouts, account views — against recorded replies."""

from __future__ import annotations

import pytest
from quantum_trader.core.clock import ManualClock
from quantum_trader.market import binance_parse as bp
from quantum_trader.market.base import ExchangeError, OrderRequest

from .test_binance_replay import NOW_MS, Replay, Reply, make_exchange, recorded_market_data

ORDER = "/fapi/v1/order"
ALGO = "/fapi/v1/algoOrder"


def trading(*post: Reply) -> Replay:
    """Recorded market data plus a testnet that answers POST /order with ``post`` (in order)."""
    r = recorded_market_data()
    if post:
        r.add("POST", ORDER, *post)
    r.add("GET", "/fapi/v1/userTrades", Reply(file="userTrades_4072195417.json"))
    return r


def buy(qty: float = 0.002, cid: str = "intent-0001", **kw: object) -> OrderRequest:
    return OrderRequest(symbol="BTCUSDT", side="BUY", qty=qty, client_order_id=cid, **kw)


async def test_filled_market_order_uses_intent_id_and_reports_price_and_fee() -> None:
    replay = trading(Reply(file="order_filled.json"))
    ex = make_exchange(replay)
    result = await ex.place_order(buy(qty=0.0029))
    assert (result.status, result.order_id, result.client_order_id) == ("FILLED", "4072195417", "intent-0001")
    assert result.price == 91310.40 and result.qty == 0.002
    assert result.fee_usd == pytest.approx(0.04383 + 0.04383038)
    assert result.extra["fee_source"] == "trades"
    sent = next(c for c in replay.calls if c.path == ORDER)
    assert sent.host == "testnet.binancefuture.com"
    assert sent.params["newClientOrderId"] == "intent-0001"
    assert (sent.params["type"], sent.params["side"], sent.params["quantity"]) == ("MARKET", "BUY", "0.002")
    assert sent.params["newOrderRespType"] == "RESULT" and "reduceOnly" not in sent.params
    await ex.close()


async def test_reduce_only_order_sends_reduce_only_flag() -> None:
    replay = trading(Reply(file="order_filled.json"))
    ex = make_exchange(replay)
    await ex.place_order(OrderRequest(symbol="BTCUSDT", side="SELL", qty=0.002, client_order_id="c1", reduce_only=True))
    assert next(c for c in replay.calls if c.path == ORDER).params["reduceOnly"] == "true"
    await ex.close()


async def test_stop_market_goes_to_the_algo_order_api_with_tick_rounded_trigger() -> None:
    replay = trading().add("POST", ALGO, Reply(file="algoOrder_stop_market_new.json"))
    ex = make_exchange(replay)
    result = await ex.place_order(
        OrderRequest(
            symbol="BTCUSDT", side="SELL", qty=0.002, client_order_id="intent-0002-sl",
            order_type="STOP_MARKET", stop_price=89000.04, reduce_only=True,
        )
    )
    assert (result.status, result.order_id, result.extra["algo"]) == ("NEW", "2148719", "true")
    sent = next(c for c in replay.calls if c.path == ALGO).params
    assert sent["clientAlgoId"] == "intent-0002-sl" and sent["algoType"] == "CONDITIONAL"
    assert (sent["type"], sent["triggerPrice"], sent["reduceOnly"]) == ("STOP_MARKET", "89000", "true")
    await ex.close()


async def test_take_profit_without_stop_price_is_rejected_locally() -> None:
    replay = trading()
    ex = make_exchange(replay)
    result = await ex.place_order(buy(order_type="TAKE_PROFIT_MARKET"))
    assert (result.status, result.reason) == ("REJECTED", "price_filter")
    assert replay.count("POST", ALGO) == 0
    await ex.close()


@pytest.mark.parametrize(
    ("fixture_file", "status", "reason"),
    [
        ("error_min_notional.json", 400, "min_notional"),
        ("error_insufficient_margin.json", 400, "insufficient_margin"),
        ("error_price_filter.json", 400, "price_filter"),
        ("error_price_filter_1013.json", 400, "price_filter"),
        ("error_lot_size.json", 400, "lot_size"),
        ("error_qty_step.json", 400, "lot_size"),
        ("error_reduce_only.json", 400, "reduce_only_rejected"),
        ("error_invalid_symbol.json", 400, "invalid_symbol"),
        ("error_invalid_api_key.json", 401, "auth_failed"),
    ],
)
async def test_rejected_order_carries_the_reason_code(fixture_file: str, status: int, reason: str) -> None:
    replay = trading(Reply(file=fixture_file, status=status))
    ex = make_exchange(replay)
    result = await ex.place_order(buy())
    assert (result.status, result.reason) == ("REJECTED", reason)
    assert replay.count("POST", ORDER) == 1  # a definitive rejection is never resubmitted
    assert replay.count("GET", ORDER) == 0
    await ex.close()


async def test_symbol_missing_on_the_order_venue_is_rejected_without_a_request() -> None:
    replay = trading()
    ex = make_exchange(replay)
    result = await ex.place_order(OrderRequest(symbol="DOGEUSDT", side="BUY", qty=100, client_order_id="c2"))
    assert (result.status, result.reason) == ("REJECTED", "invalid_symbol")
    assert replay.count("POST", ORDER) == 0
    await ex.close()


async def test_timeout_then_order_found_by_client_id_is_not_submitted_twice() -> None:
    replay = trading(Reply(timeout=True), Reply(file="order_filled.json"))
    replay.add("GET", ORDER, Reply(file="order_get_filled.json"), origClientOrderId="intent-0001")
    ex = make_exchange(replay)
    result = await ex.place_order(buy())
    assert (result.status, result.order_id, result.price) == ("FILLED", "4072195417", 91310.40)
    assert replay.count("POST", ORDER) == 1
    assert replay.count("GET", ORDER) == 1
    await ex.close()


async def test_timeout_then_order_unknown_to_exchange_is_submitted_once_more() -> None:
    replay = trading(Reply(timeout=True), Reply(file="order_filled.json"))
    replay.add("GET", ORDER, Reply(file="error_order_not_found.json", status=400), origClientOrderId="intent-0001")
    ex = make_exchange(replay)
    result = await ex.place_order(buy())
    assert result.status == "FILLED"
    assert replay.count("POST", ORDER) == 2
    posts = [c.params["newClientOrderId"] for c in replay.calls if c.path == ORDER and c.method == "POST"]
    assert posts == ["intent-0001", "intent-0001"]  # same client id: Binance itself refuses a duplicate
    await ex.close()


async def test_backend_timeout_1007_is_an_unknown_outcome_checked_by_client_id() -> None:
    replay = trading(Reply(file="error_backend_timeout.json", status=408))
    replay.add("GET", ORDER, Reply(file="order_get_filled.json"), origClientOrderId="intent-0001")
    ex = make_exchange(replay)
    assert (await ex.place_order(buy())).status == "FILLED"
    assert replay.count("POST", ORDER) == 1
    await ex.close()


async def test_rate_limited_order_is_checked_then_resubmitted() -> None:
    clock = ManualClock(NOW_MS)
    replay = trading(Reply(file="error_rate_limited.json", status=429), Reply(file="order_filled.json"))
    replay.add("GET", ORDER, Reply(file="error_order_not_found.json", status=400), origClientOrderId="intent-0001")
    ex = make_exchange(replay, clock=clock)
    assert (await ex.place_order(buy())).status == "FILLED"
    assert replay.count("POST", ORDER) == 2 and clock.now_ms() > NOW_MS  # backed off before the lookup
    await ex.close()


async def test_order_never_accepted_after_repeated_timeouts_is_rejected_timeout() -> None:
    replay = trading(Reply(timeout=True))
    replay.add("GET", ORDER, Reply(file="error_order_not_found.json", status=400), origClientOrderId="intent-0001")
    ex = make_exchange(replay, max_submissions=3)
    result = await ex.place_order(buy())
    assert (result.status, result.reason) == ("REJECTED", "timeout")
    assert replay.count("POST", ORDER) == 3 and replay.count("GET", ORDER) == 3
    await ex.close()


async def test_lookup_failing_too_leaves_the_outcome_unknown_and_raises_timeout() -> None:
    replay = trading(Reply(timeout=True))
    replay.add("GET", ORDER, Reply(timeout=True))
    ex = make_exchange(replay, max_attempts=2)
    with pytest.raises(ExchangeError) as err:
        await ex.place_order(buy())
    assert err.value.reason == "timeout"
    assert replay.count("POST", ORDER) == 1  # never resubmitted while its fate is unknown
    await ex.close()


async def test_duplicate_client_order_id_returns_the_existing_order() -> None:
    replay = trading(Reply(file="error_duplicate_client_id.json", status=400))
    replay.add("GET", ORDER, Reply(file="order_get_filled.json"), origClientOrderId="intent-0001")
    ex = make_exchange(replay)
    result = await ex.place_order(buy())
    assert (result.status, result.order_id) == ("FILLED", "4072195417")
    await ex.close()


async def test_bnb_commission_is_converted_to_usdt_at_the_mark_price() -> None:
    replay = recorded_market_data()
    replay.add("POST", ORDER, Reply(file="order_get_filled_0003.json"))
    replay.add("GET", "/fapi/v1/userTrades", Reply(file="userTrades_bnb_fee.json"))
    ex = make_exchange(replay)
    result = await ex.place_order(buy(cid="intent-0003"))
    assert result.fee_usd == pytest.approx(0.00008666 * 910.25)
    assert result.extra["commission"] == "BNB:8.666e-05"
    await ex.close()


async def test_fetch_order_unknown_client_id_returns_none() -> None:
    replay = trading()
    replay.add("GET", ORDER, Reply(file="error_order_not_found.json", status=400))
    replay.add("GET", ALGO, Reply(file="error_order_not_found.json", status=400))
    ex = make_exchange(replay)
    assert await ex.fetch_order("BTCUSDT", "never-sent") is None
    await ex.close()


async def test_cancel_of_an_order_that_no_longer_exists_is_not_an_error() -> None:
    replay = trading()
    replay.add("DELETE", ORDER, Reply(file="error_order_not_found.json", status=400))
    replay.add("DELETE", ALGO, Reply(file="error_order_not_found.json", status=400))
    ex = make_exchange(replay)
    await ex.cancel_order("BTCUSDT", "intent-0009")
    assert replay.count("DELETE", ORDER) == 1
    await ex.close()


# -- account -----------------------------------------------------------------------------------------


async def test_positions_and_working_orders_from_the_order_venue() -> None:
    replay = trading()
    replay.add("GET", "/fapi/v3/positionRisk", Reply(file="positionRisk.json"))
    replay.add("GET", "/fapi/v1/openOrders", Reply(file="openOrders.json"))
    ex = make_exchange(replay)
    positions = {p.symbol: p for p in await ex.positions()}
    assert set(positions) == {"BTCUSDT", "ETHUSDT"}  # the zero PEPE row is not a position
    assert (positions["BTCUSDT"].side, positions["BTCUSDT"].qty, positions["BTCUSDT"].entry_price) == ("BUY", 0.002, 90500.0)
    assert (positions["ETHUSDT"].side, positions["ETHUSDT"].qty) == ("SELL", 0.05)
    assert await ex.working_orders() == 1  # the reduce-only take-profit does not count
    await ex.close()


async def test_paper_environment_has_no_order_venue() -> None:
    replay = recorded_market_data()
    ex = make_exchange(replay, environment="paper")
    assert await ex.positions() == []  # Redis is the book in paper mode
    with pytest.raises(ExchangeError) as err:
        await ex.open_orders()
    assert err.value.reason == "paper_mode"
    result = await ex.place_order(buy())
    assert (result.status, result.reason) == ("REJECTED", "paper_mode")
    assert not [c for c in replay.calls if "/fapi/v3/" in c.path or c.path == ORDER]
    await ex.close()


async def test_testnet_without_credentials_cannot_read_positions() -> None:
    ex = make_exchange(recorded_market_data(), credentials=False)
    with pytest.raises(ExchangeError) as err:
        await ex.positions()
    assert err.value.reason == "missing_credentials"
    await ex.close()


async def test_overlong_client_order_id_is_mapped_to_a_stable_valid_binance_id() -> None:
    cid = "int-ai-1000000BOBUSDT-1795262400000-extra"
    mapped = bp.binance_client_id(cid)
    assert mapped == bp.binance_client_id(cid) and len(mapped) == 35 and mapped.startswith("qt-")
    assert bp.binance_client_id("int-ai-BTCUSDT-1795262400000") == "int-ai-BTCUSDT-1795262400000"
    replay = trading(Reply(file="order_filled.json"))
    ex = make_exchange(replay)
    result = await ex.place_order(buy(cid=cid))
    assert result.client_order_id == cid  # callers keep seeing their own id
    assert next(c for c in replay.calls if c.path == ORDER).params["newClientOrderId"] == mapped
    await ex.close()


async def test_testnet_without_credentials_rejects_orders_with_missing_credentials() -> None:
    replay = recorded_market_data()
    ex = make_exchange(replay, credentials=False)
    result = await ex.place_order(buy())
    assert (result.status, result.reason) == ("REJECTED", "missing_credentials")
    assert replay.count("POST", ORDER) == 0
    await ex.close()
