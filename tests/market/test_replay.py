"""The replay exchange: reading OHLCV files, playing them under a clock, clear errors on bad files."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from quantum_trader.core.clock import ManualClock
from quantum_trader.core.profile import ExchangeSettings
from quantum_trader.market.base import Exchange, ExchangeError, OrderRequest
from quantum_trader.market.factory import build_exchange, sim_clock
from quantum_trader.market.replay import ReplayExchange, write_csv
from quantum_trader.market.sim import SimExchange

NOW = 1_795_000_000_000


def _record(folder: Path, symbols: tuple[str, ...] = ("BTCUSDT", "GALAUSDT", "USDCUSDT")) -> SimExchange:
    """Record two days of the sim's 15m bars as replay CSV files."""
    sim = SimExchange(ExchangeSettings(), clock=ManualClock(NOW))
    for sym in symbols:
        write_csv(
            folder / f"{sym}_15m.csv", sim.history(sym, "15m", start_ms=NOW - 2 * 86_400_000, end_ms=NOW)
        )
    return sim


def _replay(folder: Path, now: int) -> ReplayExchange:
    return ReplayExchange(ExchangeSettings(name="replay", data=str(folder)), clock=ManualClock(now))


async def test_replay_plays_recorded_bars_up_to_the_clock(tmp_path: Path) -> None:
    sim = _record(tmp_path)
    half = NOW - 86_400_000
    ex = _replay(tmp_path, half)
    assert isinstance(ex, Exchange) and ex.name == "replay"
    k = await ex.klines("BTCUSDT", "15m", limit=10)
    ref = sim.history("BTCUSDT", "15m", start_ms=half - 20 * 900_000, end_ms=half)
    np.testing.assert_array_equal(k.ts, ref.ts[-10:])
    np.testing.assert_allclose(k.close, ref.close[-10:], rtol=1e-15)
    assert int(k.ts[-1]) + 900_000 <= half


async def test_replay_aggregates_a_missing_timeframe_from_a_finer_file(tmp_path: Path) -> None:
    sim = _record(tmp_path)
    ex = _replay(tmp_path, NOW)
    hourly = await ex.klines("GALAUSDT", "1h", limit=12)
    ref = await sim.klines("GALAUSDT", "1h", limit=12)
    np.testing.assert_array_equal(hourly.ts, ref.ts)
    np.testing.assert_allclose(hourly.high, ref.high, rtol=1e-12)
    np.testing.assert_allclose(hourly.volume, ref.volume, rtol=1e-9)


async def test_replay_markets_tickers_and_orders(tmp_path: Path) -> None:
    _record(tmp_path)
    ex = _replay(tmp_path, NOW)
    markets = {m.symbol: m for m in await ex.markets()}
    assert set(markets) == {"BTCUSDT", "GALAUSDT", "USDCUSDT"}
    assert markets["USDCUSDT"].asset_class == "stable" and markets["BTCUSDT"].asset_class == "major"
    assert markets["GALAUSDT"].tick_size < markets["BTCUSDT"].tick_size
    tickers = await ex.tickers()
    assert tickers["BTCUSDT"].quote_volume_24h > tickers["GALAUSDT"].quote_volume_24h > 0
    res = await ex.place_order(OrderRequest("BTCUSDT", "BUY", 0.01, client_order_id="r1"))
    assert res.status == "FILLED"
    assert await ex.place_order(OrderRequest("BTCUSDT", "BUY", 0.01, client_order_id="r1")) == res
    assert [p.symbol for p in await ex.positions()] == ["BTCUSDT"]


