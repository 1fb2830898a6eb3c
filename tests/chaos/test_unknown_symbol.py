"""One unknown symbol (seed 000's WAVESUSDT case) no longer blacks out every snapshot.

The exchange double fails a many-symbol mark-price call whole when it holds a symbol
it does not list — what Binance does — so the snapshot must fall back to per-symbol
results: the unknown one is skipped with ``unknown_symbol`` (log, metric, ``qt why``),
the rest get their snapshots.
"""

from __future__ import annotations

import logging

import pytest
import redis
import redis.asyncio as aredis
from prometheus_client import REGISTRY
from quantum_trader.core.keys import Keys
from quantum_trader.core.service import worker_main
from quantum_trader.inspect import why
from quantum_trader.market.base import ExchangeError, Position

from tests.router.helpers import context, events, profile, running, wait_for

KEYS = Keys("paper")
LISTED = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT")


class StrictExchange:
    """Prices listed symbols; a call naming an unlisted one fails whole (unknown_symbol)."""

    name = "strict"

    async def mark_prices(self, symbols: list[str]) -> dict[str, float]:
        unknown = [s for s in symbols if s not in LISTED]
        if unknown:
            raise ExchangeError(f"unknown symbol {unknown[0]}", reason="unknown_symbol", endpoint="mark_prices")
        return {s: 100.0 + i for i, s in enumerate(symbols)}

    async def positions(self) -> list[Position]:
        return []

    async def close(self) -> None:
        return None


async def test_unknown_symbol_is_skipped_with_reason_and_the_other_symbols_get_snapshots(
    redis_url: str, aredis_client: aredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="quantum_trader")
    before = REGISTRY.get_sample_value(
        "qt_snapshot_skipped_symbols_total", {"profile": "paper", "reason": "unknown_symbol"}) or 0.0
    prof = profile(snapshot={"allowlistSource": "env", "allowlist": [*LISTED, "WAVESUSDT"], "minTopK": 10,
                             "maxTopK": 10})
    ctx = context(redis_url, prof, name="snapshot", exchange_factory=StrictExchange)  # type: ignore[arg-type]
    async with running(ctx, worker_main("snapshot", prof)):
        await wait_for(lambda: events(caplog.records, "SNAPSHOT_CYCLE") or events(caplog.records,
                                                                                  "SNAPSHOT_FETCH_FAILED"))
    assert events(caplog.records, "SNAPSHOT_FETCH_FAILED") == []
    tradable = {s.decode() for s in await aredis_client.smembers(KEYS.tradable_symbols)}
    assert tradable == set(LISTED)
    for sym in LISTED:
        assert await aredis_client.exists(KEYS.position_snapshot(sym))
    assert not await aredis_client.exists(KEYS.position_snapshot("WAVESUSDT"))
    skipped = events(caplog.records, "SNAPSHOT_SYMBOL_SKIPPED")
    assert [(e["symbol"], e["reason"]) for e in skipped] == [("WAVESUSDT", "unknown_symbol")]
    after = REGISTRY.get_sample_value(
        "qt_snapshot_skipped_symbols_total", {"profile": "paper", "reason": "unknown_symbol"})
    assert after is not None and after >= before + 1
    client = redis.Redis.from_url(redis_url)
    stage = why.snapshot_stage(why.gather(client, prof, "WAVESUSDT"))
    assert "skipped, unknown_symbol" in stage.text and stage.data["skipped"] == "unknown_symbol"
    client.close()
