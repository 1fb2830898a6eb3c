"""`qt train` on the simulated exchange: honest OOS report, skill vs the sim's oracle, registry."""

from __future__ import annotations

import io
import json

import redis
from quantum_trader.ai.command import run
from quantum_trader.core.clock import ManualClock
from quantum_trader.core.keys import Keys
from quantum_trader.core.profile import parse_profile

NOW = 1_763_700_000_000
SHARE_FLOOR = 0.4  # measured 0.62-0.77 of the oracle's AUC − 0.5 on 20 symbols × 1500 bars
ECE_BOUND = 0.04


def _profile(**ai: object) -> object:
    return parse_profile({"apiVersion": "quantumtrader.io/v1alpha1", "kind": "TradingProfile",
                          "metadata": {"name": "simtrain"},
                          "spec": {"ai": {"trainSymbols": 20, "historyBars": 1500, **ai}}})


def test_train_on_the_sim_recovers_a_clear_share_of_oracle_skill_and_promotes(redis_url: str) -> None:
    out, err = io.StringIO(), io.StringIO()
    code = run(_profile(), as_json=True, redis_url=redis_url, clock=ManualClock(NOW), out=out, err=err)  # type: ignore[arg-type]
    assert code == 0, err.getvalue()
    doc = json.loads(out.getvalue())
    r = doc["report"]
    assert r["symbols"] == 20 and r["oos_rows"] > 10_000
    assert r["auc"] > 0.54
    assert r["oracle"]["auc"] > r["auc"]
    assert r["oracle"]["auc_skill_share"] > SHARE_FLOOR
    assert r["ece"] < ECE_BOUND
    assert {"auc", "log_loss", "brier", "ece", "buckets", "hit_rate", "metalabel"} <= set(r)
    assert doc["registered"] and doc["promoted"], doc["reasons"]
    assert "fold" in err.getvalue()  # progress on stderr, JSON alone on stdout
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    keys = Keys("simtrain")
    assert client.get(keys.model_promoted) == doc["version"]
    card = json.loads(client.hget(keys.model_registry, doc["version"]))  # type: ignore[arg-type]
    assert card["features"] and card["data_hash"] == doc["data_hash"] and card["oos"]["auc"] == r["auc"]
    assert card["training_window"]["bars"] == 1500 and len(card["training_window"]["symbols"]) == 20
    assert card["params"]["purge_bars"] >= card["primary_horizon"]


def test_train_without_redis_reports_and_registers_nothing(redis_url: str) -> None:
    out, err = io.StringIO(), io.StringIO()
    code = run(_profile(trainSymbols=8, historyBars=1000), as_json=False, redis_url=None, clock=ManualClock(NOW),  # type: ignore[arg-type]
               out=out, err=err)
    assert code == 0, err.getvalue()
    text = out.getvalue()
    assert "AUC" in text and "skill vs oracle" in text and "not registered" in text


def test_too_little_history_is_one_line_and_exit_one() -> None:
    out, err = io.StringIO(), io.StringIO()
    code = run(_profile(historyBars=300), as_json=True, redis_url=None, clock=ManualClock(NOW), out=out, err=err)  # type: ignore[arg-type]
    assert code == 1 and out.getvalue() == ""
    assert len(err.getvalue().strip().splitlines()) == 1 and "cannot train" in err.getvalue()
