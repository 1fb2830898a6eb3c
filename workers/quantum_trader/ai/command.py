"""``qt train [--json]``: walk-forward training on the profile's exchange and an honest OOS report.

1. Pick the ``ai.trainSymbols`` most liquid trading USDT perpetuals (24h quote volume;
   pegged assets excluded) and fetch ``ai.historyBars`` closed bars of ``ai.timeframe``.
2. Build pooled rows, train walk-forward (:mod:`quantum_trader.ai.training`), report
   OOS AUC, log loss, Brier, ECE, hit rate per confidence bucket and — when the exchange
   exposes ``oracle_probability`` (the sim) — the share of the oracle's skill recovered.
   Beside the model, on the same rows: the naive baselines (:mod:`quantum_trader.ai.baselines`)
   with block-bootstrap intervals and the paired test of :mod:`quantum_trader.ai.scorecard`.
3. With a Redis URL — only one given explicitly (``REDIS_URL`` or ``--redis-url``; never a
   guessed one), named in the report — register the version (artefact + model card) and the
   fallback baseline, and promote the version if it passes the quality gate (it must beat the
   best baseline; :mod:`quantum_trader.ai.registry`). ``--force`` promotes despite the gate,
   loudly, and the card records it. Without a Redis URL: report only.

Progress goes to stderr; stdout carries the table, or one JSON document with ``--json``.
Exit 0 after a report (promoted or not); 1 with one line on stderr when training is impossible
(no data, too little history, Redis unreachable).

Retraining cadence: run this command every ``ai.retrainInterval`` (the operator renders a
Kubernetes CronJob running ``qt train --profile ...``); the ai worker hot-reloads the result.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, TextIO

import numpy as np
import numpy.typing as npt
from redis.exceptions import RedisError

from quantum_trader.ai.data import Aligned, align, fetch_klines, last_closed_open_ms
from quantum_trader.ai.dataset import Dataset, ExitRules, build_dataset, data_hash
from quantum_trader.ai.features import FEATURE_NAMES, WINDOW
from quantum_trader.ai.guards import lookahead_check
from quantum_trader.ai.training import TrainingError, TrainParams, TrainResult, train_walk_forward
from quantum_trader.core.clock import Clock, WallClock
from quantum_trader.core.costs import entry_costs, net_edge_bps
from quantum_trader.core.profile import AiSettings, TradingProfile
from quantum_trader.market.base import Exchange, ExchangeError

F64 = npt.NDArray[np.float64]

EXIT_OK: Final = 0
EXIT_FAIL: Final = 1
MIN_HISTORY_BARS: Final = WINDOW + 400


def _build_exchange(profile: TradingProfile, clock: Clock) -> Exchange:
    from quantum_trader.market.factory import build_exchange

    exchange: Exchange = build_exchange(profile.spec.exchange, clock=clock, environment=profile.spec.environment)
    return exchange


async def _training_symbols(exchange: Exchange, n: int) -> list[str]:
    markets = await exchange.markets()
    eligible = {
        m.symbol
        for m in markets
        if m.status == "TRADING" and m.contract == "perpetual" and m.quote == "USDT" and m.asset_class != "stable"
    }
    tickers = await exchange.tickers()
    ranked = sorted(
        (s for s in eligible if s in tickers), key=lambda s: (-tickers[s].quote_volume_24h, s)
    )
    return ranked[:n]


def version_for(now_ms: int, digest: str) -> str:
    return datetime.fromtimestamp(now_ms / 1000, tz=UTC).strftime("%Y%m%dT%H%M%SZ") + f"-{digest[:6]}"


def _say(msg: str, stream: TextIO) -> None:
    print(f"qt train: {msg}", file=stream, flush=True)


def redact(url: str) -> str:
    """The URL with any password replaced by ``***`` (safe to print)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


