"""Gate decision core: every rule and reason string, the rule order, reduce-only exemptions, kill score."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from quantum_trader.core.messages import TradeIntent
from quantum_trader.core.profile import GateSettings
from quantum_trader.executor.state import Position, RiskState, utc_day
from quantum_trader.gate import core
from quantum_trader.gate.core import (
    GateView,
    SnapshotInfo,
    decide,
    decide_batch,
    decision_id_for,
    kill_score,
    resolve_allowlist,
    to_decision,
)
from quantum_trader.universe.publication import universe_hash

NOW = 1_700_000_000_000
S = GateSettings()  # maxExposure 1000, maxLeverage 10, dailyLoss 200, maxSnapshotAge 30s, warn 0.6, crit 0.8


def intent(
    symbol: str = "BTCUSDT",
    *,
    side: str = "BUY",
    iid: str | None = None,
    size: float = 10.0,
    leverage: float = 2.0,
    reduce_only: bool = False,
) -> TradeIntent:
    return TradeIntent.model_validate(
        dict(
            intent_id=iid or f"i-{symbol}-{side}-{size}-{leverage}-{reduce_only}",
            signal_id="s1",
            symbol=symbol,
            side=side,
            position_size_usd=size,
            leverage=leverage,
            entry_price=100.0,
            stop_loss=95.0,
            take_profit=110.0,
            confidence=0.8,
            score=0.8,
            rank=1,
            size_boost=1.0,
            reduce_only=reduce_only,
            ts=NOW,
        )
    )


def pos(symbol: str = "BTCUSDT", side: str = "BUY", qty: float = 1.0, entry: float = 100.0) -> Position:
    return Position(symbol, side, qty, entry, 0.0, 0.0, NOW - 1000, f"PAPER-{symbol}")  # type: ignore[arg-type]


def view(**kw: object) -> GateView:
    base = dict(
        paused=False,
        allowlist=frozenset({"BTCUSDT", "ETHUSDT"}),
        positions={},
        snapshots={"BTCUSDT": SnapshotInfo(100.0, NOW - 1000), "ETHUSDT": SnapshotInfo(10.0, NOW - 1000)},
        cooldowns={},
        risk=RiskState(),
        kill_score=0.0,
    )
    base.update(kw)
    return GateView(**base)  # type: ignore[arg-type]


def reason(i: TradeIntent, v: GateView, settings: GateSettings = S) -> str:
    return decide(i, v, settings=settings, now_ms=NOW).reason


def test_clean_intent_executes_with_reason_none() -> None:
    verdict = decide(intent(), view(), settings=S, now_ms=NOW)
    assert (verdict.decision, verdict.reason) == ("EXECUTE", "none")


def test_each_rule_blocks_with_its_exact_reason_string() -> None:
    i = intent()
    assert reason(i, view(paused=True)) == "paused"
    assert reason(i, view(decided=frozenset({i.intent_id}))) == "duplicate"
    assert reason(i, view(positions={"BTCUSDT": pos()})) == "duplicate"
    assert reason(intent("WAVESUSDT"), view()) == "symbol_not_in_allowlist:WAVESUSDT"
    assert reason(i, view(snapshots={})) == "no_exchange_snapshot"
    assert reason(i, view(snapshots={"BTCUSDT": SnapshotInfo(100.0, NOW - 30_001)})) == "stale_snapshot"
    assert reason(i, view(kill_score=0.8)) == "kill_score_critical"
    assert reason(i, view(kill_score=0.6)) == "kill_score_warning_risk_increase"
    assert reason(i, view(cooldowns={"BTCUSDT": NOW + 1})) == "cooldown:BTCUSDT"
    assert reason(intent(size=600.0), view()) == "exposure_limit"
    assert reason(intent(size=1.0, leverage=11.0), view()) == "leverage_limit"
    risk = RiskState(day=utc_day(NOW), realized_pnl_today=-200.0)
    assert reason(i, view(risk=risk)) == "daily_loss_limit"


def test_rules_apply_in_design_order_first_match_wins() -> None:
    i = intent(size=600.0, leverage=11.0)  # exposure and leverage also fail
    v = view(
        paused=True,
        decided=frozenset({i.intent_id}),
        allowlist=frozenset(),
        snapshots={},
        kill_score=0.9,
        cooldowns={"BTCUSDT": NOW + 1},
        risk=RiskState(day=utc_day(NOW), realized_pnl_today=-500.0),
    )
    expected = [
        ("paused", dict(paused=False)),
        ("duplicate", dict(decided=frozenset())),
        ("symbol_not_in_allowlist:BTCUSDT", dict(allowlist=frozenset({"BTCUSDT"}))),
        ("no_exchange_snapshot", dict(snapshots={"BTCUSDT": SnapshotInfo(100.0, NOW - 60_000)})),
        ("stale_snapshot", dict(snapshots={"BTCUSDT": SnapshotInfo(100.0, NOW)})),
        ("kill_score_critical", dict(kill_score=0.7)),
        ("kill_score_warning_risk_increase", dict(kill_score=0.0)),
        ("cooldown:BTCUSDT", dict(cooldowns={"BTCUSDT": NOW})),  # until == now: over
    ]
    for want, fix in expected:
        assert reason(i, v) == want
        v = replace(v, **fix)  # type: ignore[arg-type]
    assert reason(i, v) == "exposure_limit"
    assert reason(intent(size=10.0, leverage=11.0), v) == "leverage_limit"
    assert reason(intent(size=10.0, leverage=2.0), v) == "daily_loss_limit"


def test_reduce_only_is_never_blocked_by_kill_score_cooldown_or_limits() -> None:
    exit_ = intent(side="SELL", reduce_only=True, size=5000.0, leverage=50.0)
    v = view(
        positions={"BTCUSDT": pos()},
        kill_score=1.0,
        cooldowns={"BTCUSDT": NOW + 60_000},
        risk=RiskState(day=utc_day(NOW), realized_pnl_today=-1000.0),
    )
    assert decide(exit_, v, settings=S, now_ms=NOW).decision == "EXECUTE"


def test_paused_blocks_new_positions_but_lets_a_reduce_only_exit_through() -> None:
    exit_ = intent(side="SELL", reduce_only=True)
    v = view(positions={"BTCUSDT": pos()}, paused=True)
    assert decide(exit_, v, settings=S, now_ms=NOW).decision == "EXECUTE"
    assert reason(intent(side="SELL"), v) == "paused"  # the same side as an opening: new risk
    assert reason(intent(symbol="ETHUSDT"), v) == "paused"


def test_reduce_only_still_blocked_without_fresh_snapshot() -> None:
    exit_ = intent(side="SELL", reduce_only=True)
    v = view(positions={"BTCUSDT": pos()})
    assert reason(exit_, replace(v, snapshots={})) == "no_exchange_snapshot"


def test_reduce_only_exit_of_open_position_passes_even_when_symbol_left_allowlist() -> None:
    exit_ = intent(side="SELL", reduce_only=True)
    v = view(positions={"BTCUSDT": pos()}, allowlist=frozenset())
    assert reason(exit_, v) == "none"
    assert reason(exit_, replace(v, positions={})) == "symbol_not_in_allowlist:BTCUSDT"


def test_opposite_side_intent_on_open_position_is_not_a_duplicate() -> None:
    assert reason(intent(side="SELL"), view(positions={"BTCUSDT": pos(side="BUY", qty=0.1)})) == "none"


def test_exposure_counts_open_positions_and_in_flight_executes() -> None:
    # open 1 × 100 = 100 USD; in flight 800; intent 10 × 2 = 20 → 920 ≤ 1000 executes; 100 more blocks
    v = view(
        positions={"ETHUSDT": pos("ETHUSDT", qty=10.0, entry=10.0)},
        in_flight=frozenset({("SOLUSDT", "BUY")}),
        in_flight_notional=800.0,
    )
    assert reason(intent(), v) == "none"
    assert reason(intent(size=45.0), v) == "none"  # 100+800+90 = 990
    assert reason(intent(size=55.0), v) == "exposure_limit"  # 100+800+110 = 1010


def test_in_flight_execute_on_same_symbol_and_side_is_duplicate() -> None:
    v = view(in_flight=frozenset({("BTCUSDT", "BUY")}))
    assert reason(intent(), v) == "duplicate"
    assert reason(intent(side="SELL"), v) == "none"


def test_unreadable_position_blocks_risk_increase_with_exposure_limit() -> None:
    assert reason(intent(), view(exposure_unknown=True)) == "exposure_limit"


def test_daily_loss_from_another_day_does_not_count() -> None:
    risk = RiskState(day="2000-01-01", realized_pnl_today=-1000.0)
    assert reason(intent(), view(risk=risk)) == "none"


def test_batch_second_intent_same_symbol_side_is_duplicate_and_exposure_accumulates() -> None:
    a, b = intent(iid="a"), intent(iid="b")
    c = intent("ETHUSDT", iid="c", size=495.0)  # 20 + 990 > 1000
    verdicts = decide_batch([a, b, c], view(), settings=S, now_ms=NOW)
    assert [(v.decision, v.reason) for v in verdicts] == [
        ("EXECUTE", "none"),
        ("BLOCKED", "duplicate"),
        ("BLOCKED", "exposure_limit"),
    ]


def test_batch_same_intent_twice_gets_duplicate_the_second_time() -> None:
    a = intent(iid="same")
    verdicts = decide_batch([a, a], view(), settings=S, now_ms=NOW)
    assert [v.reason for v in verdicts] == ["none", "duplicate"]


@pytest.mark.parametrize(
    ("risk", "want"),
    [
        (RiskState(), 0.0),
        (RiskState(realized_pnl_total=-50.0, equity_peak=0.0), 0.5),  # drawdown 50 / 100
        (RiskState(realized_pnl_total=20.0, equity_peak=80.0), 0.6),  # drawdown from peak 60 / 100
        (RiskState(day=utc_day(NOW), loss_streak=3), 0.5),  # 3 / 6
        (RiskState(error_rate=0.1), 0.2),  # 0.1 / 0.5
        (RiskState(realized_pnl_total=-500.0, loss_streak=20, error_rate=1.0), 1.0),  # clipped
        (RiskState(day=utc_day(NOW), realized_pnl_total=-30.0, loss_streak=3, error_rate=0.05), 0.5),  # max
    ],
)
def test_kill_score_is_max_of_normalised_components(risk: RiskState, want: float) -> None:
    assert kill_score(risk, settings=S, now_ms=NOW) == pytest.approx(want)


def test_kill_score_inputs_reset_with_time_so_a_block_cannot_last_forever() -> None:
    streak = RiskState(day="2000-01-01", loss_streak=6)  # yesterday's streak
    assert kill_score(streak, settings=S, now_ms=NOW) == 0.0
    errors = RiskState(error_rate=0.5, error_ts=NOW - 600_000)  # one half-life ago: 0.25 / 0.5
    assert kill_score(errors, settings=S, now_ms=NOW) == pytest.approx(0.5)
    drawdown = RiskState(realized_pnl_total=-80.0, equity_peak=0.0, day="2000-01-01")  # persists
    assert kill_score(drawdown, settings=S, now_ms=NOW) == pytest.approx(0.8)


def test_kill_score_with_zero_error_rate_threshold_trips_on_any_error() -> None:
    s = GateSettings(kill_error_rate=0.0)
    assert kill_score(RiskState(error_rate=0.001), settings=s, now_ms=NOW) == 1.0
    assert kill_score(RiskState(), settings=s, now_ms=NOW) == 0.0


def universe(symbols: list[str], valid_until: int) -> str:
    return json.dumps({"symbols": [{"symbol": s, "rank": n} for n, s in enumerate(symbols)], "valid_until": valid_until,
                       "universe_hash": universe_hash(symbols)})


def test_allowlist_tiers_active_then_last_ok_then_profile() -> None:
    act, ok = universe(["BTCUSDT"], NOW + 1), universe(["ETHUSDT"], NOW + 1)
    common = dict(source="universe", profile_allowlist=["SOLUSDT"], now_ms=NOW)
    assert resolve_allowlist(active=act, last_ok=ok, **common) == (frozenset({"BTCUSDT"}), "active")  # type: ignore[arg-type]
    expired = universe(["BTCUSDT"], NOW)
    assert resolve_allowlist(active=expired, last_ok=ok, **common) == (frozenset({"ETHUSDT"}), "last_ok")  # type: ignore[arg-type]
    assert resolve_allowlist(active="{bad", last_ok=None, **common) == (frozenset({"SOLUSDT"}), "profile")  # type: ignore[arg-type]
    empty = universe([], NOW + 1)
    assert resolve_allowlist(active=empty, last_ok=None, **common)[1] == "profile"  # type: ignore[arg-type]


def test_allowlist_env_source_uses_profile_list_only() -> None:
    got = resolve_allowlist(
        source="env", active=universe(["BTCUSDT"], NOW + 1), last_ok=None, profile_allowlist=[], now_ms=NOW
    )
    assert got == (frozenset(), "env")


def test_decision_id_is_deterministic_from_intent_id() -> None:
    assert decision_id_for("abc") == decision_id_for("abc") != decision_id_for("abd")
    d = to_decision(intent(iid="abc"), decide(intent(iid="abc"), view(), settings=S, now_ms=NOW), now_ms=NOW)
    assert d.decision_id == decision_id_for("abc") and d.reason == "none" and d.ts == NOW


@pytest.mark.parametrize("ks", [0.0, 0.5, 1 / 3, 1.0])
def test_fast_decision_fields_equal_the_message_encoding(ks: float) -> None:
    i = intent(iid="fast")
    verdict = core.Verdict("fast", "BLOCKED", "cooldown:BTCUSDT", ks)
    fields = core.decision_fields(i, verdict, now_ms=NOW)
    assert fields == to_decision(i, verdict, now_ms=NOW).to_fields()


def test_reason_helpers_match_design_strings() -> None:
    assert core.reason_cooldown("X") == "cooldown:X"
    assert core.reason_not_in_allowlist("X") == "symbol_not_in_allowlist:X"
