"""One profile, two readers: the snapshot worker and the gate agree on the allowlist (real Redis, real shells).

The bug this guards: ``allowlist: [btcusdt, " ETHUSDT"]`` passes ``qt validate``; the snapshot
worker normalised it and snapshotted BTCUSDT and ETHUSDT while the gate compared the raw
strings and blocked every intent as ``symbol_not_in_allowlist:BTCUSDT``.
"""

from __future__ import annotations

import logging
import time

import pytest
import redis.asyncio as aredis
from quantum_trader.core.keys import Keys
from quantum_trader.core.messages import GateDecision
from quantum_trader.core.profile import TradingProfile
from quantum_trader.core.service import worker_main
from quantum_trader.market.base import Position

from tests.executor.fixtures import make_intent
from tests.router.helpers import context, events, profile, running, wait_for

KEYS = Keys("paper")
RAW_ALLOWLIST = ["btcusdt", " ETHUSDT", "", "BTCUSDT "]


class MarksOnly:
    """The snapshot worker's exchange boundary: a mark price for every symbol asked, no positions."""

    name = "marks"

    async def mark_prices(self, symbols: list[str]) -> dict[str, float]:
        return {s: 100.0 for s in symbols}

    async def positions(self) -> list[Position]:
        return []

    async def close(self) -> None:
        return None


def shared_profile(source: str) -> TradingProfile:
    return profile(
        environment="paper",
        snapshot={"allowlistSource": source, "allowlist": RAW_ALLOWLIST},
        gate={"maxExposureUsd": 1e12, "maxSnapshotAge": "1h", "cooldown": "0s"},
    )


@pytest.mark.parametrize("source", ["env", "universe"])
async def test_snapshot_and_gate_accept_the_same_unnormalised_profile_allowlist(
    source: str, redis_url: str, aredis_client: aredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="quantum_trader")
    prof = shared_profile(source)  # universe source with no universe published: the profile tier serves

    snap_ctx = context(redis_url, prof, name="snapshot", exchange_factory=MarksOnly)  # type: ignore[arg-type]
    async with running(snap_ctx, worker_main("snapshot", prof)):
        await wait_for(lambda: events(caplog.records, "SNAPSHOT_CYCLE"))
    tradable = {s.decode() for s in await aredis_client.smembers(KEYS.tradable_symbols)}
    assert tradable == {"BTCUSDT", "ETHUSDT"}

    now = int(time.time() * 1000)
    intents = [make_intent("i-btc", "BTCUSDT", ts=now), make_intent("i-eth", "ETHUSDT", ts=now),
               make_intent("i-sol", "SOLUSDT", ts=now)]
    for i in intents:
        await aredis_client.xadd(KEYS.trade_intent, i.to_fields())  # type: ignore[arg-type]
    gate_ctx = context(redis_url, prof, name="gate")

    async def decided() -> bool:
        return int(await aredis_client.xlen(KEYS.gate_decision)) == len(intents)

    async with running(gate_ctx, worker_main("gate", prof)):
        await wait_for(decided)
    got = {d.symbol: d for d in (GateDecision.from_fields(f) for _, f in await aredis_client.xrange(KEYS.gate_decision))}
    assert (got["BTCUSDT"].decision, got["BTCUSDT"].reason) == ("EXECUTE", "none")
    assert (got["ETHUSDT"].decision, got["ETHUSDT"].reason) == ("EXECUTE", "none")
    assert (got["SOLUSDT"].decision, got["SOLUSDT"].reason) == ("BLOCKED", "symbol_not_in_allowlist:SOLUSDT")
    tier = events(caplog.records, "ALLOWLIST_TIER")[-1]
    assert (tier["tier"], tier["symbols"]) == ("env" if source == "env" else "profile", 2)