async def _train(
    profile: TradingProfile, *, redis_url: str | None, clock: Clock, err: TextIO, force: bool = False
) -> dict[str, Any]:
    """Read the history, train, then register into the given Redis (or say what the gate would do)."""
    ai = profile.spec.ai
    if ai.history_bars < MIN_HISTORY_BARS:
        raise TrainingError(f"ai.historyBars {ai.history_bars} is too short: the {WINDOW}-bar feature window "
                            f"leaves too few rows (need at least {MIN_HISTORY_BARS})")
    now = clock.now_ms()
    exchange = _build_exchange(profile, clock)
    try:
        aligned, oracle = await _history(exchange, ai, now_ms=now, err=err)
    finally:
        await exchange.close()
    run = _fit(profile, aligned=aligned, oracle=oracle, now_ms=now, err=err)
    card = model_card(profile, run=run, aligned=aligned, now_ms=now)
    out = train_summary(profile, run=run, aligned=aligned, redis_url=redis_url)
    if redis_url:
        await _register(profile, run=run, card=card, out=out, redis_url=redis_url, force=force, err=err)
    else:
        from quantum_trader.ai.training import quality_gate

        passed, reasons = quality_gate(run.result.report, ai)
        out["reasons"] = reasons
        out["would_promote"] = passed or (force and bool(reasons))
    return out


async def _history(exchange: Exchange, ai: AiSettings, *, now_ms: int, err: TextIO) -> tuple[Aligned, F64 | None]:
    """The training symbols' aligned bars up to the last closed bar, and the sim's oracle where it has one."""
    symbols = await _training_symbols(exchange, ai.train_symbols)
    if not symbols:
        raise TrainingError("the exchange lists no eligible USDT perpetuals")
    _say(f"fetching {ai.history_bars} × {ai.timeframe} bars for {len(symbols)} symbols", err)
    klines = await fetch_klines(exchange, symbols, timeframe=ai.timeframe, limit=ai.history_bars, end_ms=now_ms)
    aligned = align(klines, n_bars=ai.history_bars, last_open_ms=last_closed_open_ms(now_ms, ai.timeframe),
                    timeframe=ai.timeframe)
    if not aligned.symbols:
        raise TrainingError(f"no symbol has {ai.history_bars} clean bars ({dict(aligned.skipped)})")
    oracle = None
    oracle_fn = getattr(exchange, "oracle_probability", None)
    if callable(oracle_fn):
        try:
            oracle = np.vstack([
                np.asarray(oracle_fn(s, ai.timeframe, aligned.ts, ai.horizon_bars), dtype=np.float64)
                for s in aligned.symbols
            ])
        except (ValueError, ExchangeError) as exc:
            _say(f"oracle unavailable ({exc})", err)
    return aligned, oracle


@dataclass(frozen=True)
class _Run:
    """One training run: its inputs' identity and its result."""

    params: TrainParams
    exits: ExitRules
    ds: Dataset
    digest: str
    version: str
    result: TrainResult


def _fit(profile: TradingProfile, *, aligned: Aligned, oracle: F64 | None, now_ms: int, err: TextIO) -> _Run:
    """Dataset, look-ahead check, walk-forward training, and whether any row would reach the router."""
    ai = profile.spec.ai
    params = TrainParams.from_settings(ai)
    exits = ExitRules.from_settings(profile.spec.router, ai)
    ds = build_dataset(aligned.bars, ts=aligned.ts, symbols=aligned.symbols, horizons=params.horizons,
                       oracle=oracle, exits=exits)
    digest = data_hash(aligned.bars, ts=aligned.ts, symbols=aligned.symbols)
    version = version_for(now_ms, digest)
    _say(f"{ds.n} rows; training walk-forward (version {version})", err)
    _say("look-ahead check: features recomputed on truncated history", err)
    lookahead = lookahead_check(aligned.bars)
    result = train_walk_forward(ds, params=params, version=version, timeframe=ai.timeframe,
                                progress=lambda m: _say(m, err))
    result.report["guards"] = {"lookahead": lookahead}
    result.report["entry"] = entry_reach(result, ds=ds, profile=profile)
    if not result.report["entry"]["rows_positive_ev"]:
        _say(entry_warning(result.report["entry"]), err)
    return _Run(params=params, exits=exits, ds=ds, digest=digest, version=version, result=result)


