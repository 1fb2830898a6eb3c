"""The simulated exchange: determinism, consistency, filters, volumes, listing, oracle, orders."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from quantum_trader.core.clock import ManualClock
from quantum_trader.core.profile import ExchangeSettings
from quantum_trader.market.base import Exchange, ExchangeError, OrderRequest
from quantum_trader.market.sim import EPOCH_MS, SimExchange, SimModel

NOW = 1_795_000_000_000  # 2026-11-18
SEED_SYMBOLS = (
    "BTCUSDT ETHUSDT BNBUSDT SOLUSDT GALAUSDT WAVESUSDT MKRUSDT VETUSDT HBARUSDT ZECUSDT FILUSDT MANAUSDT "
    "CRVUSDT DOTUSDT APTUSDT SEIUSDT 0GUSDT 1000PEPEUSDT PAXGUSDT USDCUSDT TRXUSDT "
    # seed 000's snapshot list
    "1000000BOBUSDT 1000000MOGUSDT 1000BONKUSDC 1000BONKUSDT 1000CATUSDT 1000CHEEMSUSDT 1000FLOKIUSDT "
    "1000LUNCUSDT 1000PEPEUSDC 1000RATSUSDT 1000SATSUSDT 1000SHIBUSDC 1000SHIBUSDT 1000WHYUSDT 1000XECUSDT "
    "1000XUSDT 1INCHUSDT 1MBABYDOGEUSDT 42USDT 4USDT A2ZUSDT AAVEUSDC AAVEUSDT ACEUSDT ACHUSDT ACTUSDT "
    "ACUUSDT ACXUSDT "
    # seeds 002 and 004
    "SANTOSUSDT YGGUSDT GPSUSDT BBUSDT THEUSDT EURIUSDT XUSDUSDT USDEUSDT PAXGUSDC"
).split()


@pytest.fixture(scope="module")
def shared() -> SimExchange:
    """One exchange for the read-only tests that walk the whole listing (its caches stay warm)."""
    return _sim()


def _sim(seed: int = 7, now: int = NOW, **faults: object) -> SimExchange:
    settings = ExchangeSettings.model_validate({"name": "sim", "seed": seed, "faults": faults})
    return SimExchange(settings, clock=ManualClock(now))


def test_sim_implements_the_exchange_protocol() -> None:
    ex = _sim()
    assert isinstance(ex, Exchange)
    assert ex.name == "sim"


_CHILD = """
import asyncio, json, sys
from quantum_trader.core.clock import ManualClock
from quantum_trader.core.profile import ExchangeSettings
from quantum_trader.market.sim import SimExchange
ex = SimExchange(ExchangeSettings(seed=int(sys.argv[1])), clock=ManualClock(int(sys.argv[2])))
async def main():
    out = {}
    for sym, tf in (("BTCUSDT", "15m"), ("GALAUSDT", "1h"), ("0GUSDT", "1m")):
        k = await ex.klines(sym, tf, limit=50)
        out[f"{sym}/{tf}"] = [k.ts.tolist(), k.open.tolist(), k.high.tolist(), k.low.tolist(),
                              k.close.tolist(), k.volume.tolist()]
    out["marks"] = await ex.mark_prices(["BTCUSDT", "USDCUSDT"])
    t = ex.model.ticker("ETHUSDT", int(sys.argv[2]))
    out["ticker"] = [t.last, t.quote_volume_24h, t.bid, t.ask]
    print(json.dumps(out))
