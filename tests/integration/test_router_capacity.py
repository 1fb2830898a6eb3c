"""Router through Redis: seed 001 proof scenarios A-D, fail-closed capacity, size boosts, drops, dedup."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
import redis.asyncio as aredis
from quantum_trader.core.keys import Keys
from quantum_trader.core.messages import RouterFate, Signal, TradeIntent
from quantum_trader.core.service import worker_main

from tests.router.helpers import context, events, profile, running, signal, wait_for

KEYS = Keys("paper")
TRADABLE = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "LTCUSDT")


def now_ms() -> int:
    return int(time.time() * 1000)


async def setup(client: aredis.Redis, *, open_orders: str | None, tradable: tuple[str, ...] = TRADABLE) -> None:
    if open_orders is not None:
        await client.set(KEYS.open_orders, open_orders)
    if tradable:
        await client.sadd(KEYS.tradable_symbols, *tradable)


async def publish(client: aredis.Redis, *signals: Signal) -> None:
    for s in signals:
        await client.xadd(KEYS.ai_signal, s.to_fields())  # type: ignore[arg-type]


async def intents(client: aredis.Redis) -> list[TradeIntent]:
    return [TradeIntent.from_fields(f) for _, f in await client.xrange(KEYS.trade_intent)]


async def fates(client: aredis.Redis) -> list[RouterFate]:
    return [RouterFate.from_fields(f) for _, f in await client.xrange(KEYS.router_drop)]


async def route(
    redis_url: str, client: aredis.Redis, *signals: Signal, expect: int, **router: Any
) -> tuple[list[TradeIntent], list[RouterFate]]:
    """Run a router until ``expect`` signals have an outcome (intent or fate); every signal must be acked."""
    # seed 001's scenario thresholds, set explicitly (the shipped defaults are 0.55 / 0.70)
    router = {"candidateWindow": "2s", "batchSize": len(signals), "minConfidence": 0.75, "superConfidence": 0.90,
              **router}
    spec: dict[str, Any] = {"router": router,
                            "executor": {"baseSizeUsd": 100}}
    prof = profile(**spec)
    ctx = context(redis_url, prof, name="router")
    async with running(ctx, worker_main("router", prof)):
        await publish(client, *signals)

        async def settled() -> bool:
            return len(await intents(client)) + len(await fates(client)) >= expect

        await wait_for(settled)
        await wait_for(lambda: _no_pending(client))
    return await intents(client), await fates(client)


async def _no_pending(client: aredis.Redis) -> bool:
    info = await client.xpending(KEYS.ai_signal, "router")
    return int(info["pending"]) == 0


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="quantum_trader")
    return caplog


async def test_scenario_a_capacity_full_publishes_no_intent(redis_url: str, aredis_client: aredis.Redis,
                                                            logs: pytest.LogCaptureFixture) -> None:
    await setup(aredis_client, open_orders="10")
    t = now_ms()
    out, dropped = await route(redis_url, aredis_client, signal("BTCUSDT", 0.95, now_ms=t),
                               signal("ETHUSDT", 0.93, now_ms=t), expect=2)
    assert out == []
    assert sorted(f.reason for f in dropped) == ["capacity_full", "capacity_full"]
    full = events(logs.records, "CAPACITY_FULL")
    assert full and full[0]["open"] == 10 and full[0]["max"] == 10


async def test_scenario_b_target_reached_publishes_nothing_without_super_signal(
    redis_url: str, aredis_client: aredis.Redis, logs: pytest.LogCaptureFixture
) -> None:
    await setup(aredis_client, open_orders="3")
    t = now_ms()
    out, dropped = await route(redis_url, aredis_client, signal("BTCUSDT", 0.85, now_ms=t),
                               signal("ETHUSDT", 0.80, now_ms=t), expect=2)
    assert out == []
    assert {f.reason for f in dropped} == {"target_reached"}
    reached = events(logs.records, "TARGET_REACHED")
    assert reached and (reached[0]["open"], reached[0]["target"]) == (3, 3)


async def test_scenario_b_super_signal_bypasses_the_target(
    redis_url: str, aredis_client: aredis.Redis, logs: pytest.LogCaptureFixture
) -> None:
    await setup(aredis_client, open_orders="3")
    t = now_ms()
    out, dropped = await route(redis_url, aredis_client, signal("BTCUSDT", 0.92, now_ms=t),
                               signal("ETHUSDT", 0.85, now_ms=t), expect=2)
    assert [i.symbol for i in out] == ["BTCUSDT"]
    assert [(f.symbol, f.reason) for f in dropped] == [("ETHUSDT", "target_reached")]
    bypass = events(logs.records, "SUPER_SIGNAL_BYPASS")[0]
    assert (bypass["open"], bypass["target"], bypass["count"]) == (3, 3, 1)
    best = events(logs.records, "BEST_OF_PUBLISH")[0]
    assert (best["count"], best["allowed"]) == (1, 1)


async def test_scenario_c_one_open_publishes_the_best_two(
    redis_url: str, aredis_client: aredis.Redis, logs: pytest.LogCaptureFixture
) -> None:
    await setup(aredis_client, open_orders="1")
    t = now_ms()
    out, dropped = await route(
        redis_url, aredis_client,
        signal("SOLUSDT", 0.80, now_ms=t), signal("BTCUSDT", 0.95, now_ms=t, rl=True),
        signal("ETHUSDT", 0.93, now_ms=t, rl=True), signal("BNBUSDT", 0.76, now_ms=t),
        expect=4,
    )
    assert [(i.symbol, i.rank) for i in out] == [("BTCUSDT", 1), ("ETHUSDT", 2)]
    assert sorted(f.symbol for f in dropped) == ["BNBUSDT", "SOLUSDT"]
    assert {f.reason for f in dropped} == {"not_selected"}
    best = events(logs.records, "BEST_OF_PUBLISH")[0]
    assert (best["count"], best["allowed"], best["open"], best["slots"]) == (2, 2, 1, 9)
    # [symbol, side, score, expected value in bps]: ATR 100 bps, win 3 ATR, loss 1.5 ATR, costs 20 bps
    assert best["top"][:2] == [["BTCUSDT", "BUY", "0.970", 257.5], ["ETHUSDT", "BUY", "0.950", 248.5]]


async def test_scenario_d_size_boosts_and_rank_lines(
    redis_url: str, aredis_client: aredis.Redis, logs: pytest.LogCaptureFixture
) -> None:
    await setup(aredis_client, open_orders="1")
    t = now_ms()
    out, _ = await route(redis_url, aredis_client, signal("BTCUSDT", 0.95, now_ms=t),
                         signal("ETHUSDT", 0.93, now_ms=t), expect=2)
    assert [(i.position_size_usd, i.size_boost) for i in out] == [(130.0, 1.3), (110.0, 1.1)]
    assert [i.intent_id for i in out] == ["int-s-BTCUSDT-0.95", "int-s-ETHUSDT-0.93"]
    rank1 = events(logs.records, "RANK_1")[0]
    assert (rank1["symbol"], rank1["side"], rank1["conf"], rank1["score"]) == ("BTCUSDT", "BUY", 0.95, "0.950")
    boosts = events(logs.records, "SIZE_BOOST")
    assert [(b["rank"], b["factor"], b["size_from"], b["size_to"]) for b in boosts] == [
        (1, "1.30", "100", "130"), (2, "1.10", "100", "110")
    ]


async def test_missing_open_orders_key_publishes_nothing_and_acks_all(
    redis_url: str, aredis_client: aredis.Redis, logs: pytest.LogCaptureFixture
) -> None:
    await setup(aredis_client, open_orders=None)
    t = now_ms()
    out, dropped = await route(redis_url, aredis_client, signal("BTCUSDT", 0.99, now_ms=t),
                               signal("ETHUSDT", 0.91, now_ms=t), expect=2)
    assert out == []
    assert {f.reason for f in dropped} == {"capacity_unknown"}
    assert events(logs.records, "CAPACITY_UNKNOWN")[0]["state"] == "missing"


async def test_unparseable_open_orders_publishes_nothing(redis_url: str, aredis_client: aredis.Redis) -> None:
    await setup(aredis_client, open_orders="three")
    out, dropped = await route(redis_url, aredis_client, signal("BTCUSDT", 0.99, now_ms=now_ms()), expect=1)
    assert out == [] and [f.reason for f in dropped] == ["capacity_unknown"]


async def test_low_confidence_and_hold_are_dropped_with_fate(
    redis_url: str, aredis_client: aredis.Redis, logs: pytest.LogCaptureFixture
) -> None:
    await setup(aredis_client, open_orders="0")
    t = now_ms()
    out, dropped = await route(
        redis_url, aredis_client,
        signal("LTCUSDT", 0.68, now_ms=t, side="SELL"), signal("BTCUSDT", 0.9, now_ms=t, side="HOLD"),
        signal("ETHUSDT", 0.8, now_ms=t), expect=3, batchSize=1,
    )
    assert [i.symbol for i in out] == ["ETHUSDT"]
    assert sorted((f.symbol, f.reason) for f in dropped) == [("BTCUSDT", "hold"), ("LTCUSDT", "low_confidence")]
    low = events(logs.records, "LOW_CONFIDENCE_DROP")[0]
    assert (low["symbol"], low["side"], low["conf"], low["min"]) == ("LTCUSDT", "SELL", 0.68, 0.75)


async def test_symbol_outside_tradable_set_is_dropped_not_tradable(
    redis_url: str, aredis_client: aredis.Redis
) -> None:
    await setup(aredis_client, open_orders="0", tradable=("BTCUSDT",))
    t = now_ms()
    out, dropped = await route(redis_url, aredis_client, signal("GALAUSDT", 0.95, now_ms=t),
                               signal("BTCUSDT", 0.8, now_ms=t), expect=2)
    assert [i.symbol for i in out] == ["BTCUSDT"]
    assert [(f.symbol, f.reason) for f in dropped] == [("GALAUSDT", "not_tradable")]


async def test_paused_profile_publishes_nothing(redis_url: str, aredis_client: aredis.Redis) -> None:
    await setup(aredis_client, open_orders="0")
    await aredis_client.set(KEYS.control_paused, "1")
    out, dropped = await route(redis_url, aredis_client, signal("BTCUSDT", 0.95, now_ms=now_ms()), expect=1)
    assert out == [] and [f.reason for f in dropped] == ["paused"]


async def test_redelivered_signal_yields_a_single_intent(redis_url: str, aredis_client: aredis.Redis) -> None:
    await setup(aredis_client, open_orders="0")
    s = signal("BTCUSDT", 0.95, now_ms=now_ms(), sid="dup-1")
    await route(redis_url, aredis_client, s, expect=1)
    out, dropped = await route(redis_url, aredis_client, s, expect=2)
    assert [i.intent_id for i in out] == ["int-dup-1"]
    assert [(f.signal_id, f.reason) for f in dropped] == [("dup-1", "duplicate")]


async def test_stale_signal_is_dropped(redis_url: str, aredis_client: aredis.Redis) -> None:
    await setup(aredis_client, open_orders="0")
    out, dropped = await route(redis_url, aredis_client, signal("BTCUSDT", 0.95, now_ms=now_ms() - 60_000),
                               expect=1)
    assert out == [] and [f.reason for f in dropped] == ["stale"]


async def test_malformed_signal_goes_to_deadletter_and_router_keeps_going(
    redis_url: str, aredis_client: aredis.Redis
) -> None:
    await setup(aredis_client, open_orders="0")
    await aredis_client.xadd(KEYS.ai_signal, {"v": "1", "symbol": "BTCUSDT", "ts": "x"})
    out, _ = await route(redis_url, aredis_client, signal("ETHUSDT", 0.9, now_ms=now_ms()), expect=1)
    assert [i.symbol for i in out] == ["ETHUSDT"]
    assert await aredis_client.xlen(KEYS.deadletter) == 1


async def test_batch_is_decided_after_the_window_when_below_batch_size(
    redis_url: str, aredis_client: aredis.Redis
) -> None:
    await setup(aredis_client, open_orders="0")
    prof = profile(router={"candidateWindow": "300ms", "batchSize": 10})
    ctx = context(redis_url, prof, name="router")
    async with running(ctx, worker_main("router", prof)):
        await publish(aredis_client, signal("BTCUSDT", 0.9, now_ms=now_ms()))
        started = time.monotonic()

        async def published() -> bool:
            return len(await intents(aredis_client)) == 1

        await wait_for(published, timeout=5)
        assert time.monotonic() - started >= 0.2


async def test_new_leader_routes_signals_a_dead_leader_left_pending(
    redis_url: str, aredis_client: aredis.Redis
) -> None:
    await setup(aredis_client, open_orders="0")
    await aredis_client.xgroup_create(KEYS.ai_signal, "router", id="0", mkstream=True)
    t = now_ms()
    await publish(aredis_client, signal("BTCUSDT", 0.9, now_ms=t, sid="p1"),
                  signal("ETHUSDT", 0.7, now_ms=t, sid="p2"))
    await aredis_client.xreadgroup("router", "dead-leader", {KEYS.ai_signal: ">"})  # read, never acked
    prof = profile(router={"candidateWindow": "300ms", "minConfidence": 0.75, "superConfidence": 0.90})
    ctx = context(redis_url, prof, name="router")
    async with running(ctx, worker_main("router", prof)):

        async def settled() -> bool:
            return len(await intents(aredis_client)) + len(await fates(aredis_client)) >= 2

        await wait_for(settled)
        await wait_for(lambda: _no_pending(aredis_client))
    assert [i.signal_id for i in await intents(aredis_client)] == ["p1"]
    assert [(f.signal_id, f.reason) for f in await fates(aredis_client)] == [("p2", "low_confidence")]


async def test_router_reports_processed_entries_and_bus_lag_like_every_consumer(
    redis_url: str, aredis_client: aredis.Redis
) -> None:
    from prometheus_client import REGISTRY

    labels = {"profile": "paper", "worker": "router", "stream": "ai.signal"}
    before = REGISTRY.get_sample_value("qt_worker_processed_total", labels) or 0.0
    await setup(aredis_client, open_orders="0")
    t = now_ms()
    await route(redis_url, aredis_client, signal("BTCUSDT", 0.95, now_ms=t), signal("ETHUSDT", 0.2, now_ms=t),
                expect=2)
    assert (REGISTRY.get_sample_value("qt_worker_processed_total", labels) or 0.0) - before == 2
    lag = REGISTRY.get_sample_value("qt_bus_lag_entries", {"profile": "paper", "stream": "ai.signal", "group": "router"})
    assert lag is not None
