"""The live view of ``qt run`` reads streams undecoded: a poison entry cannot take it down."""

from __future__ import annotations

import time

import redis.asyncio as aredis
from quantum_trader.core.keys import Keys
from quantum_trader.runview import FunnelCollector

from tests.core.test_messages import SAMPLES

KEYS = Keys("paper")


async def test_funnel_collector_counts_around_a_non_utf8_entry(redis_url: str) -> None:
    client = aredis.Redis.from_url(redis_url, decode_responses=True)  # what qt run gives the view
    started = time.time() - 1
    collector = FunnelCollector(client, keys=KEYS, started=started)
    raw = aredis.Redis.from_url(redis_url)
    intent = {k.encode(): v.encode() for k, v in SAMPLES[1].to_fields().items()}
    await raw.xadd(KEYS.trade_intent, {**intent, b"symbol": b"\xff\xfe"})  # type: ignore[dict-item]
    await raw.xadd(KEYS.trade_intent, intent)  # type: ignore[arg-type]
    await raw.xadd(KEYS.deadletter, {b"reason": b"\x1b[2J\xff"})
    funnel = await collector.collect()
    assert funnel.deadletters == 1
    await raw.aclose()
    await client.aclose()
