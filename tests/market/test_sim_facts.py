"""The sim's stylised facts match real markets (no linear autocorrelation, variance ratios near 1,
volume tracking |return|), its planted predictability is non-linear and regime-dependent, and it
charges perpetual funding that the replay format carries too."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from quantum_trader.ai.evaluation import auc
from quantum_trader.core.clock import ManualClock
from quantum_trader.core.profile import ExchangeSettings
from quantum_trader.market.base import ExchangeError, FundingSource
from quantum_trader.market.download import DownloadRequest, SimSource, download
from quantum_trader.market.replay import ReplayExchange, write_csv
from quantum_trader.market.sim import EPOCH_MS, FUNDING_MS, SimExchange, SimModel

END = 1_793_491_200_000  # 2026-11-01
DAY = 86_400_000
SYMBOLS = ("BTCUSDT", "ETHUSDT", "GALAUSDT", "XRPUSDT", "FILUSDT", "DOGEUSDT")
F64 = npt.NDArray[np.float64]


@pytest.fixture(scope="module")
def model() -> SimModel:
    return SimModel(7)


def _hourly_returns(model: SimModel, symbol: str, days: int = 90) -> tuple[F64, F64]:
    k = model.bars(symbol, "1h", first_ts=END - days * DAY, last_ts=END - 3_600_000)
    return np.diff(np.log(k.close)), k.volume[1:] * k.close[1:]  # quote volume


def _rank(x: F64) -> F64:
    out = np.empty(x.shape[0])
    out[np.argsort(x, kind="stable")] = np.arange(x.shape[0], dtype=np.float64)
    return out



def test_hourly_returns_have_no_linear_autocorrelation_and_a_variance_ratio_near_one(model: SimModel) -> None:
    lag1, vr = [], []
    for s in SYMBOLS:  # 180 days: a 90-day VR(24) of one symbol has a sampling sd of about 0.1
        r, _ = _hourly_returns(model, s, days=180)
        lag1.append(float(np.corrcoef(r[1:], r[:-1])[0, 1]))
        sums = np.convolve(r - r.mean(), np.ones(24), mode="valid")
        vr.append(float(np.var(sums) / (24 * np.var(r))))
    assert abs(float(np.median(lag1))) < 0.05  # real BTC 1h: −0.04; the old sim: +0.18 to +0.22
    assert 0.8 < float(np.median(vr)) < 1.2  # real BTC 1h: 0.90; the old sim: 1.4 to 1.7


def test_volume_tracks_the_size_of_moves_and_tails_stay_fat(model: SimModel) -> None:
    corr, kurt, clustering = [], [], []
    for s in SYMBOLS:
        r, v = _hourly_returns(model, s)
        corr.append(float(np.corrcoef(_rank(v), _rank(np.abs(r)))[0, 1]))
        k = r - r.mean()
        kurt.append(float(np.mean(k**4) / np.mean(k**2) ** 2 - 3.0))
        clustering.append(float(np.corrcoef(np.abs(r[1:]), np.abs(r[:-1]))[0, 1]))
    assert 0.45 < float(np.median(corr)) < 0.65  # real liquid markets: 0.5–0.6
    assert float(np.median(kurt)) > 3.0 and float(np.median(clustering)) > 0.15


def test_the_planted_signal_is_non_linear_the_oracle_beats_any_linear_reading(model: SimModel) -> None:
    gaps = []
    for s in SYMBOLS[:4]:
        k = model.bars(s, "15m", first_ts=END - 20 * DAY, last_ts=END - 900_000)
        c = np.log(k.close)
        up = c[8:] > c[4:-4]
        linear = auc(up.astype(np.float64), c[4:-4] - c[:-8])  # the past 4-bar return, either sign
        oracle = auc(up.astype(np.float64), model.oracle_probability(s, "15m", k.ts[4:-4], 4))
        gaps.append(oracle - max(linear, 1.0 - linear))
    assert float(np.mean(gaps)) > 0.05


def test_the_planted_signal_is_regime_dependent(model: SimModel) -> None:
    by_regime: dict[str, list[tuple[F64, npt.NDArray[np.bool_]]]] = {}
    first_day = (END - EPOCH_MS) // DAY - 120
    for s in ("BTCUSDT", "GALAUSDT"):
        k = model.bars(s, "15m", first_ts=EPOCH_MS + first_day * DAY, last_ts=END - 900_000)
        p = model.oracle_probability(s, "15m", k.ts[:-4], 4)
        up = k.close[4:] > k.close[:-4]
        days = (k.ts[:-4] - EPOCH_MS) // DAY
        names = np.asarray(model.regimes(s, np.unique(days)))[days - days.min()]
        for name in ("range", "trend", "high_vol"):
            sel = names == name
            by_regime.setdefault(name, []).append((p[sel], up[sel]))
    aucs = {n: auc(np.concatenate([y for _, y in v]).astype(np.float64), np.concatenate([x for x, _ in v]))
            for n, v in by_regime.items()}
    assert aucs["trend"] > 0.6 and aucs["range"] > 0.56
    assert aucs["high_vol"] < 0.55  # no signal planted in high-volatility regimes


def test_funding_settles_every_8h_about_1bp_and_follows_the_last_move(model: SimModel) -> None:
    rates = model.funding("GALAUSDT", first_ts=END - 60 * DAY, last_ts=END)
    ts = np.asarray([f.ts for f in rates])
    assert len(rates) == 181 and np.all(np.diff(ts) == FUNDING_MS) and (ts[0] - EPOCH_MS) % FUNDING_MS == 0
    values = np.asarray([f.rate for f in rates])
    assert 0.5e-4 < float(values.mean()) < 1.5e-4 and float((values > 0).mean()) > 0.7
    k = model.bars("GALAUSDT", "1h", first_ts=int(ts[0]) - FUNDING_MS - 3_600_000, last_ts=int(ts[-1]))
    closes = dict(zip(k.ts.tolist(), k.close.tolist(), strict=True))
    move = np.log([closes[t - 3_600_000] / closes[t - FUNDING_MS - 3_600_000] for t in ts.tolist()])
    assert float(np.corrcoef(move, values)[0, 1]) > 0.5  # longs pay more after rallies
    assert SimModel(7).funding("GALAUSDT", first_ts=END - 60 * DAY, last_ts=END) == rates  # deterministic
    assert all(abs(f.rate) < 1e-4 for f in model.funding("USDCUSDT", first_ts=END - 10 * DAY, last_ts=END))


async def test_sim_funding_is_never_from_the_future() -> None:
    sim = SimExchange(ExchangeSettings(name="sim", seed=7), clock=ManualClock(END + 5 * 3_600_000))
    assert isinstance(sim, FundingSource)
    rates = await sim.funding_rates("BTCUSDT", since_ms=END - DAY, until_ms=END + DAY)
    assert [f.ts for f in rates] == [END - DAY + i * FUNDING_MS for i in range(4)]


async def test_replay_plays_back_the_funding_the_download_wrote(tmp_path: Path) -> None:
    request = DownloadRequest(exchange="sim", symbols=("BTCUSDT",), timeframe="1h", since_ms=END - 3 * DAY,
                              until_ms=END, out=tmp_path)
    sim = SimExchange(ExchangeSettings(name="sim", seed=7), clock=ManualClock(END))
    [outcome] = await download(request, SimSource(sim), show_progress=False)
    assert outcome.funding_new == 10 and (tmp_path / "BTCUSDT_funding.csv").exists()
    replay = ReplayExchange(ExchangeSettings(name="replay", data=str(tmp_path)), clock=ManualClock(END - DAY))
    assert isinstance(replay, FundingSource)
    played = await replay.funding_rates("BTCUSDT", since_ms=0, until_ms=END)
    expected = await sim.funding_rates("BTCUSDT", since_ms=END - 3 * DAY, until_ms=END - DAY)
    assert played == expected  # exact floats, and nothing after the replay clock


async def test_replay_without_a_funding_file_charges_nothing_and_a_bad_one_names_its_line(tmp_path: Path) -> None:
    sim = SimModel(7)
    write_csv(tmp_path / "BTCUSDT_1h.csv", sim.bars("BTCUSDT", "1h", first_ts=END - DAY, last_ts=END - 3_600_000))
    replay = ReplayExchange(ExchangeSettings(name="replay", data=str(tmp_path)), clock=ManualClock(END))
    assert await replay.funding_rates("BTCUSDT", since_ms=0, until_ms=END) == []
    (tmp_path / "BTCUSDT_funding.csv").write_text("ts,rate\n1,0.0001\n2,5\n")
    bad = ReplayExchange(ExchangeSettings(name="replay", data=str(tmp_path)), clock=ManualClock(END))
    with pytest.raises(ExchangeError) as err:
        await bad.funding_rates("BTCUSDT", since_ms=0, until_ms=END)
    assert err.value.reason == "replay_malformed" and "BTCUSDT_funding.csv:3" in str(err.value)
