"""The simulated listing: real Binance USD-M futures names, and Binance-like order filters.

The list lives in ``market/data/symbols.txt`` (one contract per line with tags);
this module parses it into frozen :class:`Listing` records and derives order
filters from a price with :func:`filters_for_price`. Both the sim and the
replay exchange use these.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Final, Literal

from quantum_trader.market.base import AssetClass

QUOTES: Final = ("USDT", "USDC", "FDUSD", "BUSD")
STABLE_BASES: Final = frozenset(
    {"USDC", "FDUSD", "USDE", "USD1", "XUSD", "EURI", "TUSD", "BUSD", "DAI", "PAXG", "XAUT", "BFUSD"}
)
MAJOR_BASES: Final = frozenset({"BTC", "ETH", "BNB", "SOL", "XRP", "DOGE", "ADA", "TRX"})
MAJOR_MIN_NOTIONAL: Final = 20.0
ALT_MIN_NOTIONAL: Final = 5.0

Status = Literal["TRADING", "SETTLING", "BREAK"]
Contract = Literal["perpetual", "delivery", "spot"]


@dataclass(frozen=True, slots=True)
class Filters:
    tick_size: float
    step_size: float
    min_qty: float
    max_qty: float
    min_notional: float


@dataclass(frozen=True, slots=True)
class Listing:
    """One contract of the simulated listing (static: does not depend on the seed or time)."""

    symbol: str
    base: str
    quote: str
    contract: Contract
    status: Status
    asset_class: AssetClass
    ref_price: float  # price on the reference day (2026-01-01) or the peg
    peg: float | None = None  # pegged assets: the price they hold


def split_symbol(symbol: str) -> tuple[str, str]:
    """``"1000PEPEUSDT"`` → ``("1000PEPE", "USDT")``; ``"BTCUSDT_260327"`` → ``("BTC", "USDT")``."""
    core = symbol.split("_", 1)[0]
    for quote in QUOTES:
        if core.endswith(quote) and len(core) > len(quote):
            return core[: -len(quote)], quote
    raise ValueError(f"{symbol}: no known quote asset ({', '.join(QUOTES)})")


def classify(base: str) -> AssetClass:
    """Asset class of a base asset by name (the replay exchange uses this; the sim reads tags)."""
    if base in STABLE_BASES:
        return "stable"
    if base in MAJOR_BASES:
        return "major"
    return "alt"


def unit_hash(*parts: object) -> float:
    """A stable uniform number in [0, 1) from the parts (SHA-256; never Python's ``hash``)."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") / 2.0**64


def _name_price(symbol: str) -> float:
    """A plausible reference price for an alt without one: log-uniform in [0.002, 40] by name."""
    u = unit_hash("ref-price", split_symbol(symbol)[0] + "USDT")
    return float(10 ** (math.log10(0.002) + u * (math.log10(40.0) - math.log10(0.002))))


def _decimal_power(x: float) -> int:
    return math.floor(math.log10(x))


def filters_for_price(price: float, *, min_notional: float = ALT_MIN_NOTIONAL) -> Filters:
    """Binance-like filters for a contract trading near ``price``.

    tick = 10^(floor(log10 p) − 5): five to six significant digits (BTC 90 000 → 0.1, ETH 3 000 → 0.01,
    1000PEPE 0.004 → 0.00000001); step = 10^(−floor(log10 p) − 1): one step is worth 0.1–1 USD, well
    under min_notional; max_qty ≈ 10 M USD of notional.
    """
    if not math.isfinite(price) or price <= 0:
        raise ValueError(f"price must be positive, got {price!r}")
    e = _decimal_power(price)
    tick = float(f"1e{e - 5}")
    step = float(f"1e{-e - 1}")
    max_qty = float(f"1e{max(_decimal_power(1e7 / price), 0)}")
    return Filters(tick_size=tick, step_size=step, min_qty=step, max_qty=max_qty, min_notional=min_notional)


def _parse_line(line: str, *, lineno: int) -> Listing:
    fields = line.split()
    symbol, tags = fields[0], fields[1:]
    base, quote = split_symbol(symbol)
    contract: Contract = "delivery" if "_" in symbol else "perpetual"
    status: Status = "TRADING"
    asset_class: AssetClass = "alt"
    price: float | None = None
    peg: float | None = None
    for tag in tags:
        key, _, value = tag.partition("=")
        if key == "major":
            asset_class = "major"
        elif key == "stable":
            asset_class = "stable"
        elif key == "price":
            price = float(value)
        elif key == "peg":
            peg = float(value)
        elif key == "status" and value in ("SETTLING", "BREAK", "TRADING"):
            status = "SETTLING" if value == "SETTLING" else "BREAK" if value == "BREAK" else "TRADING"
        else:
            raise ValueError(f"symbols.txt:{lineno}: unknown tag {tag!r}")
    ref = peg if peg is not None else price if price is not None else _name_price(symbol)
    return Listing(
        symbol=symbol,
        base=base,
        quote=quote,
        contract=contract,
        status=status,
        asset_class=asset_class,
        ref_price=ref,
        peg=peg,
    )


@lru_cache(maxsize=1)
def listings() -> tuple[Listing, ...]:
    """Every contract of the simulated listing, in file order."""
    text = resources.files("quantum_trader.market").joinpath("data/symbols.txt").read_text(encoding="utf-8")
    out: list[Listing] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if line:
            out.append(_parse_line(line, lineno=lineno))
    return tuple(out)


def min_notional_for(asset_class: AssetClass) -> float:
    return MAJOR_MIN_NOTIONAL if asset_class == "major" else ALT_MIN_NOTIONAL
