"""``state:open_orders``: the number of open positions and working orders (a plain integer string).

Writer: the executor (``APPLY_LUA`` sets it to ``HLEN state:positions``; start-up; paper re-sync;
reconciliation). Reader: the router (capacity). Missing or unparseable → unknown → the router
publishes nothing (``capacity_unknown``: fail closed).
"""

from __future__ import annotations

from quantum_trader.core.messages import parse_count


def read_capacity(raw: str | bytes | None) -> int | None:
    """``state:open_orders`` as a non-negative int; None when missing or unparseable (fail closed).

    Strict (:func:`quantum_trader.core.messages.parse_count`): ``' 2 '``, ``+2``, ``02`` and
    non-ASCII digits are unparseable, not 2.
    """
    return parse_count(raw)
