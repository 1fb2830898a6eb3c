"""The shared consumer with a batch window (``Bus.consume(window=...)``, what the router runs on), on a real Redis."""

from __future__ import annotations

import asyncio
import time

import redis.asyncio as aredis
from quantum_trader.core.bus import Bus, Parsed
from quantum_trader.core.keys import Keys
from quantum_trader.core.messages import DeadLetter, Signal

from tests.integration.test_bus_delivery import signal_msg, wait_for

KEYS = Keys("bus-window")


class CountWindow:
    """Due when ``size`` entries wait or the oldest waited ``linger_ms``; screens out the symbol ``SKIP``."""

    def __init__(self, size: int, *, linger_ms: int = 60_000, decide_on_stop: bool = True) -> None:
        self.size = size
        self.linger_ms = linger_ms
        self.stop_decides = decide_on_stop
        self.screened: list[str] = []

    def now_ms(self) -> int:
        return int(time.time() * 1000)

    async def admit(self, arrivals: list[Parsed[Signal]]) -> set[str]:
        self.screened += [p.message.signal_id for p in arrivals if p.message.symbol == "SKIP"]
        return {p.id for p in arrivals if p.message.symbol != "SKIP"}

    def due_in_ms(self, *, waiting: int, oldest_ms: int) -> int:
        left = oldest_ms + self.linger_ms - self.now_ms()
        return 0 if waiting >= self.size or left <= 0 else min(left, 50)

    def decide_on_stop(self) -> bool:
        return self.stop_decides


async def consume(bus: Bus, window: CountWindow, handler, stop: asyncio.Event, *, max_deliveries: int = 5) -> None:
    await bus.consume(stream=KEYS.ai_signal, group="g", consumer="c1", message_type=Signal, handler=handler,
                      stop=stop, count=10, block_ms=50, max_deliveries=max_deliveries, window=window)


async def pending(client: aredis.Redis) -> int:
    return int((await client.xpending(KEYS.ai_signal, "g"))["pending"])


async def test_window_acks_screened_entries_at_once_and_hands_the_waiting_ones_over_together(redis_url: str) -> None:
    client = aredis.Redis.from_url(redis_url, decode_responses=True)
    bus = Bus(client, keys=KEYS)
    window = CountWindow(3)
    batches: list[list[str]] = []

    async def handler(batch: list[Parsed[Signal]]) -> None:
        batches.append([p.message.signal_id for p in batch])

    stop = asyncio.Event()
    task = asyncio.create_task(consume(bus, window, handler, stop))
    await bus.publish_many([(KEYS.ai_signal, signal_msg(0)), (KEYS.ai_signal, signal_msg(1, symbol="SKIP"))])
    await wait_for(lambda: window.screened == ["s1"])
    await asyncio.sleep(0.2)
    assert batches == [] and await pending(client) == 1  # s0 waits unacked; s1 was acked
    await bus.publish_many([(KEYS.ai_signal, signal_msg(i)) for i in (2, 3)])
    await wait_for(lambda: bool(batches))
    stop.set()
    await task
    assert batches == [["s0", "s2", "s3"]]
    assert await pending(client) == 0
    await client.aclose()


async def test_window_batch_that_keeps_failing_is_dead_lettered_and_the_rest_handled_once(redis_url: str) -> None:
    client = aredis.Redis.from_url(redis_url, decode_responses=True)
    bus = Bus(client, keys=KEYS)
    handled: list[str] = []

    async def handler(batch: list[Parsed[Signal]]) -> None:
        if any(p.message.symbol == "BAD" for p in batch):
            raise RuntimeError("poison")
        handled.extend(p.message.signal_id for p in batch)

    await bus.publish_many([(KEYS.ai_signal, signal_msg(i, symbol="BAD" if i == 1 else f"S{i}USDT"))
                            for i in range(3)])
    stop = asyncio.Event()
    task = asyncio.create_task(consume(bus, CountWindow(3, linger_ms=100), handler, stop, max_deliveries=2))

    async def settled() -> bool:
        return await client.xlen(KEYS.deadletter) == 1 and len(handled) == 2

    deadline = asyncio.get_running_loop().time() + 10
    while not await settled():
        assert asyncio.get_running_loop().time() < deadline, "poison not dead-lettered in time"
        await asyncio.sleep(0.02)
    stop.set()
    await task
    assert sorted(handled) == ["s0", "s2"]
    letter = DeadLetter.from_fields((await client.xrange(KEYS.deadletter))[0][1])
    assert letter.code == "max_deliveries_exceeded" and letter.group == "g"
    assert await pending(client) == 0
    await client.aclose()


async def test_window_that_declines_to_decide_on_stop_leaves_its_entries_pending(redis_url: str) -> None:
    client = aredis.Redis.from_url(redis_url, decode_responses=True)
    bus = Bus(client, keys=KEYS)
    handled: list[str] = []

    async def handler(batch: list[Parsed[Signal]]) -> None:
        handled.extend(p.message.signal_id for p in batch)

    stop = asyncio.Event()
    task = asyncio.create_task(consume(bus, CountWindow(5, decide_on_stop=False), handler, stop))
    await bus.publish_many([(KEYS.ai_signal, signal_msg(i)) for i in range(2)])

    async def both_waiting() -> bool:
        return await pending(client) == 2

    deadline = asyncio.get_running_loop().time() + 10
    while not await both_waiting():
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.02)
    stop.set()
    await task
    assert handled == [] and await pending(client) == 2  # for the next consumer to claim
    await client.aclose()
