"""``state:cooldowns``: hash symbol → epoch ms until which new risk on that symbol is blocked.

Writer: the executor (``APPLY_LUA``: a close sets ``now + executor cooldown``). Reader: the gate
(rule ``cooldown:<SYM>``). An unreadable value blocks (fail closed).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

UNREADABLE_UNTIL_MS: Final = 2**62  # an unreadable cooldown never expires (fail closed)


def parse_cooldowns(symbols: Iterable[str], raw: Iterable[Any]) -> dict[str, int]:
    """``HMGET state:cooldowns SYM...`` → symbol → until (ms) for the symbols that have one."""
    out: dict[str, int] = {}
    for sym, until in zip(symbols, raw, strict=True):
        if until is None:
            continue
        try:
            out[sym] = int(float(until.decode() if isinstance(until, bytes) else str(until)))
        except ValueError:
            out[sym] = UNREADABLE_UNTIL_MS
    return out
