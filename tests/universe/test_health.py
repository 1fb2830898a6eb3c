"""Data health audit: stale, gaps, too few bars, no klines, bad timestamps; bounded repair plan."""

from __future__ import annotations

import numpy as np
from quantum_trader.universe.health import audit, audit_klines, bars_behind, repair_plan
from quantum_trader.universe.model import (
    R_BAD_TIMESTAMPS,
    R_CONSTANT,
    R_GAPS,
    R_NO_KLINES,
    R_STALE,
    R_TOO_FEW_BARS,
)

from tests.universe.helpers import NOW_MS, health, klines, walk

H = 3_600_000


def check(k, **overrides):  # type: ignore[no-untyped-def]
    return audit_klines(k, symbol="XUSDT", timeframe="1h", now_ms=NOW_MS, health=health(**overrides))


def test_fresh_complete_history_is_healthy() -> None:
    assert check(klines("XUSDT", "1h", walk(1, 150))) is None


def test_last_bar_older_than_max_staleness_bars_is_stale() -> None:
    k = klines("XUSDT", "1h", walk(1, 150), end_ms=NOW_MS - 3 * H)
    assert bars_behind(k, timeframe="1h", now_ms=NOW_MS) == 3.0
    issue = check(k, maxStalenessBars=2)
    assert issue is not None and issue.reason == R_STALE and "3.0 bars old" in issue.detail
    assert check(k, maxStalenessBars=3) is None  # exactly at the limit is still fresh


def test_missing_bars_inside_the_window_are_gaps() -> None:
    k = klines("XUSDT", "1h", walk(1, 150))
    ts = np.delete(k.ts, [50, 51])
    gappy = klines("XUSDT", "1h", walk(1, 148), ts=ts)
    issue = check(gappy)
    assert issue is not None and issue.reason == R_GAPS and "2 missing" in issue.detail
    assert check(gappy, maxGapBars=2) is None


def test_short_history_empty_klines_and_bad_timestamps() -> None:
    issue = check(klines("XUSDT", "1h", walk(1, 40)))
    assert issue is not None and issue.reason == R_TOO_FEW_BARS
    assert (check(None) or check(None)).reason == R_NO_KLINES  # type: ignore[union-attr]
    empty = klines("XUSDT", "1h", np.zeros(0))
    assert check(empty).reason == R_NO_KLINES  # type: ignore[union-attr]
    k = klines("XUSDT", "1h", walk(1, 150))
    shuffled = klines("XUSDT", "1h", walk(1, 150), ts=k.ts[::-1])
    assert check(shuffled).reason == R_BAD_TIMESTAMPS  # type: ignore[union-attr]
    off_grid = klines("XUSDT", "1h", walk(1, 150), ts=k.ts + np.arange(150))
    assert check(off_grid).reason == R_BAD_TIMESTAMPS  # type: ignore[union-attr]


def test_flat_prices_are_not_a_health_problem_but_a_feature_problem() -> None:
    assert check(klines("XUSDT", "1h", np.full(150, 3.0))) is None
    assert R_CONSTANT == "constant_price"


def test_audit_reports_every_unhealthy_timeframe_per_symbol() -> None:
    data = {
        "AUSDT": {"15m": klines("AUSDT", "15m", walk(1, 150)), "1h": klines("AUSDT", "1h", walk(2, 150))},
        "BUSDT": {
            "15m": klines("BUSDT", "15m", walk(1, 150), end_ms=NOW_MS - 20 * 900_000),
            "1h": klines("BUSDT", "1h", walk(2, 50)),
        },
    }
    out = audit(data, timeframes=("15m", "1h"), now_ms=NOW_MS, health=health())
    assert list(out) == ["BUSDT"]
    assert [(i.timeframe, i.reason) for i in out["BUSDT"]] == [("15m", R_STALE), ("1h", R_TOO_FEW_BARS)]


def test_repair_plan_is_bounded_by_max_repair_rounds_and_off_without_auto_repair() -> None:
    k = klines("XUSDT", "1h", walk(1, 150), end_ms=NOW_MS - 10 * H)
    issue = check(k)
    assert issue is not None
    hs = health(maxRepairRounds=2)
    assert repair_plan([issue], rounds_done=0, health=hs) == [issue]
    assert repair_plan([issue], rounds_done=1, health=hs) == [issue]
    assert repair_plan([issue], rounds_done=2, health=hs) == []
    assert repair_plan([issue], rounds_done=0, health=health(autoRepair=False)) == []
    assert repair_plan([issue], rounds_done=0, health=health(maxRepairRounds=0)) == []


def test_health_verdict_strict_drops_the_still_unhealthy_and_names_the_repair_rounds() -> None:
    from quantum_trader.core.profile import HealthSettings
    from quantum_trader.universe.health import health_verdict
    from quantum_trader.universe.model import Candidate, HealthIssue

    cands = [Candidate(symbol=s, base=s[:-4], quote="USDT", asset_class="alt", volume_24h=1.0)
             for s in ("AUSDT", "BUSDT", "CUSDT")]
    still = {"BUSDT": [HealthIssue("BUSDT", "1h", "gaps", "1h: 3 gaps")]}
    v = health_verdict(cands, still, initially={"AUSDT": [], "BUSDT": []}, rounds=2, health=HealthSettings(strict=True))
    assert [c.symbol for c in v.healthy] == ["AUSDT", "CUSDT"]
    assert (v.repaired, v.still_unhealthy, v.unhealthy_kept) == (("AUSDT",), ("BUSDT",), ())
    assert v.drops["BUSDT"].reason == "gaps" and v.drops["BUSDT"].detail.endswith("(after 2 repair rounds)")
    lenient = health_verdict(cands, still, initially=still, rounds=1, health=HealthSettings(strict=False))
    assert len(lenient.healthy) == 3 and lenient.unhealthy_kept == ("BUSDT",) and not lenient.drops
