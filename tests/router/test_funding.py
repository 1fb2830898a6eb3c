"""The router shell's funding read against the real simulated exchange (no Redis involved)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from quantum_trader.core.clock import ManualClock
from quantum_trader.core.logs import EventLog
from quantum_trader.core.profile import ExchangeSettings
from quantum_trader.market.sim import SimExchange
from quantum_trader.router import core
from quantum_trader.router.worker import FundingBook, read_funding

NOW = 1_796_394_600_000


@dataclass
class _Shell:  # the two WorkerContext members read_funding uses
    exchange: object
    log: EventLog


async def test_sim_settlements_reach_the_entry_rule_and_are_read_once_per_period() -> None:
    sim = SimExchange(ExchangeSettings(), clock=ManualClock(NOW))
    ctx = _Shell(exchange=sim, log=EventLog(worker="router", profile="t"))
    book = FundingBook()
    got = await read_funding(ctx, book, {"BTCUSDT", "ETHUSDT"}, now_ms=NOW)  # type: ignore[arg-type]
    rates = await sim.funding_rates("BTCUSDT", since_ms=NOW - 32 * 3_600_000, until_ms=NOW)
    assert set(got) == {"BTCUSDT", "ETHUSDT"}
    assert got["BTCUSDT"] == pytest.approx(core.funding_bps_8h(rates, now_ms=NOW))
    assert book.due({"BTCUSDT"}, now_ms=NOW + 60_000) == []  # no second read before the next settlement


async def test_a_venue_without_funding_leaves_every_symbol_unknown() -> None:
    ctx = _Shell(exchange=object(), log=EventLog(worker="router", profile="t"))
    assert await read_funding(ctx, FundingBook(), {"BTCUSDT"}, now_ms=NOW) == {}  # type: ignore[arg-type]
