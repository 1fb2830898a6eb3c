"""A batch publish meets a Redis that is loading its data: it lands whole, once, in order.

The chaos run's rare out-of-order decisions came from here: after a Redis restart, a plain
pipeline that reached the server while it was still loading had its first commands refused
(``LOADING``) and the rest applied when loading ended; resent whole, the stream held the batch's
tail before its head, and every symbol with an entry in both parts was then decided out of order.

A real ``redis-server`` of our own (the session one cannot be reloaded): ``DEBUG RELOAD`` keeps our
connection open while the server reloads, slowed down per key (``key-load-delay``) and answering
clients only every few KB loaded — so the batch certainly arrives mid-load and is partly refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aredis
from quantum_trader.core.bus import Bus
from quantum_trader.core.embedded import find_server_binary
from quantum_trader.core.keys import Keys
from quantum_trader.core.messages import TradeIntent

from tests.executor.fixtures import make_intent

KEYS = Keys("batches")
LOAD_KEYS = 4_000
LOAD_DELAY_US = 250  # per key: the reload lasts about a second
BATCH = 5_000  # ~2 MB: far more than the server reads from a client while loading


@pytest.fixture
def reloadable_url(tmp_path: Path) -> Iterator[str]:
    sock = tmp_path / "redis.sock"
    proc = subprocess.Popen(
        [str(find_server_binary()), "--port", "0", "--unixsocket", str(sock), "--dir", str(tmp_path),
         "--save", "", "--appendonly", "no", "--enable-debug-command", "local",
         "--key-load-delay", str(LOAD_DELAY_US), "--loading-process-events-interval-bytes", "4096"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 10
    while not sock.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"redis-server did not start: {proc.stderr.read() if proc.stderr else b''!r}")
        time.sleep(0.01)
    yield f"unix://{sock}"
    proc.terminate()
    proc.wait(10)


@pytest.fixture
async def admin(reloadable_url: str) -> AsyncIterator[aredis.Redis]:
    client = aredis.Redis.from_url(reloadable_url)
    for _ in range(200):
        with contextlib.suppress(Exception):
            await client.ping()
            break
        await asyncio.sleep(0.01)
    yield client
    await client.aclose()


async def _reloading(admin: aredis.Redis, watcher: aredis.Redis) -> asyncio.Task[object]:
    """Start ``DEBUG RELOAD`` (save, flush, load again) and return once the server is loading."""
    pipe = admin.pipeline(transaction=False)
    for i in range(LOAD_KEYS):
        pipe.set(f"load:{i}", "v" * 20)
    await pipe.execute()
    reload: asyncio.Task[object] = asyncio.create_task(admin.execute_command("DEBUG", "RELOAD"))
    while not int((await watcher.info("persistence"))["loading"]):
        await asyncio.sleep(0)
    return reload


async def test_batch_published_while_redis_loads_lands_whole_once_and_in_order(
    reloadable_url: str, admin: aredis.Redis
) -> None:
    client = aredis.Redis.from_url(reloadable_url)
    watcher = aredis.Redis.from_url(reloadable_url)
    bus = Bus(client, keys=KEYS)
    await client.ping()  # connected before the reload: the batch goes out on a live connection
    intents = [make_intent(f"c{i:06d}", f"S{i % 40:02d}USDT") for i in range(BATCH)]

    reload = await _reloading(admin, watcher)
    await bus.publish_many([(KEYS.trade_intent, intent) for intent in intents])
    await reload

    refused = (await watcher.info("errorstats")).get("errorstat_LOADING", {}).get("count", 0)
    assert refused > 0, "the batch never met the loading server: nothing was tested"
    landed = [TradeIntent.from_fields(fields).intent_id for _, fields in await client.xrange(KEYS.trade_intent)]
    assert landed == [i.intent_id for i in intents]  # whole, once, in the order given
    await client.aclose()
    await watcher.aclose()
