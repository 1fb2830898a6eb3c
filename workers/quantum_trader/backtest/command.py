"""``qt backtest``: load the data once, run the passes, write the report (the I/O edge).

Passes, in order (each timed): load → universe cycles → walk-forward trainings → signals
(features + inference for every bar close) → the trading loop → report and plots.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gc
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, ParamSpec, TextIO, TypeVar

from quantum_trader.ai.features import WINDOW
from quantum_trader.backtest import report as rep
from quantum_trader.backtest.data import MarketData, load_replay, load_sim, replay_range
from quantum_trader.backtest.engine import Engine, Result
from quantum_trader.backtest.history import (
    ModelSlot,
    UniverseEvent,
    train_walk_forward_models,
    universe_schedule,
)
from quantum_trader.backtest.signals import SignalPlan, decision_times, plan_signals
from quantum_trader.core.profile import TradingProfile, parse_duration
from quantum_trader.market.base import TIMEFRAME_MS, ExchangeError

P = ParamSpec("P")
R = TypeVar("R")
EXIT_OK: Final = 0
EXIT_FAIL: Final = 1
DAY_MS: Final = 86_400_000
DEFAULT_SIM_DAYS: Final = 30


class BacktestError(Exception):
    """Bad input or an impossible run: one line on stderr, exit 1."""


def parse_time(text: str, *, flag: str) -> int:
    """ISO date/datetime (UTC unless an offset is given) or epoch ms → epoch ms."""
    t = text.strip()
    if t.isdigit():
        return int(t)
    try:
        dt = datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        raise BacktestError(f"{flag} {text!r}: expected an ISO date or datetime in UTC, e.g. 2024-03-01 "
                            "or 2024-03-01T12:00") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


def warmup_ms(profile: TradingProfile) -> int:
    """History needed before the first decision: universe bars and one training window (plus a day)."""
    spec = profile.spec
    uni = spec.universe.bars * max(TIMEFRAME_MS[tf] for tf in spec.universe.timeframes)
    train = (spec.ai.history_bars + WINDOW) * TIMEFRAME_MS[spec.ai.timeframe]
    return max(uni, train) + DAY_MS


class Progress:
    """A one-line progress bar on stderr when it is a terminal; otherwise (``lines``) a plain line per
    stage every 10 %, so a log shows how far a long run got."""

    def __init__(self, stream: TextIO, *, enabled: bool, lines: bool = False) -> None:
        self.stream = stream
        self.enabled = enabled
        self.lines = lines
        self.tenth = -1
        self.stage = ""
        self.total = 0
        self.done = 0
        self.started = time.perf_counter()
        self.last = 0.0
        self.extra = ""

    def begin(self, stage: str, total: int) -> None:
        self.stage, self.total, self.done, self.started = stage, max(1, total), 0, time.perf_counter()
        self.tenth = -1
        self.draw(force=True)

    def step(self, n: int = 1, extra: str = "") -> None:
        self.done += n
        if extra:
            self.extra = extra
        self.draw()

    def draw(self, *, force: bool = False) -> None:
        if self.lines and not self.enabled:
            tenth = int(10 * min(1.0, self.done / self.total))
            if tenth != self.tenth:
                self.tenth = tenth
                self.stream.write(f"qt backtest: {self.stage} {10 * tenth} % ({self.done:,}/{self.total:,}, "
                                  f"{time.perf_counter() - self.started:.0f} s)\n")
                self.stream.flush()
            return
        if not self.enabled:
            return
        now = time.perf_counter()
        if not force and now - self.last < 0.2 and self.done < self.total:
            return
        self.last = now
        frac = min(1.0, self.done / self.total)
        width = 28
        bar = "█" * int(frac * width) + "░" * (width - int(frac * width))
        elapsed = now - self.started
        eta = elapsed / frac - elapsed if frac > 0 else 0.0
        self.stream.write(f"\r{self.stage:<10} {bar} {100 * frac:5.1f} % {self.done:,}/{self.total:,} "
                          f"{elapsed:6.1f} s eta {eta:5.1f} s {self.extra:<30}")
        self.stream.flush()

    def end(self) -> None:
        if self.enabled:
            self.stream.write("\r" + " " * 110 + "\r")
            self.stream.flush()


@dataclass
class Run:
    """Everything one backtest produced (for the report, the parity test and the benchmark)."""

    data: MarketData
    start: int
    end: int
    universe: list[UniverseEvent]
    models: list[ModelSlot]
    plan: SignalPlan
    result: Result
    oracle: Result | None
    timings: dict[str, float]
    in_sample: bool
    notes: list[str]
    counterfactual: Result | None = None  # the same rules driven by the best baseline's probabilities
    counterfactual_name: str = ""


def _span(profile: TradingProfile, args: argparse.Namespace, *, wall_ms: int) -> tuple[int, int]:
    spec = profile.spec
    start = parse_time(args.start, flag="--start") if args.start else None
    end = parse_time(args.end, flag="--end") if args.end else None
    if spec.exchange.name == "replay":
        first, last = replay_range(spec.exchange)
        end = last if end is None else min(end, last)
        if start is None:
            start = first + warmup_ms(profile)
            if start >= end:
                raise BacktestError(
                    f"the replay data ({rep._iso(first)} .. {rep._iso(last)}) is shorter than the warm-up the "
                    f"profile needs before its first decision ({warmup_ms(profile) / DAY_MS:.0f} days: "
                    "spec.ai.historyBars and spec.universe.bars); pass --start to accept less history")
    else:
        if end is None:
            end = wall_ms // DAY_MS * DAY_MS
        if start is None:
            start = end - DEFAULT_SIM_DAYS * DAY_MS
    if start >= end:
        raise BacktestError(f"--start {rep._iso(start)} is not before --end {rep._iso(end)}")
    return start, end


def load(profile: TradingProfile, *, start: int, end: int, symbols: list[str] | None) -> MarketData:
    spec = profile.spec
    if spec.exchange.name == "sim":
        return load_sim(spec.exchange, start_ms=start, end_ms=end, warmup_ms=warmup_ms(profile), symbols=symbols)
    if spec.exchange.name == "replay":
        return load_replay(spec.exchange, symbols=symbols)
    raise BacktestError(f"backtests run on the sim or on replay files, not on {spec.exchange.name} "
                        "(download history into replay files first)")


def without_cyclic_gc(fn: Callable[P, R]) -> Callable[P, R]:
    """Run ``fn`` with the cyclic garbage collector paused (reference counting still frees everything
    acyclic). A backtest allocates millions of short-lived objects that form no cycles — decisions,
    signals, intents — while the plan it keeps grows to hundreds of thousands; each collector pass
    walks all of them and frees nothing: ~10 % of the decision pipeline's time. Cycles made meanwhile
    are collected when the collector resumes."""

    @functools.wraps(fn)
    def paused(*args: P.args, **kwargs: P.kwargs) -> R:
        was = gc.isenabled()
        gc.disable()
        try:
            return fn(*args, **kwargs)
        finally:
            if was:
                gc.enable()

    return paused


@without_cyclic_gc
def execute(
    profile: TradingProfile, *, start: int, end: int, data: MarketData, retrain_s: float, models: list[ModelSlot] | None,
    in_sample: bool, progress: Progress, oracle: bool, paper_fills: bool = False, counterfactual: bool = True,
    jobs: int = 1,
) -> Run:
    spec = profile.spec
    timings: dict[str, float] = {}
    notes: list[str] = []
    t0 = time.perf_counter()
    n_cycles = len(range(start, end, max(1, int(spec.universe.refresh_interval * 1000))))
    progress.begin("universe", n_cycles)
    universe = asyncio.run(universe_schedule(data, spec=spec, start_ms=start, end_ms=end,
                                             tick=lambda _: progress.step()))
    timings["universe"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    if models is None:
        n_train = len(range(start, end, max(1, int(retrain_s * 1000))))
        progress.begin("training", n_train)
        models = train_walk_forward_models(data, spec=spec, start_ms=start, end_ms=end, every_s=retrain_s,
                                           jobs=jobs, tick=lambda _: progress.step())
    timings["training"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    steps = decision_times(start_ms=start, end_ms=end, timeframe=spec.ai.timeframe)
    plan = plan_signals(data, ai=spec.ai, steps=steps, universe=universe, models=models,
                        stop_atr=spec.router.stop_loss_atr)
    timings["signals"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    progress.begin("trading", len(steps))
    engine = Engine(data, spec=spec, universe=universe, end_ms=end, paper_fills=paper_fills)
    result = engine.run(plan, tick=lambda _: progress.step(extra=f"{len(engine.trades)} trades"))
    timings["trading"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    engine.price_turned_away()
    timings["turned_away"] = time.perf_counter() - t0
    oracle_result: Result | None = None
    if oracle and data.oracle is not None and TIMEFRAME_MS[spec.ai.timeframe] >= 900_000:
        t0 = time.perf_counter()
        oplan = plan_signals(data, ai=spec.ai, steps=steps, universe=universe, models=models,
                             stop_atr=spec.router.stop_loss_atr, oracle=True)
        progress.begin("oracle", len(steps))
        oracle_result = Engine(data, spec=spec, universe=universe, end_ms=end, counterfactuals=False,
                               paper_fills=paper_fills).run(
            oplan, tick=lambda _: progress.step())
        timings["oracle"] = time.perf_counter() - t0
    cf_result, cf_name = None, ""
    if counterfactual and any(m.fallback is not None for m in models):
        t0 = time.perf_counter()
        bplan = plan_signals(data, ai=spec.ai, steps=steps, universe=universe, models=models,
                             stop_atr=spec.router.stop_loss_atr, baseline=True)
        progress.begin("baseline", len(steps))
        cf_result = Engine(data, spec=spec, universe=universe, end_ms=end, counterfactuals=False,
                           paper_fills=paper_fills).run(bplan, tick=lambda _: progress.step())
        cf_name = counterfactual_name(bplan.by_model)
        timings["counterfactual"] = time.perf_counter() - t0
        if bplan.skipped.get("no_baseline_yet"):
            notes.append(f"counterfactual: {bplan.skipped['no_baseline_yet']:,} signal rows before the first "
                         "training had no baseline and were left out")
    elif counterfactual:
        notes.append("counterfactual: no training left a baseline (nothing to compare the model with)")
    progress.end()
    if plan.fallback_steps:
        notes.append(f"{plan.fallback_steps} of {len(steps)} decision times had no promoted model: their signals "
                     "came from the fallback (the latest training's best baseline, else the trend rule; "
                     "spec.ai.allowFallback)")
    if any(tf != "1m" for tf in data.finest.values()):
        notes.append("no 1m bars: stops and take-profits were checked on the lows/highs of coarser bars")
    if paper_fills:
        notes.append("--fills paper: filled at the mark across half of universe.spreadBps, as the live paper venue "
                     "(optimistic: no move between decision and fill)")
    if data.funding_source == "assumed":
        notes.append("funding assumed: 0.01 % per 8 h paid by longs (no <SYMBOL>_funding.csv)")
    return Run(data, start, end, universe, models, plan, result, oracle_result, timings, in_sample, notes,
               counterfactual=cf_result, counterfactual_name=cf_name)


def counterfactual_name(rows_per_model: Counter[str]) -> str:
    """``reversal`` when one baseline served every row, else ``reversal 70 %, linear 30 %`` (by rows)."""
    names = Counter({k.removeprefix("fallback-"): v for k, v in rows_per_model.items() if v})
    total = sum(names.values())
    if not total:
        return ""
    if len(names) == 1:
        return next(iter(names))
    return ", ".join(f"{n} {100 * v / total:.0f} %" for n, v in names.most_common())


@contextlib.contextmanager
def registry_url(profile: TradingProfile, url: str | None) -> Iterator[str]:
    """Where ``--model promoted`` reads the registry: ``url`` (``REDIS_URL`` or a running ``qt run`` of the
    profile), else the state ``qt run`` kept in the profile's data folder (read on an embedded Redis
    started on it for the moment)."""
    if url:
        yield url
        return
    from quantum_trader import runstate
    from quantum_trader.core.embedded import EmbeddedRedisError

    try:
        with runstate.kept_redis(profile.name) as kept:
            if kept is None:
                raise BacktestError(
                    f"--model promoted reads the model registry: set REDIS_URL, or start `qt run --profile ...` for "
                    f"profile {profile.name!r} (no state kept in {runstate.data_dir_for(profile.name)})")
            yield kept
    except (runstate.DataDirBusy, EmbeddedRedisError) as exc:
        raise BacktestError(str(exc)) from None


def _promoted_model(
    profile: TradingProfile, *, start: int, allow_in_sample: bool, url: str | None = None
) -> tuple[list[ModelSlot], bool]:
    """The registry's promoted model, refused when its training window reaches into the span."""
    with registry_url(profile, url) as found:
        return _read_promoted(profile, url=found, start=start, allow_in_sample=allow_in_sample)


