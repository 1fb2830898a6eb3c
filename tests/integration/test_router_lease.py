"""One active router per profile: a second replica waits in standby and takes over when the leader stops."""

from __future__ import annotations

import logging
import time

import pytest
import redis.asyncio as aredis
from quantum_trader.core.keys import Keys
from quantum_trader.core.messages import TradeIntent
from quantum_trader.core.service import worker_main
from quantum_trader.router.lease import Lease

from tests.router.helpers import context, events, profile, running, signal, wait_for

KEYS = Keys("paper")


async def test_lease_is_exclusive_and_only_the_holder_renews(aredis_client: aredis.Redis) -> None:
    a = Lease(aredis_client, key=KEYS.router_lease, owner="a", ttl_ms=5000)
    b = Lease(aredis_client, key=KEYS.router_lease, owner="b", ttl_ms=5000)
    assert await a.acquire()
    assert not await b.acquire()
    assert not await b.renew()
    assert await a.renew()
    await b.release()  # not b's: no effect
    assert await b.holder() == "a"
    await a.release()
    assert await b.acquire()


async def test_second_replica_stands_by_then_takes_over(
    redis_url: str, aredis_client: aredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="quantum_trader")
    await aredis_client.set(KEYS.open_orders, "0")
    await aredis_client.sadd(KEYS.tradable_symbols, "BTCUSDT", "ETHUSDT")
    prof = profile(router={"candidateWindow": "200ms", "batchSize": 1, "leaseTtl": "1s"})
    first = context(redis_url, prof, name="router", consumer="router-a")
    second = context(redis_url, prof, name="router", consumer="router-b")
    async with running(first, worker_main("router", prof)):
        await wait_for(lambda: any(e["owner"] == "router-a" for e in events(caplog.records, "ROUTER_LEADER")))
        async with running(second, worker_main("router", prof)):
            await wait_for(lambda: events(caplog.records, "ROUTER_STANDBY"))
            assert events(caplog.records, "ROUTER_STANDBY")[0]["leader"] == "router-a"
            await aredis_client.xadd(KEYS.ai_signal, signal("BTCUSDT", 0.9, now_ms=int(time.time() * 1000)).to_fields())  # type: ignore[arg-type]

            async def n_intents(n: int) -> bool:
                return await aredis_client.xlen(KEYS.trade_intent) == n

            await wait_for(lambda: n_intents(1))
            first.stop.set()  # the leader stops and releases its lease
            await wait_for(lambda: any(e["owner"] == "router-b" for e in events(caplog.records, "ROUTER_LEADER")))
            await aredis_client.xadd(KEYS.ai_signal, signal("ETHUSDT", 0.9, now_ms=int(time.time() * 1000)).to_fields())  # type: ignore[arg-type]
            await wait_for(lambda: n_intents(2))
    rows = await aredis_client.xrange(KEYS.trade_intent)
    assert [TradeIntent.from_fields(f).symbol for _, f in rows] == ["BTCUSDT", "ETHUSDT"]
