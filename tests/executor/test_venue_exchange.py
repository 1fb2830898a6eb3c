"""ExchangeVenue (testnet/live) over the Binance adapter and recorded replies: real fill price and fee,
reason codes, bounded wait for the fill, never two orders for one client id."""

from __future__ import annotations

from typing import Any

import pytest
from quantum_trader.core.clock import ManualClock
from quantum_trader.core.profile import ExecutorSettings
from quantum_trader.executor.venue import Venue, VenueOrder
from quantum_trader.executor.venue_exchange import ExchangeVenue

from tests.market.test_binance_replay import (
    NOW_MS,
    Replay,
    Reply,
    fixture,
    make_exchange,
    recorded_market_data,
)

ORDER = "/fapi/v1/order"
NOT_FOUND = Reply(file="error_order_not_found.json", status=400)


def order(cid: str = "intent-0001", qty: float = 0.002) -> VenueOrder:
    return VenueOrder(
        intent_id=cid, client_order_id=cid, symbol="BTCUSDT", side="BUY", qty=qty, reference_price=91300.0
    )


def venue_for(replay: Replay, **kw: Any) -> tuple[ExchangeVenue, ManualClock]:
    clock = ManualClock(NOW_MS)
    ex = make_exchange(replay, clock=clock)
    return ExchangeVenue(exchange=ex, settings=ExecutorSettings(), clock=clock, **kw), clock


def filled_replay() -> Replay:
    r = recorded_market_data()
    r.add("GET", ORDER, NOT_FOUND)
    r.add("POST", ORDER, Reply(file="order_filled.json"))
    r.add("GET", "/fapi/v1/userTrades", Reply(file="userTrades_4072195417.json"))
    return r


async def test_market_order_fills_with_the_real_price_and_fee() -> None:
    replay = filled_replay()
    venue, _ = venue_for(replay)
    assert isinstance(venue, Venue) and venue.mode == "testnet"
    fill = await venue.submit(order())
    assert (fill.status, fill.order_id, fill.qty, fill.price) == ("FILLED", "4072195417", 0.002, 91310.40)
    assert fill.fee_usd == pytest.approx(0.08766038)
    assert replay.count("POST", ORDER) == 1


async def test_same_client_id_twice_trades_once() -> None:
    replay = filled_replay()
    venue, _ = venue_for(replay)
    first = await venue.submit(order())
    again = await venue.submit(order())
    assert again == first and replay.count("POST", ORDER) == 1


async def test_order_already_on_the_exchange_after_a_restart_is_not_placed_again() -> None:
    replay = recorded_market_data()
    replay.add("GET", ORDER, Reply(file="order_get_filled.json"), origClientOrderId="intent-0001")
    replay.add("GET", "/fapi/v1/userTrades", Reply(file="userTrades_4072195417.json"))
    venue, _ = venue_for(replay)
    fill = await venue.submit(order())
    assert fill.status == "FILLED" and replay.count("POST", ORDER) == 0


async def test_exchange_rejection_becomes_a_rejected_fill_with_the_reason() -> None:
    replay = recorded_market_data()
    replay.add("GET", ORDER, NOT_FOUND)
    replay.add("POST", ORDER, Reply(file="error_insufficient_margin.json", status=400))
    venue, _ = venue_for(replay)
    fill = await venue.submit(order())
    assert (fill.status, fill.reason, fill.qty) == ("REJECTED", "insufficient_margin", 0.0)


async def test_new_order_is_polled_until_filled_and_bnb_fee_is_converted() -> None:
    replay = recorded_market_data()
    replay.add("GET", ORDER, NOT_FOUND, Reply(file="order_get_filled_0003.json"), origClientOrderId="intent-0003")
    replay.add("POST", ORDER, Reply(file="order_new.json"))
    replay.add("GET", "/fapi/v1/userTrades", Reply(file="userTrades_bnb_fee.json"))
    venue, clock = venue_for(replay, poll_interval_s=0.5)
    fill = await venue.submit(order("intent-0003"))
    assert (fill.status, fill.price) == ("FILLED", 91310.40)
    assert fill.fee_usd == pytest.approx(0.00008666 * 910.25)
    assert clock.now_ms() == NOW_MS + 500


async def test_order_not_filled_within_the_polls_is_cancelled_and_rejected() -> None:
    cancelled = dict(fixture("order_new.json"), status="CANCELED")
    replay = recorded_market_data()
    replay.add(
        "GET", ORDER, NOT_FOUND, Reply(file="order_new.json"), Reply(file="order_new.json"), Reply(body=cancelled),
        origClientOrderId="intent-0003",
    )
    replay.add("POST", ORDER, Reply(file="order_new.json"))
    replay.add("DELETE", ORDER, Reply(body=cancelled))
    venue, _ = venue_for(replay, max_polls=2)
    fill = await venue.submit(order("intent-0003"))
    assert (fill.status, fill.reason) == ("REJECTED", "fill_timeout")
    assert replay.count("DELETE", ORDER) == 1


async def test_fee_is_estimated_from_fee_bps_when_trades_are_unavailable() -> None:
    replay = recorded_market_data()
    replay.add("GET", ORDER, NOT_FOUND)
    replay.add("POST", ORDER, Reply(file="order_filled.json"))
    replay.add("GET", "/fapi/v1/userTrades", Reply(body="<html>503</html>", status=503))
    venue, _ = venue_for(replay)
    fill = await venue.submit(order())
    assert fill.status == "FILLED"
    assert fill.fee_usd == pytest.approx(0.002 * 91310.40 * 4 / 10_000)


async def test_positions_are_the_exchange_view() -> None:
    replay = recorded_market_data().add("GET", "/fapi/v3/positionRisk", Reply(file="positionRisk.json"))
    venue, _ = venue_for(replay)
    positions = await venue.positions()
    assert positions is not None and {p.symbol for p in positions} == {"BTCUSDT", "ETHUSDT"}


def test_paper_exchange_cannot_back_an_exchange_venue() -> None:
    ex = make_exchange(recorded_market_data(), environment="paper")
    with pytest.raises(ValueError, match="testnet or live"):
        ExchangeVenue(exchange=ex, settings=ExecutorSettings())
