"""One rule for time (pure): ages and windows on the wall clock by default, on the pipeline's when asked."""

from __future__ import annotations

from quantum_trader.inspect.timebase import TimeBase, clock_fields, parse_clock

WALL = 1_700_000_000_000


def sixty_x() -> TimeBase:
    """A `qt run --speed 60` that started at WALL with the pipeline clock equal to wall time."""
    return parse_clock(clock_fields(speed=60.0, wall_ms=WALL, sim_ms=WALL))


def test_run_clock_round_trips_and_maps_both_ways() -> None:
    tb = sixty_x()
    assert tb.recorded and tb.speed == 60.0
    assert tb.sim_at(WALL + 60_000) == WALL + 3_600_000  # one wall minute is one pipeline hour
    assert tb.wall_at(WALL + 3_600_000) == WALL + 60_000


def test_an_hour_old_stamp_at_60x_is_a_minute_old_in_wall_time_and_an_hour_in_sim_time() -> None:
    tb = sixty_x()
    now_wall = WALL + 120_000
    stamp = tb.sim_at(now_wall) - 3_600_000
    assert tb.age_ms(sim_ts=stamp, wall_now_ms=now_wall, clock="wall") == 60_000
    assert tb.age_ms(sim_ts=stamp, wall_now_ms=now_wall, clock="sim") == 3_600_000


def test_a_stamp_ahead_of_now_has_age_zero_never_negative() -> None:
    tb = TimeBase()
    assert tb.age_ms(sim_ts=WALL + 5000, wall_now_ms=WALL, clock="wall") == 0
    assert tb.age_ms(sim_ts=WALL + 5000, wall_now_ms=WALL, clock="sim") == 0


def test_spans_and_windows_convert_between_clocks() -> None:
    tb = sixty_x()
    assert tb.span_ms(3_600_000, clock="wall") == 60_000
    assert tb.span_ms(3_600_000, clock="sim") == 3_600_000
    assert tb.window_in_other_clock(300.0, clock="wall") == 18_000.0
    assert tb.window_in_other_clock(18_000.0, clock="sim") == 300.0


def test_missing_or_malformed_run_clock_means_both_clocks_are_the_same() -> None:
    for raw in (None, {}, {"speed": "fast", "anchor_wall_ms": "1", "anchor_sim_ms": "1"},
                {"speed": "0", "anchor_wall_ms": "1", "anchor_sim_ms": "1"}, {"speed": "2"}):
        tb = parse_clock(raw)
        assert not tb.recorded
        assert tb.sim_at(WALL) == WALL and tb.wall_at(WALL) == WALL
