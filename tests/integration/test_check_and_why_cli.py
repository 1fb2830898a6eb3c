"""`qt check` and `qt why` over a real Redis: seed 000's night is NO-GO with its causes; a healthy run is GO."""

from __future__ import annotations

import json
import time

import pytest
import redis
from quantum_trader.core.keys import WORKERS, Keys
from quantum_trader.core.messages import ExecutionResult, GateDecision, Message, Signal, TradeIntent
from quantum_trader.inspect import check, why
from quantum_trader.universe import publication

from tests.router.helpers import profile
from tests.snapshot.test_core import universe_566

KEYS = Keys("paper")
NOW = int(time.time() * 1000)


def xadd(r: redis.Redis, stream: str, m: Message) -> None:
    r.xadd(stream, m.to_fields())  # type: ignore[arg-type]


def universe(r: redis.Redis, symbols: list[str]) -> None:
    doc = json.dumps({"version": "1", "universe_hash": publication.universe_hash(symbols), "generated_at": NOW - 60_000,
                      "valid_until": NOW + 3_600_000,
                      "symbols": [{"symbol": s, "rank": i + 1, "volume_24h": 1.0} for i, s in enumerate(symbols)]})
    r.set(KEYS.universe_active, doc)
    r.set(KEYS.universe_last_ok, doc)


def signal(sym: str, sid: str, model: str = "lgbm-3") -> Signal:
    return Signal(signal_id=sid, symbol=sym, side="SELL", confidence=0.54, model=model, model_version="0",
                  price=1.0, atr=0.01, regime="trend", rl_gate_pass=False, ts=NOW - 3000)


def intent(sym: str, sid: str) -> TradeIntent:
    return TradeIntent(intent_id=f"int-{sid}", signal_id=sid, symbol=sym, side="SELL", position_size_usd=10.0,
                       leverage=2.0, entry_price=1.0, stop_loss=1.02, take_profit=0.96, confidence=0.9, score=0.9,
                       rank=1, size_boost=1.0, ts=NOW - 2000)


def decision(sym: str, sid: str, reason: str) -> GateDecision:
    return GateDecision(decision_id=f"d-{sid}", intent_id=f"int-{sid}", symbol=sym, side="SELL",
                        decision="EXECUTE" if reason == "none" else "BLOCKED", reason=reason, kill_score=0.65,
                        ts=NOW - 1000)


def heartbeats(r: redis.Redis) -> None:
    for w in WORKERS:
        r.hset(KEYS.heartbeat(w), mapping={"ts": str(int(time.time() * 1000)), "processed": "1"})


