"""The cycle shell with a scripted exchange: bounded repair loop, strict vs lenient health, fail-closed
exchange errors, production strictness at start-up, and the command's exit codes."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import zlib
from typing import Any

import numpy as np
import pytest
from quantum_trader.compose import universe_config
from quantum_trader.core.clock import ManualClock
from quantum_trader.core.logs import EventLog
from quantum_trader.core.profile import HealthSettings, TradingProfile, TradingProfileSpec, default_profile
from quantum_trader.universe.command import run as command_run
from quantum_trader.universe.cycle import FAIL_DATA, FAIL_DISCOVERY, run_cycle
from quantum_trader.universe.model import R_STALE, STAGE_HEALTHY
from quantum_trader.universe.worker import PRODUCTION_NOT_STRICT, main, strictness_refusal

from tests.universe.helpers import NOW_MS, FakeExchange, health, market, ticker, universe, walk

SYMBOLS = ["AAAUSDT", "BBBUSDT", "CCCUSDT", "DDDUSDT"]
OPEN = {"efficiencyMin": {"major": 0, "alt": 0, "stable": 0}, "toxicHurst": 1.0, "frictionVeto": False}


def closes(symbol: str, timeframe: str) -> np.ndarray:
    return walk(zlib.crc32(symbol.encode()), 300, drift=0.001, vol=0.004)


def exchange(**kwargs: Any) -> FakeExchange:
    return FakeExchange(
        markets=[market(s) for s in SYMBOLS], tickers={s: ticker(s, 5e7) for s in SYMBOLS}, closes=closes, **kwargs
    )


async def cycle(ex: FakeExchange, **health_overrides: Any):  # type: ignore[no-untyped-def]
    return await run_cycle(
        ex, universe=universe(size=10, **OPEN), health=health(**health_overrides), now_ms=NOW_MS
    )


async def test_healthy_exchange_gives_an_ok_cycle_with_every_stage_counted() -> None:
    result = await cycle(exchange())
    assert result.ok and result.symbols and set(result.symbols) <= set(SYMBOLS)
    assert [s for s, _ in result.stages] == [
        "listed", "discovered", "merged", "eligible", "healthy", "featured", "vetted", "selected"
    ]
    assert dict(result.stages)["listed"] == 4 and result.repair_rounds == 0


async def test_stale_symbol_is_backfilled_and_repaired_in_one_round() -> None:
    ex = exchange(stale={("BBBUSDT", "15m"), ("BBBUSDT", "1h")})
    result = await cycle(ex, autoRepair=True, maxRepairRounds=2)
    assert result.repaired == ("BBBUSDT",) and result.still_unhealthy == ()
    assert result.repair_rounds == 1
    assert sorted(ex.backfills) == [("BBBUSDT", "15m"), ("BBBUSDT", "1h")]
    assert "BBBUSDT" not in result.drops


async def test_unrepairable_symbol_stops_after_max_repair_rounds_and_is_excluded_when_strict() -> None:
    ex = exchange(stale={("CCCUSDT", "1h")}, unrepairable={"CCCUSDT"})
    result = await cycle(ex, autoRepair=True, maxRepairRounds=3)
    assert result.repair_rounds == 3
    assert ex.backfills == [("CCCUSDT", "1h")] * 3  # bounded: exactly maxRepairRounds backfills
    assert result.still_unhealthy == ("CCCUSDT",) and result.repaired == ()
    drop = result.drops["CCCUSDT"]
    assert (drop.stage, drop.reason) == (STAGE_HEALTHY, R_STALE)
    assert "after 3 repair rounds" in drop.detail


async def test_without_auto_repair_stale_symbols_are_excluded_without_backfill() -> None:
    ex = exchange(stale={("AAAUSDT", "15m")})
    result = await cycle(ex, autoRepair=False)
    assert ex.backfills == [] and result.repair_rounds == 0
    assert result.drops["AAAUSDT"].reason == R_STALE


async def test_lenient_health_keeps_unhealthy_symbols_and_blocks_last_ok() -> None:
    ex = exchange(stale={("AAAUSDT", "15m")})
    result = await cycle(ex, strict=False, autoRepair=False)
    assert result.unhealthy_kept == ("AAAUSDT",)
    assert "AAAUSDT" in result.symbols
    assert result.checks()["all_selected_healthy"] is False


async def test_discovery_error_fails_closed_with_the_error_text() -> None:
    result = await cycle(exchange(fail="discovery"))
    assert not result.ok and result.reason == FAIL_DISCOVERY
    assert "ExchangeError" in result.detail and "boom" in result.detail
    assert result.selected == ()


async def test_kline_error_fails_closed() -> None:
    result = await cycle(exchange(fail="klines"))
    assert not result.ok and result.reason == FAIL_DATA and "klines down" in result.detail


def lenient_production() -> TradingProfile:
    """A production profile that bypassed validation (what the worker must still refuse)."""
    spec = TradingProfileSpec.model_construct(
        **{**dict(TradingProfileSpec()), "environment": "production",
           "health": HealthSettings.model_construct(**{**dict(HealthSettings()), "strict": False})}
    )
    return default_profile("prod").model_copy(update={"spec": spec})


def test_production_must_be_strict_and_the_environment_cannot_change_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRICT_HEALTH", "1")
    assert strictness_refusal(environment="production", health=HealthSettings.model_construct(strict=False)) == (
        PRODUCTION_NOT_STRICT
    )
    monkeypatch.setenv("STRICT_HEALTH", "0")
    assert strictness_refusal(environment="production", health=HealthSettings()) is None
    assert strictness_refusal(environment="paper", health=HealthSettings(strict=False)) is None


class _Ctx:
    def __init__(self, profile: TradingProfile) -> None:
        self.profile = profile
        self.log = EventLog(worker="universe", profile=profile.name)
        self.stop = asyncio.Event()


async def test_worker_refuses_to_start_a_lenient_production_profile(caplog: pytest.LogCaptureFixture) -> None:
    ctx = _Ctx(lenient_production())
    with caplog.at_level(logging.INFO), pytest.raises(SystemExit) as exc:
        await main(ctx, universe_config(ctx.profile))  # type: ignore[arg-type]
    assert exc.value.code != 0
    lines = [r for r in caplog.records if getattr(r, "qt_event", "") == "UNIVERSE_REFUSED"]
    assert len(lines) == 1 and lines[0].qt_fields["reason"] == PRODUCTION_NOT_STRICT  # type: ignore[attr-defined]


def test_command_prints_table_and_funnel_and_exits_zero() -> None:
    out, err = io.StringIO(), io.StringIO()
    rc = command_run(default_profile(), as_json=False, redis_url=None, clock=ManualClock(NOW_MS),
                     exchange=exchange(stale={("AAAUSDT", "1h")}, unrepairable={"AAAUSDT"}), out=out, err=err)  # type: ignore[arg-type]
    text = out.getvalue()
    assert rc == 0, err.getvalue()
    assert "rank  symbol" in text and "funnel" in text and "dropped symbols by reason" in text
    assert "stale (1): AAAUSDT" in text


def test_command_json_is_one_document_with_universe_and_funnel() -> None:
    out = io.StringIO()
    rc = command_run(default_profile(), as_json=True, redis_url=None, clock=ManualClock(NOW_MS),
                     exchange=exchange(), out=out, err=io.StringIO())  # type: ignore[arg-type]
    doc = json.loads(out.getvalue())
    assert rc == 0 and doc["outcome"] == "ok" and doc["published"] is False
    assert doc["universe"]["universe_hash"] and doc["funnel"]["stages"][0]["stage"] == "listed"
    assert set(doc["funnel"]["symbols"]) == set(SYMBOLS)


def test_command_exits_one_with_one_stderr_line_when_fail_closed() -> None:
    out, err = io.StringIO(), io.StringIO()
    rc = command_run(default_profile(), as_json=False, redis_url=None, clock=ManualClock(NOW_MS),
                     exchange=exchange(fail="discovery"), out=out, err=err)  # type: ignore[arg-type]
    assert rc == 1 and out.getvalue() == ""
    assert err.getvalue().count("\n") == 1 and "fail-closed (discovery_failed)" in err.getvalue()


def test_command_refuses_a_lenient_production_profile() -> None:
    err = io.StringIO()
    assert command_run(lenient_production(), as_json=False, redis_url=None, err=err) == 1
    assert PRODUCTION_NOT_STRICT in err.getvalue()