def _read_promoted(profile: TradingProfile, *, url: str, start: int, allow_in_sample: bool) -> tuple[list[ModelSlot], bool]:
    from quantum_trader.ai import registry
    from quantum_trader.ai.model import ArtifactError
    from quantum_trader.core.service import redis_client

    async def read() -> tuple[Any, dict[str, Any], Any]:
        client = redis_client(url)
        try:
            version = await registry.promoted_version(client, profile.keys)
            if version is None:
                raise BacktestError(f"no promoted model for profile {profile.name}")
            bundle, card = await registry.load_version(client, profile.keys, version)
            try:
                fallback = await registry.load_fallback(client, profile.keys)
            except ArtifactError:
                fallback = None
            return bundle, card, fallback
        finally:
            await client.aclose()

    bundle, card, fallback = asyncio.run(read())
    window = card.get("training_window", {})
    t_start, t_end = int(window.get("start_ts", 0)), int(window.get("end_ts", 0))
    in_sample = t_end > start  # the last training bar closed after the first decision
    if in_sample and not allow_in_sample:
        raise BacktestError(
            f"the promoted model {bundle.version} was trained on data up to {rep._iso(t_end)}, which overlaps the "
            f"backtest from {rep._iso(start)}: refused (in-sample); use the default walk-forward training, a later "
            "--start, or --allow-in-sample to run it anyway (the report then says IN-SAMPLE)")
    # the counterfactual baseline only from the same training run (same window): a later run's could be in-sample
    baseline = fallback[0] if fallback is not None and fallback[1] == bundle.version else None
    slot = ModelSlot(version=bundle.version, active_from=0, train_start=t_start, train_end=t_end, bundle=bundle,
                     promoted=True, reasons=(), seconds=0.0, fallback=baseline)
    return [slot], in_sample


