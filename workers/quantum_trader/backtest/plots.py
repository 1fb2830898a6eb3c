"""PNG plots (matplotlib, imported here only, Agg backend) and one self-contained report.html."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from quantum_trader.backtest.report import drawdown

if TYPE_CHECKING:
    from quantum_trader.backtest.command import Run

PLOTS = ("equity.png", "drawdown.png", "confidence.png", "exits.png", "funnel.png")


def _banner(report: dict[str, Any]) -> str:
    return "IN-SAMPLE — not a fair estimate" if report["in_sample"] else "out of sample, after every cost"


def write_all(folder: Path, report: dict[str, Any], run: Run) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    eq = run.result.record.equity
    ts = np.array([e[0] for e in eq], dtype="datetime64[ms]") if eq else np.zeros(0, dtype="datetime64[ms]")
    total = np.array([e[1] + e[2] for e in eq]) if eq else np.zeros(0)
    realised = np.array([e[1] for e in eq]) if eq else np.zeros(0)
    title = f"{report['profile']} · {report['source']} · {_banner(report)}"
    out: list[Path] = []

    def save(fig: Any, name: str) -> None:
        fig.suptitle(title, fontsize=9)
        fig.tight_layout()
        path = folder / name
        fig.savefig(path, dpi=90)
        plt.close(fig)
        out.append(path)

    fig, ax = plt.subplots(figsize=(9, 3.6))
    ax.plot(ts, total, label="equity (mark to market, net)", lw=1.2)
    ax.plot(ts, realised, label="realised net", lw=0.8, alpha=0.7)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_ylabel("USD")
    ax.legend(loc="upper left", fontsize=8)
    save(fig, "equity.png")

    fig, ax = plt.subplots(figsize=(9, 2.6))
    ax.fill_between(ts, drawdown(total, report["capital_usd"]) if total.size else total, 0, color="tab:red",
                    alpha=0.5)
    ax.set_ylabel(f"% of {report['capital_usd']:,.0f} USD")
    ax.set_title("drawdown", fontsize=9)
    save(fig, "drawdown.png")

    fig, ax1 = plt.subplots(figsize=(9, 3.2))
    b = report["by_confidence"]
    labels = [f"{x['low']:.2f}-{x['high']:.2f}" for x in b]
    ax1.bar(labels, [x["net_pnl_usd"] for x in b], color="tab:blue", alpha=0.6, label="net PnL (USD)")
    ax2 = ax1.twinx()
    ax2.plot(labels, [100 * x["hit_rate"] for x in b], "o-", color="tab:orange", label="hit rate (%)")
    ax1.set_title("net PnL and hit rate per confidence bucket", fontsize=9)
    ax1.set_ylabel("USD")
    ax2.set_ylabel("%")
    save(fig, "confidence.png")

    fig, ax = plt.subplots(figsize=(9, 2.8))
    reasons = report["by_exit_reason"]
    ax.bar(list(reasons), [v["net_pnl_usd"] for v in reasons.values()], color="tab:green", alpha=0.6)
    for i, v in enumerate(reasons.values()):
        ax.annotate(f"{v['trades']} trades", (i, 0), ha="center", fontsize=8)
    ax.set_title("net PnL per exit reason", fontsize=9)
    save(fig, "exits.png")

    f = report["funnel"]
    stages = [("signals", sum(f["ai"]["signals"].values())), ("intents", f["router"]["passed"]),
              ("EXECUTE", f["gate"]["passed"]), ("filled", f["executor"]["passed"]), ("trades", report["trades"])]
    fig, ax = plt.subplots(figsize=(9, 2.8))
    ax.barh([s for s, _ in stages][::-1], [max(n, 0) for _, n in stages][::-1], color="tab:purple", alpha=0.6)
    ax.set_xscale("symlog")
    ax.set_title("funnel", fontsize=9)
    save(fig, "funnel.png")
    write_html(folder, report, [p.name for p in out])
    return out


def write_html(folder: Path, report: dict[str, Any], images: list[str]) -> Path:
    """report.html with every plot embedded (base64): one file that opens anywhere."""
    from quantum_trader.backtest.report import summary

    imgs = "\n".join(
        f'<img alt="{html.escape(n)}" src="data:image/png;base64,'
        f'{base64.b64encode((folder / n).read_bytes()).decode("ascii")}">'
        for n in images
    )
    banner = _banner(report)
    color = "#b00020" if report["in_sample"] else "#1b5e20"
    rows = [("the model", report)]
    if report.get("counterfactual"):
        rows.append((f"best baseline ({report['counterfactual']['name']})", report["counterfactual"]))
    table = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{r['net_pnl_usd']:+,.2f}</td><td>{r['trades']}</td>"
        f"<td>{100 * r['hit_rate']:.1f} %</td><td>{r['net_bps_per_trade']:+.2f}</td><td>{r['t_stat']:.2f}</td></tr>"
        for name, r in rows)
    if "oracle_net_pnl_usd" in report:
        table += (f"<tr><td>oracle (the sim's true probabilities)</td><td>{report['oracle_net_pnl_usd']:+,.2f}</td>"
                  f"<td>{report['oracle_trades']}</td><td></td><td></td><td></td></tr>")
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>qt backtest — {html.escape(report['profile'])}</title>
<style>body{{font-family:sans-serif;max-width:960px;margin:1em auto}}pre{{background:#f6f6f6;padding:.6em;
overflow-x:auto;font-size:12px}}img{{max-width:100%;display:block;margin:.5em 0}}
.b{{color:#fff;background:{color};padding:.3em .6em;font-weight:bold}}
td,th{{padding:.2em .8em;text-align:right}}td:first-child,th:first-child{{text-align:left}}</style></head><body>
<p class="b">{html.escape(banner)}</p>
<h1>qt backtest — {html.escape(report['profile'])}</h1>
<h2>Does the model add value after costs? Same rules, same costs</h2>
<table><tr><th>driven by</th><th>net PnL (USD)</th><th>trades</th><th>hit rate</th><th>net bps/trade</th>
<th>t</th></tr>{table}</table>
<pre>{html.escape(summary(report))}</pre>
{imgs}
<h2>report.json</h2>
<pre>{html.escape(json.dumps(report, indent=1))}</pre>
<p class="b">{html.escape(banner)}</p>
</body></html>
"""
    path = folder / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