def model_card(profile: TradingProfile, *, run: _Run, aligned: Aligned, now_ms: int) -> dict[str, Any]:
    """What the registry keeps beside the model: where it came from and how it scored."""
    report, ai = run.result.report, profile.spec.ai
    return {
        "version": run.version,
        "created_ms": now_ms,
        "created_at": datetime.fromtimestamp(now_ms / 1000, tz=UTC).isoformat(),
        "profile": profile.name,
        "exchange": profile.spec.exchange.name,
        "timeframe": ai.timeframe,
        "horizons": list(run.params.horizons),
        "primary_horizon": run.params.primary,
        "features": list(FEATURE_NAMES),
        "training_window": {
            "start_ts": int(aligned.ts[0]),
            "end_ts": int(aligned.ts[-1]),
            "bars": int(aligned.ts.shape[0]),
            "symbols": list(aligned.symbols),
        },
        "params": _params_dict(run.params),
        "exits": {"stop_atr": run.exits.stop_atr, "take_atr": run.exits.take_atr, "horizon_bars": run.exits.horizon},
        "exit_sizes": report.get("exit_sizes"),  # OOS win/loss (ATRs) and holding time under those exits
        "oos": {k: v for k, v in report.items() if k != "folds"},
        "folds": report.get("folds", []),
        "data_hash": run.digest,
    }


def train_summary(profile: TradingProfile, *, run: _Run, aligned: Aligned, redis_url: str | None) -> dict[str, Any]:
    """``qt train --json`` before registration (registered/promoted/reasons filled in after)."""
    report = run.result.report
    return {
        "profile": profile.name,
        "exchange": profile.spec.exchange.name,
        "version": run.version,
        "data_hash": run.digest,
        "timeframe": profile.spec.ai.timeframe,
        "symbols": list(aligned.symbols),
        "skipped": dict(aligned.skipped),
        "report": report,
        "model": report["model"],
        "baselines": report["baselines"],
        "vs_baseline": report["vs_baseline"],
        "fallback": report["fallback"],
        "redis": redact(redis_url) if redis_url else None,
        "registered": False,
        "promoted": False,
        "reasons": [],
    }


async def _register(
    profile: TradingProfile, *, run: _Run, card: dict[str, Any], out: dict[str, Any], redis_url: str, force: bool,
    err: TextIO,
) -> None:
    """Register (and promote where the gate says so) into the Redis the user named; ``out`` gets the verdict."""
    from quantum_trader.ai import registry
    from quantum_trader.core.service import redis_client

    ds, version = run.ds, run.version
    client = redis_client(redis_url)
    try:
        probe = ds.x[np.linspace(0, ds.n - 1, min(256, ds.n)).astype(int)]
        reg = await registry.register(client, profile.keys, bundle=run.result.bundle, card=card,
                                      report=run.result.report, ai=profile.spec.ai, probe=probe,
                                      fallback=run.result.fallback, force=force)
    finally:
        await client.aclose()
    out.update(registered=True, promoted=reg.promoted, reasons=list(reg.reasons),
               forced=bool(reg.card.get("forced")), artifact_sha256=reg.card["artifact_sha256"])
    if out["forced"]:
        _say(f"--force: PROMOTING version {version} DESPITE the quality gate: {'; '.join(reg.reasons)} "
             "(recorded in its model card)", err)
    _say(f"registry {redact(redis_url)} (profile {profile.name}): version {version} "
         f"{'PROMOTED' if reg.promoted else 'REJECTED'}"
         + (f" ({'; '.join(reg.reasons)})" if reg.reasons else ""), err)


