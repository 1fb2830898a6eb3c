"""The report: figures from trades and the equity path (pure), report.json, trades.csv, the summary.

Conventions (docs/backtest.md): money in USD; the capital base for returns and drawdown is
``gate.maxExposureUsd`` (the most the profile may have at risk); Sharpe and Sortino are annualised
(√365) from daily PnL over that base; every figure is after every cost (fees, spread, slippage,
funding); ``in_sample`` is true only when a model trained on the span was used (then every
output says IN-SAMPLE).
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import numpy as np

from quantum_trader.backtest.engine import Funnel, Result, Trade
from quantum_trader.router import core as router_core

TRADE_COLUMNS: Final = (
    "symbol", "side", "entry_ts", "exit_ts", "entry_price", "exit_price", "qty", "fees_usd", "funding_usd",
    "pnl_usd", "exit_reason", "confidence", "gross_pnl_usd", "spread_usd", "slippage_usd", "model_version",
    "intent_id",
)
CONFIDENCE_EDGES: Final = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0)
DAY_MS: Final = 86_400_000


@dataclass(frozen=True, slots=True)
class Context:
    """What the report says about the run besides its trades."""

    profile: str
    source: str
    start: int
    end: int
    in_sample: bool
    capital_usd: float
    models: list[dict[str, Any]]
    funding_source: str
    finest: str
    timings: dict[str, float]
    trainings: int
    universe_cycles: int
    signal_rows: int
    ai_skipped: dict[str, int]
    notes: list[str]


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _r(x: float, n: int = 6) -> float:
    return round(float(x), n) if math.isfinite(x) else 0.0


def daily_pnl(result: Result, *, start: int, end: int) -> np.ndarray:
    """Mark-to-market PnL per UTC day (realised net + change of unrealised)."""
    eq = result.record.equity
    if not eq:
        return np.zeros(0)
    ts = np.array([e[0] for e in eq], dtype=np.int64)
    val = np.array([e[1] + e[2] for e in eq])
    days = (ts - start) // DAY_MS
    n_days = max(1, int((end - start + DAY_MS - 1) // DAY_MS))
    last = np.full(n_days, np.nan)
    last[days.clip(0, n_days - 1)] = val  # later samples overwrite earlier: the day's last value
    filled = np.copy(last)
    prev = 0.0
    for i in range(n_days):
        if math.isnan(filled[i]):
            filled[i] = prev
        prev = filled[i]
    out: np.ndarray = np.diff(np.concatenate(([0.0], filled)))
    return out


def drawdown(equity: np.ndarray, capital: float) -> np.ndarray:
    """Drawdown in % of the capital base at each sample (≤ 0)."""
    level = capital + equity
    peak = np.maximum.accumulate(np.maximum(level, capital))
    out: np.ndarray = (level - peak) / capital * 100.0
    return out


def by_confidence(trades: Sequence[Trade]) -> list[dict[str, Any]]:
    out = []
    for lo, hi in itertools.pairwise(CONFIDENCE_EDGES):
        sel = [t for t in trades if lo <= t.confidence < hi or (hi == 1.0 and t.confidence == 1.0)]
        if not sel:
            continue
        wins = sum(1 for t in sel if t.pnl_usd > 0)
        out.append({"low": lo, "high": hi, "trades": len(sel), "hit_rate": _r(wins / len(sel), 4),
                    "net_pnl_usd": _r(sum(t.pnl_usd for t in sel))})
    return out


def trade_stats(trades: Sequence[Trade]) -> dict[str, Any]:
    """Net PnL, trades, hit rate, and the mean net return per trade in basis points of its entry notional
    with its t-statistic (mean / (sample sd / √n); 0 with fewer than two trades or no spread)."""
    bps = np.array([t.pnl_usd / (t.entry_price * t.qty) * 1e4 for t in trades if t.entry_price * t.qty > 0])
    mean = float(bps.mean()) if bps.size else 0.0
    sd = float(bps.std(ddof=1)) if bps.size > 1 else 0.0
    wins = sum(1 for t in trades if t.pnl_usd > 0)
    return {
        "net_pnl_usd": _r(sum(t.pnl_usd for t in trades)),
        "trades": len(trades),
        "hit_rate": _r(wins / len(trades), 4) if trades else 0.0,
        "net_bps_per_trade": _r(mean, 3),
        "t_stat": _r(mean / (sd / math.sqrt(bps.size)), 3) if sd > 0 else 0.0,
    }


HELD_VERDICTS: Final = {router_core.POSITION_RENEWED: "renewed", router_core.POSITION_REVERSED: "closed"}


def _held_text(held: dict[str, int] | None) -> str:
    if not held or not any(held.values()):
        return ""
    return f"; held positions renewed {held.get('renewed', 0)}, closed on a reversal {held.get('closed', 0)}"


def funnel_doc(f: Funnel, *, ai_rows: int, ai_skipped: dict[str, int]) -> dict[str, Any]:
    def stage(counter: Counter[str], passed: str) -> dict[str, Any]:
        drops = {k: v for k, v in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])) if k != passed}
        return {"passed": counter.get(passed, 0), "dropped": drops}

    would = [
        {"stage": s, "reason": r, "trades": int(v[0]), "net_pnl_usd": _r(v[1])}
        for (s, r), v in sorted(f.would.items())
    ]
    router = stage(f.router, "intent")
    # verdicts on held positions are acted on, not dropped: counted apart (renewed, closed on a reversal)
    router["held"] = {name: router["dropped"].pop(code, 0) for code, name in HELD_VERDICTS.items()}
    return {
        "ai": {"rows": ai_rows, "skipped": dict(sorted(ai_skipped.items())), "signals": dict(f.signals)},
        "router": router,
        "snapshot": {"allowlist_tier_per_step": dict(f.snapshot)},
        "gate": stage(f.gate, "EXECUTE"),
        "executor": stage(f.executor, "FILLED"),
        "exits": dict(sorted(f.exits.items())),
        "turned_away": would,
    }


def build_report(
    result: Result, ctx: Context, *, oracle: Result | None = None, counterfactual: Result | None = None,
    counterfactual_name: str = "",
) -> dict[str, Any]:
    trades = result.trades
    stats = trade_stats(trades)
    net = sum(t.pnl_usd for t in trades)
    gross = sum(t.gross_pnl_usd for t in trades)
    costs = {
        "fees": _r(sum(t.fees_usd for t in trades)),
        "spread": _r(sum(t.spread_usd for t in trades)),
        "slippage": _r(sum(t.slippage_usd for t in trades)),
        "funding": _r(sum(t.funding_usd for t in trades)),
    }
    daily = daily_pnl(result, start=ctx.start, end=ctx.end)
    cap = ctx.capital_usd
    sharpe = sortino = 0.0
    if daily.size > 1 and float(np.std(daily)) > 0:
        sharpe = float(np.mean(daily) / np.std(daily, ddof=1) * math.sqrt(365))
        down = daily[daily < 0]
        if down.size > 1:
            sortino = float(np.mean(daily) / math.sqrt(float(np.mean(np.minimum(daily, 0.0) ** 2))) * math.sqrt(365))
    eq = np.array([e[1] + e[2] for e in result.record.equity]) if result.record.equity else np.zeros(1)
    max_dd = float(-drawdown(eq, cap).min()) if eq.size else 0.0
    years = max(1e-9, (ctx.end - ctx.start) / (365 * DAY_MS))
    annual_pct = net / cap * 100.0 / years
    exposure = float(np.mean(np.array(result.record.open_count) > 0)) if result.record.open_count else 0.0
    wins = sum(1 for t in trades if t.pnl_usd > 0)
    per_symbol: dict[str, dict[str, Any]] = {}
    for t in trades:
        d = per_symbol.setdefault(t.symbol, {"trades": 0, "net_pnl_usd": 0.0})
        d["trades"] += 1
        d["net_pnl_usd"] += t.pnl_usd
    per_reason: dict[str, dict[str, Any]] = {}
    for t in trades:
        d = per_reason.setdefault(t.exit_reason, {"trades": 0, "net_pnl_usd": 0.0})
        d["trades"] += 1
        d["net_pnl_usd"] += t.pnl_usd
    doc: dict[str, Any] = {
        "net_pnl_usd": _r(net),
        "gross_pnl_usd": _r(gross),
        "costs_usd": costs,
        "trades": len(trades),
        "hit_rate": _r(wins / len(trades), 4) if trades else 0.0,
        "net_bps_per_trade": stats["net_bps_per_trade"],
        "t_stat": stats["t_stat"],
        "sharpe": _r(sharpe, 3),
        "max_drawdown_pct": _r(max_dd, 3),
        "in_sample": ctx.in_sample,
        "start": ctx.start,
        "end": ctx.end,
        "data_points": result.data_points,
        "seconds": ctx.timings.get("total", 0.0),
        "by_confidence": by_confidence(trades),
        "funnel": funnel_doc(result.funnel, ai_rows=ctx.signal_rows, ai_skipped=ctx.ai_skipped),
        "models": ctx.models,
        "sortino": _r(sortino, 3),
        "calmar": _r(annual_pct / max_dd, 3) if max_dd > 0 else 0.0,
        "annual_return_pct": _r(annual_pct, 3),
        "exposure": _r(exposure, 4),
        "avg_gross_exposure_usd": _r(float(np.mean(result.record.gross_exposure)) if result.record.gross_exposure
                                     else 0.0, 2),
        "capital_usd": cap,
        "by_symbol": {k: {"trades": v["trades"], "net_pnl_usd": _r(v["net_pnl_usd"])}
                      for k, v in sorted(per_symbol.items())},
        "by_exit_reason": {k: {"trades": v["trades"], "net_pnl_usd": _r(v["net_pnl_usd"])}
                           for k, v in sorted(per_reason.items())},
        "profile": ctx.profile,
        "source": ctx.source,
        "start_iso": _iso(ctx.start),
        "end_iso": _iso(ctx.end),
        "finest_timeframe": ctx.finest,
        "funding_source": ctx.funding_source,
        "symbols_read": result.symbols_read,
        "timings_seconds": ctx.timings,
        "trainings": ctx.trainings,
        "universe_cycles": ctx.universe_cycles,
        "notes": ctx.notes,
    }
    doc["counterfactual"] = None
    if counterfactual is not None:
        cf = trade_stats(counterfactual.trades)
        doc["counterfactual"] = {"name": counterfactual_name or "baseline", **cf,
                                 "model_minus_counterfactual_usd": _r(stats["net_pnl_usd"] - cf["net_pnl_usd"])}
    if oracle is not None:
        doc["oracle_net_pnl_usd"] = _r(sum(t.pnl_usd for t in oracle.trades))
        doc["oracle_trades"] = len(oracle.trades)
    return doc


def trades_csv(trades: Sequence[Trade]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(TRADE_COLUMNS)
    for t in trades:
        w.writerow([getattr(t, c) if not isinstance(getattr(t, c), float) else repr(getattr(t, c))
                    for c in TRADE_COLUMNS])
    return buf.getvalue()


def write(out: Path, report: dict[str, Any], trades: Sequence[Trade]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    (out / "trades.csv").write_text(trades_csv(trades), encoding="utf-8")


def _usd(x: float) -> str:
    return f"{x:+,.2f} USD"


def summary(report: dict[str, Any]) -> str:
    """The terminal summary."""
    flag = "IN-SAMPLE — not a fair estimate" if report["in_sample"] else "out of sample, after every cost"
    c = report["costs_usd"]
    lines = [
        f"qt backtest — profile {report['profile']} · {report['source']} · "
        f"{report['start_iso']} .. {report['end_iso']} · {flag}",
        f"net PnL {_usd(report['net_pnl_usd'])}   gross {_usd(report['gross_pnl_usd'])}   costs: fees "
        f"{c['fees']:.2f}, spread {c['spread']:.2f}, slippage {c['slippage']:.2f}, funding {c['funding']:.2f} "
        f"(funding {report['funding_source']})",
        f"trades {report['trades']}   hit rate {100 * report['hit_rate']:.1f} %   Sharpe {report['sharpe']:.2f}   "
        f"Sortino {report['sortino']:.2f}   Calmar {report['calmar']:.2f}   max drawdown "
        f"{report['max_drawdown_pct']:.2f} % of {report['capital_usd']:,.0f} USD   exposure "
        f"{100 * report['exposure']:.0f} % of the time",
    ]
    lines.append(f"net per trade {report['net_bps_per_trade']:+.2f} bps of notional (t = {report['t_stat']:.2f}, "
                 f"{report['trades']} trades)")
    cf = report.get("counterfactual")
    if cf:
        better = report["net_pnl_usd"] - cf["net_pnl_usd"]
        lines.append(
            f"best baseline instead of the model ({cf['name']}, recalibrated; same rules and costs): net "
            f"{_usd(cf['net_pnl_usd'])} over {cf['trades']} trades, hit rate {100 * cf['hit_rate']:.1f} %, "
            f"{cf['net_bps_per_trade']:+.2f} bps/trade (t = {cf['t_stat']:.2f}) — the model "
            + ("adds " if better > 0 else "loses ") + f"{abs(better):,.2f} USD after costs against it")
    if "oracle_net_pnl_usd" in report:
        lines.append(f"oracle (same rules, the sim's true probabilities): net {_usd(report['oracle_net_pnl_usd'])} "
                     f"over {report['oracle_trades']} trades")
    if report["by_confidence"]:
        lines.append("confidence     trades  hit rate   net PnL")
        for b in report["by_confidence"]:
            lines.append(f"{b['low']:.2f}-{b['high']:.2f}    {b['trades']:>7}  {100 * b['hit_rate']:>7.1f} %"
                         f"  {b['net_pnl_usd']:>+9.2f}")
    f = report["funnel"]
    lines.append(
        f"funnel: {f['ai']['rows']:,} ai rows → signals {f['ai']['signals']} → router {f['router']['passed']} "
        f"intents (dropped {f['router']['dropped']}{_held_text(f['router'].get('held'))}) → gate {f['gate']['passed']} EXECUTE (blocked "
        f"{f['gate']['dropped']}) → executor {f['executor']['passed']} filled (rejected {f['executor']['dropped']})"
    )
    away = [w for w in f["turned_away"] if w["trades"]]
    if away:
        lines.append("turned away, would have earned (net): " + ", ".join(
            f"{w['stage']}/{w['reason']} {w['trades']} trades {w['net_pnl_usd']:+.2f}" for w in away))
    lines.append("exits: " + ", ".join(f"{k} {v['trades']} ({v['net_pnl_usd']:+.2f})"
                                       for k, v in report["by_exit_reason"].items()))
    promoted = [m for m in report["models"] if m["promoted"]]
    lines.append(f"models: {len(report['models'])} trainings, {len(promoted)} promoted"
                 + (f" (first {promoted[0]['version']})" if promoted else " — signals came from the fallback")
                 + "".join(f"; refused: {r}" for r in sorted({r.split(":")[0] for m in report["models"]
                                                               for r in m["reasons"]})))
    tm = report["timings_seconds"]
    rate = tm.get("pipeline_points_per_s")
    lines.append(f"{report['data_points']:,} data points ({report['finest_timeframe']}) in {report['seconds']:.1f} s"
                 + (f" (decision pipeline {rate:,.0f}/s)" if rate else "") + ": "
                 + ", ".join(f"{k} {v:.1f} s" for k, v in tm.items() if k not in ("total", "pipeline_points_per_s")))
    for n in report["notes"]:
        lines.append(f"note: {n}")
    return "\n".join(lines)