def run(args: argparse.Namespace, *, profile: TradingProfile, out: TextIO | None = None,
        err: TextIO | None = None, redis_url: str | None = None) -> int:
    stdout, stderr = out or sys.stdout, err or sys.stderr
    started = time.perf_counter()
    try:
        start, end = _span(profile, args, wall_ms=int(time.time() * 1000))
        retrain_s = parse_duration(args.retrain) if args.retrain else profile.spec.ai.retrain_interval
        if retrain_s <= 0:
            raise BacktestError("--retrain must be > 0")
        if args.jobs < 0:
            raise BacktestError(f"--jobs must be >= 0 (got {args.jobs}; 0: one per CPU)")
        symbols = [s.strip().upper() for s in args.symbols.split(",") if s.strip()] if args.symbols else None
        t0 = time.perf_counter()
        data = load(profile, start=start, end=end, symbols=symbols)
        models: list[ModelSlot] | None = None
        in_sample = False
        if args.model == "promoted":
            models, in_sample = _promoted_model(profile, start=start, allow_in_sample=args.allow_in_sample,
                                                url=redis_url)
        load_s = time.perf_counter() - t0
        progress = Progress(stderr, enabled=stderr.isatty() and not args.json, lines=not args.json)
        r = execute(profile, start=start, end=end, data=data, retrain_s=retrain_s, models=models,
                    in_sample=in_sample, progress=progress, oracle=not args.no_oracle,
                    paper_fills=args.fills == "paper", jobs=args.jobs or os.cpu_count() or 1)
    except (BacktestError, ExchangeError, ValueError) as exc:
        print(f"qt backtest: {exc}", file=stderr)
        return EXIT_FAIL
    r.timings["load"] = load_s
    r.timings["total"] = time.perf_counter() - started
    doc = report_of(profile, r)
    folder = Path(args.out or f"backtest-{profile.name}")
    rep.write(folder, doc, r.result.trades)
    if not args.no_plots:
        from quantum_trader.backtest import plots

        plots.write_all(folder, doc, r)
    if args.json:
        print(json.dumps(doc, separators=(",", ":")), file=stdout)
    else:
        print(rep.summary(doc), file=stdout)
        print(f"written: {folder}/report.json, trades.csv" + ("" if args.no_plots else ", *.png, report.html"),
              file=stdout)
    return EXIT_OK


def report_of(profile: TradingProfile, r: Run) -> dict[str, Any]:
    spec = profile.spec
    finest = sorted({tf for tf in r.data.finest.values()}, key=lambda tf: TIMEFRAME_MS[tf])
    timings = {k: round(v, 3) for k, v in r.timings.items()}
    pipeline = r.timings.get("signals", 0.0) + r.timings.get("trading", 0.0)
    if pipeline > 0:
        timings["pipeline_points_per_s"] = round(r.result.data_points / pipeline, 1)
    ctx = rep.Context(
        profile=profile.name, source=r.data.source, start=r.start, end=r.end, in_sample=r.in_sample,
        capital_usd=spec.gate.max_exposure_usd, models=[m.summary() for m in r.models],
        funding_source=r.data.funding_source, finest=",".join(finest) or "-", timings=timings,
        trainings=len(r.models), universe_cycles=len(r.universe), signal_rows=r.plan.rows,
        ai_skipped=dict(r.plan.skipped), notes=r.notes,
    )
    return rep.build_report(r.result, ctx, oracle=r.oracle, counterfactual=r.counterfactual,
                            counterfactual_name=r.counterfactual_name)
