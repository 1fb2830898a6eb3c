"""``qt data download``: Binance history (recorded replies through ccxt) and the sim's bars into the replay
format; resuming after an interruption; one failing symbol does not stop the others; bad input is one line."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from quantum_trader.cli import main
from quantum_trader.core.clock import ManualClock
from quantum_trader.core.profile import ExchangeSettings
from quantum_trader.market import download as dl
from quantum_trader.market.replay import ReplayExchange
from quantum_trader.market.sim import SimExchange

from .test_binance_replay import NOW_MS, Replay, Reply, fixture, make_exchange, recorded_market_data

H = 3_600_000
FIRST = NOW_MS - 8 * H  # the recorded klines: 8 hourly bars, two pages (5 + 3)


def _args(out: Path, *, since: int = FIRST, until: int = NOW_MS, symbols: str = "BTCUSDT", **kw: Any) -> argparse.Namespace:
    base = {"exchange": "binanceusdm", "symbols": symbols, "timeframe": "1h", "since": str(since),
            "until": str(until), "out": str(out), "seed": 7, "no_funding": False, "progress": False}
    return argparse.Namespace(**{**base, **kw})


def _serve_funding(params: dict[str, str]) -> list[dict[str, Any]]:
    """GET /fapi/v1/fundingRate as Binance answers it: the recorded rows in [startTime, endTime], limit."""
    rows = fixture("fundingRate_BTCUSDT.json")
    lo, hi = int(params.get("startTime", 0)), int(params.get("endTime", 2**62))
    return [r for r in rows if lo <= r["fundingTime"] <= hi][: int(params.get("limit", 100))]


def _binance(replay: Replay) -> dl.BinanceSource:
    replay.add("GET", "/fapi/v1/klines", Reply(file="klines_BTCUSDT_1h_page1.json"), startTime=str(FIRST))
    replay.add("GET", "/fapi/v1/klines", Reply(file="klines_BTCUSDT_1h_page2.json"), startTime=str(FIRST + 5 * H))
    replay.add("GET", "/fapi/v1/fundingRate", Reply(fn=_serve_funding))
    return dl.BinanceSource(make_exchange(replay, environment="paper", klines_page_limit=5))


def _rows(path: Path) -> list[list[str]]:
    lines = path.read_text().splitlines()
    return [line.split(",") for line in lines[1:]]


def test_binance_bars_and_funding_land_in_the_replay_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    replay = recorded_market_data()
    assert dl.run(_args(tmp_path), now_ms=NOW_MS, source=_binance(replay)) == 0
    bars = _rows(tmp_path / "BTCUSDT_1h.csv")
    assert [int(r[0]) for r in bars] == [FIRST + i * H for i in range(8)]
    assert float(bars[0][4]) == 91037.0 and float(bars[-1][5]) == pytest.approx(857.123)
    funding = (tmp_path / "BTCUSDT_funding.csv").read_text().splitlines()
    assert funding == ["ts,rate", "1795248000001,7.411e-05"]  # the one settlement inside the span
    pages = [c.params for c in replay.calls if c.path == "/fapi/v1/klines"]
    assert [(p["startTime"], p["limit"], p["endTime"]) for p in pages] == [
        (str(FIRST), "5", str(NOW_MS - H)), (str(FIRST + 5 * H), "3", str(NOW_MS - H))
    ]
    assert "BTCUSDT 1h: 2026-11-21T04:00Z .. 2026-11-21T11:00Z (+8 bars, funding +1)" in capsys.readouterr().out
    # the replay exchange plays the download back
    ex = ReplayExchange(ExchangeSettings(name="replay", data=str(tmp_path)), clock=ManualClock(NOW_MS))
    assert ex.symbols() == ["BTCUSDT"]


def test_resumed_download_asks_only_for_the_missing_bars(tmp_path: Path) -> None:
    first = recorded_market_data()
    assert dl.run(_args(tmp_path, until=FIRST + 5 * H, no_funding=True), now_ms=NOW_MS, source=_binance(first)) == 0
    assert len(_rows(tmp_path / "BTCUSDT_1h.csv")) == 5
    with (tmp_path / "BTCUSDT_1h.csv").open("a") as fh:  # a crash in the middle of a row
        fh.write(f"{FIRST + 5 * H},91185.0,913")
    second = recorded_market_data()
    assert dl.run(_args(tmp_path, no_funding=True), now_ms=NOW_MS, source=_binance(second)) == 0
    starts = [c.params["startTime"] for c in second.calls if c.path == "/fapi/v1/klines"]
    assert starts == [str(FIRST + 5 * H)]  # the torn row was dropped and fetched again, nothing before it
    assert [int(r[0]) for r in _rows(tmp_path / "BTCUSDT_1h.csv")] == [FIRST + i * H for i in range(8)]
    third = recorded_market_data()
    assert dl.run(_args(tmp_path, no_funding=True), now_ms=NOW_MS, source=_binance(third)) == 0
    assert not [c for c in third.calls if c.path == "/fapi/v1/klines"]  # up to date: no request


def _serve_klines(params: dict[str, str]) -> list[list[Any]]:
    """GET /fapi/v1/klines rows (Binance's 12-field format) for any [startTime, endTime], limit."""
    start, end, limit = int(params["startTime"]), int(params["endTime"]), int(params["limit"])
    opens = range(start, min(end, start + (limit - 1) * H) + 1, H)
    return [[t, "100.0", "101.0", "99.0", "100.5", "7.0", t + H - 1, "700", 10, "3.5", "350", "0"] for t in opens]


def test_every_funding_settlement_in_the_span_is_kept_in_order(tmp_path: Path) -> None:
    replay = recorded_market_data().add("GET", "/fapi/v1/klines", Reply(fn=_serve_klines))
    replay.add("GET", "/fapi/v1/fundingRate", Reply(fn=_serve_funding))
    source = dl.BinanceSource(make_exchange(replay, environment="paper"))
    assert dl.run(_args(tmp_path, since=NOW_MS - 24 * H), now_ms=NOW_MS, source=source) == 0
    funding = [line.split(",") for line in (tmp_path / "BTCUSDT_funding.csv").read_text().splitlines()[1:]]
    assert [(int(t), float(r)) for t, r in funding] == [
        (1795190400000, 0.0001), (1795219200000, -0.00003125), (1795248000001, 0.00007411)
    ]
    assert len(_rows(tmp_path / "BTCUSDT_1h.csv")) == 24


def test_unlisted_symbol_fails_alone_with_its_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = dl.run(_args(tmp_path, symbols="MKRUSDT,BTCUSDT"), now_ms=NOW_MS, source=_binance(recorded_market_data()))
    assert code == 1
    captured = capsys.readouterr()
    assert "qt data download: MKRUSDT: invalid_symbol:" in captured.err
    assert len(_rows(tmp_path / "BTCUSDT_1h.csv")) == 8 and not (tmp_path / "MKRUSDT_1h.csv").exists()


def test_a_file_that_is_not_a_replay_file_is_never_appended_to(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "BTCUSDT_1h.csv").write_text("time,price\n1,2\n")
    assert dl.run(_args(tmp_path), now_ms=NOW_MS, source=_binance(recorded_market_data())) == 1
    assert "header is 'time,price'" in capsys.readouterr().err
    assert (tmp_path / "BTCUSDT_1h.csv").read_text() == "time,price\n1,2\n"


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"since": "2026-13-01"}, "is not a date"),
        ({"since": str(NOW_MS), "until": str(NOW_MS - H)}, "is not before"),
        ({"timeframe": "2h"}, "--timeframe must be one of"),
        ({"symbols": " , "}, "at least one symbol"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: dict[str, str], needle: str
) -> None:
    assert dl.run(_args(tmp_path, **change), now_ms=NOW_MS, source=_binance(Replay())) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0]


