"""Demand for snapshots: symbols the router wanted but could not trade.

The router publishes one ``stream:router.drop`` entry per dropped candidate (a ``RouterFate``);
those with reason :data:`NOT_TRADABLE` (no fresh snapshot / not in the tradable set) are read back
by the snapshot worker, which snapshots them next (after intent symbols). The reason code is spelled
here only; the router's reason list and the snapshot's reader both import it.
"""

from __future__ import annotations

from typing import Final

NOT_TRADABLE: Final = "not_tradable"