@pytest.mark.parametrize(
    ("content", "line", "problem"),
    [
        ("ts,open,high,low,close\n", 1, "header"),
        (
            "ts,open,high,low,close,volume\n1794999600000,1,2,0.5,1.5,10\n1795000500000,1,2,0.5,x,10\n",
            3,
            "numbers",
        ),
        (
            "ts,open,high,low,close,volume\n1794999600000,1,2,0.5,1.5,10\n1794999600000,1,2,0.5,1.5,10\n",
            3,
            "increase",
        ),
        ("ts,open,high,low,close,volume\n1794999600000,1,1.2,0.5,1.5,10\n", 2, "high"),
        ("ts,open,high,low,close,volume\n1794999600000,1,2,0.5,1.5\n", 2, "6 fields"),
    ],
)
async def test_malformed_file_raises_one_error_naming_file_and_line(
    tmp_path: Path, content: str, line: int, problem: str
) -> None:
    (tmp_path / "BADUSDT_15m.csv").write_text(content)
    ex = _replay(tmp_path, NOW)
    with pytest.raises(ExchangeError) as info:
        await ex.klines("BADUSDT", "15m", limit=5)
    assert f"BADUSDT_15m.csv:{line}:" in str(info.value)
    assert problem in str(info.value)
    assert info.value.reason == "replay_malformed"


def test_replay_needs_an_existing_folder_with_data(tmp_path: Path) -> None:
    with pytest.raises(ExchangeError, match="does not exist"):
        _replay(tmp_path / "missing", NOW)
    with pytest.raises(ExchangeError, match=r"no <SYMBOL>_<timeframe>\.csv"):
        _replay(tmp_path, NOW)


def _csv_to_parquet(csv_path: Path, parquet_path: Path) -> None:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    pq.write_table(pacsv.read_csv(csv_path), parquet_path)


async def test_parquet_files_replay_the_same_bars_as_csv(tmp_path: Path) -> None:
    csv_dir, pq_dir = tmp_path / "csv", tmp_path / "parquet"
    csv_dir.mkdir()
    pq_dir.mkdir()
    _record(csv_dir, ("BTCUSDT",))
    _csv_to_parquet(csv_dir / "BTCUSDT_15m.csv", pq_dir / "BTCUSDT_15m.parquet")
    from_csv = await _replay(csv_dir, NOW).klines("BTCUSDT", "1h", limit=24)
    from_parquet = await _replay(pq_dir, NOW).klines("BTCUSDT", "1h", limit=24)
    np.testing.assert_array_equal(from_parquet.ts, from_csv.ts)
    np.testing.assert_array_equal(from_parquet.close, from_csv.close)
    np.testing.assert_array_equal(from_parquet.volume, from_csv.volume)


async def test_malformed_parquet_raises_one_error_naming_the_file(tmp_path: Path) -> None:
    _record(tmp_path, ("BTCUSDT",))
    _csv_to_parquet(tmp_path / "BTCUSDT_15m.csv", tmp_path / "ETHUSDT_15m.parquet")
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "ETHUSDT_15m.parquet")
    pq.write_table(table.take([1, 0, *range(2, table.num_rows)]), tmp_path / "ETHUSDT_15m.parquet")  # ts goes back
    with pytest.raises(ExchangeError, match=r"ETHUSDT_15m\.parquet") as info:
        await _replay(tmp_path, NOW).klines("ETHUSDT", "15m", limit=1)
    assert info.value.reason == "replay_malformed"


async def test_parquet_without_pyarrow_names_the_extra_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "BTCUSDT_15m.parquet").write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)  # what an install without the extra sees
    ex = _replay(tmp_path, NOW)
    with pytest.raises(ExchangeError, match=r"make install EXTRAS=parquet") as info:
        await ex.klines("BTCUSDT", "15m", limit=1)
    assert info.value.reason == "replay_parquet_unavailable"


def test_factory_builds_sim_and_replay_and_explains_unknown_adapters(tmp_path: Path) -> None:
    _record(tmp_path, ("BTCUSDT",))
    clock = sim_clock(60.0, now_ms=NOW)
    assert build_exchange(ExchangeSettings(), clock=clock, environment="paper").name == "sim"
    replay = build_exchange(
        ExchangeSettings(name="replay", data=str(tmp_path)), clock=clock, environment="paper"
    )
    assert replay.name == "replay"
    assert abs(clock.now_ms() - NOW) < 60_000
