"""Operations against a real Redis with the real gate and executor: each one does what it says and is audited."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aredis
from quantum_trader.core.clock import WallClock
from quantum_trader.core.keys import Keys
from quantum_trader.core.messages import GateDecision, PositionEvent
from quantum_trader.core.service import WorkerContext, worker_main
from quantum_trader.executor.state import RiskState
from quantum_trader.gate.core import kill_score
from quantum_trader.ops.core import OpsAudit
from quantum_trader.ops.service import Ops

from tests.executor.fixtures import SYMBOLS, StaticExchange, make_intent, profile, snapshot_mapping

KEYS = Keys("gx")


def now_ms() -> int:
    return int(time.time() * 1000)


async def audit(client: aredis.Redis) -> list[OpsAudit]:
    return [OpsAudit.from_fields(f) for _, f in await client.xrange(KEYS.ops_audit)]


@pytest.fixture
async def pipeline(redis_url: str, aredis_client: aredis.Redis) -> AsyncIterator[aredis.Redis]:
    """The real gate and executor of profile gx, running until the test ends."""
    client = aredis.Redis.from_url(redis_url, decode_responses=True)
    stop = asyncio.Event()
    ctxs = [WorkerContext(name=n, profile=profile(), redis=client, clock=WallClock(), stop=stop,
                          exchange_factory=StaticExchange, consumer=f"{n}-t") for n in ("gate", "executor")]
    tasks = [asyncio.create_task(worker_main(c.name, profile())(c)) for c in ctxs]
    yield aredis_client
    stop.set()
    await asyncio.gather(*tasks)
    await client.aclose()


async def until(cond: object, *, what: str) -> None:
    for _ in range(400):
        if await cond():  # type: ignore[operator]
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def open_positions(client: aredis.Redis, symbols: tuple[str, ...]) -> None:
    for s in symbols:
        await client.hset(KEYS.position_snapshot(s), mapping=snapshot_mapping(50.0, now_ms()))
    for n, s in enumerate(symbols):
        await client.xadd(KEYS.trade_intent, make_intent(f"open{n}", s, ts=now_ms()).to_fields())  # type: ignore[arg-type]

    async def opened() -> bool:
        return bool(await client.hlen(KEYS.positions) == len(symbols))

    await until(opened, what="positions to open")


async def test_flatten_closes_every_position_through_the_gate_and_executor_and_is_audited(
    pipeline: aredis.Redis,
) -> None:
    await open_positions(pipeline, SYMBOLS[:2])
    ops = Ops(pipeline, profile=profile(), actor="ann@box", via="cli")
    listed = await ops.positions()
    assert [p["symbol"] for p in (listed.data or {})["positions"]] == list(SYMBOLS[:2])
    result = await ops.flatten()
    assert result.ok and "T000USDT, T001USDT" in result.message

    async def flat() -> bool:
        return bool(await pipeline.hlen(KEYS.positions) == 0)

    await until(flat, what="positions to close")
    closed = [PositionEvent.from_fields(f) for _, f in await pipeline.xrange(KEYS.position_event)]
    assert sorted(e.symbol for e in closed if e.event == "CLOSED") == list(SYMBOLS[:2])
    assert await pipeline.get(KEYS.open_orders) == b"0"
    trail = await audit(pipeline)
    assert [(a.action, a.outcome, a.actor, a.via) for a in trail] == [
        ("positions", "ok", "ann@box", "cli"), ("flatten", "ok", "ann@box", "cli")]
    assert trail[1].detail["symbols"] == list(SYMBOLS[:2])


async def test_pause_blocks_new_positions_at_the_gate_lets_flatten_close_them_and_resume_lifts_it(
    pipeline: aredis.Redis,
) -> None:
    await open_positions(pipeline, SYMBOLS[:1])
    ops = Ops(pipeline, profile=profile(), actor="ann@box", via="cli")
    assert (await ops.pause(reason="maintenance")).ok
    assert json.loads(await pipeline.get(KEYS.control_paused) or b"{}")["by"] == "qt"
    await pipeline.hset(KEYS.position_snapshot(SYMBOLS[1]), mapping=snapshot_mapping(50.0, now_ms()))
    await pipeline.xadd(KEYS.trade_intent, make_intent("while-paused", SYMBOLS[1], ts=now_ms()).to_fields())  # type: ignore[arg-type]

    async def decided(n: int) -> bool:
        return bool(await pipeline.xlen(KEYS.gate_decision) == n)

    await until(lambda: decided(2), what="the gate's decision")
    decision = GateDecision.from_fields((await pipeline.xrange(KEYS.gate_decision))[-1][1])
    assert (decision.intent_id, decision.decision, decision.reason) == ("while-paused", "BLOCKED", "paused")
    again = await ops.pause()
    assert (again.ok, again.reason) == (False, "already_paused")
    flattened = await ops.flatten()  # still paused: the exit goes through, no resume needed
    assert flattened.ok and SYMBOLS[0] in flattened.message

    async def flat() -> bool:
        return bool(await pipeline.hlen(KEYS.positions) == 0)

    await until(flat, what="the paused profile's position to close")
    exit_decision = GateDecision.from_fields((await pipeline.xrange(KEYS.gate_decision))[-1][1])
    assert (exit_decision.symbol, exit_decision.decision, exit_decision.reason) == (SYMBOLS[0], "EXECUTE", "none")
    assert await pipeline.exists(KEYS.control_paused)
    assert (await ops.resume()).ok and not await pipeline.exists(KEYS.control_paused)
    assert (await ops.resume()).reason == "not_paused"
    assert [(a.action, a.outcome, a.reason) for a in await audit(pipeline)] == [
        ("pause", "ok", "none"), ("pause", "refused", "already_paused"), ("flatten", "ok", "none"),
        ("resume", "ok", "none"), ("resume", "refused", "not_paused")]


async def test_flatten_is_refused_when_the_profile_itself_is_paused(aredis_client: aredis.Redis) -> None:
    result = await Ops(aredis_client, profile=profile(paused=True), actor="ann@box", via="cli").flatten()
    assert (result.ok, result.reason) == (False, "paused_by_spec")


async def test_resume_leaves_a_pause_that_belongs_to_the_profile(aredis_client: aredis.Redis) -> None:
    paused_profile = profile(paused=True)
    await aredis_client.set(KEYS.control_paused, json.dumps({"by": "quantum-operator", "reason": "spec.paused"}))
    result = await Ops(aredis_client, profile=paused_profile, actor="ann@box", via="cli").resume()
    assert (result.ok, result.reason) == (False, "paused_by_spec")
    assert await aredis_client.exists(KEYS.control_paused)


async def test_risk_reset_brings_the_kill_score_to_zero_after_losses_and_records_before_and_after(
    aredis_client: aredis.Redis,
) -> None:
    prof = profile(gate={"killDrawdownUsd": 100, "killLossStreak": 6})
    today = time.strftime("%Y-%m-%d", time.gmtime())
    await aredis_client.hset(KEYS.risk_state, mapping={
        "day": today, "realized_pnl_today": "-80", "realized_pnl_total": "-80", "equity_peak": "0",
        "loss_streak": "3", "error_rate": "0"})
    ops = Ops(aredis_client, profile=prof, actor="ann@box", via="cli")
    assert (await ops.risk())["kill_score"] == pytest.approx(0.8)
    result = await ops.risk_reset()
    assert result.ok and "0.80 → 0.00" in result.message
    risk = RiskState.from_hash(await aredis_client.hgetall(KEYS.risk_state))
    assert kill_score(risk, settings=prof.spec.gate, now_ms=now_ms()) == 0.0
    assert risk.realized_pnl_total == -80.0 and risk.pnl_today(today) == -80.0  # accounting is not rewritten
    (entry,) = await audit(aredis_client)
    assert entry.action == "risk_reset" and entry.detail["before"]["kill_score"] == pytest.approx(0.8)
    assert entry.detail["after"]["kill_score"] == 0.0


async def test_trades_list_fills_newest_first_with_realised_pnl(pipeline: aredis.Redis) -> None:
    await open_positions(pipeline, SYMBOLS[:1])
    ops = Ops(pipeline, profile=profile(), actor="ann@box", via="cli")
    await ops.flatten(SYMBOLS[0])

    async def closed() -> bool:
        return bool(await pipeline.hlen(KEYS.positions) == 0)

    await until(closed, what="the close")
    result, rows = await ops.trades(limit=10)
    assert [(t.side, t.event) for t in rows] == [("SELL", "CLOSED"), ("BUY", "OPENED")]
    assert rows[0].realized_pnl_usd is not None and rows[1].realized_pnl_usd is None
    assert (result.data or {})["realized_pnl_usd"] == rows[0].realized_pnl_usd
