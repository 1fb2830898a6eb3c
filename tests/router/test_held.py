"""Signals on a symbol that already holds a position: the router's verdict (renew, close or nothing),
decided by the expected value of holding on without a round trip; without Redis."""

from __future__ import annotations

import dataclasses

import pytest
from quantum_trader.core.profile import RouterSettings
from quantum_trader.ledger.held import HeldSignal, parse_held
from quantum_trader.router import core
from quantum_trader.router.core import decide_batch

from tests.router.test_core import NOW, batch, sig

SETTINGS = RouterSettings()  # shipped defaults: minConfidence 0.55, SL 1.5 ATR, TP 3 ATR
SIZES = (1.28, 1.08, 3000.0)  # a trained model's measured win / loss (ATR) and holding time (s)


def held_batch(*signals: object, sides: dict[str, str]) -> core.BatchInput:
    return dataclasses.replace(batch(*signals, open_raw=str(len(sides))),  # type: ignore[arg-type]
                               open_symbols=frozenset(sides), open_sides=sides)


def test_a_same_side_signal_renews_the_held_position_with_its_own_levels_and_takes_no_slot() -> None:
    renewing = sig("BTCUSDT", 0.60, sizes=SIZES, atr=2.0, price=100.0)
    other = sig("ETHUSDT", 0.70, sizes=SIZES, atr=2.0, price=100.0)
    result = decide_batch(held_batch(renewing, other, sides={"BTCUSDT": "BUY"}), settings=SETTINGS,
                          base_size_usd=10.0)
    assert [i.symbol for i in result.intents] == ["ETHUSDT"]  # the verdict is not an intent
    (held,) = result.held
    assert (held.action, held.side, held.symbol, held.signal_id, held.ts) == ("renew", "BUY", "BTCUSDT",
                                                                             renewing.signal_id, renewing.ts)
    assert (held.stop_loss, held.take_profit) == (97.0, 106.0)  # 1.5 and 3 ATR from the signal's price
    # hold EV: no round trip to pay: p·win − (1−p)·loss in bps of notional (ATR 200 bps)
    assert held.ev_bps == pytest.approx((0.60 * 1.28 - 0.40 * 1.08) * 200.0)
    (fate,) = [d for d in result.drops if d.symbol == "BTCUSDT"]
    assert fate.reason == f"position_renewed:hold_ev_bps={held.ev_bps:.1f}"


def test_an_opposite_signal_closes_the_held_position() -> None:
    result = decide_batch(held_batch(sig("BTCUSDT", 0.62, side="SELL", sizes=SIZES), sides={"BTCUSDT": "BUY"}),
                          settings=SETTINGS, base_size_usd=10.0)
    (held,) = result.held
    assert (held.action, held.side) == ("close", "SELL")
    assert result.drops[0].reason.startswith("position_reversed:hold_ev_bps=")
    assert result.intents == ()


def test_no_verdict_when_holding_on_is_not_worth_it_or_the_position_is_unreadable() -> None:
    weak = sig("BTCUSDT", 0.44, sizes=SIZES)  # 0.44·1.28 − 0.56·1.08 < 0
    unreadable = sig("ETHUSDT", 0.70, sizes=SIZES)  # a position record the router could not read: no side
    no_atr = sig("SOLUSDT", 0.70, sizes=SIZES, atr=0.0)
    inp = dataclasses.replace(batch(weak, unreadable, no_atr, open_raw="3"),
                              open_symbols=frozenset({"BTCUSDT", "ETHUSDT", "SOLUSDT"}),
                              open_sides={"BTCUSDT": "BUY", "SOLUSDT": "BUY"})
    result = decide_batch(inp, settings=SETTINGS, base_size_usd=10.0)
    assert result.held == ()
    assert sorted((d.symbol, d.reason) for d in result.drops) == [
        ("BTCUSDT", "position_open"), ("ETHUSDT", "position_open"), ("SOLUSDT", "position_open")]


def test_a_paused_router_gives_no_verdict() -> None:
    inp = dataclasses.replace(held_batch(sig("BTCUSDT", 0.70, sizes=SIZES), sides={"BTCUSDT": "BUY"}), paused=True)
    result = decide_batch(inp, settings=SETTINGS, base_size_usd=10.0)
    assert result.held == () and result.drops[0].reason == "paused"


def test_held_verdicts_round_trip_and_malformed_ones_are_named() -> None:
    held = HeldSignal(symbol="BTCUSDT", action="renew", side="BUY", signal_id="s-1", stop_loss=97.0,
                      take_profit=106.0, ts=NOW, ev_bps=12.5)
    parsed, bad = parse_held({"BTCUSDT": held.to_json(), "ETHUSDT": "{not json", "SOLUSDT": held.to_json(),
                              "XRPUSDT": held.to_json().replace('"renew"', '"double"')})
    assert parsed == {"BTCUSDT": held}
    assert sorted(bad) == ["ETHUSDT", "SOLUSDT", "XRPUSDT"]  # SOLUSDT: the value names another symbol
