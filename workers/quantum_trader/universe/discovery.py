"""Discovery, identity merge and eligibility (pure).

1. Discovery keeps TRADING perpetual contracts quoted in ``DISCOVERY_QUOTES``
   (USDT and USDC). Everything else is dropped with a reason.
2. Identity merge: one identity per base asset. ``BTCUSDT`` and ``BTCUSDC``
   (or any two listings of one base) become one identity: the listing with the
   larger 24h quote volume is kept (USDT wins a tie), the other is dropped as
   ``merged_duplicate`` and counted in ``Discovery.merges``.
3. Eligibility: stable/pegged assets (``asset_class == "stable"``) are excluded
   from the alpha universe when ``universe.excludeStable``; listings without a
   ticker or under ``universe.minQuoteVolume24h`` are dropped for liquidity.
   These are cheap, so they run before any kline is fetched.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from quantum_trader.core.profile import UniverseSettings
from quantum_trader.market.base import Market, Ticker
from quantum_trader.universe.model import (
    DISCOVERY_QUOTES,
    PREFERRED_QUOTE,
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
    Candidate,
    Discovery,
    Drop,
)


def spread_bps(ticker: Ticker) -> float | None:
    """Quoted spread in basis points of the mid, or None when the ticker has no usable bid/ask."""
    if ticker.bid > 0 and ticker.ask >= ticker.bid:
        mid = (ticker.bid + ticker.ask) / 2.0
        return (ticker.ask - ticker.bid) / mid * 10_000.0
    return None


def _liquidity_key(market: Market, tickers: Mapping[str, Ticker]) -> tuple[float, int, str]:
    t = tickers.get(market.symbol)
    volume = t.quote_volume_24h if t is not None and t.quote_volume_24h == t.quote_volume_24h else 0.0
    return (volume, 1 if market.quote == PREFERRED_QUOTE else 0, market.symbol)


def _listed(markets: Iterable[Market], drops: dict[str, Drop]) -> tuple[list[Market], int]:
    """Trading perpetuals with a discovery quote (duplicate rows counted once); the rest dropped. (found, listed)"""
    found: list[Market] = []
    seen: set[str] = set()
    for m in markets:
        if m.symbol in seen:
            continue  # a duplicate row of the same symbol: count once
        seen.add(m.symbol)
        if m.contract != "perpetual":
            drops[m.symbol] = Drop(STAGE_DISCOVERED, R_NOT_PERPETUAL, m.contract)
        elif m.status != "TRADING":
            drops[m.symbol] = Drop(STAGE_DISCOVERED, R_NOT_TRADING, m.status)
        elif m.quote not in DISCOVERY_QUOTES:
            drops[m.symbol] = Drop(STAGE_DISCOVERED, R_QUOTE, m.quote)
        else:
            found.append(m)
    return found, len(seen)


def _merged(
    found: list[Market], tickers: Mapping[str, Ticker], drops: dict[str, Drop]
) -> tuple[list[Market], dict[str, str]]:
    """One listing per base asset, the most liquid; the others merged into it. (kept, loser → winner)"""
    by_base: dict[str, list[Market]] = {}
    for m in found:
        by_base.setdefault(m.base, []).append(m)
    merges: dict[str, str] = {}
    kept: list[Market] = []
    for listings in by_base.values():
        listings.sort(key=lambda m: _liquidity_key(m, tickers), reverse=True)
        winner = listings[0]
        kept.append(winner)
        for loser in listings[1:]:
            merges[loser.symbol] = winner.symbol
            drops[loser.symbol] = Drop(STAGE_MERGED, R_MERGED, f"same base {winner.base} as {winner.symbol}")
    return kept, merges


def _eligible(
    m: Market, tickers: Mapping[str, Ticker], settings: UniverseSettings, drops: dict[str, Drop]
) -> Candidate | None:
    """A candidate, or None with its drop: stable (when excluded), no ticker, below the liquidity floor."""
    t = tickers.get(m.symbol)
    if settings.exclude_stable and m.asset_class == "stable":
        drops[m.symbol] = Drop(STAGE_ELIGIBLE, R_STABLE, f"asset class stable ({m.base})")
        return None
    if t is None:
        drops[m.symbol] = Drop(STAGE_ELIGIBLE, R_NO_TICKER, "no 24h ticker")
        return None
    volume = t.quote_volume_24h
    if not volume >= settings.min_quote_volume_24h:  # also catches NaN
        drops[m.symbol] = Drop(
            STAGE_ELIGIBLE, R_LIQUIDITY, f"24h quote volume {volume:.0f} < {settings.min_quote_volume_24h:.0f}"
        )
        return None
    return Candidate(symbol=m.symbol, base=m.base, quote=m.quote, asset_class=m.asset_class,
                     volume_24h=float(volume), spread_bps=spread_bps(t))


def discover(
    markets: Iterable[Market], tickers: Mapping[str, Ticker], *, settings: UniverseSettings
) -> Discovery:
    """Discovery → identity merge → eligibility, with a reason for every dropped listing."""
    drops: dict[str, Drop] = {}
    found, listed = _listed(markets, drops)
    kept, merges = _merged(found, tickers, drops)
    candidates = [c for c in (_eligible(m, tickers, settings, drops) for m in kept) if c is not None]
    candidates.sort(key=lambda c: (-c.volume_24h, c.symbol))
    return Discovery(
        listed=listed, discovered=len(found), merged=len(kept), candidates=tuple(candidates), drops=drops,
        merges=merges,
    )