def entry_reach(result: TrainResult, *, ds: Dataset, profile: TradingProfile) -> dict[str, Any]:
    """How many out-of-sample rows the router would take: those whose confidence reaches
    ``router.minConfidence`` (the guard), and of those the ones whose expected net return under the
    router's entry rule is positive — the model's measured win/loss sizes (else the SL/TP distances)
    × the row's ATR, minus the profile's round-trip costs (funding left out: it needs the venue's rates)."""
    router = profile.spec.router
    p = result.oos_p_up[result.oos_mask]
    conf = np.maximum(p, 1.0 - p)
    guard = conf >= router.min_confidence
    sizes = result.bundle.exit_sizes
    win_atr, loss_atr = (sizes.win_atr, sizes.loss_atr) if sizes else (router.take_profit_atr, router.stop_loss_atr)
    atr_bps = ds.x[result.oos_mask, FEATURE_NAMES.index("atr_pct")] * 10_000.0
    costs = entry_costs(executor=profile.spec.executor, universe=profile.spec.universe)
    ev = net_edge_bps(conf, win_bps=win_atr * atr_bps, loss_bps=loss_atr * atr_bps, cost_bps=costs.round_trip_bps)
    positive = guard & (ev > 0.0)
    n, n_ev = int(np.count_nonzero(guard)), int(np.count_nonzero(positive))
    return {"min_confidence": router.min_confidence, "rows_reaching": n, "share": round(n / max(1, conf.shape[0]), 5),
            "max_confidence": round(float(conf.max()), 4) if conf.size else None,
            "rows_positive_ev": n_ev, "share_positive_ev": round(n_ev / max(1, conf.shape[0]), 5),
            "cost_bps": costs.round_trip_bps, "sizes": "model" if sizes else "sl_tp"}


def entry_warning(entry: dict[str, Any]) -> str:
    if not entry["rows_reaching"]:
        return (f"WARNING: no out-of-sample row reaches router.minConfidence {entry['min_confidence']} "
                f"(highest {entry['max_confidence']}): with this model promoted the router accepts no signal")
    return (f"WARNING: {entry['rows_reaching']:,} out-of-sample rows reach router.minConfidence "
            f"{entry['min_confidence']} but none has a positive expected value after {entry['cost_bps']:g} bps "
            "of round-trip costs: with this model promoted the router would drop every signal as negative_edge")


def _params_dict(params: TrainParams) -> dict[str, Any]:
    from dataclasses import asdict

    d = asdict(params)
    d["purge_bars"] = params.purge_bars
    d["embargo_bars"] = params.embargo_bars
    d["lightgbm"] = params.lgb_params()
    return d


def _pct(v: Any) -> str:
    return "n/a" if v is None else f"{100 * float(v):.0f} %"


def render_table(doc: dict[str, Any]) -> str:
    """``qt train``'s human report: the run, out-of-sample metrics, baselines, calibration, meta-label, verdict."""
    r = doc["report"]
    return "\n".join([
        *_run_lines(doc), "",
        *_oos_lines(r), "",
        *baseline_table(doc), "",
        *_bucket_lines(r), "",
        *_model_lines(r),
        f"training time {r['train_seconds']:.1f} s; data hash {doc['data_hash']}",
        *_registry_lines(doc),
    ])


def _run_lines(doc: dict[str, Any]) -> list[str]:
    """What was trained: profile, data, horizon and the walk-forward split."""
    r = doc["report"]
    return [
        f"qt train — profile {doc['profile']} · exchange {doc['exchange']} · {doc['timeframe']} · "
        f"H={r['horizon_bars']} bars · {r['symbols']} symbols · version {doc['version']}",
        f"walk-forward: {r['n_blocks']} time blocks, purge {r['purge_bars']} + embargo {r['embargo_bars']} bars "
        f"before each test block; {r['rows']:,} rows, {r['oos_rows']:,} out-of-sample "
        f"({_day(r['oos_window_ts'][0])} .. {_day(r['oos_window_ts'][1])})",
    ]


def _oos_lines(r: dict[str, Any]) -> list[str]:
    """The model's out-of-sample metrics, beside the oracle's when the market has one."""
    o = r.get("oracle")
    lines = [
        f"{'out-of-sample':<22}{'model':>10}{'oracle' if o else '':>10}",
        f"{'AUC':<22}{r['auc']:>10.4f}{o['auc'] if o else '':>10}",
        f"{'log loss':<22}{r['log_loss']:>10.4f}{o['log_loss'] if o else '':>10}"
        f"   (constant {r['log_loss_constant']:.4f})",
        f"{'Brier':<22}{r['brier']:>10.4f}",
        f"{'ECE (10 quantile bins)':<22}{r['ece']:>10.4f}{o['ece'] if o else '':>10}",
        f"{'hit rate':<22}{r['hit_rate']:>10.4f}",
        f"{'signals (≥ holdBelow)':<22}{_pct(r['signal_share']):>10}",
    ]
    if o:
        lines.append(
            f"skill vs oracle: AUC {_pct(o['auc_skill_share'])} of the oracle's (AUC − 0.5), "
            f"log loss {_pct(o['log_loss_skill_share'])} of its improvement over a constant"
        )
    return lines


