"""How ``qt`` shows operations results: rich tables that read the same without colour (``NO_COLOR``).

Pure: every function turns data into a rich renderable; the CLI prints it on a Console.
Colour only repeats what the text already says (a loss has its minus sign, a refusal its
reason code), so nothing is lost without it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich import box
from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from quantum_trader.inspect import fmt
from quantum_trader.ops.core import Result, Trade


def pnl_text(usd: float | None) -> Text:
    if usd is None:
        return Text("-", style="dim")
    return Text(fmt.money(usd, signed=True), style="green" if usd > 0 else ("red" if usd < 0 else ""))


def result_line(result: Result) -> Text:
    """``qt pause: paused: …`` or ``qt resume: refused (not_paused): not paused``."""
    head = f"qt {result.action.replace('_', ' ')}: "
    if result.ok:
        return Text.assemble(head, (result.message, "green"))
    return Text.assemble(head, (f"refused ({result.reason})", "bold red"), f": {result.message}")


def positions_table(rows: Sequence[Mapping[str, Any]], *, ticks: Mapping[str, float], total_upnl: float) -> Table:
    t = Table(box=box.SIMPLE_HEAD, title=f"{len(rows)} open position(s)", title_justify="left")
    for name, justify in (("symbol", "left"), ("side", "left"), ("qty", "right"), ("entry", "right"),
                          ("mark", "right"), ("unrealised", "right"), ("notional", "right"),
                          ("stop", "right"), ("take profit", "right")):
        t.add_column(name, justify=justify)  # type: ignore[arg-type]
    unit, ages = fmt.duration_column([r["age_ms"] / 1000.0 for r in rows])
    t.add_column(f"open ({unit})", justify="right")
    for r, age in zip(rows, ages, strict=True):
        tick = ticks.get(r["symbol"])
        mark = r["mark_price"]
        t.add_row(r["symbol"], Text(r["side"], style="cyan" if r["side"] == "BUY" else "magenta"),
                  fmt.quantity(r["qty"]), fmt.price(r["entry_price"], tick),
                  fmt.price(mark, tick) if mark is not None else Text("no mark", style="yellow"),
                  pnl_text(r["unrealized_pnl_usd"]), fmt.money(r["notional_usd"]),
                  fmt.price(r["stop_loss"], tick) if r["stop_loss"] else "-",
                  fmt.price(r["take_profit"], tick) if r["take_profit"] else "-", age)
    if rows:
        t.caption = Text.assemble("unrealised PnL at the snapshot mark: ", pnl_text(total_upnl))
        t.caption_justify = "left"
    return t


def trades_table(rows: Sequence[Trade], *, ticks: Mapping[str, float], ages_ms: Sequence[int]) -> Table:
    t = Table(box=box.SIMPLE_HEAD, title=f"{len(rows)} trade(s), newest first", title_justify="left")
    unit, ages = fmt.duration_column([a / 1000.0 for a in ages_ms])
    for name, justify in ((f"ago ({unit})", "right"), ("symbol", "left"), ("side", "left"), ("qty", "right"),
                          ("price", "right"), ("notional", "right"), ("fee", "right"), ("event", "left"),
                          ("realised", "right"), ("order", "left")):
        t.add_column(name, justify=justify)  # type: ignore[arg-type]
    for r, age in zip(rows, ages, strict=True):
        event = r.event + (f" {r.close_reason}" if r.close_reason else "")
        t.add_row(age, r.symbol, r.side, fmt.quantity(r.qty), fmt.price(r.price, ticks.get(r.symbol)),
                  fmt.money(r.notional_usd), fmt.money(r.fee_usd) if r.fee_usd is not None else "-", event,
                  pnl_text(r.realized_pnl_usd),
                  r.order_id)
    return t


def risk_table(risk: Mapping[str, Any]) -> RenderableType:
    if "error" in risk:
        return Text(f"risk state unreadable: {risk['error']}", style="red")
    score = float(risk["kill_score"])
    level = ("critical", "bold red") if score >= risk["critical"] else (
        ("warning", "yellow") if score >= risk["warning"] else ("ok", "green"))
    t = Table(box=box.SIMPLE, show_header=False)
    t.add_column("what")
    t.add_column("value", justify="right")
    t.add_row("kill score", Text.assemble(f"{score:.2f} ", (level[0], level[1])))
    t.add_row("drawdown", fmt.money(risk["drawdown_usd"]))
    t.add_row("equity peak / realised total", f"{fmt.money(risk['equity_peak'])} / {fmt.money(risk['realized_pnl_total'])}")
    t.add_row("loss streak today", str(risk["loss_streak"]))
    t.add_row("error rate", f"{risk['error_rate']:.3f}")
    t.add_row("thresholds (warning / critical)", f"{risk['warning']:.2f} / {risk['critical']:.2f}")
    return t


def audit_table(entries: Sequence[Mapping[str, Any]], *, now_ms: int) -> Table:
    t = Table(box=box.SIMPLE_HEAD, title=f"{len(entries)} newest operation(s)", title_justify="left")
    unit, ages = fmt.duration_column([max(0, now_ms - int(e.get("ts", now_ms))) / 1000.0 for e in entries])
    for name in (f"ago ({unit})", "action", "outcome", "actor", "via", "target", "reason"):
        t.add_column(name, justify="right" if name.startswith("ago") else "left")
    for e, age in zip(entries, ages, strict=True):
        outcome = str(e.get("outcome", "?"))
        t.add_row(age, str(e.get("action", "?")), Text(outcome, style="green" if outcome == "ok" else "red"),
                  str(e.get("actor", "")), str(e.get("via", "")), str(e.get("target", "")) or "-",
                  str(e.get("reason", "")))
    return t
