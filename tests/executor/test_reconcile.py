"""Reconciliation: the pure diff (exchange positions vs Redis positions) and its applier on real Redis."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, Literal

import pytest
import redis.asyncio as aredis
from quantum_trader.core import metrics
from quantum_trader.core.bus import Bus
from quantum_trader.core.clock import ManualClock
from quantum_trader.core.keys import Keys
from quantum_trader.core.logs import EventLog
from quantum_trader.core.messages import ReconcileEvent
from quantum_trader.core.profile import ExecutorSettings
from quantum_trader.executor import reconcile
from quantum_trader.executor.state import Position as StatePosition
from quantum_trader.executor.venue_exchange import ExchangeVenue
from quantum_trader.market.base import Position

from tests.market.test_binance_replay import NOW_MS, Reply, logged, make_exchange, recorded_market_data

KEYS = Keys("recon")
BTC = Position(symbol="BTCUSDT", side="BUY", qty=0.002, entry_price=90500.0, unrealized_pnl=1.6)


def stored(
    symbol: str = "ETHUSDT", side: Literal["BUY", "SELL"] = "SELL", qty: float = 0.05, entry: float = 3050.0
) -> str:
    record = StatePosition(
        symbol=symbol, side=side, qty=qty, entry_price=entry, stop_loss=3100.0,
        take_profit=2900.0, opened_ts=NOW_MS - 60_000, order_id="8389765500", intent_id="intent-0007",
    )
    return str(record.to_json())


# -- pure diff ---------------------------------------------------------------------------------------


def test_position_on_exchange_but_not_in_redis_is_adopted() -> None:
    actions = reconcile.diff([BTC], {}, now_ms=NOW_MS, redis_open_orders="0")
    assert [a.kind for a in actions] == ["adopted_unknown_position", "open_orders_corrected"]
    record = json.loads(actions[0].value)
    assert record["adopted"] is True and (record["side"], record["qty"], record["entry_price"]) == ("BUY", 0.002, 90500.0)
    assert (record["stop_loss"], record["take_profit"]) == (0.0, 0.0)
    assert StatePosition.from_json(actions[0].value).symbol == "BTCUSDT"  # the executor can read it
    assert actions[1].value == "1"


def test_position_in_redis_but_not_on_exchange_is_dropped() -> None:
    actions = reconcile.diff([], {"ETHUSDT": stored()}, now_ms=NOW_MS, redis_open_orders="1")
    assert [(a.kind, a.symbol) for a in actions] == [("dropped_missing_position", "ETHUSDT"), ("open_orders_corrected", "")]
    assert actions[0].expected == stored() and actions[1].value == "0"


def test_agreeing_views_need_no_action() -> None:
    eth = Position(symbol="ETHUSDT", side="SELL", qty=0.05, entry_price=3050.0)
    assert reconcile.diff([eth], {"ETHUSDT": stored()}, now_ms=NOW_MS, redis_open_orders="1") == []


def test_quantity_mismatch_is_corrected_keeping_stop_and_target() -> None:
    eth = Position(symbol="ETHUSDT", side="SELL", qty=0.03, entry_price=3050.0)
    [action] = reconcile.diff([eth], {"ETHUSDT": stored()}, now_ms=NOW_MS, redis_open_orders="1")
    assert action.kind == "position_corrected"
    record = json.loads(action.value)
    assert (record["qty"], record["stop_loss"], record["take_profit"], record["order_id"]) == (
        0.03, 3100.0, 2900.0, "8389765500"
    )


def test_flipped_side_drops_the_old_stop_and_target() -> None:
    eth = Position(symbol="ETHUSDT", side="BUY", qty=0.05, entry_price=3040.0)
    [action] = reconcile.diff([eth], {"ETHUSDT": stored()}, now_ms=NOW_MS, redis_open_orders="1")
    record = json.loads(action.value)
    assert (record["side"], record["stop_loss"], record["take_profit"]) == ("BUY", 0.0, 0.0)


def test_symbols_with_an_execution_in_flight_are_left_to_the_executor() -> None:
    actions = reconcile.diff([BTC], {}, now_ms=NOW_MS, redis_open_orders="0", in_flight={"BTCUSDT"})
    assert actions == []


def test_unreadable_redis_record_is_dropped_or_replaced() -> None:
    assert [a.kind for a in reconcile.diff([], {"ETHUSDT": "{oops"}, now_ms=NOW_MS, redis_open_orders="1")] == [
        "dropped_missing_position", "open_orders_corrected"
    ]
    [action] = reconcile.diff([BTC], {"BTCUSDT": "{oops"}, now_ms=NOW_MS, redis_open_orders="1")
    assert action.kind == "position_corrected" and json.loads(action.value)["qty"] == 0.002


def test_missing_open_orders_counts_positions_and_working_orders() -> None:
    eth = Position(symbol="ETHUSDT", side="SELL", qty=0.05, entry_price=3050.0)
    [action] = reconcile.diff([eth], {"ETHUSDT": stored()}, now_ms=NOW_MS, redis_open_orders=None, working_orders=1)
    assert (action.kind, action.value) == ("open_orders_corrected", "2")


# -- apply on real Redis --------------------------------------------------------------------------------


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[Any]:
    c = aredis.Redis.from_url(redis_url, decode_responses=True)
    yield c
    await c.aclose()


def _count(kind: str) -> float:
    value: float = metrics.EXEC_RECONCILE.labels(KEYS.profile, kind)._value.get()
    return value


async def _events(client: Any) -> list[ReconcileEvent]:
    return [ReconcileEvent.from_fields(f) for _, f in await client.xrange(KEYS.reconcile_event)]


async def test_exchange_position_missing_in_redis_is_adopted_with_event_metric_and_alert(
    client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock(NOW_MS)
    log = EventLog(worker="executor", profile=KEYS.profile)
    before = _count("adopted_unknown_position")
    actions = reconcile.diff([BTC], await client.hgetall(KEYS.positions), now_ms=clock.now_ms(),
                             redis_open_orders=await client.get(KEYS.open_orders))
    applied = await reconcile.apply(actions, redis=client, keys=KEYS, bus=Bus(client, keys=KEYS), clock=clock, log=log)
    assert [a.kind for a in applied] == ["adopted_unknown_position", "open_orders_corrected"]
    record = json.loads(await client.hget(KEYS.positions, "BTCUSDT"))
    assert record["adopted"] is True and record["qty"] == 0.002
    assert await client.get(KEYS.open_orders) == "1"
    events = await _events(client)
    assert [(e.kind, e.symbol) for e in events] == [("adopted_unknown_position", "BTCUSDT"), ("open_orders_corrected", "*")]
    assert _count("adopted_unknown_position") == before + 1
    assert "RECONCILE_ADOPTED_POSITION" in logged(caplog) and "alert=true" in logged(caplog)


async def test_redis_position_missing_on_exchange_is_dropped_with_event(client: Any) -> None:
    await client.hset(KEYS.positions, "ETHUSDT", stored())
    await client.set(KEYS.open_orders, 1)
    clock = ManualClock(NOW_MS)
    before = _count("dropped_missing_position")
    actions = reconcile.diff([], await client.hgetall(KEYS.positions), now_ms=NOW_MS,
                             redis_open_orders=await client.get(KEYS.open_orders))
    await reconcile.apply(actions, redis=client, keys=KEYS, bus=Bus(client, keys=KEYS), clock=clock,
                          log=EventLog(worker="executor"))
    assert await client.hexists(KEYS.positions, "ETHUSDT") == 0
    assert await client.get(KEYS.open_orders) == "0"
    assert [e.kind for e in await _events(client)] == ["dropped_missing_position", "open_orders_corrected"]
    assert _count("dropped_missing_position") == before + 1


async def test_position_changed_between_read_and_write_is_left_alone(client: Any) -> None:
    await client.hset(KEYS.positions, "ETHUSDT", stored())
    actions = reconcile.diff([], await client.hgetall(KEYS.positions), now_ms=NOW_MS, redis_open_orders="1")
    await client.hset(KEYS.positions, "ETHUSDT", stored(qty=0.07))  # the executor wrote meanwhile
    applied = await reconcile.apply(actions, redis=client, keys=KEYS, bus=Bus(client, keys=KEYS),
                                    clock=ManualClock(NOW_MS), log=EventLog(worker="executor"))
    assert [a.kind for a in applied] == ["open_orders_corrected"]
    assert await client.hexists(KEYS.positions, "ETHUSDT") == 1
    assert await client.get(KEYS.open_orders) == "1"  # HLEN at write time, not the stale expectation


async def test_reconcile_once_against_the_recorded_testnet_account(client: Any) -> None:
    """positionRisk has BTC long and ETH short; Redis has ETH and a stale SOL → adopt BTC, drop SOL."""
    replay = recorded_market_data()
    replay.add("GET", "/fapi/v3/positionRisk", Reply(file="positionRisk.json"))
    replay.add("GET", "/fapi/v1/openOrders", Reply(file="openOrders.json"))
    clock = ManualClock(NOW_MS)
    venue = ExchangeVenue(exchange=make_exchange(replay, clock=clock), settings=ExecutorSettings(), clock=clock)
    await client.hset(KEYS.positions, mapping={"ETHUSDT": stored(), "SOLUSDT": stored("SOLUSDT", "BUY", 1.0, 140.0)})
    await client.set(KEYS.open_orders, 2)
    applied = await reconcile.reconcile_once(venue, redis=client, keys=KEYS, bus=Bus(client, keys=KEYS), clock=clock,
                                             log=EventLog(worker="executor"))
    assert {(a.kind, a.symbol) for a in applied} == {
        ("adopted_unknown_position", "BTCUSDT"), ("dropped_missing_position", "SOLUSDT"), ("open_orders_corrected", "")
    }
    assert sorted(await client.hkeys(KEYS.positions)) == ["BTCUSDT", "ETHUSDT"]
    assert await client.get(KEYS.open_orders) == "3"  # 2 positions + 1 working entry order (ETH limit)
