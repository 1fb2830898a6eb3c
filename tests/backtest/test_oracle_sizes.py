"""The oracle strategy is valued by the same rule as the model: its signals carry the oracle's own win/loss
sizes, measured on the newest training window by then (not the stop/take-profit distances)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from quantum_trader.ai.exits import ExitSizes
from quantum_trader.backtest.command import load, parse_time
from quantum_trader.backtest.history import ModelSlot, universe_schedule
from quantum_trader.backtest.signals import ORACLE_MODEL, decision_times, plan_signals
from quantum_trader.core.profile import load_profile

PAPER = Path(__file__).resolve().parents[2] / "examples" / "paper.yaml"
HOUR = 3_600_000


def _slot(version: str, at: int, win: float) -> ModelSlot:
    return ModelSlot(version=version, active_from=at, train_start=0, train_end=0, bundle=None, promoted=False,
                     reasons=(), seconds=0.0, oracle_sizes=ExitSizes(win_atr=win, loss_atr=1.1, hold_s=3_000.0))


def test_oracle_signals_carry_the_newest_measured_oracle_sizes() -> None:
    profile = load_profile(PAPER)
    spec = profile.spec
    start = parse_time("2026-11-01", flag="--start")
    end = start + 2 * HOUR
    data = load(profile, start=start, end=end, symbols=None)
    universe = asyncio.run(universe_schedule(data, spec=spec, start_ms=start, end_ms=end, tick=lambda _: None))
    steps = decision_times(start_ms=start, end_ms=end, timeframe=spec.ai.timeframe)

    def plan(models: list[ModelSlot]) -> list[tuple[int, float, float]]:
        p = plan_signals(data, ai=spec.ai, steps=steps, universe=universe, models=models,
                         stop_atr=spec.router.stop_loss_atr, oracle=True)
        signals = [(t, pending.signal()) for t in p.steps for pending in p.by_step.get(t, [])]
        assert signals and all(s.model == ORACLE_MODEL for _, s in signals)
        return [(t, s.win_atr, s.loss_atr) for t, s in signals if s.side != "HOLD"]

    measured = plan([_slot("a", start, 1.3), _slot("b", start + HOUR, 1.7)])
    assert measured
    assert {w for t, w, _ in measured if t < start + HOUR} == {1.3}  # the newest training by then
    assert {w for t, w, _ in measured if t >= start + HOUR} == {1.7}
    assert {loss for _, _, loss in measured} == {1.1}
    unmeasured = plan([])  # no training yet: sizes unknown (0), the router values them at the SL/TP distances
    assert {(w, loss) for _, w, loss in unmeasured} == {(0.0, 0.0)}
