"""Shared helpers for gate/executor tests, the crash-safety test and the pipeline benchmark."""

from __future__ import annotations

import json
import time
from typing import Any

from quantum_trader.core.keys import Keys
from quantum_trader.core.messages import TradeIntent
from quantum_trader.core.profile import TradingProfile, parse_profile
from quantum_trader.market.base import Klines, Market, OrderRequest, OrderResult, Position, Ticker
from quantum_trader.universe.publication import universe_hash

SYMBOLS = tuple(f"T{n:03d}USDT" for n in range(200))
PRICE = 100.0


def profile(name: str = "gx", **spec: Any) -> TradingProfile:
    """A paper profile with loose limits (override any spec section by keyword)."""
    base: dict[str, Any] = {
        "environment": "paper",
        "snapshot": {"allowlistSource": "env", "allowlist": list(SYMBOLS)},
        "gate": {"maxExposureUsd": 1e12, "maxSnapshotAge": "1h", "cooldown": "0s", "killLossStreak": 1000000,
                 "killDrawdownUsd": 1e12},
        "executor": {"monitorInterval": "1s"},
    }
    for section, value in spec.items():
        base[section] = {**base.get(section, {}), **value} if isinstance(value, dict) else value
    return parse_profile({"apiVersion": "quantumtrader.io/v1alpha1", "kind": "TradingProfile",
                          "metadata": {"name": name}, "spec": base})


def make_intent(
    iid: str,
    symbol: str = "T000USDT",
    *,
    side: str = "BUY",
    size: float = 10.0,
    leverage: float = 2.0,
    reduce_only: bool = False,
    sl: float = 0.0,
    tp: float = 0.0,
    ts: int | None = None,
) -> TradeIntent:
    return TradeIntent.model_validate(
        dict(
            intent_id=iid, signal_id=f"s-{iid}", symbol=symbol, side=side, position_size_usd=size,
            leverage=leverage, entry_price=PRICE, stop_loss=sl, take_profit=tp, confidence=0.8, score=0.8,
            rank=1, size_boost=1.0, reduce_only=reduce_only,
            ts=int(time.time() * 1000) if ts is None else ts,  # fresh by default: gate.maxIntentAge
        )
    )


def snapshot_mapping(price: float, ts_ms: int) -> dict[str, str]:
    return {"mark_price": repr(price), "position_amt": "0", "entry_price": "0", "unrealized_pnl": "0",
            "ts": str(ts_ms)}


def seed_snapshots_sync(client: Any, keys: Keys, symbols: tuple[str, ...] | list[str], *, ts_ms: int,
                        price: float = PRICE) -> None:
    pipe = client.pipeline(transaction=False)
    for s in symbols:
        pipe.hset(keys.position_snapshot(s), mapping=snapshot_mapping(price, ts_ms))
    pipe.execute()


def universe_json(symbols: list[str], *, valid_until: int) -> str:
    return json.dumps({"version": "1", "symbols": [{"symbol": s, "rank": i + 1} for i, s in enumerate(symbols)],
                       "valid_until": valid_until, "universe_hash": universe_hash(symbols)})


def market(symbol: str) -> Market:
    return Market(symbol=symbol, base=symbol[:-4], quote="USDT", contract="perpetual", status="TRADING",
                  tick_size=0.01, step_size=0.001, min_notional=5.0, max_qty=1e6, min_qty=0.001)


class StaticExchange:
    """Markets only: what the paper executor needs from an exchange in tests."""

    name = "static"

    def __init__(self, symbols: tuple[str, ...] | list[str] = SYMBOLS) -> None:
        self._markets = [market(s) for s in symbols]

    async def markets(self) -> list[Market]:
        return list(self._markets)

    async def tickers(self) -> dict[str, Ticker]:
        return {}

    async def klines(self, symbol: str, timeframe: str, *, limit: int, end_ms: int | None = None) -> Klines:
        raise NotImplementedError

    async def backfill(self, symbol: str, timeframe: str) -> None:
        return None

    async def mark_prices(self, symbols: list[str]) -> dict[str, float]:
        return {}

    async def positions(self) -> list[Position]:
        return []

    async def place_order(self, order: OrderRequest) -> OrderResult:
        raise NotImplementedError

    async def fetch_order(self, symbol: str, client_order_id: str) -> OrderResult | None:
        return None

    async def cancel_order(self, symbol: str, client_order_id: str) -> None:
        return None

    async def close(self) -> None:
        return None
