"""qt backtest end to end on replay files: report fields, trades.csv, determinism, no look-ahead, rejects."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import pytest
from quantum_trader.cli import main

from tests.backtest.conftest import profile_file

REQUIRED = {
    "net_pnl_usd", "gross_pnl_usd", "costs_usd", "trades", "hit_rate", "sharpe", "max_drawdown_pct", "in_sample",
    "start", "end", "data_points", "seconds", "by_confidence", "funnel", "models",
}
# Low fees and slippage: the untrained fallback (confidence < 0.60, win = loss = the stop distance) and a
# baseline valued at its measured win/loss sizes have a positive expected value only where costs are small,
# and these tests need trades (every cost is still charged and must add up).
EXECUTOR = "  executor: {baseSizeUsd: 60, feeBps: 0.5, maxSlippageBps: 1}\n"
TRADE_COLUMNS = ("symbol", "side", "entry_ts", "exit_ts", "entry_price", "exit_price", "qty", "fees_usd",
                 "funding_usd", "pnl_usd", "exit_reason", "confidence")


def _run(tmp_path: Path, data: Path, out: str, *args: str, extra: str = "") -> dict[str, Any]:
    profile = profile_file(tmp_path, data, extra=extra)
    code = main(["backtest", "--profile", str(profile), "--out", str(tmp_path / out), "--no-plots", *args])
    assert code == 0
    doc: dict[str, Any] = json.loads((tmp_path / out / "report.json").read_text())
    return doc


@pytest.fixture(scope="module")
def first(tmp_path_factory: pytest.TempPathFactory, replay_15m: Path) -> tuple[Path, dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("bt")
    return tmp, _run(tmp, replay_15m, "a", extra=EXECUTOR)


def test_report_has_every_required_field_and_costs_add_up(first: tuple[Path, dict[str, Any]]) -> None:
    _, doc = first
    assert REQUIRED <= set(doc)
    assert set(doc["costs_usd"]) == {"fees", "spread", "slippage", "funding"}
    assert doc["trades"] > 0 and doc["in_sample"] is False
    assert doc["net_pnl_usd"] == pytest.approx(doc["gross_pnl_usd"] - sum(doc["costs_usd"].values()), abs=1e-5)
    for b in doc["by_confidence"]:
        assert {"low", "high", "trades", "hit_rate", "net_pnl_usd"} <= set(b)
    assert sum(b["trades"] for b in doc["by_confidence"]) == doc["trades"]


def test_trades_csv_pnl_sums_to_net_pnl(first: tuple[Path, dict[str, Any]]) -> None:
    tmp, doc = first
    with (tmp / "a" / "trades.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert rows and set(TRADE_COLUMNS) <= set(rows[0])
    assert len(rows) == doc["trades"]
    assert math.fsum(float(r["pnl_usd"]) for r in rows) == pytest.approx(doc["net_pnl_usd"], abs=1e-5)
    assert all(int(r["exit_ts"]) >= int(r["entry_ts"]) for r in rows)


def test_same_inputs_give_the_same_report_apart_from_timing(
    first: tuple[Path, dict[str, Any]], replay_15m: Path
) -> None:
    tmp, doc = first
    again = _run(tmp, replay_15m, "b", extra=EXECUTOR)
    for d in (doc, again):
        d.pop("seconds")
        d.pop("timings_seconds")
    assert again == doc
    assert (tmp / "a" / "trades.csv").read_text() == (tmp / "b" / "trades.csv").read_text()


def test_no_model_decides_before_its_training_window_closed(first: tuple[Path, dict[str, Any]]) -> None:
    _, doc = first
    assert doc["models"], "walk-forward trainings are reported"
    for m in doc["models"]:
        assert m["train_end"] <= m["active_from"]


def test_orders_below_min_notional_are_rejected_as_live(tmp_path: Path, replay_15m: Path) -> None:
    small = EXECUTOR.replace("baseSizeUsd: 60", "baseSizeUsd: 5, maxPositionUsd: 15")  # majors need 20 USD: not raised
    doc = _run(tmp_path, replay_15m, "small", "--start", "2023-11-08", extra=small)
    assert doc["funnel"]["executor"]["dropped"].get("below_min_notional", 0) > 0


def test_bad_time_is_one_line_and_exit_1(tmp_path: Path, replay_15m: Path, capsys: pytest.CaptureFixture[str]) -> None:
    profile = profile_file(tmp_path, replay_15m)
    assert main(["backtest", "--profile", str(profile), "--start", "yesterday"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("qt backtest: --start 'yesterday'") and "\n" not in err


def test_plots_and_a_self_contained_html_report(tmp_path: Path, replay_15m: Path) -> None:
    profile = profile_file(tmp_path, replay_15m, extra=EXECUTOR)
    out = tmp_path / "plots"
    assert main(["backtest", "--profile", str(profile), "--out", str(out), "--start", "2023-11-10"]) == 0
    for name in ("equity.png", "drawdown.png", "confidence.png", "exits.png", "funnel.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 5
    assert 'src="http' not in html and "<link" not in html  # nothing loaded from elsewhere
    assert "out of sample, after every cost" in html


def test_recorded_funding_is_charged_and_named(tmp_path: Path) -> None:
    from tests.backtest.conftest import DAY, END, SYMBOLS, record

    data = record(tmp_path / "f", days=20, timeframe="15m")
    for s in SYMBOLS:
        # hourly settlements (as some Binance contracts have): positions end at the 1 h time exit
        rows = "\n".join(f"{t},0.001" for t in range(END - 20 * DAY, END, 3_600_000))
        (data / f"{s}_funding.csv").write_text("ts,rate\n" + rows + "\n")
    doc = _run(tmp_path, data, "fund", "--start", "2023-11-08", extra=EXECUTOR)
    assert doc["funding_source"].startswith("recorded")
    assert doc["trades"] > 0 and doc["costs_usd"]["funding"] != 0.0


def test_sim_funding_comes_from_the_sim() -> None:
    from quantum_trader.backtest.data import load_sim
    from quantum_trader.core.profile import ExchangeSettings

    from tests.backtest.conftest import DAY, END

    data = load_sim(ExchangeSettings(), start_ms=END - 3 * DAY, end_ms=END, warmup_ms=DAY, symbols=["BTCUSDT"])
    f = data.funding_for("BTCUSDT", END - 3 * DAY, END)
    assert f.ts.shape[0] == 10 and len(set(f.rate.tolist())) > 1  # every 8 h, both ends included
    assert data.funding_source.startswith("the sim")


def _bps_and_t(rows: list[dict[str, str]]) -> tuple[float, float]:
    bps = [float(r["pnl_usd"]) / (float(r["entry_price"]) * float(r["qty"])) * 1e4 for r in rows]
    mean = math.fsum(bps) / len(bps)
    sd = math.sqrt(math.fsum((b - mean) ** 2 for b in bps) / (len(bps) - 1))
    return mean, mean / (sd / math.sqrt(len(bps)))


def test_net_bps_per_trade_and_its_t_stat_come_from_the_trades(first: tuple[Path, dict[str, Any]]) -> None:
    tmp, doc = first
    with (tmp / "a" / "trades.csv").open() as f:
        rows = list(csv.DictReader(f))
    mean, t = _bps_and_t(rows)
    assert doc["net_bps_per_trade"] == pytest.approx(mean, abs=1e-3)
    assert doc["t_stat"] == pytest.approx(t, abs=1e-3)


TRAINED = ("  ai: {historyBars: 1700, trainSymbols: 4%s}\n  router: {minConfidence: 0.55, superConfidence: 0.7}\n"
           + EXECUTOR)


def _trained(tmp: Path, data: Path, out: str, *args: str, extra_ai: str = "") -> tuple[dict[str, Any], str]:
    """Walk-forward with enough history for real trainings (1700 15m bars), over the last 1.5 days."""
    profile = profile_file(tmp, data)
    profile.write_text(profile.read_text().replace("  ai: {historyBars: 600, trainSymbols: 4}\n", "")
                       + TRAINED % extra_ai)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["backtest", "--profile", str(profile), "--out", str(tmp / out), "--start", "2023-11-12T12:00",
                     "--no-plots", *args]) == 0
    return json.loads((tmp / out / "report.json").read_text()), buf.getvalue()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, replay_15m: Path) -> tuple[dict[str, Any], str]:
    return _trained(tmp_path_factory.mktemp("cf"), replay_15m, "cf", "--jobs", "2")


def test_the_counterfactual_best_baseline_sits_beside_the_model(trained: tuple[dict[str, Any], str]) -> None:
    from quantum_trader.ai.baselines import BASELINES

    doc, summary = trained
    assert all(m["fallback"] for m in doc["models"]), [m["reasons"] for m in doc["models"]]  # every training leaves its best baseline
    cf = doc["counterfactual"]
    assert {"name", "net_pnl_usd", "trades", "hit_rate", "net_bps_per_trade", "t_stat"} <= set(cf)
    assert all(part.split(" ")[0] in BASELINES for part in cf["name"].split(", "))
    assert cf["model_minus_counterfactual_usd"] == pytest.approx(doc["net_pnl_usd"] - cf["net_pnl_usd"], abs=1e-5)
    assert f"best baseline instead of the model ({cf['name']}, recalibrated" in summary


def test_with_no_model_promoted_the_counterfactual_is_the_run_itself(tmp_path: Path, replay_momentum: Path) -> None:
    """Nothing passes the quality gate (minAuc 0.99): the fallback — the best baseline — drives the run, so
    the counterfactual (the same rules driven by the best baseline) must trade exactly the same."""
    doc, summary = _trained(tmp_path, replay_momentum, "nm", extra_ai=", minAuc: 0.99")
    assert not any(m["promoted"] for m in doc["models"]) and doc["trades"] > 0
    cf = doc["counterfactual"]
    assert (cf["trades"], cf["net_pnl_usd"], cf["hit_rate"]) == (doc["trades"], doc["net_pnl_usd"], doc["hit_rate"])
    assert cf["model_minus_counterfactual_usd"] == 0.0
    assert "net per trade" in summary


def test_trainings_in_parallel_processes_give_the_same_report(
    trained: tuple[dict[str, Any], str], tmp_path: Path, replay_15m: Path
) -> None:
    parallel, _ = trained  # --jobs 2: the walk-forward trainings in two forked processes
    serial, _ = _trained(tmp_path, replay_15m, "serial", "--jobs", "1")
    assert len(serial["models"]) >= 2
    for doc in (parallel, serial):
        doc.pop("seconds")
        doc.pop("timings_seconds")
    assert parallel == serial