def test_dates_are_utc_iso_or_epoch_ms() -> None:
    assert dl.parse_when("2026-11-21") == 1795219200000
    assert dl.parse_when("2026-11-21T12:00") == NOW_MS == dl.parse_when("2026-11-21T13:00+01:00")
    assert dl.parse_when(str(NOW_MS)) == NOW_MS


def test_qt_data_download_sim_writes_the_sims_bars(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sim"
    argv = ["data", "download", "--exchange", "sim", "--symbols", "BTCUSDT,GALAUSDT", "--timeframe", "15m",
            "--since", "2026-01-01", "--until", "2026-01-03", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    assert "GALAUSDT 15m: 2026-01-01T00:00Z .. 2026-01-02T23:45Z (+192 bars" in capsys.readouterr().out
    until = dl.parse_when("2026-01-03")
    sim = SimExchange(ExchangeSettings(name="sim", seed=7), clock=ManualClock(until))
    ref = sim.history("BTCUSDT", "15m", start_ms=dl.parse_when("2026-01-01"), end_ms=until)
    replay = ReplayExchange(ExchangeSettings(name="replay", data=str(out)), clock=ManualClock(until))
    got = replay._load("BTCUSDT", "15m")
    np.testing.assert_array_equal(got.ts, ref.ts)
    np.testing.assert_array_equal(got.ohlcv[3], ref.close)  # repr() round-trips every float exactly
    assert main(argv) == 0  # a second run finds everything there
    assert "(+0 bars" in capsys.readouterr().out


def test_binance_source_is_the_default_and_needs_no_keys() -> None:
    args = _args(Path("/nonexistent"))
    request = dl.request_from_args(args, now_ms=NOW_MS)
    source = dl.build_source(request)
    assert isinstance(source, dl.BinanceSource) and not source.exchange.can_trade
    assert json.dumps(request.symbols) == '["BTCUSDT"]'
