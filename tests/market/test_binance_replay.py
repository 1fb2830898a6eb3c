"""Offline replay of recorded Binance replies to ccxt (no sockets), plus tests of the replay itself.

:class:`Replay` replaces each ccxt instance's async ``fetch`` (its HTTP transport).
A request is matched by method, path and a subset of its query/body parameters;
the reply is a recorded body from ``tests/fixtures/binance`` with its HTTP status.
Error replies go through ccxt's own ``handle_errors``/``handle_http_status_code``
exactly as a live reply would, and a timeout is raised as ccxt's transport raises
it (``RequestTimeout``). Other test modules import :func:`make_exchange` from here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import ccxt.async_support as ccxt_async
import pytest
from quantum_trader.core.clock import ManualClock
from quantum_trader.core.logs import EventLog, format_text
from quantum_trader.market.binance import BinanceExchange, CcxtTransport, make_client
from quantum_trader.market.binance_budget import WeightBudget
from quantum_trader.market.credentials import Credentials

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "binance"
FAKE_KEY = "qtFakeApiKey0123456789abcdefKEY"
FAKE_SECRET = "qtFakeSecret9876543210zyxwvuSECRET"
NOW_MS = 1795262400000  # 2026-11-21T12:00:00Z, end of the recorded klines


def logged(caplog: pytest.LogCaptureFixture) -> str:
    """Captured event lines as the one-line formatter renders them (``EVENT k=v ...``)."""
    return "\n".join(
        format_text(getattr(r, "qt_event", r.getMessage()), dict(getattr(r, "qt_fields", {}))) for r in caplog.records
    )


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


@dataclass
class Reply:
    """One recorded reply: a fixture file (or a literal body), an HTTP status, or a transport timeout."""

    body: Any = None
    file: str = ""
    status: int = 200
    timeout: bool = False
    fn: Callable[[dict[str, str]], Any] | None = None  # body computed from the request parameters

    def payload(self, params: dict[str, str]) -> Any:
        if self.fn is not None:
            return self.fn(params)
        return fixture(self.file) if self.file else self.body


@dataclass
class Call:
    method: str
    host: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]


@dataclass
class _Route:
    method: str
    path: str
    match: dict[str, str]
    replies: list[Reply]
    used: int = 0


@dataclass
class Replay:
    """Routes (method, path, params ⊇ match) → replies, consumed in order; the last one repeats."""

    routes: list[_Route] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)

    def add(self, method: str, path: str, *replies: Reply, **match: str) -> Replay:
        self.routes.insert(0, _Route(method, path, dict(match), list(replies)))
        return self

    def count(self, method: str, path: str) -> int:
        return sum(1 for c in self.calls if c.method == method and c.path == path)

    def bind(self, client: Any) -> None:
        """Replace ``client.fetch`` (ccxt's HTTP transport) with this replay."""

        async def fetch(url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
            parts = urlsplit(url)
            params = dict(parse_qsl(parts.query))
            if body:
                params.update(dict(parse_qsl(body)))
            self.calls.append(Call(method, parts.netloc, parts.path, params, dict(headers or {})))
            for route in self.routes:
                if route.method == method and route.path == parts.path and _subset(route.match, params):
                    reply = route.replies[min(route.used, len(route.replies) - 1)]
                    route.used += 1
                    return _serve(client, reply, params, url=url, method=method, headers=headers, body=body)
            raise AssertionError(f"no recorded reply for {method} {parts.path} {params}")

        client.fetch = fetch
        client.timeout_on_exit = 0  # no aiohttp session to drain offline


def _subset(match: Mapping[str, str], params: Mapping[str, str]) -> bool:
    return all(params.get(k) == v for k, v in match.items())


def _serve(client: Any, reply: Reply, params: dict[str, str], *, url: str, method: str, headers: Any, body: Any) -> Any:
    if reply.timeout:
        raise ccxt_async.RequestTimeout(f"{client.id} {method} {url}")
    payload = reply.payload(params)
    text = payload if isinstance(payload, str) else json.dumps(payload)
    parsed = payload if not isinstance(payload, str) else None
    if reply.status >= 400:
        client.handle_errors(reply.status, "error", url, method, {}, text, parsed, headers, body)
        client.handle_http_status_code(reply.status, "error", url, method, text)
    return parsed if parsed is not None else text


def make_exchange(
    replay: Replay,
    *,
    environment: str = "testnet",
    clock: ManualClock | None = None,
    redis: Any = None,
    budget: int = 2000,
    credentials: bool = True,
    log: EventLog | None = None,
    **kwargs: Any,
) -> BinanceExchange:
    """A BinanceExchange whose two ccxt instances (mainnet data, testnet orders) are served by ``replay``."""
    clock = clock or ManualClock(NOW_MS)
    creds = Credentials(api_key=FAKE_KEY, secret=FAKE_SECRET, source="env") if credentials else None
    data = make_client(testnet=False, enable_rate_limit=False)
    replay.bind(data)
    trade = None
    if environment != "paper" and creds is not None:
        trade_client = make_client(testnet=environment == "testnet", credentials=creds, enable_rate_limit=False)
        replay.bind(trade_client)
        trade = CcxtTransport(trade_client, venue="testnet" if environment == "testnet" else "mainnet")
    weight = None
    if redis is not None:
        weight = WeightBudget(redis, key="quantum:{test}:exchange:weight", clock=clock, budget=budget)
    return BinanceExchange(
        data=CcxtTransport(data, venue="mainnet"),
        trade=trade,
        clock=clock,
        log=log or EventLog(worker="test"),
        budget=weight,
        no_trade_reason="paper_mode" if environment == "paper" else "missing_credentials",
        mode="live" if environment == "production" else environment,
        **kwargs,
    )


def recorded_market_data() -> Replay:
    """Routes for the recorded public endpoints."""
    r = Replay()
    r.add("GET", "/fapi/v1/exchangeInfo", Reply(file="exchangeInfo.json"))
    r.add("GET", "/fapi/v1/ticker/24hr", Reply(file="ticker_24hr.json"))
    r.add("GET", "/fapi/v1/ticker/bookTicker", Reply(file="ticker_bookTicker.json"))
    r.add("GET", "/fapi/v1/premiumIndex", Reply(file="premiumIndex.json"))
    r.add("GET", "/fapi/v1/premiumIndex", Reply(file="premiumIndex_BNBUSDT.json"), symbol="BNBUSDT")
    r.add("GET", "/fapi/v1/leverageBracket", Reply(file="leverageBracket.json"))  # signed; ccxt's positions need it
    return r


# -- tests of the replay itself --------------------------------------------------------------------


async def test_replay_unknown_request_fails_loudly() -> None:
    replay = Replay()
    ex = make_exchange(replay)
    with pytest.raises(AssertionError, match="no recorded reply"):
        await ex.markets()
    await ex.close()


async def test_replay_routes_mainnet_data_and_testnet_orders_to_their_hosts() -> None:
    replay = recorded_market_data()
    replay.add("GET", "/fapi/v3/positionRisk", Reply(file="positionRisk.json"))
    ex = make_exchange(replay)
    await ex.markets()
    await ex.positions()
    hosts: dict[str, set[str]] = {}
    for c in replay.calls:
        hosts.setdefault(c.path, set()).add(c.host)
    # market data from mainnet; the order venue loads its own (testnet) markets before positions
    assert hosts["/fapi/v1/exchangeInfo"] == {"fapi.binance.com", "testnet.binancefuture.com"}
    assert replay.calls[0].host == "fapi.binance.com"
    assert hosts["/fapi/v3/positionRisk"] == {"testnet.binancefuture.com"}
    signed = next(c for c in replay.calls if c.path == "/fapi/v3/positionRisk")
    assert "signature" in signed.params and signed.headers.get("X-MBX-APIKEY") == FAKE_KEY
    await ex.close()
