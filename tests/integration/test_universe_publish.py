"""Universe cycles against the real simulated exchange and a real Redis: publication, fail-closed
discovery with expiry at valid_until, stale symbols repaired or excluded, and the worker shell."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import redis.asyncio as aredis
from prometheus_client import REGISTRY
from quantum_trader.compose import universe_config
from quantum_trader.core.clock import ManualClock
from quantum_trader.core.keys import Keys
from quantum_trader.core.logs import EventLog
from quantum_trader.core.messages import PolicyAudit
from quantum_trader.core.profile import TradingProfile, parse_profile
from quantum_trader.market.factory import build_exchange
from quantum_trader.universe.cycle import CycleResult, Published
from quantum_trader.universe.publication import active_symbols, read_active_symbols, universe_hash
from quantum_trader.universe.worker import UniverseState, cycle_once

KEYS = Keys("paper")
START_MS = (int(time.time() * 1000) // 3_600_000) * 3_600_000 + 60_000  # just after an hour's close


def profile(*, faults: dict[str, Any] | None = None, health: dict[str, Any] | None = None) -> TradingProfile:
    return parse_profile({
        "apiVersion": "quantumtrader.io/v1alpha1",
        "kind": "TradingProfile",
        "metadata": {"name": "paper"},
        "spec": {
            "exchange": {"name": "sim", "seed": 7, "faults": faults or {}},
            "universe": {"size": 10, "bars": 200, "minQuoteVolume24h": 20_000_000, "validFor": "1h"},
            "health": {"strict": True, "maxStalenessBars": 2, "autoRepair": True, "maxRepairRounds": 2,
                       **(health or {})},
        },
    })


async def one_cycle(
    prof: TradingProfile, clock: ManualClock, redis: aredis.Redis | None, state: UniverseState | None = None
) -> tuple[CycleResult, Published | None]:
    exchange = build_exchange(prof.spec.exchange, clock=clock, environment=prof.spec.environment)
    return await cycle_once(
        config=universe_config(prof), keys=prof.keys, exchange=exchange, clock=clock,
        log=EventLog(worker="universe", profile="paper"), state=state or UniverseState(), redis=redis,
    )


async def test_cycle_publishes_active_last_ok_one_audit_entry_and_the_funnel(aredis_client: aredis.Redis) -> None:
    clock = ManualClock(START_MS)
    result, published = await one_cycle(profile(), clock, aredis_client)
    assert result.ok and published is not None and published.last_ok
    active = json.loads(await aredis_client.get(KEYS.universe_active))
    for field in ("version", "generator", "features_window", "universe_hash", "generated_at", "valid_until"):
        assert field in active
    symbols = [row["symbol"] for row in active["symbols"]]
    assert len(symbols) == 10 and [row["rank"] for row in active["symbols"]] == list(range(1, 11))
    assert active["universe_hash"] == universe_hash(symbols)
    assert active["valid_until"] == START_MS + 3_600_000 and active["features_window"] == "15m,1h"
    for row in active["symbols"]:
        assert {"score", "volume_24h", "leverage", "trend", "mom_15m", "mom_1h", "atr_pct", "er", "hurst"} <= set(row)
    assert await aredis_client.get(KEYS.universe_last_ok) == await aredis_client.get(KEYS.universe_active)

    entries = await aredis_client.xrange(KEYS.policy_audit)
    assert len(entries) == 1
    audit = PolicyAudit.from_fields(entries[0][1])
    assert audit.universe_hash == active["universe_hash"] and audit.symbols == symbols
    assert audit.universe_count == 10 and audit.valid_until == active["valid_until"]
    stages = dict((s, n) for s, n in audit.funnel["stages"])
    assert stages["listed"] > 540 and stages["merged"] == stages["discovered"] - audit.funnel["merged"]
    assert audit.funnel["merged"] >= 20  # the sim's USDC duplicates of USDT bases

    funnel = json.loads(await aredis_client.get(KEYS.universe_funnel))
    assert funnel["symbols"]["BTCUSDC"]["reason"] == "merged_duplicate"
    assert funnel["symbols"][symbols[0]] == {"fate": "selected", "rank": 1, "score": active["symbols"][0]["score"]}
    assert all(f["fate"] == "selected" or f["reason"] for f in funnel["symbols"].values())
    assert REGISTRY.get_sample_value("qt_universe_funnel_symbols", {"profile": "paper", "stage": "selected"}) == 10
    assert REGISTRY.get_sample_value("qt_universe_size", {"profile": "paper"}) is not None


async def test_discovery_failure_publishes_nothing_new_and_the_old_universe_expires_at_valid_until(
    aredis_client: aredis.Redis,
) -> None:
    clock = ManualClock(START_MS)
    state = UniverseState()
    _, first = await one_cycle(profile(), clock, aredis_client, state)
    assert first is not None
    before = {k: await aredis_client.get(k) for k in (KEYS.universe_active, KEYS.universe_last_ok, KEYS.universe_funnel)}

    clock.advance(1800)
    result, published = await one_cycle(profile(faults={"discovery": "fail"}), clock, aredis_client, state)
    assert not result.ok and result.reason == "discovery_failed" and published is None
    assert "discovery failed" in result.detail
    after = {k: await aredis_client.get(k) for k in before}
    assert after == before  # nothing new
    assert await aredis_client.xlen(KEYS.policy_audit) == 1

    valid_until = json.loads(before[KEYS.universe_active])["valid_until"]
    assert len(await read_active_symbols(aredis_client, KEYS, now_ms=valid_until - 1)) == 10
    assert await read_active_symbols(aredis_client, KEYS, now_ms=valid_until) == []
    assert active_symbols(json.loads(before[KEYS.universe_last_ok]), now_ms=valid_until) == []


async def test_stale_symbols_are_repaired_by_backfill_and_counted() -> None:
    prof = profile(faults={"staleSymbols": ["BTCUSDT", "ETHUSDT"]})
    result, _ = await one_cycle(prof, ManualClock(START_MS), None)
    assert result.ok
    assert {"BTCUSDT", "ETHUSDT"} <= set(result.repaired) and result.still_unhealthy == ()
    assert result.repair_rounds == 1
    assert result.drops.get("BTCUSDT") is None or result.drops["BTCUSDT"].stage != "healthy"


async def test_unrepairable_or_unrepaired_stale_symbols_are_excluded_as_stale() -> None:
    prof = profile(faults={"staleSymbols": ["SOLUSDT"], "unrepairableSymbols": ["BTCUSDT"]})
    result, _ = await one_cycle(prof, ManualClock(START_MS), None)
    assert result.ok and result.repair_rounds == 2
    assert result.still_unhealthy == ("BTCUSDT",) and "SOLUSDT" in result.repaired
    assert (result.drops["BTCUSDT"].stage, result.drops["BTCUSDT"].reason) == ("healthy", "stale")

    no_repair = profile(faults={"staleSymbols": ["SOLUSDT"]}, health={"autoRepair": False})
    result, _ = await one_cycle(no_repair, ManualClock(START_MS), None)
    assert result.repair_rounds == 0 and result.repaired == ()
    assert result.drops["SOLUSDT"].reason == "stale"
    assert "SOLUSDT" not in result.symbols


async def test_worker_publishes_at_start_and_stops_on_signal(redis_url: str, aredis_client: aredis.Redis) -> None:
    from quantum_trader.core.service import run_workers

    stop = asyncio.Event()
    task = asyncio.create_task(
        run_workers(["universe"], profile=profile(), redis_url=redis_url, clock=ManualClock(START_MS), stop=stop,
                    http_port=None)
    )
    try:
        for _ in range(600):
            if await aredis_client.get(KEYS.universe_active):
                break
            await asyncio.sleep(0.05)
        assert await aredis_client.xlen(KEYS.policy_audit) == 1
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


def test_qt_universe_command_with_redis_publishes_and_prints_the_table(redis_url: str) -> None:
    import io

    import redis as sync_redis
    from quantum_trader.universe.command import run

    out, err = io.StringIO(), io.StringIO()
    assert run(profile(), as_json=False, redis_url=redis_url, clock=ManualClock(START_MS), out=out, err=err) == 0
    assert "published" in out.getvalue().splitlines()[0] and err.getvalue() == ""
    client = sync_redis.Redis.from_url(redis_url)
    try:
        active = json.loads(client.get(KEYS.universe_active))  # type: ignore[arg-type]
        assert active["count"] == 10 and client.xlen(KEYS.policy_audit) == 1
    finally:
        client.close()


async def test_worker_survives_an_unavailable_exchange_and_publishes_nothing(
    redis_url: str, aredis_client: aredis.Redis, caplog: Any
) -> None:
    import logging

    from quantum_trader.core.service import run_workers
    from quantum_trader.market.base import ExchangeError

    def broken() -> Any:
        raise ExchangeError("no adapter", reason="exchange_unavailable")

    stop = asyncio.Event()
    with caplog.at_level(logging.INFO):
        task = asyncio.create_task(
            run_workers(["universe"], profile=profile(), redis_url=redis_url, clock=ManualClock(START_MS), stop=stop,
                        http_port=None, exchange_factory=broken)
        )
        for _ in range(200):
            if any(getattr(r, "qt_event", "") == "UNIVERSE_CYCLE_FAILED" for r in caplog.records):
                break
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(task, 20)
    assert any(getattr(r, "qt_event", "") == "UNIVERSE_CYCLE_FAILED" for r in caplog.records)
    assert not any(getattr(r, "qt_event", "") == "WORKER_CRASHED" for r in caplog.records)
    assert await aredis_client.get(KEYS.universe_active) is None
    assert await aredis_client.xlen(KEYS.policy_audit) == 0
