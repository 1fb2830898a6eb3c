"""On a replay exchange the clock comes from the data; errors name the missing series and the setting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from quantum_trader.cli import main
from quantum_trader.core.clock import DataClock
from quantum_trader.core.profile import ExchangeSettings
from quantum_trader.market.base import ExchangeError
from quantum_trader.market.replay import replay_clock

from tests.backtest.conftest import END, record


def _profile(tmp_path: Path, data: Path, spec: str = "") -> str:
    path = tmp_path / "p.yaml"
    path.write_text(
        "apiVersion: quantumtrader.io/v1alpha1\nkind: TradingProfile\nmetadata: {name: rp}\nspec:\n"
        f"  exchange: {{name: replay, data: {data}}}\n" + spec,
        encoding="utf-8",
    )
    return str(path)


def test_replay_clock_stands_at_the_last_bar_close_or_at(replay_15m: Path) -> None:
    settings = ExchangeSettings(name="replay", data=str(replay_15m))
    assert replay_clock(settings, needs={}).now_ms() == END
    assert replay_clock(settings, needs={}, at="2023-11-10").now_ms() == END - 4 * 86_400_000
    with pytest.raises(ExchangeError, match="outside the replay data"):
        replay_clock(settings, needs={}, at="2030-01-01")


def test_data_clock_only_moves_forward() -> None:
    clock = DataClock(1_000)
    clock.advance_to(5_000)
    clock.advance_to(2_000)
    assert clock.now_ms() == 5_000


def test_train_on_hourly_only_replay_names_the_missing_15m_bars_and_the_setting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = record(tmp_path / "h", days=5, timeframe="1h", symbols=("BTCUSDT",))
    assert main(["train", "--profile", _profile(tmp_path, data)]) == 1
    err = capsys.readouterr().err
    assert "replay has no 15m bars for BTCUSDT; spec.ai.timeframe is 15m" in err
    assert "fetch_failed" not in err


def test_universe_on_old_replay_data_is_not_stale_against_the_wall_clock(
    tmp_path: Path, replay_15m: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = _profile(tmp_path, replay_15m, "  universe: {minQuoteVolume24h: 0}\n")
    assert main(["universe", "--json", "--profile", profile]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["outcome"] == "ok" and doc["universe"]["count"] > 0
    assert doc["universe"]["generated_at"] == END
    assert "stale" not in doc["funnel"]["drops_by_reason"]
    assert main(["universe", "--json", "--at", "2023-11-13T12:00", "--profile", profile]) == 0
    assert json.loads(capsys.readouterr().out)["universe"]["generated_at"] == END - 12 * 3_600_000


def test_train_on_one_hourly_symbol_names_the_history_setting_to_change(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = record(tmp_path / "h1", days=20, timeframe="1h", symbols=("BTCUSDT",))
    assert main(["train", "--profile", _profile(tmp_path, data, "  ai: {timeframe: 1h}\n")]) == 1
    err = capsys.readouterr().err
    assert "spec.ai.historyBars 2000 leaves 1709 training rows from 1 symbol" in err
    assert "the data has only 480 1h bars per symbol" in err
