"""Human units for every ``qt`` screen (pure): durations, ages, prices, money, duration arguments.

Durations are written the way they are typed: ``45s``, ``4m05s``, ``1h15m``,
``2d03h`` — at most two units, the larger first, so a glance compares them and
``--window`` takes them back. A table column uses one unit for all its rows
(:func:`duration_column`). Prices are rounded to the symbol's tick when it is
known, else to six significant digits.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Final

_UNIT_S: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_COMPONENT: Final = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_COMPOUND: Final = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+$")
DURATION_EXAMPLES: Final = "a duration such as 90s, 5m, 1h30m or 2d"


class DurationError(ValueError):
    """A duration argument that does not parse: the message says what was expected."""


def parse_duration_arg(text: str) -> float:
    """``"1h30m"`` → 5400.0; ``"90"`` (bare number) → 90.0 seconds; units ms, s, m, h, d, each at most once,
    largest first. Raise :class:`DurationError` saying what was expected."""
    value = text.strip().lower().replace(" ", "")
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if math.isfinite(seconds):
        if seconds < 0:
            raise DurationError(f"expected {DURATION_EXAMPLES}, not a negative number (got {text!r})")
        return seconds
    if not _COMPOUND.match(value):
        raise DurationError(f"expected {DURATION_EXAMPLES} (got {text!r})")
    parts = _COMPONENT.findall(value)
    units = [u for _, u in parts]
    order = list(_UNIT_S)
    if len(set(units)) != len(units) or [order.index(u) for u in units] != sorted(
        (order.index(u) for u in units), reverse=True
    ):
        raise DurationError(f"expected {DURATION_EXAMPLES}, units largest first and each once (got {text!r})")
    return sum(float(n) * _UNIT_S[u] for n, u in parts)


def human_duration(seconds: float) -> str:
    """``0.25`` → ``250ms``, ``42`` → ``42s``, ``245`` → ``4m05s``, ``4500`` → ``1h15m``, ``183600`` → ``2d03h``."""
    s = max(0.0, float(seconds))
    if s < 1.0:
        return f"{round(s * 1000)}ms"
    whole = int(s)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        m, rest = divmod(whole, 60)
        return f"{m}m{rest:02d}s" if rest else f"{m}m"
    if whole < 86400:
        h, rest = divmod(whole, 3600)
        m = rest // 60
        return f"{h}h{m:02d}m" if m else f"{h}h"
    d, rest = divmod(whole, 86400)
    h = rest // 3600
    return f"{d}d{h:02d}h" if h else f"{d}d"


def ago(ms: int) -> str:
    """An age in milliseconds as ``just now`` or ``4m05s ago``."""
    return "just now" if ms < 1000 else f"{human_duration(ms / 1000.0)} ago"


def duration_column(seconds: Sequence[float]) -> tuple[str, list[str]]:
    """One unit for a whole column, chosen by its largest value: ``("m", ["0.5", "12.0"])``."""
    top = max((abs(s) for s in seconds), default=0.0)
    unit = next((u for u, limit in (("s", 120.0), ("m", 7200.0), ("h", 172800.0)) if top < limit), "d")
    size = _UNIT_S[unit]
    digits = 0 if unit == "s" else 1
    return unit, [f"{s / size:.{digits}f}" for s in seconds]


def tick_decimals(tick: float) -> int:
    """Decimals a price on this tick needs: 0.01 → 2, 0.0001 → 4, 0.5 → 1, 1 → 0."""
    if tick <= 0 or not math.isfinite(tick):
        raise ValueError(f"tick must be positive (got {tick!r})")
    decimals = 0
    while decimals < 12 and abs(round(tick * 10**decimals) - tick * 10**decimals) > 1e-9 * 10**decimals:
        decimals += 1
    return decimals


def price(value: float, tick: float | None = None) -> str:
    """A price on the symbol's tick (``0.0903179...`` with tick 0.00001 → ``0.09032``), else 6 significant digits."""
    if not math.isfinite(value):
        return str(value)
    if tick is not None and tick > 0:
        decimals = tick_decimals(tick)
        return f"{round(value / tick) * tick:.{decimals}f}"
    if value == 0:
        return "0"
    decimals = max(0, min(10, 5 - math.floor(math.log10(abs(value)))))
    return f"{value:.{decimals}f}"


def money(usd: float, *, signed: bool = False) -> str:
    """``-0.2412`` → ``-$0.24``; with ``signed`` a gain shows ``+$1.20``."""
    cents = round(usd, 2)
    sign = "-" if cents < 0 else ("+" if signed and cents > 0 else "")
    return f"{sign}${abs(cents):,.2f}"


def quantity(value: float) -> str:
    """A quantity without float noise: ``24.300000000000001`` → ``24.3``."""
    return f"{value:.8g}"


STATUS_STYLES: Final = (
    (r"^(PASS)\b", "green"), (r"^(WARN)\b", "yellow"), (r"^(FAIL)\b", "bold red"),
    (r"(NO-GO)", "bold red"), (r"(?<!NO-)\b(GO)\b$", "bold green"),
    (r": (traded)\b", "bold green"), (r": (not traded( yet)?)\b", "bold red"),
)


def print_styled(text: str) -> None:
    """Print report text as it is, with its status words coloured on a terminal (never with NO_COLOR, never
    when piped): the words say it all, the colour only helps the eye."""
    from rich.console import Console
    from rich.text import Text

    console = Console(highlight=False, soft_wrap=True)
    for line in text.splitlines():
        styled = Text(line)
        for pattern, style in STATUS_STYLES:
            for m in re.finditer(pattern, line):
                styled.stylize(style, m.start(1), m.end(1))
        console.print(styled)