@pytest.fixture
def r(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


def seed000(r: redis.Redis) -> None:
    universe(r, universe_566())
    heartbeats(r)
    r.set(KEYS.open_orders, "0")
    r.sadd(KEYS.tradable_symbols, *sorted(universe_566())[:33])
    for i, sym in enumerate(("GALAUSDT", "WAVESUSDT", "MKRUSDT", "VETUSDT", "HBARUSDT")):
        xadd(r, KEYS.ai_signal, signal(sym, f"s{i}", model="fallback-trend"))
        xadd(r, KEYS.trade_intent, intent(sym, f"s{i}"))
    for _ in range(8):
        xadd(r, KEYS.gate_decision, decision("GALAUSDT", "s0", "kill_score_warning_risk_increase"))
    for _ in range(4):
        xadd(r, KEYS.gate_decision, decision("WAVESUSDT", "s1", "symbol_not_in_allowlist:WAVESUSDT"))


def test_check_on_seed000_state_is_no_go(r: redis.Redis, redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    seed000(r)
    code = check.run(profile(), as_json=True, window_s=300.0, redis_url=redis_url)
    out = json.loads(capsys.readouterr().out)
    assert code == 1 and out["verdict"] == "NO-GO"
    assert set(out["failing"]) == {"execute_flow", "tradable_overlap"}
    by_key = {i["key"]: i for i in out["items"]}
    assert by_key["tradable_overlap"]["detail"]["covered"] == []
    assert "GALAUSDT" in by_key["tradable_overlap"]["detail"]["missing"]
    assert by_key["model"]["status"] == "WARN"
    assert by_key["allowlist"]["figure"] == "source=active count=566"


def test_check_on_a_healthy_pipeline_is_go(r: redis.Redis, redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    universe(r, ["BTCUSDT", "ETHUSDT"])
    heartbeats(r)
    r.set(KEYS.open_orders, "1")
    r.sadd(KEYS.tradable_symbols, "BTCUSDT", "ETHUSDT")
    r.hset(KEYS.position_snapshot("BTCUSDT"), mapping={"mark_price": "1", "ts": str(NOW)})
    xadd(r, KEYS.ai_signal, signal("BTCUSDT", "a"))
    xadd(r, KEYS.trade_intent, intent("BTCUSDT", "a"))
    xadd(r, KEYS.gate_decision, decision("BTCUSDT", "a", "none"))
    xadd(r, KEYS.execution_result, ExecutionResult(
        order_id="PAPER-1", intent_id="int-a", decision_id="d-a", symbol="BTCUSDT", side="SELL", qty=10.0, price=1.0,
        notional_usd=10.0, slippage_bps=1.0, fee_usd=0.004, status="FILLED", reason="none", mode="paper", ts=NOW))
    code = check.run(profile(), as_json=False, window_s=300.0, redis_url=redis_url)
    text = capsys.readouterr().out
    assert code == 0, text
    assert text.splitlines()[0].endswith(": GO") and text.splitlines()[-1] == "GO"


def test_check_names_an_empty_env_allowlist(r: redis.Redis, redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = check.run(profile(snapshot={"allowlistSource": "env"}), as_json=True, window_s=300.0, redis_url=redis_url)
    out = json.loads(capsys.readouterr().out)
    assert code == 1
    allow = next(i for i in out["items"] if i["key"] == "allowlist")
    assert allow["status"] == "FAIL" and "allowlistSource is env and snapshot.allowlist is empty" in allow["figure"]


def test_check_without_redis_is_one_line_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    code = check.run(profile(), as_json=False, window_s=300.0, redis_url="unix:///nonexistent/redis.sock")
    err = capsys.readouterr().err
    assert code == 1 and len(err.strip().splitlines()) == 1 and "cannot read Redis" in err


def test_why_galausdt_says_the_gate_blocked_it(r: redis.Redis, redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    seed000(r)
    r.set(KEYS.universe_funnel, json.dumps({"symbols": {"GALAUSDT": {"fate": "selected", "rank": 200}}}))
    for i in range(3000):  # bury the GALAUSDT entries under other symbols' traffic (chunked scan)
        r.xadd(KEYS.ai_signal, signal("BTCUSDT", f"x{i}").to_fields())  # type: ignore[arg-type]
    code = why.run(profile(), "galausdt", as_json=False, redis_url=redis_url)
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[0] == "GALAUSDT: not traded — gate blocked: kill_score_warning_risk_increase"
    assert any(line.strip().startswith("snapshot") and "not in cfg:tradable_symbols" in line for line in out)


def test_why_json_for_a_dropped_symbol(r: redis.Redis, redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    universe(r, ["BTCUSDT"])
    r.set(KEYS.universe_funnel, json.dumps(
        {"symbols": {"PAXGUSDT": {"fate": "dropped", "stage": "veto", "reason": "stablecoin", "detail": ""}}}))
    code = why.run(profile(), "PAXGUSDT", as_json=True, redis_url=redis_url)
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["verdict"] == "PAXGUSDT: not traded — universe dropped at veto: stablecoin"
    assert out["traded"] is False and set(out["stages"]) == {
        "universe", "signal", "router", "snapshot", "gate", "execution", "position"}


def test_why_rejects_a_bad_symbol(redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert why.run(profile(), "not a symbol!", as_json=False, redis_url=redis_url) == 1
    assert "is not a symbol" in capsys.readouterr().err
