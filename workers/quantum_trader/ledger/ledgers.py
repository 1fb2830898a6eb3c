"""The exactly-once ledgers: ``state:decided_intents``, ``state:executed_intents``, ``state:ledger_age``.

* ``state:decided_intents`` — intent_id → decision_id. Writer: the gate (``HSETNX`` in ``DECIDE_LUA``:
  a redelivered intent never gets a second decision).
* ``state:executed_intents`` — intent_id → result value. Writer: the executor (``APPLY_LUA``: a
  redelivered decision is never executed twice).
* ``state:ledger_age`` — sorted set intent_id → first-written ms; :func:`prune_ledgers` (the executor's
  monitor, after ``executor.ledgerRetention``) drops both ledgers' entries older than that.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

from quantum_trader.core.keys import Keys
from quantum_trader.ledger.scripts import PRUNE_LEDGERS_LUA

PRUNE_CHUNK: Final = 2000


def decision_id_for(intent_id: str) -> str:
    """Deterministic decision id: ``GD-`` + first 16 hex of sha256(intent_id)."""
    return "GD-" + hashlib.sha256(intent_id.encode("utf-8")).hexdigest()[:16]


async def prune_ledgers(redis: Any, *, keys: Keys, older_than_ms: int) -> int:
    """Remove exactly-once ledger entries first written before ``older_than_ms``; return the count.

    Safe because a message is redelivered only while it is pending (reclaimed within
    minutes), so an intent decided and executed days ago can never come back.
    """
    script = redis.register_script(PRUNE_LEDGERS_LUA)
    total = 0
    while True:
        n = int(await script(keys=[keys.ledger_age, keys.decided_intents, keys.executed_intents],
                             args=[str(older_than_ms), str(PRUNE_CHUNK)]))
        total += n
        if n < PRUNE_CHUNK:
            return total
