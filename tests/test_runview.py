"""The live view of `qt run` (pure render, real rich): every stage, human units, colour that reads without colour."""

from __future__ import annotations

import io
import re

import pytest
from quantum_trader.ops.core import Trade
from quantum_trader.runview import Funnel, ModelInUse, OpenPosition, render, summary_fields, summary_text
from rich.console import Console

SIM_NOW = 1_796_380_200_000  # 2026-12-04 10:30:00 UTC


def funnel(**changes: object) -> Funnel:
    base = dict(
        profile="paper", elapsed_s=245, sim_now_ms=SIM_NOW, speed=60.0, universe_size=10, universe_hash="abc",
        signals=40, fallback_signals=0, intents=5, router_drops={"low_confidence": 30, "not_selected": 5},
        execute=4, blocked=1, block_reasons={"cooldown:XAIUSDT": 1}, fills=4, opened=4, closed=2,
        realized_pnl_usd=-0.2412, open_orders="2",
        positions=(OpenPosition("GALAUSDT", "BUY", 400.0, 0.09031791362387973, 0.0912, SIM_NOW - 3_600_000),),
        recent=(Trade(ts=SIM_NOW - 600_000, symbol="XRPUSDT", side="SELL", qty=24.300000000000001, price=1.0612,
                      notional_usd=25.8, fee_usd=0.01, event="CLOSED", realized_pnl_usd=-0.24,
                      close_reason="stop_loss", mode="paper", order_id="P-1", intent_id="i"),),
        model=ModelInUse("lgbm-20261205", "20261205", 5400.0, "20261205"),
    )
    base.update(changes)
    return Funnel(**base)  # type: ignore[arg-type]


def text(f: Funnel, *, color: bool = False, **kwargs: object) -> str:
    out = io.StringIO()
    console = Console(file=out, width=140, force_terminal=color, color_system="standard" if color else None)
    console.print(render(f, **kwargs))  # type: ignore[arg-type]
    return out.getvalue()


def test_view_shows_simulated_date_stages_positions_with_unrealised_pnl_and_last_trades() -> None:
    screen = text(funnel(), log_file="/tmp/paper.log", api_url="http://127.0.0.1:9100/docs",
                  ticks={"GALAUSDT": 0.00001})
    assert "sim 2026-12-04 10:30:00 UTC (60x) · running 4m05s" in screen
    assert "4 EXECUTE" in screen and "1 BLOCKED: cooldown:XAIUSDT 1" in screen
    assert "router dropped 35: low_confidence 30, not_selected 5" in screen
    assert "lgbm-20261205 version 20261205, 1h30m old" in screen
    assert "realised -$0.24" in screen and "unrealised +$0.35" in screen  # (0.0912 - 0.0903179) x 400
    assert "0.09032" in screen and "0.0903179" not in screen  # the entry on the tick, no raw float
    assert "open (s)" in screen and " 60 " in screen  # an hour of pipeline time at 60x: one wall minute
    assert "ago (s)" in screen and "24.3" in screen and "CLOSED stop_loss" in screen
    assert "logs: /tmp/paper.log" in screen and "API http://127.0.0.1:9100/docs" in screen


def test_the_fallback_model_is_named_with_how_long_it_has_served() -> None:
    screen = text(funnel(model=ModelInUse("fallback-trend", "fallback-trend-1", 125.0, "")))
    assert "fallback-trend FALLBACK (no trained model promoted, serving 2m05s; `qt train`)" in screen


def test_colour_only_repeats_the_text_and_no_color_removes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    coloured = text(funnel(), color=True)
    assert re.search(r"\x1b\[(\d+;)*3[1-7]m", coloured)  # red/green/yellow
    monkeypatch.setenv("NO_COLOR", "1")
    out = io.StringIO()
    Console(file=out, width=140, force_terminal=True).print(render(funnel()))
    plain = out.getvalue()
    assert not re.search(r"\x1b\[(\d+;)*3[1-7]m", plain) and "-$0.24" in plain  # the sign carries the meaning


def test_final_frame_says_stopped_and_the_summary_is_plain_text() -> None:
    assert "stopped after 4m05s" in text(funnel(stopped=True))
    summary = summary_text(funnel(stopped=True))
    assert "\x1b" not in summary and "stopped after 4m05s" in summary
    assert summary_fields(funnel())["execute"] == 4 and summary_fields(funnel())["model"] == "lgbm-20261205"


def test_verdicts_on_held_positions_are_shown_apart_from_the_drops() -> None:
    screen = text(funnel(router_drops={"negative_edge": 12, "position_renewed": 7, "position_reversed": 1}))
    assert "router dropped 12: negative_edge 12 · held positions: renewed 7, closed on reversal 1" in screen
