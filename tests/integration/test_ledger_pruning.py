"""The exactly-once ledgers stay bounded: entries older than executor.ledgerRetention are pruned."""

from __future__ import annotations

import redis.asyncio as aredis
from quantum_trader.executor.scripts import prune_ledgers

from tests.executor.fixtures import make_intent
from tests.integration.test_executor_paper import KEYS, decide, executor, now_ms, results, seed


async def test_old_ledger_entries_are_pruned_and_recent_ones_still_deduplicate(
    aredis_client: aredis.Redis,
) -> None:
    ex = executor(aredis_client)
    await seed(aredis_client, "T000USDT", 100.0)
    await seed(aredis_client, "T001USDT", 100.0)
    old, new = make_intent("old-1", "T000USDT"), make_intent("new-1", "T001USDT")
    t0 = now_ms()
    await ex.handle([await decide(aredis_client, old)], now_ms=t0 - 8 * 86_400_000)  # executed 8 days ago
    await ex.handle([await decide(aredis_client, new)], now_ms=t0)
    # what the gate wrote with its decisions (tests/integration/test_gate_worker.py checks it does)
    await aredis_client.hset(KEYS.decided_intents, mapping={"old-1": "d-old", "new-1": "d-new"})
    await aredis_client.zadd(KEYS.ledger_age, {"old-1": t0 - 8 * 86_400_000, "new-1": t0})

    pruned = await prune_ledgers(aredis_client, keys=KEYS, older_than_ms=t0 - 7 * 86_400_000)

    assert pruned == 1
    assert await aredis_client.hexists(KEYS.executed_intents, "old-1") == 0
    assert await aredis_client.hexists(KEYS.decided_intents, "old-1") == 0
    assert await aredis_client.hexists(KEYS.executed_intents, "new-1") == 1
    assert await aredis_client.hexists(KEYS.decided_intents, "new-1") == 1
    # the recent entry still makes a redelivered decision a no-op
    await ex.handle([await decide(aredis_client, new)], now_ms=t0)
    assert [r.intent_id for r in await results(aredis_client)] == ["old-1", "new-1"]


async def test_pruning_an_empty_ledger_is_a_no_op(aredis_client: aredis.Redis) -> None:
    assert await prune_ledgers(aredis_client, keys=KEYS, older_than_ms=now_ms()) == 0
