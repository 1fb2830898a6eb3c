"""Discovery, identity merge (most liquid listing per base, counted) and eligibility, each drop with a reason."""

from __future__ import annotations

from quantum_trader.universe.discovery import discover, spread_bps
from quantum_trader.universe.model import (
    R_LIQUIDITY,
    R_MERGED,
    R_NO_TICKER,
    R_NOT_PERPETUAL,
    R_NOT_TRADING,
    R_QUOTE,
    R_STABLE,
    STAGE_DISCOVERED,
    STAGE_ELIGIBLE,
    STAGE_MERGED,
)

from tests.universe.helpers import market, ticker, universe


def test_only_trading_usdt_and_usdc_perpetuals_are_discovered_others_dropped_with_reason() -> None:
    markets = [
        market("BTCUSDT"),
        market("BTCUSDT_260327", base="BTC", contract="delivery"),
        market("FTTUSDT", status="SETTLING"),
        market("ETHBUSD", quote="BUSD"),
        market("SOLUSDC", quote="USDC"),
    ]
    tickers = {m.symbol: ticker(m.symbol, 5e7) for m in markets}
    out = discover(markets, tickers, settings=universe())
    assert (out.listed, out.discovered) == (5, 2)
    assert {c.symbol for c in out.candidates} == {"BTCUSDT", "SOLUSDC"}
    assert out.drops["BTCUSDT_260327"].reason == R_NOT_PERPETUAL
    assert out.drops["FTTUSDT"].reason == R_NOT_TRADING
    assert out.drops["ETHBUSD"].reason == R_QUOTE
    assert {d.stage for d in out.drops.values()} == {STAGE_DISCOVERED}


def test_identity_merge_keeps_the_most_liquid_listing_and_counts_the_merge() -> None:
    markets = [market("BNBUSDT"), market("BNBUSDC", quote="USDC"), market("ETHUSDT"), market("ETHUSDC", quote="USDC")]
    tickers = {
        "BNBUSDT": ticker("BNBUSDT", 2e7),
        "BNBUSDC": ticker("BNBUSDC", 9e7),  # the USDC listing is the liquid one here
        "ETHUSDT": ticker("ETHUSDT", 5e8),
        "ETHUSDC": ticker("ETHUSDC", 1e8),
    }
    out = discover(markets, tickers, settings=universe())
    assert out.merged == 2
    assert out.merges == {"BNBUSDT": "BNBUSDC", "ETHUSDC": "ETHUSDT"}
    assert [c.symbol for c in out.candidates] == ["ETHUSDT", "BNBUSDC"]  # most liquid first
    assert out.drops["BNBUSDT"].reason == R_MERGED and out.drops["BNBUSDT"].stage == STAGE_MERGED
    assert "BNBUSDC" in out.drops["BNBUSDT"].detail


def test_identity_merge_tie_prefers_the_usdt_listing() -> None:
    markets = [market("XRPUSDC", quote="USDC"), market("XRPUSDT")]
    tickers = {"XRPUSDC": ticker("XRPUSDC", 3e7), "XRPUSDT": ticker("XRPUSDT", 3e7)}
    out = discover(markets, tickers, settings=universe())
    assert [c.symbol for c in out.candidates] == ["XRPUSDT"]
    assert out.merges == {"XRPUSDC": "XRPUSDT"}


def test_stable_assets_are_excluded_from_the_alpha_universe_unless_allowed() -> None:
    markets = [market("PAXGUSDT", asset_class="stable"), market("BTCUSDT", asset_class="major")]
    tickers = {m.symbol: ticker(m.symbol, 5e7) for m in markets}
    out = discover(markets, tickers, settings=universe())
    assert out.drops["PAXGUSDT"].reason == R_STABLE and out.drops["PAXGUSDT"].stage == STAGE_ELIGIBLE
    kept = discover(markets, tickers, settings=universe(excludeStable=False))
    assert {c.symbol for c in kept.candidates} == {"PAXGUSDT", "BTCUSDT"}


def test_liquidity_floor_and_missing_or_nan_ticker_drop_with_reasons() -> None:
    markets = [market("AUSDT"), market("BUSDT"), market("CUSDT"), market("DUSDT")]
    tickers = {
        "AUSDT": ticker("AUSDT", 999_999.0),
        "BUSDT": ticker("BUSDT", 1_000_000.0),
        "DUSDT": ticker("DUSDT", float("nan")),
    }
    out = discover(markets, tickers, settings=universe())
    assert [c.symbol for c in out.candidates] == ["BUSDT"]
    assert out.drops["AUSDT"].reason == R_LIQUIDITY
    assert out.drops["CUSDT"].reason == R_NO_TICKER
    assert out.drops["DUSDT"].reason == R_LIQUIDITY


def test_spread_comes_from_bid_ask_or_is_unknown() -> None:
    assert spread_bps(ticker("X", 1.0, bid=99.0, ask=101.0)) == 200.0
    assert spread_bps(ticker("X", 1.0, bid=0.0, ask=101.0)) is None
    assert spread_bps(ticker("X", 1.0, bid=101.0, ask=99.0)) is None


def test_a_duplicated_market_row_counts_once() -> None:
    out = discover([market("BTCUSDT"), market("BTCUSDT")], {"BTCUSDT": ticker("BTCUSDT", 5e7)}, settings=universe())
    assert (out.listed, out.discovered, out.merged, len(out.candidates)) == (1, 1, 1, 1)
