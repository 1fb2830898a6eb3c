"""`qt check` and `qt why` over a real Redis under `qt run --speed 60`: the window and the ages are wall time
by default — the same count the live view shows — and pipeline time with `--clock sim`."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import redis
import redis.asyncio as aredis
from quantum_trader.cli import main
from quantum_trader.core.keys import Keys
from quantum_trader.core.messages import GateDecision, Signal
from quantum_trader.inspect import check, why
from quantum_trader.inspect.timebase import clock_fields
from quantum_trader.runview import FunnelCollector

from tests.router.helpers import profile

KEYS = Keys("paper")
SPEED = 60.0
RUN_S = 240  # the run started four wall minutes ago
EVERY_S = 10  # one EXECUTE decision every ten wall seconds


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """`main()` installs qt's log handler on this test's captured stderr: take it away again afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def history(r: redis.Redis) -> tuple[int, int]:
    """Four wall minutes of a 60x run, written with the entry ids Redis would have given them.

    Returns (wall ms at run start, wall ms now)."""
    sec, usec = r.time()
    now = int(sec) * 1000 + int(usec) // 1000
    start = now - RUN_S * 1000
    r.hset(KEYS.run_clock, mapping=clock_fields(speed=SPEED, wall_ms=start, sim_ms=start))
    for i, wall in enumerate(range(start + EVERY_S * 1000, now + 1, EVERY_S * 1000)):
        sim = int(start + (wall - start) * SPEED)
        d = GateDecision(decision_id=f"d{i}", intent_id=f"i{i}", symbol="BTCUSDT", side="BUY", decision="EXECUTE",
                         reason="none", kill_score=0.0, ts=sim)
        r.xadd(KEYS.gate_decision, d.to_fields(), id=f"{wall}-0")  # type: ignore[arg-type]
        s = Signal(signal_id=f"s{i}", symbol="GALAUSDT", side="BUY", confidence=0.8, model="lgbm-1",
                   model_version="1", price=0.09031791362387973, atr=0.001, regime="trend", rl_gate_pass=True, ts=sim)
        r.xadd(KEYS.ai_signal, s.to_fields(), id=f"{wall}-0")  # type: ignore[arg-type]
    return start, now


@pytest.fixture
def r(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


async def test_check_counts_what_the_live_view_counts_at_60x(r: redis.Redis, redis_url: str) -> None:
    start, _ = history(r)
    client = aredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        view = await FunnelCollector(client, keys=KEYS, started=start / 1000.0).collect()
    finally:
        await client.aclose()
    wall = check.evaluate(check.gather(r, profile(), window_s=300.0))
    flow = next(i for i in wall.items if i.key == "execute_flow")
    assert view.execute == RUN_S // EVERY_S == flow.detail["execute"]
    assert "last 5m of wall time (= 5h of pipeline time at 60x)" in check.render(wall)

    sim = check.evaluate(check.gather(r, profile(), window_s=300.0, clock="sim"))
    sim_flow = next(i for i in sim.items if i.key == "execute_flow")
    assert sim_flow.detail["execute"] == 1  # five pipeline minutes are five wall seconds: the newest only
    assert "last 5m of pipeline time (= 5s of wall time at 60x)" in check.render(sim)


def test_why_ages_are_wall_time_by_default_and_pipeline_time_with_clock_sim(
    r: redis.Redis, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    history(r)
    r.xadd(KEYS.ai_signal, Signal(  # type: ignore[arg-type]
        signal_id="old", symbol="MKRUSDT", side="BUY", confidence=0.8, model="lgbm-1", model_version="1",
        price=1500.0, atr=1.0, regime="trend", rl_gate_pass=True,
        ts=int(r.hget(KEYS.run_clock, "anchor_sim_ms") or 0) + 120 * 60_000).to_fields())
    wall = why.explain(why.gather(r, profile(), "MKRUSDT"))
    sim = why.explain(why.gather(r, profile(), "MKRUSDT", clock="sim"))
    wall_text = next(s.text for s in wall.stages if s.name == "signal")
    sim_text = next(s.text for s in sim.stages if s.name == "signal")
    # written 2 wall minutes after the start, 4 minutes into the run: 2 wall minutes, 2 pipeline hours ago
    assert ", 2m ago" in wall_text or ", 1m59s ago" in wall_text, wall_text
    assert ", 2h ago" in sim_text or ", 1h59m ago" in sim_text, sim_text
    assert why.run(profile(), "GALAUSDT", as_json=True, redis_url=redis_url, tick=0.00001) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["clock"] == "wall" and doc["stages"]["signal"]["age_ms"] >= 0
    assert "price 0.09032" in doc["stages"]["signal"]["text"]


def test_a_window_that_does_not_parse_is_refused_with_what_was_expected(
    capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["check", "--window", "5x"])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert "argument --window: expected a duration such as 90s, 5m, 1h30m or 2d (got '5x')" in err
    assert "ValueError" not in err


def test_a_compound_window_is_accepted(redis_url: str, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    code = main(["check", "--window", "1h30m", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 1 and doc["window_s"] == 5400.0 and doc["window"] == "1h30m"
