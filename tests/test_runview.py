from quantum_trader.runview import Funnel, OpenPosition, render, summary_fields


def test_render_shows_every_stage_the_fallback_and_the_top_block_reasons() -> None:
    funnel = Funnel(
        profile="paper", elapsed_s=61, universe_size=10, universe_hash="abc", signals=40, fallback_signals=40,
        intents=5, router_drops={"low_confidence": 30, "not_selected": 5}, execute=4, blocked=1,
        block_reasons={"cooldown:XAIUSDT": 1}, fills=4, opened=4, closed=2, realized_pnl_usd=-0.24,
        open_orders="2", positions=(OpenPosition("XRPUSDT", "BUY", 24.3, 1.06),),
    )
    text = render(funnel, log_file="/tmp/paper.log")
    assert "(40 from a FALLBACK model)" in text
    assert "4 EXECUTE   1 BLOCKED" in text
    assert "cooldown:XAIUSDT" in text and "XRPUSDT" in text
    assert "low_confidence=30" in text and "$-0.24" in text
    assert "logs: /tmp/paper.log" in text
    assert summary_fields(funnel)["execute"] == 4
