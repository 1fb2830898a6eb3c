"""Perpetual funding on open paper positions: the core's arithmetic, then the executor on a real Redis
charging the sim's own settlements and Binance's (recorded replies through ccxt), realised with the close."""

from __future__ import annotations

from dataclasses import replace

import pytest
import redis.asyncio as aredis
from quantum_trader.core.clock import ManualClock
from quantum_trader.core.keys import Keys
from quantum_trader.core.logs import EventLog
from quantum_trader.core.messages import PositionEvent
from quantum_trader.core.profile import ExchangeSettings
from quantum_trader.executor.batch import limits_from
from quantum_trader.executor.core import accrue_funding, close_pnl, close_position, filters_by_symbol
from quantum_trader.executor.paper import PaperVenue
from quantum_trader.executor.worker import Executor
from quantum_trader.ledger.positions import Position
from quantum_trader.market.base import Exchange, FundingRate
from quantum_trader.market.sim import SimExchange

from tests.executor.fixtures import profile, snapshot_mapping
from tests.market.test_binance_replay import NOW_MS, Reply, fixture, make_exchange, recorded_market_data

KEYS = Keys("gx")
H = 3_600_000
T0 = 1_795_190_400_000 - H  # an hour before a settlement (2026-11-21T00:00Z)


def pos(side: str = "BUY", *, qty: float = 0.2, entry: float = 100.0, opened: int = T0, **kw: object) -> Position:
    return Position("BTCUSDT", side, qty, entry, 0.0, 0.0, opened, "PAPER-AAAAAAAAAAAA", "i-1", 0.008, 2.0,  # type: ignore[arg-type]
                    **kw)  # type: ignore[arg-type]


def test_a_long_pays_and_a_short_receives_each_settlement_after_the_last_one_charged() -> None:
    rates = [FundingRate(T0 - H, 0.5), FundingRate(T0 + H, 0.001), FundingRate(T0 + 9 * H, -0.0004),
             FundingRate(T0 + 17 * H, 0.002)]
    long = accrue_funding(pos(), rates, now_ms=T0 + 10 * H)  # before opening and after now: not charged
    assert long is not None and long.funding_usd == pytest.approx(20.0 * (0.001 - 0.0004))
    assert long.funding_ts == T0 + 9 * H
    assert accrue_funding(long, rates, now_ms=T0 + 10 * H) is None  # charged once
    short = accrue_funding(pos("SELL"), rates, now_ms=T0 + 2 * H)
    assert short is not None and short.funding_usd == pytest.approx(-0.02)


def test_funding_is_realised_with_the_close_pro_rata_for_a_partial_reduce() -> None:
    p = pos(funding_usd=0.04)
    assert close_pnl(p, qty=0.2, exit_price=101.0, exit_fee=0.008) == pytest.approx(0.2 - 0.008 - 0.008 - 0.04)
    half = close_position(p, qty=0.1, exit_price=101.0, exit_fee=0.004, reason="signal", cooldown_ms=0,
                          now_ms=T0 + H, close_all=False)
    assert half.event is not None and half.event.funding_usd == pytest.approx(0.02)
    assert half.new_position is not None and half.new_position.funding_usd == pytest.approx(0.02)


def executor(client: aredis.Redis, exchange: Exchange) -> Executor:
    prof = profile()
    filters = filters_by_symbol([])
    return Executor(redis=client, keys=KEYS, settings=prof.spec.executor, limits=limits_from(prof.spec.gate, prof.spec.ai),
                    venue=PaperVenue(settings=prof.spec.executor, filters=filters, spread_bps=0.0), filters=filters,
                    log=EventLog(worker="executor", profile="gx"), exchange=exchange)


async def test_paper_positions_pay_the_sims_own_settlements_once_and_the_close_carries_them(
    aredis_client: aredis.Redis,
) -> None:
    clock = ManualClock(T0 + 9 * H + 60_000)
    sim = SimExchange(ExchangeSettings(), clock=clock)
    ex = executor(aredis_client, sim)
    entry = 90_000.0
    await aredis_client.hset(KEYS.positions, "BTCUSDT", pos(qty=0.001, entry=entry).to_json())
    assert await ex.charge_funding(now_ms=clock.now_ms()) == 1
    assert await ex.charge_funding(now_ms=clock.now_ms()) == 0  # nothing new: charged once
    rates = await sim.funding_rates("BTCUSDT", since_ms=T0 + 1, until_ms=clock.now_ms())
    assert [r.ts for r in rates] == [T0 + H, T0 + 9 * H]  # the sim settles every 8 h
    stored = Position.from_json(await aredis_client.hget(KEYS.positions, "BTCUSDT") or b"")
    assert stored.funding_usd == pytest.approx(0.001 * entry * sum(r.rate for r in rates))
    assert stored.funding_usd != 0.0 and stored.funding_ts == T0 + 9 * H
    await aredis_client.hset(KEYS.position_snapshot("BTCUSDT"), mapping=snapshot_mapping(entry, clock.now_ms()))
    await aredis_client.hset(KEYS.positions, "BTCUSDT", replace(stored, expires_ts=T0 + H).to_json())
    assert await ex.monitor_once(now_ms=clock.now_ms()) == 1  # past its time exit: closed, funding realised
    (closed,) = [PositionEvent.from_fields(f) for _, f in await aredis_client.xrange(KEYS.position_event)]
    assert closed.close_reason == "time" and closed.funding_usd == pytest.approx(stored.funding_usd)
    exit_fee = 0.001 * closed.exit_price * 4e-4
    move = (closed.exit_price - entry) * 0.001
    assert closed.pnl_usd == pytest.approx(move - 0.008 - exit_fee - stored.funding_usd, abs=1e-7)


async def test_paper_positions_on_binance_pay_the_rates_ccxt_reports(aredis_client: aredis.Redis) -> None:
    replay = recorded_market_data()
    rows = fixture("fundingRate_BTCUSDT.json")
    replay.add("GET", "/fapi/v1/fundingRate",
               Reply(fn=lambda q: [r for r in rows if int(q.get("startTime", 0)) <= r["fundingTime"]
                                   <= int(q.get("endTime", 2**62))]))
    binance = make_exchange(replay, environment="paper")
    ex = executor(aredis_client, binance)
    await aredis_client.hset(KEYS.positions, "BTCUSDT", pos("SELL", qty=0.002, entry=91_000.0).to_json())
    assert await ex.charge_funding(now_ms=NOW_MS) == 1
    stored = Position.from_json(await aredis_client.hget(KEYS.positions, "BTCUSDT") or b"")
    recorded = sum(float(r["fundingRate"]) for r in rows)  # 0.0001 − 0.00003125 + 0.00007411
    assert stored.funding_usd == pytest.approx(-0.002 * 91_000.0 * recorded)  # a short receives
    assert stored.funding_ts == rows[-1]["fundingTime"]
    await binance.close()
