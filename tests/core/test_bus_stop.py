"""A consumer stops even when its liveness task's cancel is lost inside the Redis client.

Seen once in ~40 `qt run --duration 3` runs under load: the run never exited. Its stacks (kill -USR2)
showed the executor waiting for its consume loop's liveness task, "cancelling" but back in its sleep:
the cancel had reached the task inside a Redis call and come back as a connection error, which the
loop takes as transient. Here the keep-alive call turns a cancel into ``ConnectionError`` on purpose;
the consumer must still stop. Real Redis."""

from __future__ import annotations

import asyncio
import time

import redis.asyncio as aredis
from quantum_trader.core.bus import Bus, Parsed
from quantum_trader.core.keys import Keys
from quantum_trader.core.messages import Signal

KEYS = Keys("stop-test")


class SwallowingBus(Bus):
    """The client's failure mode, at our boundary: a cancel during the keep-alive call is lost."""

    cancels_swallowed = 0
    inside = asyncio.Event()

    async def keep_alive(self, group: str, consumer: str) -> None:
        try:
            await super().keep_alive(group, consumer)
            self.inside.set()
            await asyncio.sleep(30)  # the call is in flight when the consumer stops
        except asyncio.CancelledError:
            SwallowingBus.cancels_swallowed += 1
            raise ConnectionError("connection closed while cancelled") from None


async def test_a_consumer_stops_when_its_keep_alive_swallows_the_cancel(redis_url: str) -> None:
    client = aredis.Redis.from_url(redis_url, decode_responses=True)
    bus = SwallowingBus(client, keys=KEYS)
    bus.inside = asyncio.Event()
    await bus.ensure_group(KEYS.ai_signal, "g")

    async def handler(batch: list[Parsed[Signal]]) -> None:
        return None

    stop = asyncio.Event()
    task = asyncio.create_task(bus.consume(stream=KEYS.ai_signal, group="g", consumer="c", message_type=Signal,
                                           handler=handler, stop=stop, count=10, block_ms=50))
    await asyncio.wait_for(bus.inside.wait(), 10)
    stop.set()  # the consumer stops while its keep-alive call is in flight: the cancel lands inside it
    started = time.monotonic()
    await asyncio.wait_for(task, timeout=15)
    assert SwallowingBus.cancels_swallowed == 1
    assert time.monotonic() - started < 5
    await client.aclose()