def _bucket_lines(r: dict[str, Any]) -> list[str]:
    """Calibration: hit rate against mean confidence per confidence bucket (empty buckets left out)."""
    lines = [f"{'confidence':<14}{'rows':>8}{'hit rate':>10}{'mean conf':>11}"]
    for b in r["buckets"]:
        if b["count"]:
            lines.append(f"{b['lo']:.2f}-{b['hi']:.2f}{'':<5}{b['count']:>8}{b['hit_rate']:>10.3f}"
                         f"{b['mean_confidence']:>11.3f}")
    return lines


def _model_lines(r: dict[str, Any]) -> list[str]:
    """Meta-label, base models, folds, importance, stacking, entry, exit sizes and the look-ahead guard."""
    m = r["metalabel"]
    return [
        f"meta-label (rl_gate_pass): AUC {m['auc']}, pass rate {_pct(m['pass_rate'])}, "
        f"profitable after {m['cost_bps']} bps ({m.get('exits', 'held H bars')}): "
        f"{_pct(m['profitable_rate_pass'])} when pass vs {_pct(m['profitable_rate_fail'])} when not",
        f"meta-label filter {'ON' if m.get('filter') else 'off'}: OOS net per signal after {m['cost_bps']} bps fees "
        f"(no spread/slippage/funding) {m.get('net_bps_signals')} bps (all {m.get('signals')} signals) vs "
        f"{m.get('net_bps_passing')} bps when passing",
        "base models AUC (own horizon): " + ", ".join(f"h={h} {a}" for h, a in r["base_models"].items()),
        "folds: " + ", ".join(f"#{f['fold']} auc {f.get('auc', '-')}" for f in r["folds"]),
        *_importance_lines(r.get("importance", [])),
        _stacking_line(r.get("stacking")),
        _entry_line(r.get("entry")),
        _sizes_line(r.get("exit_sizes")),
        _guard_line(r.get("guards", {}).get("lookahead")),
    ]


def _registry_lines(doc: dict[str, Any]) -> list[str]:
    """The symbols left out, and what the registry did with the version (or would have done)."""
    lines = []
    if doc["skipped"]:
        lines.append("skipped symbols: " + ", ".join(f"{s} ({why})" for s, why in doc["skipped"].items()))
    if doc["registered"]:
        verdict = "PROMOTED" if doc["promoted"] else "REJECTED: " + "; ".join(doc["reasons"])
        if doc.get("forced"):
            verdict = "PROMOTED BY --force DESPITE: " + "; ".join(doc["reasons"])
        lines.append(f"registry {doc['redis']}: version {doc['version']} {verdict}")
    else:
        verdict = "would pass" if doc.get("would_promote") else "would fail: " + "; ".join(doc["reasons"])
        lines.append(f"registry: not registered (no Redis URL); quality gate {verdict}")
    return lines


def _ci(v: list[float], nd: int) -> str:
    return f"{v[0]:.{nd}f}-{v[1]:.{nd}f}"


def baseline_table(doc: dict[str, Any]) -> list[str]:
    """The model and every baseline on the same out-of-sample rows, with 95 % intervals."""
    c = doc["vs_baseline"]
    head = (f"{'model vs baselines':<20}{'AUC':>8}{'95 % CI':>15}{'log loss':>10}{'95 % CI':>17}"
            f"{'Brier':>8}{'p(model better)':>17}")
    rows = [head]
    for e in [doc["model"], *doc["baselines"]]:
        mark = " *" if e["name"] == c["best_baseline"] else ""
        p = e.get("p_model_better")
        rows.append(f"{e['name'] + mark:<20}{e['auc']:>8.4f}{_ci(e['auc_ci'], 4):>15}{e['log_loss']:>10.4f}"
                    f"{_ci(e['log_loss_ci'], 4):>17}{e['brier']:>8.4f}{'' if p is None else f'{p:.3f}':>17}")
    verdict = "BEATS" if c["better"] else "does NOT beat"
    rows.append(f"(* best baseline) the model {verdict} {c['best_baseline']}: log loss {c['model_log_loss']:.4f} vs "
                f"{c['baseline_log_loss']:.4f}, p={c['p_value']:.3f} ({c['test']}; needs p < {c['alpha']})")
    fb = doc.get("fallback")
    if fb:
        rows.append(f"fallback while nothing is promoted: baseline {fb['name']}, recalibrated on its own "
                    "out-of-sample record")
    return rows