asyncio.run(main())
"""


def _children(*seeds: int) -> list[dict[str, object]]:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(seed), str(NOW)], stdout=subprocess.PIPE, text=True
        )
        for seed in seeds
    ]
    out: list[dict[str, object]] = []
    for proc in procs:
        stdout, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        out.append(json.loads(stdout))
    return out


async def test_same_seed_gives_identical_market_in_two_processes_and_another_seed_differs() -> None:
    first, second = _children(7, 7)
    assert first == second
    here = await _sim(seed=7).klines("BTCUSDT", "15m", limit=50)
    assert here.close.tolist() == first["BTCUSDT/15m"][4]  # type: ignore[index]
    other = await _sim(seed=8).klines("BTCUSDT", "15m", limit=50)
    assert other.close.tolist() != here.close.tolist()


async def test_sim_market_is_the_same_for_a_window_asked_in_pieces_or_whole() -> None:
    ex = _sim()
    whole = await ex.klines("SOLUSDT", "15m", limit=1000)
    part = await ex.klines("SOLUSDT", "15m", limit=100, end_ms=int(whole.ts[500]) + 900_000)
    np.testing.assert_array_equal(part.ts, whole.ts[401:501])
    np.testing.assert_array_equal(part.close, whole.close[401:501])
    fresh = SimModel(7)  # an empty cache generates the same bars
    again = fresh.last_closed("SOLUSDT", "15m", limit=100, end_ms=int(whole.ts[500]) + 900_000)
    np.testing.assert_array_equal(again.close, part.close)


async def test_klines_are_closed_bars_ending_at_now_and_never_in_the_future() -> None:
    now = NOW + 123_456
    ex = _sim(now=now)
    for tf, ms in (("1m", 60_000), ("5m", 300_000), ("15m", 900_000), ("1h", 3_600_000), ("4h", 14_400_000)):
        k = await ex.klines("BTCUSDT", tf, limit=30)
        assert len(k) == 30
        assert int(k.ts[-1]) + ms <= now < int(k.ts[-1]) + 2 * ms
        assert np.all(np.diff(k.ts) == ms)
    later = await ex.klines("BTCUSDT", "15m", limit=5, end_ms=now + 10 * 86_400_000)
    assert int(later.ts[-1]) + 900_000 <= now


@pytest.mark.parametrize(
    ("coarse", "fine", "k"),
    [("1h", "15m", 4), ("4h", "1h", 4), ("15m", "1m", 15), ("5m", "1m", 5), ("15m", "5m", 3)],
)
async def test_coarse_bars_are_exact_aggregations_of_fine_bars(coarse: str, fine: str, k: int) -> None:
    ex = _sim()
    big = await ex.klines("ETHUSDT", coarse, limit=40)
    end = int(big.ts[-1]) + int(big.ts[1] - big.ts[0])
    small = await ex.klines("ETHUSDT", fine, limit=40 * k, end_ms=end)
    np.testing.assert_array_equal(small.ts[::k], big.ts)
    np.testing.assert_allclose(small.open[::k], big.open, rtol=1e-12)
    np.testing.assert_allclose(small.close[k - 1 :: k], big.close, rtol=1e-12)
    np.testing.assert_allclose(small.high.reshape(-1, k).max(axis=1), big.high, rtol=1e-12)
    np.testing.assert_allclose(small.low.reshape(-1, k).min(axis=1), big.low, rtol=1e-12)
    np.testing.assert_allclose(small.volume.reshape(-1, k).sum(axis=1), big.volume, rtol=1e-9)


async def test_bars_are_valid_ohlc_and_continuous() -> None:
    ex = _sim()
    for tf in ("1m", "15m", "1h"):
        k = await ex.klines("1000PEPEUSDT", tf, limit=500)
        assert np.all(k.high >= np.maximum(k.open, k.close))
        assert np.all(k.low <= np.minimum(k.open, k.close))
        assert np.all(k.low > 0) and np.all(k.volume > 0)
        np.testing.assert_allclose(k.open[1:], k.close[:-1], rtol=1e-12)


async def test_thousands_of_bars_of_any_past_window_are_available() -> None:
    ex = _sim()
    k = await ex.klines("GALAUSDT", "15m", limit=5000, end_ms=1_650_000_000_000)
    assert len(k) == 5000
    h = ex.history("GALAUSDT", "1h", start_ms=EPOCH_MS, end_ms=EPOCH_MS + 10 * 86_400_000)
    assert int(h.ts[0]) == EPOCH_MS and len(h) == 240


async def test_returns_are_heavy_tailed_and_volatility_clusters() -> None:
    ex = _sim()
    k = await ex.klines("SOLUSDT", "15m", limit=20_000)
    r = np.diff(np.log(k.close))
    kurtosis = float(np.mean((r - r.mean()) ** 4) / r.var() ** 2)
    assert kurtosis > 4.0
    a = np.abs(r)
    assert float(np.corrcoef(a[1:], a[:-1])[0, 1]) > 0.1  # |r| autocorrelation: clustering
    regimes = set(ex.model.regimes("SOLUSDT", np.arange(2000, 2400, dtype=np.int64)))
    assert regimes == {"range", "trend", "high_vol"}


async def test_listing_has_about_540_usdt_perpetuals_and_every_seed_symbol(shared: SimExchange) -> None:
    markets = await shared.markets()
    by_symbol = {m.symbol: m for m in markets}
    usdt = [m for m in markets if m.quote == "USDT" and m.contract == "perpetual" and m.status == "TRADING"]
    usdc = [m for m in markets if m.quote == "USDC" and m.contract == "perpetual" and m.status == "TRADING"]
    assert 530 <= len(usdt) <= 550
    assert 560 <= len(usdt) + len(usdc) <= 570
    missing = [s for s in SEED_SYMBOLS if s not in by_symbol]
    assert missing == []
    assert sorted(m.symbol for m in usdt)[:3] == ["0GUSDT", "1000000BOBUSDT", "1000000MOGUSDT"]
    assert any(m.contract == "delivery" for m in markets)
    assert {m.status for m in markets} == {"TRADING", "SETTLING", "BREAK"}
    assert by_symbol["USDCUSDT"].asset_class == "stable"
    assert by_symbol["PAXGUSDT"].asset_class == "stable"
    assert by_symbol["BTCUSDT"].asset_class == "major"
    assert by_symbol["GALAUSDT"].asset_class == "alt"
    assert by_symbol["1000PEPEUSDC"].base == "1000PEPE"
    assert len(by_symbol) == len(markets)


async def test_filters_are_consistent_with_each_symbols_price(shared: SimExchange) -> None:
    ex = shared
    markets = [m for m in await ex.markets() if m.status == "TRADING"]
    marks = await ex.mark_prices([m.symbol for m in markets])
    for m in markets:
        p = marks[m.symbol]
        assert m.min_notional in (5.0, 20.0)
        assert 1e-7 < m.tick_size / p < 1e-2, m
        assert m.step_size * p < m.min_notional, m
        assert m.min_qty == m.step_size
        assert m.max_qty * p > 1e5, m
        assert math.log10(m.tick_size) == round(math.log10(m.tick_size))


async def test_quote_volumes_are_heavy_tailed_with_majors_in_billions_and_a_thin_tail(
    shared: SimExchange,
) -> None:
    tickers = await shared.tickers()
    qv = np.array([t.quote_volume_24h for t in tickers.values()])
    assert tickers["BTCUSDT"].quote_volume_24h > 1e9
    assert tickers["ETHUSDT"].quote_volume_24h > 1e9
    assert 10 <= int(np.sum(qv < 1e6)) <= 150  # the liquidity floor matters
    assert float(np.median(qv)) < float(np.mean(qv)) / 3  # heavy right tail
    for t in tickers.values():
        assert t.bid < t.last < t.ask


async def test_stables_hold_their_peg_and_majors_move() -> None:
    ex = _sim()
    usdc = await ex.klines("USDCUSDT", "1h", limit=24 * 30)
    assert np.all(np.abs(usdc.close - 1.0) < 0.005)
    paxg = await ex.klines("PAXGUSDT", "1h", limit=24 * 30)
    btc = await ex.klines("BTCUSDT", "1h", limit=24 * 30)
    assert np.std(np.diff(np.log(paxg.close))) < 0.6 * np.std(np.diff(np.log(btc.close)))


async def test_usdc_twin_follows_its_usdt_perpetual() -> None:
    ex = _sim()
    marks = await ex.mark_prices(["BTCUSDT", "BTCUSDC"])
    assert abs(marks["BTCUSDC"] / marks["BTCUSDT"] - 1) < 5e-4


def test_the_signal_state_is_read_from_the_moves_the_bars_show() -> None:
    """The state the planted signal reads is the same-day EMA of the bars' observed standardised moves
    (given the latent σ, drift and β): nothing a model cannot see, however the day is bridged."""
    model = SimModel(7)
    key = model.character("ETHUSDT").path_key
    days = np.arange(2_000, 2_060, dtype=np.int64)
    st = model.day_state(key, days)
    opens, closes = st.ohlcv[0].reshape(days.shape[0], 96), st.ohlcv[3].reshape(days.shape[0], 96)
    u = (np.log(closes / opens) - st.drift[:, None]) / st.sigma
    a = model.params.momentum_decay
    scale = math.sqrt(1.0 - a * a) / np.sqrt(1.0 + st.beta * st.beta)
    acc, read = np.zeros(days.shape[0]), np.empty_like(u)
    for t in range(96):
        acc = a * acc + scale * u[:, t]
        read[:, t] = acc / math.sqrt(1.0 - a ** (2 * (t + 1)))
    np.testing.assert_allclose(read, st.state, atol=1e-8)
    np.testing.assert_allclose(np.log(closes[:-1, -1]), np.log(opens[1:, 0]), atol=1e-12)  # days join
    again = model.day_state(key, days[17:18])  # a day does not depend on the days generated with it
    np.testing.assert_array_equal(again.state[0], st.state[17])


def test_oracle_probability_is_in_unit_interval_and_beats_a_coin() -> None:
    model = SimModel(7)
    aucs = []
    for sym in ("BTCUSDT", "GALAUSDT", "1000PEPEUSDT"):
        k = model.bars(sym, "15m", first_ts=1_760_000_000_000, last_ts=1_760_000_000_000 + 3000 * 900_000)
        p = model.oracle_probability(sym, "15m", k.ts[:-4], 4)
        y = k.close[4:] > k.close[:-4]
        assert np.all((p > 0) & (p < 1))
        aucs.append(_auc(p, y))
        assert abs(float(np.mean(p)) - float(np.mean(y))) < 0.05  # calibrated on average
    assert 0.55 < float(np.mean(aucs)) < 0.68


def test_oracle_for_hourly_bars_uses_the_bar_close() -> None:
    model = SimModel(7)
    k = model.bars("SOLUSDT", "1h", first_ts=1_760_000_000_000, last_ts=1_760_000_000_000 + 1500 * 3_600_000)
    p = model.oracle_probability("SOLUSDT", "1h", k.ts[:-2], 2)
    assert _auc(p, k.close[2:] > k.close[:-2]) > 0.52
    with pytest.raises(ValueError):
        model.oracle_probability("SOLUSDT", "1m", k.ts[:3], 2)


def _auc(score: np.ndarray, label: np.ndarray) -> float:
    order = np.argsort(score)
    ranks = np.empty(len(score))
    ranks[order] = np.arange(1, len(score) + 1)
    pos = label.astype(bool)
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


# -- faults -----------------------------------------------------------------------------------------


async def test_discovery_fault_makes_markets_and_tickers_raise() -> None:
    ex = _sim(discovery="fail")
    for call in (ex.markets, ex.tickers):
        with pytest.raises(ExchangeError) as info:
            await call()
        assert info.value.reason == "discovery_failed"
    assert len(await ex.klines("BTCUSDT", "15m", limit=3)) == 3


async def test_klines_fault_makes_klines_raise() -> None:
    ex = _sim(klines="fail")
    with pytest.raises(ExchangeError) as info:
        await ex.klines("BTCUSDT", "15m", limit=3)
    assert info.value.reason == "klines_failed"


async def test_stale_symbol_lags_until_backfilled_then_is_fresh() -> None:
    ex = _sim(staleSymbols=["GALAUSDT"], staleBars=20)
    fresh = await ex.klines("BTCUSDT", "15m", limit=10)
    stale = await ex.klines("GALAUSDT", "15m", limit=10)
    assert int(fresh.ts[-1]) - int(stale.ts[-1]) == 20 * 900_000
    await ex.backfill("GALAUSDT", "15m")
    repaired = await ex.klines("GALAUSDT", "15m", limit=10)
    assert int(repaired.ts[-1]) == int(fresh.ts[-1])
    still = await ex.klines("GALAUSDT", "1h", limit=10)  # repair is per timeframe
    assert int(still.ts[-1]) < int((await ex.klines("BTCUSDT", "1h", limit=1)).ts[-1])


async def test_unrepairable_symbol_stays_stale_after_backfill() -> None:
    ex = _sim(staleSymbols=["MKRUSDT"], unrepairableSymbols=["MKRUSDT"], staleBars=5)
    await ex.backfill("MKRUSDT", "15m")
    k = await ex.klines("MKRUSDT", "15m", limit=3)
    ref = await ex.klines("BTCUSDT", "15m", limit=3)
    assert int(ref.ts[-1]) - int(k.ts[-1]) == 5 * 900_000


async def test_reject_rate_rejects_a_deterministic_share_of_orders() -> None:
    ex = _sim(rejectRate=0.3)
    results = [
        await ex.place_order(OrderRequest("DOGEUSDT", "BUY", 1000.0, client_order_id=f"c{i}"))
        for i in range(200)
    ]
    rejected = [r.client_order_id for r in results if r.status == "REJECTED" and r.reason == "sim_reject"]
    assert 0.2 < len(rejected) / 200 < 0.4
    again = _sim(rejectRate=0.3)
    same = [
        (await again.place_order(OrderRequest("DOGEUSDT", "BUY", 1000.0, client_order_id=f"c{i}"))).status
        for i in range(200)
    ]
    assert [r.status for r in results] == same


async def test_latency_fault_delays_each_request() -> None:
    import time

    ex = _sim(latencyMs=30)
    t = time.perf_counter()
    await ex.mark_prices(["BTCUSDT"])
    assert time.perf_counter() - t >= 0.028


# -- orders -------------------------------------------------------------------------------------------


async def test_market_order_fills_at_mark_plus_half_spread_with_taker_fee_and_is_idempotent() -> None:
    ex = _sim()
    mark = (await ex.mark_prices(["ETHUSDT"]))["ETHUSDT"]
    order = OrderRequest("ETHUSDT", "BUY", 0.05, client_order_id="intent-1")
    first = await ex.place_order(order)
    assert first.status == "FILLED"
    assert mark < first.price < mark * 1.001
    assert first.fee_usd == pytest.approx(first.price * 0.05 * 0.0004)
    second = await ex.place_order(order)
    assert second == first
    (pos,) = await ex.positions()
    assert (pos.symbol, pos.side, pos.qty) == ("ETHUSDT", "BUY", 0.05)
    assert await ex.fetch_order("ETHUSDT", "intent-1") == first
    assert await ex.fetch_order("ETHUSDT", "never-sent") is None


async def test_orders_violating_filters_are_rejected_with_a_reason() -> None:
    ex = _sim()
    tiny = await ex.place_order(OrderRequest("ETHUSDT", "BUY", 0.001, client_order_id="a"))
    assert (tiny.status, tiny.reason) == ("REJECTED", "min_notional")
    off_step = await ex.place_order(OrderRequest("ETHUSDT", "BUY", 0.0123456, client_order_id="b"))
    assert (off_step.status, off_step.reason) == ("REJECTED", "step_size")
    reduce = await ex.place_order(
        OrderRequest("ETHUSDT", "SELL", 0.05, client_order_id="c", reduce_only=True)
    )
    assert (reduce.status, reduce.reason) == ("REJECTED", "reduce_only")
    with pytest.raises(ExchangeError):
        await ex.place_order(OrderRequest("NOPEUSDT", "BUY", 1.0, client_order_id="d"))


async def test_closing_a_position_flattens_it_and_stop_orders_can_be_cancelled() -> None:
    ex = _sim()
    await ex.place_order(OrderRequest("SOLUSDT", "SELL", 1.0, client_order_id="open"))
    stop = await ex.place_order(
        OrderRequest("SOLUSDT", "BUY", 1.0, client_order_id="sl", order_type="STOP_MARKET", stop_price=1e6)
    )
    assert stop.status == "NEW"
    await ex.cancel_order("SOLUSDT", "sl")
    cancelled = await ex.fetch_order("SOLUSDT", "sl")
    assert cancelled is not None and cancelled.status == "CANCELED"
    close = await ex.place_order(
        OrderRequest("SOLUSDT", "BUY", 1.0, client_order_id="close", reduce_only=True)
    )
    assert close.status == "FILLED"
    assert await ex.positions() == []


async def test_mark_prices_follow_the_clock() -> None:
    clock = ManualClock(NOW)
    ex = SimExchange(ExchangeSettings(), clock=clock)
    first = (await ex.mark_prices(["BTCUSDT"]))["BTCUSDT"]
    clock.advance(3600)
    later = (await ex.mark_prices(["BTCUSDT"]))["BTCUSDT"]
    assert first != later
    one_m = await ex.klines("BTCUSDT", "1m", limit=1)
    assert later == float(one_m.close[-1])


async def test_sim_under_a_fast_virtual_clock_serves_bars_up_to_virtual_now() -> None:
    import time

    from quantum_trader.market.factory import sim_clock

    clock = sim_clock(3600.0, now_ms=NOW)  # one real second is one virtual hour
    ex = SimExchange(ExchangeSettings(speed=3600), clock=clock)
    first = await ex.klines("BTCUSDT", "15m", limit=1)
    time.sleep(0.3)  # 18 virtual minutes
    later = await ex.klines("BTCUSDT", "15m", limit=1)
    assert int(later.ts[-1]) > int(first.ts[-1])
    assert int(later.ts[-1]) + 900_000 <= clock.now_ms()


async def test_every_listed_contract_has_a_price_path_and_twins_share_their_base(shared: SimExchange) -> None:
    ex = shared
    markets = await ex.markets()
    marks = await ex.mark_prices([m.symbol for m in markets])
    assert all(p > 0 for p in marks.values())
    delivery = next(m for m in markets if m.contract == "delivery")
    perp = f"{delivery.base}USDT"
    assert 1.0 < marks[delivery.symbol] / marks[perp] < 1.02  # a small premium
    tickers = await ex.tickers()
    assert tickers["BTCUSDC"].quote_volume_24h < tickers["BTCUSDT"].quote_volume_24h
    assert not any(m.symbol in tickers for m in markets if m.status != "TRADING")
