"""Bus throughput (publish + consume + ack) vs raw redis-py pipelined XADD / XREADGROUP, same run.

Target: the bus keeps >= 50 % of raw. Run: .venv/bin/python bench/bench_bus.py [N]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time

import redis.asyncio as aredis
from quantum_trader.core.bus import Bus, Parsed
from quantum_trader.core.embedded import EmbeddedRedis
from quantum_trader.core.keys import Keys
from quantum_trader.core.messages import TradeIntent

N = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
BATCH = 100


def intent(i: int) -> TradeIntent:
    return TradeIntent(
        intent_id=f"i{i}", signal_id=f"s{i}", symbol="BTCUSDT", side="BUY", position_size_usd=10.0, leverage=2.0,
        entry_price=100.0, stop_loss=98.5, take_profit=103.0, confidence=0.9, score=0.92, rank=1, size_boost=1.3,
        reduce_only=False, ts=1_700_000_000_000 + i,
    )


async def raw_round(client: aredis.Redis, stream: str) -> float:
    payloads = [intent(i).to_fields() for i in range(N)]
    await client.xgroup_create(stream, "g", id="0", mkstream=True)
    t0 = time.perf_counter()
    for start in range(0, N, BATCH):
        pipe = client.pipeline(transaction=False)
        for p in payloads[start:start + BATCH]:
            pipe.xadd(stream, p, maxlen=1_000_000, approximate=True)  # type: ignore[arg-type]
        await pipe.execute()
    got = 0
    while got < N:
        resp = await client.xreadgroup("g", "c", {stream: ">"}, count=BATCH, block=100)
        rows = resp[0][1]
        got += len(rows)
        await client.xack(stream, "g", *[r[0] for r in rows])
    return N / (time.perf_counter() - t0)


async def bus_round(client: aredis.Redis, keys: Keys) -> float:
    bus = Bus(client, keys=keys, maxlen=1_000_000)
    messages = [intent(i) for i in range(N)]
    stop = asyncio.Event()
    seen = 0

    async def handler(batch: list[Parsed[TradeIntent]]) -> None:
        nonlocal seen
        seen += len(batch)
        if seen >= N:
            stop.set()

    t0 = time.perf_counter()
    for start in range(0, N, BATCH):
        await bus.publish_many([(keys.trade_intent, m) for m in messages[start:start + BATCH]])
    await bus.consume(stream=keys.trade_intent, group="g", consumer="c", message_type=TradeIntent,
                      handler=handler, stop=stop, count=BATCH, block_ms=100)
    return N / (time.perf_counter() - t0)


async def main() -> None:
    with EmbeddedRedis(appendonly=False) as server:
        client = aredis.Redis.from_url(server.url, decode_responses=True)
        raws, buses = [], []
        for r in range(3):
            raws.append(await raw_round(client, f"raw{r}"))
            buses.append(await bus_round(client, Keys(f"bench{r}")))
            await client.flushall()
        raw, bus = statistics.median(raws), statistics.median(buses)
        print(f"messages per round: {N} (12-field trade intents, batches of {BATCH}), 3 rounds, medians")
        print(f"raw redis-py pipelined XADD + XREADGROUP/XACK : {raw:>10,.0f} msg/s")
        print(f"bus publish_many + consume (parse, ack)        : {bus:>10,.0f} msg/s")
        print(f"ratio bus/raw                                  : {bus / raw:>10.2f}  (target >= 0.50)")
        await client.aclose()


if __name__ == "__main__":
    asyncio.run(main())