def _entry_line(entry: dict[str, Any] | None) -> str:
    if not entry:
        return "entry: n/a"
    if not entry.get("rows_positive_ev", entry["rows_reaching"]):
        return entry_warning(entry)
    line = (f"entry: {entry['rows_reaching']:,} out-of-sample rows ({100 * float(entry['share']):.2f} %) reach "
            f"router.minConfidence {entry['min_confidence']} (highest {entry['max_confidence']})")
    if "rows_positive_ev" in entry:  # reports written before the count existed have only the guard's
        line += (f"; {entry['rows_positive_ev']:,} ({100 * float(entry['share_positive_ev']):.2f} %) have a positive "
                 f"expected value after {entry['cost_bps']:g} bps of costs")
    return line


def _sizes_line(sizes: dict[str, Any] | None) -> str:
    if not sizes:
        return "exit sizes: not measured (too few out-of-sample signals); the router uses the SL/TP distances"
    return (f"exit sizes (out of sample, stop/take-profit/time exits, {sizes['rows']:,} signals): "
            f"win {sizes['win_atr']:.2f} ATR when the label came true ({100 * float(sizes['win_rate']):.1f} %, "
            f"mean confidence {float(sizes['mean_p']):.3f}), loss {sizes['loss_atr']:.2f} ATR otherwise, "
            f"held {float(sizes['hold_s']) / 60:.0f} min on average; signals carry them to the router")


def _stacking_line(st: dict[str, Any] | None) -> str:
    if not st:
        return "stacking: n/a"
    verdict = "kept" if st["kept"] else "dropped (the primary base model alone is as good)"
    return f"stacking {verdict}: OOS log loss stack {st['stack_log_loss']:.4f} vs primary alone {st['single_log_loss']:.4f}"


def _guard_line(look: dict[str, Any] | None) -> str:
    if not look:
        return "look-ahead check: not run"
    found = ", ".join(look["leaking"]) or "none"
    return f"look-ahead check at {len(look['bars_checked'])} bars (features on truncated history): leaks {found}"


def _importance_lines(imp: list[dict[str, Any]]) -> list[str]:
    if not imp:
        return []
    top = ", ".join(f"{d['feature']} {d['log_loss_increase'] * 1000:+.2f}" for d in imp[:6])
    return [f"permutation importance (OOS log loss increase, millinats): {top}"]


def _day(ts: int) -> str:
    return datetime.fromtimestamp(ts / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")


def run(
    profile: TradingProfile,
    *,
    as_json: bool,
    redis_url: str | None,
    force: bool = False,
    clock: Clock | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Train, report, register. Returns the exit code (0 after a report)."""
    stdout = out or sys.stdout
    stderr = err or sys.stderr
    started = time.perf_counter()
    try:
        doc = asyncio.run(_train(profile, redis_url=redis_url, clock=clock or WallClock(), err=stderr, force=force))
    except TrainingError as exc:
        print(f"qt train: cannot train: {exc}", file=stderr)
        return EXIT_FAIL
    except ExchangeError as exc:
        print(f"qt train: exchange error: {exc}", file=stderr)
        return EXIT_FAIL
    except (ConnectionError, OSError, RedisError) as exc:
        print(f"qt train: {type(exc).__name__}: {exc}", file=stderr)
        return EXIT_FAIL
    doc["elapsed_seconds"] = round(time.perf_counter() - started, 2)
    if as_json:
        print(json.dumps(doc, separators=(",", ":"), default=str), file=stdout)
    else:
        print(render_table(doc), file=stdout)
    return EXIT_OK
