"""In-flight intents: ``state:pending_intents`` and its summary ``state:pending_summary``.

* ``state:pending_intents`` — hash intent_id → the TradeIntent JSON of every EXECUTE decision not
  yet answered by an execution result. Writer: the gate (``DECIDE_LUA``, atomically with the
  decision); remover: the executor (``APPLY_LUA``, atomically with the result).
* ``state:pending_summary`` — hash ``SYM:SIDE`` → count of in-flight *opening* EXECUTEs, and
  ``_notional`` → their summed notional (USD). Same writers; the gate rebuilds it from the pending
  intents at start-up (``REBUILD_SUMMARY_LUA``). Reader: the gate (``duplicate``, ``exposure_limit``).

An intent's notional is ``position_size_usd × leverage`` (what the executor buys).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final

from quantum_trader.core.messages import TradeIntent

NOTIONAL_FIELD: Final = "_notional"  # state:pending_summary: Σ notional of in-flight opening EXECUTEs
SIDES: Final = ("BUY", "SELL")
# TradeIntent JSON fields the rebuild script reads (a test checks they are TradeIntent's own)
REDUCE_ONLY: Final = "reduce_only"
SYMBOL: Final = "symbol"
SIDE: Final = "side"
POSITION_SIZE_USD: Final = "position_size_usd"
LEVERAGE: Final = "leverage"


def intent_notional(intent: TradeIntent) -> float:
    return intent.position_size_usd * intent.leverage


def flight_field(symbol: str, side: str) -> str:
    """The ``state:pending_summary`` field of in-flight opening EXECUTEs on a symbol and side."""
    return f"{symbol}:{side}"


def intent_json(intent: TradeIntent) -> str:
    """A TradeIntent as the JSON object ``state:pending_intents`` holds (typed JSON values)."""
    return intent.model_dump_json()


def parse_intent_json(raw: str | bytes) -> TradeIntent:
    """A ``state:pending_intents`` value back to a TradeIntent (raises ValueError when malformed)."""
    return TradeIntent.model_validate_json(raw)


def summary_fields(symbols: Iterable[str]) -> list[str]:
    """The summary fields to read for a batch's symbols (both sides), then :data:`NOTIONAL_FIELD`."""
    return [flight_field(s, side) for s in symbols for side in SIDES] + [NOTIONAL_FIELD]


def parse_summary(fields: Sequence[str], raw: Sequence[Any]) -> tuple[frozenset[tuple[str, str]], float]:
    """``HMGET state:pending_summary`` of :func:`summary_fields` → (busy (symbol, side) pairs, notional).

    Unreadable counts are busy (``duplicate``) and an unreadable notional is +inf (``exposure_limit``): fail closed.
    """
    busy: set[tuple[str, str]] = set()
    for fld, count in zip(fields[:-1], raw[:-1], strict=True):
        try:
            taken = count is not None and int(_text(count)) > 0
        except ValueError:
            taken = True
        if taken:
            sym, side = fld.rsplit(":", 1)
            busy.add((sym, side))
    try:
        notional = float(_text(raw[-1])) if raw[-1] is not None else 0.0
    except ValueError:
        notional = float("inf")
    return frozenset(busy), notional


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)
