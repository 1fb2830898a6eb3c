"""The one allowlist: normaliser and tier resolver shared by the snapshot worker and the gate.

``snapshot.allowlistSource``:

* ``universe`` — ``cfg:universe:active`` if it is valid (see :mod:`.universe`) and non-empty,
  else ``cfg:universe:last_ok`` under the same conditions, else the profile allowlist;
* ``env``      — the profile allowlist only.

The profile allowlist is normalised here and only here (:func:`normalise_symbols`: strip,
upper-case, drop blanks, first occurrence wins), so ``[btcusdt, " ETHUSDT"]`` means
BTCUSDT and ETHUSDT to every reader. An empty allowlist blocks every new intent (fail closed).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from quantum_trader.ledger import universe

Source = Literal["universe", "env"]
Tier = Literal["active", "last_ok", "profile", "env"]
TIERS: Final[tuple[Tier, ...]] = ("active", "last_ok", "profile", "env")


def normalise_symbols(symbols: Iterable[str]) -> tuple[str, ...]:
    """Profile symbols as the exchange spells them: stripped, upper-case, no blanks, no repeats (order kept)."""
    return tuple(dict.fromkeys(s.strip().upper() for s in symbols if s.strip()))


@dataclass(frozen=True, slots=True)
class AllowlistConfig:
    """The profile's allowlist settings, the one value the snapshot worker and the gate share."""

    source: Source = "universe"
    symbols: tuple[str, ...] = ()  # raw profile list; normalised by :func:`resolve`


@dataclass(frozen=True, slots=True)
class Allowlist:
    source: Tier
    symbols: tuple[str, ...]
    volumes: Mapping[str, float] = field(default_factory=dict)  # symbol → 24h volume (USD), backfill order

    @property
    def as_set(self) -> frozenset[str]:
        return frozenset(self.symbols)


def resolve(
    config: AllowlistConfig,
    *,
    active: universe.Universe | None,
    last_ok: universe.Universe | None,
    now_ms: int,
) -> Allowlist:
    """The allowlist and the tier that served it (None = document absent or not JSON)."""
    profile_list = normalise_symbols(config.symbols)
    known = active if active is not None else last_ok
    known_volumes = dict(known.volumes) if known is not None else {}
    if config.source == "env":
        return Allowlist("env", profile_list, known_volumes)
    if active is not None and active.symbols_at(now_ms):
        return Allowlist("active", active.symbols, dict(active.volumes))
    if last_ok is not None and last_ok.symbols_at(now_ms):
        return Allowlist("last_ok", last_ok.symbols, dict(last_ok.volumes))
    return Allowlist("profile", profile_list, known_volumes)
