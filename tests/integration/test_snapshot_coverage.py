"""Snapshot worker through Redis: seed 000 reproduced (566-symbol universe), allowlist tiers, writes, fail-closed."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest
import redis.asyncio as aredis
from prometheus_client import REGISTRY
from quantum_trader.core.keys import Keys
from quantum_trader.core.messages import TradeIntent
from quantum_trader.core.service import worker_main
from quantum_trader.market.base import ExchangeError, Position
from quantum_trader.universe import publication

from tests.router.helpers import context, events, profile, running, wait_for
from tests.snapshot.test_core import INTENT_SYMBOLS, universe_566

KEYS = Keys("paper")


class FakeExchange:
    """Just what the snapshot needs: mark prices and positions (optionally failing)."""

    name = "fake"

    def __init__(self, *, fail: bool = False, positions: list[Position] | None = None) -> None:
        self.fail = fail
        self._positions = positions or []
        self.requested: list[list[str]] = []

    async def mark_prices(self, symbols: list[str]) -> dict[str, float]:
        self.requested.append(list(symbols))
        if self.fail:
            raise ExchangeError("boom", reason="unavailable", endpoint="mark_prices")
        return {s: 1.0 + i / 1000 for i, s in enumerate(symbols)}

    async def positions(self) -> list[Position]:
        return list(self._positions)

    async def close(self) -> None:
        return None


def now_ms() -> int:
    return int(time.time() * 1000)


def universe_doc(symbols: list[str]) -> str:
    t = now_ms()
    return json.dumps({
        "version": "1", "generator": "test", "features_window": "15m,1h",
        "universe_hash": publication.universe_hash(symbols), "generated_at": t - 1000,
        "valid_until": t + 3_600_000,
        "symbols": [{"symbol": s, "rank": i + 1, "score": 1.0, "volume_24h": 1e6 - i} for i, s in enumerate(symbols)],
    })


def intent(symbol: str, i: int) -> TradeIntent:
    return TradeIntent(
        intent_id=f"int-{i}", signal_id=str(i), symbol=symbol, side="SELL", position_size_usd=10.0, leverage=2.0,
        entry_price=1.0, stop_loss=1.1, take_profit=0.8, confidence=0.54, score=0.55, rank=1, size_boost=1.0,
        ts=now_ms(),
    )


async def run_one_cycle(redis_url: str, exchange: FakeExchange, caplog: pytest.LogCaptureFixture, **snapshot: Any) -> None:
    prof = profile(snapshot=snapshot)
    ctx = context(redis_url, prof, name="snapshot", exchange_factory=lambda: exchange)  # type: ignore[arg-type,return-value]
    async with running(ctx, worker_main("snapshot", prof)):
        await wait_for(lambda: events(caplog.records, "SNAPSHOT_CYCLE") or events(caplog.records, "SNAPSHOT_FETCH_FAILED"))


def coverage() -> float | None:
    return REGISTRY.get_sample_value("qt_snapshot_coverage_ratio", {"profile": "paper"})


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="quantum_trader")
    return caplog


async def seed000_state(client: aredis.Redis) -> None:
    await client.set(KEYS.universe_active, universe_doc(universe_566()))
    for i, sym in enumerate((*INTENT_SYMBOLS, "WAVESUSDT")):
        await client.xadd(KEYS.trade_intent, intent(sym, i).to_fields())  # type: ignore[arg-type]
    for sym in ("BTCUSDT", "ETHUSDT", "TRXUSDT"):
        await client.hset(KEYS.positions, sym, json.dumps(
            {"symbol": sym, "side": "BUY", "qty": 1.0, "entry_price": 1.0, "stop_loss": 0.9, "take_profit": 1.2,
             "opened_ts": now_ms(), "order_id": "PAPER-1"}))


async def test_seed000_alphabetical_small_top_k_leaves_intent_symbols_without_snapshots(
    redis_url: str, aredis_client: aredis.Redis, logs: pytest.LogCaptureFixture
) -> None:
    await seed000_state(aredis_client)
    await run_one_cycle(redis_url, FakeExchange(), logs, ranking="alphabetical", minTopK=33, maxTopK=33)
    allow = events(logs.records, "ALLOWLIST")[0]
    assert (allow["source"], allow["count"]) == ("active", 566)
    tradable = {s.decode() for s in await aredis_client.smembers(KEYS.tradable_symbols)}
    assert len(tradable) == 33
    assert {"0GUSDT", "1000BONKUSDT", "BTCUSDT", "ETHUSDT", "TRXUSDT"} <= tradable
    for sym in INTENT_SYMBOLS:
        assert sym not in tradable
        assert not await aredis_client.exists(KEYS.position_snapshot(sym))
    assert coverage() == 0.0
    miss = events(logs.records, "SNAPSHOT_MISS")[0]
    assert miss["count"] == 5 and set(INTENT_SYMBOLS) <= set(miss["symbols"])


async def test_seed000_intent_ranking_covers_every_intent_symbol(
    redis_url: str, aredis_client: aredis.Redis, logs: pytest.LogCaptureFixture
) -> None:
    await seed000_state(aredis_client)
    await run_one_cycle(redis_url, FakeExchange(), logs, ranking="intent", minTopK=33, maxTopK=33)
    tradable = {s.decode() for s in await aredis_client.smembers(KEYS.tradable_symbols)}
    assert set(INTENT_SYMBOLS) <= tradable and len(tradable) == 33
    for sym in INTENT_SYMBOLS:
        snap = await aredis_client.hgetall(KEYS.position_snapshot(sym))
        assert set(snap) == {b"mark_price", b"position_amt", b"entry_price", b"unrealized_pnl", b"ts"}
        assert 0 < await aredis_client.pttl(KEYS.position_snapshot(sym)) <= 60_000
    assert coverage() == 1.0
    assert 0 < await aredis_client.pttl(KEYS.tradable_symbols) <= 60_000
    assert events(logs.records, "SNAPSHOT_MISS") == []


async def test_open_positions_are_snapshotted_with_their_amount(
    redis_url: str, aredis_client: aredis.Redis, logs: pytest.LogCaptureFixture
) -> None:
    await seed000_state(aredis_client)
    ex = FakeExchange(positions=[Position("SOLUSDT", "SELL", 2.0, 1.5, 0.25)])
    await run_one_cycle(redis_url, ex, logs, minTopK=10, maxTopK=10)
    btc = await aredis_client.hgetall(KEYS.position_snapshot("BTCUSDT"))
    assert float(btc[b"position_amt"]) == 1.0 and float(btc[b"entry_price"]) == 1.0
    sol = await aredis_client.hgetall(KEYS.position_snapshot("SOLUSDT"))
    assert float(sol[b"position_amt"]) == -2.0 and float(sol[b"unrealized_pnl"]) == 0.25


async def test_env_source_with_empty_allowlist_publishes_no_tradable_symbol(
    redis_url: str, aredis_client: aredis.Redis, logs: pytest.LogCaptureFixture
) -> None:
    await aredis_client.set(KEYS.universe_active, universe_doc(universe_566()))
    await aredis_client.sadd(KEYS.tradable_symbols, "OLDUSDT")
    await run_one_cycle(redis_url, FakeExchange(), logs, allowlistSource="env")
    assert events(logs.records, "ALLOWLIST")[0]["source"] == "env"
    assert events(logs.records, "ALLOWLIST")[0]["count"] == 0
    assert events(logs.records, "ALLOWLIST_EMPTY")
    assert not await aredis_client.exists(KEYS.tradable_symbols)


async def test_env_source_snapshots_the_profile_list(
    redis_url: str, aredis_client: aredis.Redis, logs: pytest.LogCaptureFixture
) -> None:
    await aredis_client.set(KEYS.universe_active, universe_doc(universe_566()))
    await run_one_cycle(redis_url, FakeExchange(), logs, allowlistSource="env",
                        allowlist=["GALAUSDT", "ZECUSDT", "FILUSDT"])
    tradable = {s.decode() for s in await aredis_client.smembers(KEYS.tradable_symbols)}
    assert tradable == {"GALAUSDT", "ZECUSDT", "FILUSDT"}


async def test_missing_universe_falls_back_to_profile_allowlist(
    redis_url: str, aredis_client: aredis.Redis, logs: pytest.LogCaptureFixture
) -> None:
    await run_one_cycle(redis_url, FakeExchange(), logs, allowlist=["BTCUSDT"])
    assert (events(logs.records, "ALLOWLIST")[0]["source"], events(logs.records, "ALLOWLIST")[0]["count"]) == (
        "profile", 1)


async def test_exchange_failure_writes_nothing(
    redis_url: str, aredis_client: aredis.Redis, logs: pytest.LogCaptureFixture
) -> None:
    await aredis_client.set(KEYS.universe_active, universe_doc(["BTCUSDT", "ETHUSDT"]))
    await aredis_client.sadd(KEYS.tradable_symbols, "BTCUSDT")
    await run_one_cycle(redis_url, FakeExchange(fail=True), logs)
    assert events(logs.records, "SNAPSHOT_FETCH_FAILED")
    assert not await aredis_client.exists(KEYS.position_snapshot("BTCUSDT"))
    assert await aredis_client.smembers(KEYS.tradable_symbols) == {b"BTCUSDT"}  # untouched; expires by TTL


async def test_router_demand_gets_a_snapshot(
    redis_url: str, aredis_client: aredis.Redis, logs: pytest.LogCaptureFixture
) -> None:
    from quantum_trader.core.messages import RouterFate

    await aredis_client.set(KEYS.universe_active, universe_doc(universe_566()))
    fate = RouterFate(signal_id="s1", symbol="VETUSDT", side="BUY", confidence=0.9, reason="not_tradable",
                      ts=now_ms())
    await aredis_client.xadd(KEYS.router_drop, fate.to_fields())  # type: ignore[arg-type]
    await run_one_cycle(redis_url, FakeExchange(), logs, ranking="intent", minTopK=10, maxTopK=10)
    assert await aredis_client.sismember(KEYS.tradable_symbols, "VETUSDT")
