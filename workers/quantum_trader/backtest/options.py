"""The ``qt backtest`` arguments (kept import-light: the parser is built for every ``qt`` command)."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--start", help="first decision time, ISO date/datetime UTC (default: see docs/backtest.md)")
    p.add_argument("--end", help="end of the span, ISO date/datetime UTC (default: the data's end / today 00:00)")
    p.add_argument("--out", help="report folder (default: backtest-<profile>)")
    p.add_argument("--json", action="store_true", help="print report.json on stdout")
    p.add_argument(
        "--allow-in-sample", action="store_true",
        help="use the promoted model even if its training window overlaps the span (report says IN-SAMPLE)",
    )
    p.add_argument(
        "--model", choices=("walk-forward", "promoted"), default="walk-forward",
        help="walk-forward: retrain at ai.retrainInterval on data before each step (default); "
        "promoted: the registry's promoted model (REDIS_URL, a running qt run of the profile, or the state "
        "qt run kept in its data folder)",
    )
    p.add_argument("--retrain", help="retrain cadence, e.g. 7d (default: spec.ai.retrainInterval)")
    p.add_argument("--symbols", help="restrict the market to these symbols (comma-separated)")
    p.add_argument("--jobs", type=int, default=0, metavar="N",
                   help="walk-forward trainings in N processes at once (default: one per CPU; 1: this process)")
    p.add_argument(
        "--fills", choices=("market", "paper"), default="market",
        help="market: next open + half spread + slippage (default); paper: exactly the live paper venue "
        "(the mark, half of universe.spreadBps)",
    )
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots and report.html")
    p.add_argument("--no-oracle", action="store_true", help="sim: skip the oracle replay")
