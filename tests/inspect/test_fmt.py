"""Human units (pure): durations as they are typed, one unit per column, prices on the tick, no float noise."""

from __future__ import annotations

import re

import pytest
from quantum_trader.inspect import fmt


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90.0), ("90s", 90.0), ("5m", 300.0), ("1h30m", 5400.0), ("1.5h", 5400.0), ("2d", 172800.0),
     ("1d2h3m4s", 93784.0), ("250ms", 0.25), ("1m30s", 90.0), (" 1H30M ", 5400.0)],
)
def test_duration_argument_accepts_plain_and_compound_forms(text: str, seconds: float) -> None:
    assert fmt.parse_duration_arg(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["5x", "", "m5", "30m1h", "5m5m", "-3", "1h 30", "abc"])
def test_duration_argument_refusal_says_what_was_expected(text: str) -> None:
    with pytest.raises(fmt.DurationError) as err:
        fmt.parse_duration_arg(text)
    assert str(err.value).startswith("expected a duration such as 90s, 5m, 1h30m or 2d")
    assert repr(text) in str(err.value)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.25, "250ms"), (42, "42s"), (60, "1m"), (245, "4m05s"), (2631, "43m51s"), (3600, "1h"), (4500, "1h15m"),
     (86400, "1d"), (183600, "2d03h"), (-5, "0ms")],
)
def test_durations_use_at_most_two_units_largest_first(seconds: float, text: str) -> None:
    assert fmt.human_duration(seconds) == text


def test_every_printed_duration_parses_back_to_its_whole_seconds() -> None:
    for seconds in (1, 59, 61, 3599, 3661, 86399, 90061):
        printed = fmt.human_duration(seconds)
        assert fmt.parse_duration_arg(printed) <= seconds < fmt.parse_duration_arg(printed) + 3600


def test_ages_say_just_now_below_a_second() -> None:
    assert fmt.ago(999) == "just now"
    assert fmt.ago(75 * 60_000) == "1h15m ago"


def test_a_column_of_durations_shares_one_unit_chosen_by_its_largest_value() -> None:
    assert fmt.duration_column([5, 59]) == ("s", ["5", "59"])
    assert fmt.duration_column([5, 600]) == ("m", ["0.1", "10.0"])
    assert fmt.duration_column([60, 4 * 3600]) == ("h", ["0.0", "4.0"])
    assert fmt.duration_column([]) == ("s", [])


@pytest.mark.parametrize(
    ("value", "tick", "text"),
    [(0.09031791362387973, 0.00001, "0.09032"), (64123.456, 0.1, "64123.5"), (1.0, 0.0001, "1.0000"),
     (2.75, 0.5, "3.0"), (0.09031791362387973, None, "0.0903179"), (64123.456, None, "64123.5"), (0.0, None, "0")],
)
def test_prices_are_shown_on_the_symbols_tick_else_six_significant_digits(
    value: float, tick: float | None, text: str
) -> None:
    assert fmt.price(value, tick) == text


def test_money_and_quantities_carry_no_float_noise() -> None:
    assert fmt.money(-0.2412) == "-$0.24"
    assert fmt.money(1234.5, signed=True) == "+$1,234.50"
    assert fmt.money(0.0, signed=True) == "$0.00"
    assert fmt.quantity(24.300000000000001) == "24.3"


def test_report_text_is_printed_unchanged_and_coloured_only_on_a_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    report = "qt check — profile paper: NO-GO\n\nFAIL    execute flow  EXECUTE 0\nPASS    model         lgbm-1"
    fmt.print_styled(report)
    assert capsys.readouterr().out == report + "\n"  # piped: the text, no escape codes
    monkeypatch.setenv("FORCE_COLOR", "1")
    fmt.print_styled(report)
    coloured = capsys.readouterr().out
    assert "\x1b[" in coloured and re.sub(r"\x1b\[[0-9;]*m", "", coloured) == report + "\n"
