"""The router's verdicts on held positions (``state:held_signals``): the core's rules, then the executor's
monitor on a real Redis renewing a position and closing one on a reversing signal."""

from __future__ import annotations

from dataclasses import replace

import pytest
import redis.asyncio as aredis
from quantum_trader.core.clock import ManualClock
from quantum_trader.core.messages import PositionEvent
from quantum_trader.core.profile import ExchangeSettings
from quantum_trader.executor.core import held_outcome
from quantum_trader.ledger.held import HeldSignal
from quantum_trader.ledger.positions import Position
from quantum_trader.market.sim import SimExchange

from tests.executor.fixtures import snapshot_mapping
from tests.executor.test_funding import KEYS, executor

T0 = 1_795_190_400_000
HORIZON = 3_600_000  # 4 × 15m: the shipped profile's time exit
MMR = 0.005


def position(side: str = "BUY", *, opened: int = T0, entry: float = 100.0, leverage: float = 3.0) -> Position:
    sl, tp = (98.5, 103.0) if side == "BUY" else (101.5, 97.0)
    return Position("BTCUSDT", side, 0.2, entry, sl, tp, opened, "PAPER-AAAAAAAAAAAA", "i-1", 0.008,  # type: ignore[arg-type]
                    leverage, expires_ts=opened + HORIZON)


def verdict(action: str = "renew", side: str = "BUY", *, ts: int = T0 + 900_000, stop: float = 99.0,
            target: float = 104.0) -> HeldSignal:
    return HeldSignal(symbol="BTCUSDT", action=action, side=side, signal_id="s-2", stop_loss=stop,  # type: ignore[arg-type]
                      take_profit=target, ts=ts, ev_bps=9.0)


def test_a_renewal_takes_the_signals_levels_and_moves_the_time_exit_once() -> None:
    out = held_outcome(position(), verdict(), time_exit_ms=HORIZON, maintenance_margin_rate=MMR)
    assert out.kind == "renew" and out.position is not None
    assert (out.position.stop_loss, out.position.take_profit) == (99.0, 104.0)
    assert out.position.expires_ts == T0 + 900_000 + HORIZON
    assert (out.position.qty, out.position.entry_price, out.position.opened_ts) == (0.2, 100.0, T0)  # no trade
    again = held_outcome(out.position, verdict(), time_exit_ms=HORIZON, maintenance_margin_rate=MMR)
    assert (again.kind, again.reason) == ("ignore", "applied")


@pytest.mark.parametrize(("pos", "held", "reason"), [
    (None, verdict(), "no_position"),
    (position(), verdict(ts=T0), "older_than_position"),  # about an earlier position of the symbol
    (position(), verdict(side="SELL"), "side_mismatch"),
    (position(), verdict("close", "BUY"), "side_mismatch"),
])
def test_a_verdict_that_does_not_fit_the_position_is_ignored(pos: Position | None, held: HeldSignal,
                                                            reason: str) -> None:
    out = held_outcome(pos, held, time_exit_ms=HORIZON, maintenance_margin_rate=MMR)
    assert (out.kind, out.reason) == ("ignore", reason)


def test_a_renewed_stop_beyond_the_liquidation_price_is_refused() -> None:
    # 10× long from 100: liquidated at 100 × (1 − 0.1 + 0.005) = 90.5; a renewed stop at 90 lies beyond it
    out = held_outcome(position(leverage=10.0), verdict(stop=90.0), time_exit_ms=HORIZON, maintenance_margin_rate=MMR)
    assert out.kind == "ignore" and out.reason.startswith("liquidation_before_stop:liq=90.5")


def test_an_opposite_verdict_closes() -> None:
    assert held_outcome(position(), verdict("close", "SELL"), time_exit_ms=HORIZON,
                        maintenance_margin_rate=MMR).kind == "close"


async def test_the_monitor_renews_a_position_past_its_old_time_exit_and_closes_one_on_a_reversal(
    aredis_client: aredis.Redis,
) -> None:
    now = T0 + HORIZON + 60_000  # past the held position's original time exit
    ex = executor(aredis_client, SimExchange(ExchangeSettings(), clock=ManualClock(now)))
    eth = replace(position("SELL"), symbol="ETHUSDT")
    await aredis_client.hset(KEYS.positions, mapping={"BTCUSDT": position().to_json(), "ETHUSDT": eth.to_json()})
    for sym in ("BTCUSDT", "ETHUSDT"):
        await aredis_client.hset(KEYS.position_snapshot(sym), mapping=snapshot_mapping(100.5, now))
    renew = verdict(ts=T0 + 2_700_000)
    close = replace(verdict("close", "BUY"), symbol="ETHUSDT")
    await aredis_client.hset(KEYS.held_signals, mapping={"BTCUSDT": renew.to_json(), "ETHUSDT": close.to_json(),
                                                         "SOLUSDT": "{garbage"})
    assert await ex.monitor_once(now_ms=now) == 1  # ETHUSDT closed; BTCUSDT renewed instead of its time exit
    renewed = Position.from_json(await aredis_client.hget(KEYS.positions, "BTCUSDT") or b"")
    assert (renewed.stop_loss, renewed.take_profit, renewed.expires_ts) == (99.0, 104.0, T0 + 2_700_000 + HORIZON)
    assert await aredis_client.hexists(KEYS.positions, "ETHUSDT") == 0
    (closed,) = [PositionEvent.from_fields(f) for _, f in await aredis_client.xrange(KEYS.position_event)]
    assert (closed.symbol, closed.close_reason) == ("ETHUSDT", "signal")
    assert await aredis_client.hgetall(KEYS.held_signals) == {}  # applied, closed and malformed: all consumed
    assert await ex.monitor_once(now_ms=now + 60_000) == 0  # nothing due: the renewal holds


async def test_a_verdict_the_router_replaced_meanwhile_is_kept(aredis_client: aredis.Redis) -> None:
    ex = executor(aredis_client, SimExchange(ExchangeSettings(), clock=ManualClock(T0)))
    first, newer = verdict(), verdict(ts=T0 + 1_800_000)
    await aredis_client.hset(KEYS.held_signals, "BTCUSDT", newer.to_json())
    await ex.delete_held("BTCUSDT", first.to_json())  # what the monitor read before the router wrote again
    assert await aredis_client.hget(KEYS.held_signals, "BTCUSDT") in (newer.to_json(), newer.to_json().encode())
