"""The ai worker through real Redis and the simulated exchange, on a fast virtual clock."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
import redis.asyncio as aredis
from quantum_trader.ai import registry
from quantum_trader.ai.features import N_FEATURES
from quantum_trader.ai.training import TrainResult
from quantum_trader.core import metrics
from quantum_trader.core.clock import VirtualClock
from quantum_trader.core.keys import Keys
from quantum_trader.core.messages import Signal
from quantum_trader.core.profile import AiSettings, TradingProfile, parse_profile
from quantum_trader.core.service import WorkerContext, worker_main
from quantum_trader.market.sim import SimExchange
from quantum_trader.universe.publication import universe_hash

from tests.ai.conftest import beats_baselines, dataset, market, trained  # noqa: F401 - session fixtures

TF = 900_000
SPEED = 600.0  # one 15m bar per 1.5 s
START = 1_763_700_000_000 // TF * TF + 60_000  # one minute after a bar close
SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "GALAUSDT", "MKRUSDT", "VETUSDT", "HBARUSDT",
           "DOTUSDT", "CRVUSDT"]
DESIGN_FIELDS = {"v", "ts", "signal_id", "symbol", "side", "confidence", "model", "model_version", "price",
                 "atr", "regime", "rl_gate_pass", "win_atr", "loss_atr", "hold_s"}


def make_profile(**spec: Any) -> TradingProfile:
    return parse_profile({"apiVersion": "quantumtrader.io/v1alpha1", "kind": "TradingProfile",
                          "metadata": {"name": "aitest"}, "spec": spec})


async def publish_universe(client: aredis.Redis, keys: Keys, symbols: list[str], *, now_ms: int) -> None:
    doc = {"version": "1.0.0", "generator": "test", "features_window": "15m,1h",
           "universe_hash": universe_hash(symbols), "generated_at": now_ms, "valid_until": now_ms + 86_400_000,
           "symbols": [{"symbol": s, "rank": i + 1} for i, s in enumerate(symbols)]}
    await client.set(keys.universe_active, json.dumps(doc))


class Running:
    def __init__(self, ctx: WorkerContext, client: aredis.Redis) -> None:
        self.ctx, self.client, self.keys = ctx, client, ctx.keys

    async def signals(self) -> list[Signal]:
        return [Signal.from_fields(f) for _, f in await self.client.xrange(self.keys.ai_signal)]

    async def raw(self) -> list[dict[str, str]]:
        return [f for _, f in await self.client.xrange(self.keys.ai_signal)]

    async def wait_for(self, cond: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not await cond():
            assert time.monotonic() < deadline, "condition not reached in time"
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def running(redis_url: str, profile: TradingProfile, *, universe: list[str] | None = None,
                  before: Callable[[aredis.Redis, Keys], Awaitable[None]] | None = None,
                  ) -> AsyncIterator[Running]:
    clock = VirtualClock(start_ms=START, speed=SPEED)
    client = aredis.Redis.from_url(redis_url, decode_responses=True)
    keys = Keys(profile.name)
    await publish_universe(client, keys, universe if universe is not None else SYMBOLS, now_ms=START)
    if before is not None:
        await before(client, keys)
    stop = asyncio.Event()
    ctx = WorkerContext(name="ai", profile=profile, redis=client, clock=clock, stop=stop,
                        exchange_factory=lambda: SimExchange(profile.spec.exchange, clock=clock),
                        consumer="ai-test")
    task = asyncio.create_task(worker_main("ai", profile)(ctx))
    try:
        yield Running(ctx, client)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        assert not task.exception()
        await client.aclose()


def events(caplog: pytest.LogCaptureFixture, name: str) -> list[dict[str, Any]]:
    """Fields of every ``name`` log line (EventLog puts them on the record)."""
    return [dict(getattr(r, "qt_fields", {})) for r in caplog.records if getattr(r, "qt_event", None) == name]


def _bars(sigs: list[Signal]) -> dict[int, list[Signal]]:
    out: dict[int, list[Signal]] = {}
    for s in sigs:
        out.setdefault(int(s.signal_id.rsplit("-", 1)[1]), []).append(s)
    return out


async def test_fallback_worker_publishes_one_signal_per_universe_symbol_at_each_bar_close(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="quantum_trader")
    async with running(redis_url, make_profile()) as w:
        async def two_bars() -> bool:
            return len(_bars(await w.signals())) >= 2
        await w.wait_for(two_bars)
        sigs = await w.signals()
        raw = await w.raw()
    by_bar = _bars(sigs)
    first, second = sorted(by_bar)[:2]
    assert second - first == TF and first % TF == 0
    for bar in (first, second):
        assert sorted(s.symbol for s in by_bar[bar]) == sorted(SYMBOLS)
    assert all(set(f) == DESIGN_FIELDS for f in raw)
    assert all(f["rl_gate_pass"] in ("true", "false") for f in raw)
    # the untrained fallback claims no more than symmetry: win = loss = router.stopLossAtr, holding time unknown
    assert all((f["win_atr"], f["loss_atr"], f["hold_s"]) == ("1.5", "1.5", "0.0") for f in raw)
    for s in sigs:
        assert s.model == "fallback-trend" and s.model_version.startswith("fallback")
        assert s.side in ("BUY", "SELL", "HOLD") and 0.5 <= s.confidence < 0.95
        assert s.price > 0 and s.atr > 0 and s.regime in ("range", "trend_up", "trend_down", "high_vol")
        assert (s.side == "HOLD") == (s.confidence < 0.55)
    assert metrics.AI_MODEL_FALLBACK.labels("aitest")._value.get() == 1
    assert "MODEL_FALLBACK" in caplog.text


async def test_a_rejected_training_run_leaves_its_best_baseline_as_the_calibrated_fallback(
    redis_url: str, trained: TrainResult, caplog: pytest.LogCaptureFixture  # noqa: F811
) -> None:
    caplog.set_level(logging.INFO, logger="quantum_trader")

    async def rejected_run(client: aredis.Redis, keys: Keys) -> None:
        reg = await registry.register(client, keys, bundle=replace(trained.bundle, version="lost"),
                                      card={"created_ms": 1}, report=trained.report, ai=AiSettings(),
                                      probe=np.zeros((4, N_FEATURES)), fallback=trained.fallback)
        assert not reg.promoted and reg.reasons[0].startswith("not_better_than_baseline")

    async with running(redis_url, make_profile(), before=rejected_run) as w:
        async def one_bar() -> bool:
            return len(_bars(await w.signals())) >= 1
        await w.wait_for(one_bar)
        sigs = await w.signals()
    assert {s.model for s in sigs} == {f"fallback-{trained.fallback.name}"}
    assert all(s.model_version == "lost" and not s.rl_gate_pass for s in sigs)
    fb = trained.fallback.exit_sizes  # its own out-of-sample win/loss sizes, not the trend rule's symmetry
    assert fb is not None and all((s.win_atr, s.loss_atr) == (fb.win_atr, fb.loss_atr) for s in sigs)
    # its confidence is what it showed out of sample: nowhere near the trend rule's 0.95
    assert max(s.confidence for s in sigs) < 0.75
    assert "MODEL_FALLBACK_LOADED" in caplog.text
    assert metrics.AI_MODEL_FALLBACK.labels("aitest")._value.get() == 1


async def test_without_fallback_and_without_a_model_nothing_is_published_and_it_says_so(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="quantum_trader")
    async with running(redis_url, make_profile(ai={"allowFallback": False})) as w:
        async def missing_twice() -> bool:
            return caplog.text.count("MODEL_MISSING") >= 2
        await w.wait_for(missing_twice)
        assert await w.signals() == []
    assert metrics.AI_MODEL_FALLBACK.labels("aitest")._value.get() == 1


async def test_promoted_model_is_hot_reloaded_and_signs_its_signals(
    redis_url: str, trained: TrainResult, caplog: pytest.LogCaptureFixture  # noqa: F811
) -> None:
    caplog.set_level(logging.INFO, logger="quantum_trader")
    bundle = replace(trained.bundle, version="20261121T120000Z-hot001")
    async with running(redis_url, make_profile()) as w:
        async def fallback_seen() -> bool:
            return any(s.model == "fallback-trend" for s in await w.signals())
        await w.wait_for(fallback_seen)
        await registry.register(w.client, w.keys, bundle=bundle, card={"created_ms": START - 3_600_000},
                                report=beats_baselines(trained.report), ai=AiSettings(),
                                probe=np.zeros((4, N_FEATURES)))

        async def model_seen() -> bool:
            return any(s.model == "lgbm-20261121T120000Z-hot001" for s in await w.signals())
        await w.wait_for(model_seen)
        sigs = await w.signals()
    lgbm = [s for s in sigs if s.model.startswith("lgbm-")]
    bar = _bars(lgbm)
    assert sorted(s.symbol for s in bar[min(bar)]) == sorted(SYMBOLS)
    assert all(s.model_version == "20261121T120000Z-hot001" for s in lgbm)
    sizes = trained.bundle.exit_sizes  # measured out of sample, stored in the artefact, carried on every signal
    assert sizes is not None
    assert all((s.win_atr, s.loss_atr, s.hold_s) == (sizes.win_atr, sizes.loss_atr, sizes.hold_s) for s in lgbm)
    assert "MODEL_LOADED" in caplog.text
    assert metrics.AI_MODEL_FALLBACK.labels("aitest")._value.get() == 0
    assert metrics.AI_MODEL_INFO.labels("aitest", "20261121T120000Z-hot001")._value.get() == 1


async def test_corrupt_promoted_artefact_is_refused_and_the_worker_keeps_running(
    redis_url: str, trained: TrainResult, caplog: pytest.LogCaptureFixture  # noqa: F811
) -> None:
    caplog.set_level(logging.INFO, logger="quantum_trader")

    async def corrupt(client: aredis.Redis, keys: Keys) -> None:
        bundle = replace(trained.bundle, version="broken")
        await registry.register(client, keys, bundle=bundle, card={"created_ms": 1}, report=beats_baselines(trained.report),
                                ai=AiSettings(), probe=np.zeros((4, N_FEATURES)))
        await client.set(keys.model_artifact("broken"), registry.encode_artifact(b"\x00" * 100))

    async with running(redis_url, make_profile(), before=corrupt) as w:
        async def two_bars() -> bool:
            return len(_bars(await w.signals())) >= 2
        await w.wait_for(two_bars)
        sigs = await w.signals()
    assert all(s.model == "fallback-trend" for s in sigs)
    corrupt_lines = events(caplog, "MODEL_CORRUPT")
    assert len(corrupt_lines) == 1  # remembered: not retried at every poll
    assert corrupt_lines[0]["reason"] == "checksum_mismatch" and corrupt_lines[0]["version"] == "broken"


async def test_bad_symbols_are_skipped_with_a_reason_and_the_rest_still_get_signals(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="quantum_trader")
    prof = make_profile(exchange={"name": "sim", "faults": {"staleSymbols": ["SOLUSDT"],
                                                            "unrepairableSymbols": ["SOLUSDT"]}})
    universe = [*SYMBOLS, "NOSUCHUSDT"]
    async with running(redis_url, prof, universe=universe) as w:
        async def one_bar() -> bool:
            return len(_bars(await w.signals())) >= 1
        await w.wait_for(one_bar)
        sigs = await w.signals()
    got = {s.symbol for s in _bars(sigs)[min(_bars(sigs))]}
    assert got == set(SYMBOLS) - {"SOLUSDT"}
    reasons = {e["symbol"]: e["reason"] for e in events(caplog, "AI_SKIPPED")}
    assert reasons == {"SOLUSDT": "stale", "NOSUCHUSDT": "fetch_failed"}


async def test_expired_universe_means_no_signals_until_a_valid_one_appears_within_the_bar(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="quantum_trader")

    async def expire(client: aredis.Redis, keys: Keys) -> None:
        doc = json.loads(await client.get(keys.universe_active))
        doc["valid_until"] = START - 1
        await client.set(keys.universe_active, json.dumps(doc))

    async with running(redis_url, make_profile(), before=expire) as w:
        async def said() -> bool:
            return bool(events(caplog, "AI_NO_UNIVERSE"))
        await w.wait_for(said)
        assert await w.signals() == []
        await publish_universe(w.client, w.keys, SYMBOLS[:3], now_ms=w.ctx.clock.now_ms())

        async def some() -> bool:
            return bool(await w.signals())
        await w.wait_for(some)
        sigs = await w.signals()
    first_bar = (START // TF) * TF  # close of the bar that had closed at start-up
    assert min(_bars(sigs)) == first_bar
    assert {s.symbol for s in _bars(sigs)[first_bar]} == set(SYMBOLS[:3])
