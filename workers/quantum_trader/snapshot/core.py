"""Snapshot decision core (seed 000): which symbols get exchange snapshots, and how well they cover intents.

Pure: no I/O, no clock reads. Stages, each one verb:

1. ``resolve allowlist``  source ``universe``: ``cfg:universe:active`` → ``last_ok`` → profile
                          allowlist (the first tier that is present, valid and non-empty);
                          source ``env``: the profile allowlist only.
2. ``remember intents``   keep the symbols of recent ``trade.intent`` entries (``intentWindow``).
3. ``compute top-K``      clamp(max(minTopK, targetCycle / EWMA per-symbol fetch latency), maxTopK).
4. ``choose candidates``  ranking ``intent``: recent intent symbols in the allowlist (newest first),
                          then symbols the router wanted but found untradable, then open positions,
                          then backfill by 24h volume (then name) up to top-K.
                          ranking ``volume`` / ``alphabetical``: open positions, then the allowlist
                          in that order up to top-K (intents get no priority: seed 000's original
                          behaviour, kept so the bug can be shown and compared).
5. ``build snapshots``    one row per candidate with a mark price; tradable = rows in the allowlist.
6. ``measure coverage``   share of recent intent symbols with a fresh snapshot; the rest are misses.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from quantum_trader.core.profile import SnapshotSettings
from quantum_trader.ledger import allowlist as shared_allowlist
from quantum_trader.ledger import positions as shared_positions
from quantum_trader.ledger import snapshots
from quantum_trader.ledger import universe as shared_universe
from quantum_trader.ledger.allowlist import Allowlist, AllowlistConfig
from quantum_trader.ledger.allowlist import Tier as AllowlistTier

__all__ = ["Allowlist", "AllowlistTier"]

Tier = Literal["intent", "demand", "position", "backfill"]

EWMA_ALPHA: Final = 0.3


# -- universe document ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UniverseView:
    """The parts of a ``cfg:universe:*`` document the snapshot needs."""

    symbols: tuple[str, ...]  # by rank
    volumes: Mapping[str, float]
    ranks: Mapping[str, int]
    generated_at: int
    valid_until: int
    universe_hash: str
    document: Mapping[str, object] = field(default_factory=dict)


def parse_universe(raw: str | bytes | None) -> UniverseView | None:
    """Parse a universe document (DESIGN §2); None when missing or malformed. Validity is not checked here."""
    if raw is None:
        return None
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("symbols"), list):
        return None
    entries: list[tuple[int, str, float]] = []
    for pos, item in enumerate(doc["symbols"]):
        if isinstance(item, str):
            entries.append((pos + 1, item, 0.0))
            continue
        if not isinstance(item, dict) or not isinstance(item.get("symbol"), str) or not item["symbol"]:
            continue
        rank = item.get("rank")
        vol = item.get("volume_24h", 0.0)
        entries.append(
            (
                rank if isinstance(rank, int) and not isinstance(rank, bool) else pos + 1,
                item["symbol"],
                float(vol) if isinstance(vol, (int, float)) and not isinstance(vol, bool) else 0.0,
            )
        )
    entries.sort(key=lambda e: (e[0], e[1]))
    symbols: list[str] = []
    for _, sym, _ in entries:
        if sym not in symbols:
            symbols.append(sym)
    valid_until = doc.get("valid_until", 0)
    generated_at = doc.get("generated_at", 0)
    return UniverseView(
        symbols=tuple(symbols),
        volumes={sym: vol for _, sym, vol in entries},
        ranks={sym: rank for rank, sym, _ in entries},
        generated_at=generated_at if isinstance(generated_at, int) else 0,
        valid_until=valid_until if isinstance(valid_until, int) else 0,
        universe_hash=str(doc.get("universe_hash", "")),
        document=doc,
    )


def active_symbols(view: UniverseView | None, *, now_ms: int) -> tuple[str, ...]:
    """The symbols of a valid universe (the universe worker's own reader: expiry, shape and hash checked)."""
    if view is None:
        return ()
    return tuple(shared_universe.active_symbols(view.document, now_ms=now_ms))


# -- 1. allowlist -----------------------------------------------------------------------------


def allowlist_config(settings: SnapshotSettings) -> AllowlistConfig:
    """The profile's allowlist settings as the shared resolver takes them."""
    return AllowlistConfig(source=settings.allowlist_source, symbols=settings.allowlist)


def resolve_allowlist(
    settings: SnapshotSettings, *, active: UniverseView | None, last_ok: UniverseView | None, now_ms: int
) -> Allowlist:
    """The allowlist and the tier that served it (the shared resolver, :mod:`quantum_trader.ledger.allowlist`)."""
    return shared_allowlist.resolve(
        allowlist_config(settings),
        active=shared_universe.from_document(active.document) if active is not None else None,
        last_ok=shared_universe.from_document(last_ok.document) if last_ok is not None else None,
        now_ms=now_ms,
    )


# -- 2. intent window -------------------------------------------------------------------------


def remember(
    window: Mapping[str, int], seen: Iterable[tuple[str, int]], *, now_ms: int, window_s: float
) -> dict[str, int]:
    """Merge (symbol, ts) observations into a symbol → last-seen map and forget the old ones."""
    out = dict(window)
    for symbol, ts in seen:
        if ts > out.get(symbol, -1):
            out[symbol] = ts
    horizon = now_ms - int(window_s * 1000)
    return {s: t for s, t in out.items() if t >= horizon}


def newest_first(window: Mapping[str, int]) -> list[str]:
    return [s for s, _ in sorted(window.items(), key=lambda kv: (-kv[1], kv[0]))]


# -- 3. top-K ---------------------------------------------------------------------------------


def ewma(previous: float | None, sample: float, *, alpha: float = EWMA_ALPHA) -> float:
    if previous is None:
        return sample
    return alpha * sample + (1.0 - alpha) * previous


def compute_top_k(*, ewma_latency_s: float | None, settings: SnapshotSettings) -> int:
    """clamp(max(minTopK, targetCycle / EWMA latency), ≤ maxTopK); minTopK while latency is unknown."""
    k = settings.min_top_k
    if ewma_latency_s is not None and ewma_latency_s > 0:
        k = max(k, int(settings.target_cycle / ewma_latency_s))
    elif ewma_latency_s is not None:  # measured as free: as many as allowed
        k = settings.max_top_k
    return max(1, min(settings.max_top_k, k))


# -- 4. candidates ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CandidatePlan:
    symbols: tuple[str, ...]  # priority order
    tiers: Mapping[str, Tier]
    top_k: int

    def count(self, tier: Tier) -> int:
        return sum(1 for t in self.tiers.values() if t == tier)


def rank_backfill(allowlist: Allowlist, *, ranking: str) -> list[str]:
    if ranking == "alphabetical":
        return sorted(allowlist.symbols)
    return sorted(allowlist.symbols, key=lambda s: (-allowlist.volumes.get(s, 0.0), s))


def choose_candidates(
    *,
    allowlist: Allowlist,
    recent_intents: Mapping[str, int],
    demand: Mapping[str, int],
    positions: Iterable[str],
    top_k: int,
    settings: SnapshotSettings,
) -> CandidatePlan:
    allowed = allowlist.as_set
    chosen: dict[str, Tier] = {}

    def add(symbols: Iterable[str], tier: Tier, *, limit: int | None = None) -> None:
        for s in symbols:
            if limit is not None and len(chosen) >= limit:
                return
            chosen.setdefault(s, tier)

    if settings.ranking == "intent":
        add([s for s in newest_first(recent_intents) if s in allowed], "intent", limit=settings.max_top_k)
        add([s for s in newest_first(demand) if s in allowed], "demand", limit=settings.max_top_k)
    add(sorted(set(positions)), "position")
    add(rank_backfill(allowlist, ranking=settings.ranking), "backfill", limit=top_k)
    return CandidatePlan(symbols=tuple(chosen), tiers=chosen, top_k=top_k)


# -- 5. snapshots -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PositionView:
    symbol: str
    amount: float  # signed: short < 0
    entry_price: float
    unrealized_pnl: float | None = None


@dataclass(frozen=True, slots=True)
class SnapshotRow:
    symbol: str
    mark_price: float
    position_amt: float
    entry_price: float
    unrealized_pnl: float
    ts: int

    def fields(self) -> dict[str, str]:
        return {
            snapshots.MARK_PRICE: repr(self.mark_price),
            snapshots.POSITION_AMT: repr(self.position_amt),
            snapshots.ENTRY_PRICE: repr(self.entry_price),
            snapshots.UNREALIZED_PNL: repr(self.unrealized_pnl),
            snapshots.TS: str(self.ts),
        }


def parse_positions(raw: Mapping[str, str]) -> tuple[dict[str, PositionView], list[str]]:
    """``state:positions`` (symbol → JSON) as views, and the symbols whose JSON was unusable."""
    amounts, bad = shared_positions.signed_amounts(raw)
    return {s: PositionView(s, amt, entry) for s, (amt, entry) in amounts.items()}, bad


def build_snapshots(
    symbols: Iterable[str],
    *,
    marks: Mapping[str, float],
    positions: Mapping[str, PositionView],
    now_ms: int,
) -> tuple[tuple[SnapshotRow, ...], tuple[str, ...]]:
    """Rows for symbols with a usable mark price, and the symbols without one."""
    rows: list[SnapshotRow] = []
    missing: list[str] = []
    for s in symbols:
        mark = marks.get(s)
        if mark is None or not mark > 0.0:
            missing.append(s)
            continue
        pos = positions.get(s)
        amt = pos.amount if pos else 0.0
        entry = pos.entry_price if pos else 0.0
        if pos is not None and pos.unrealized_pnl is not None:
            upnl = pos.unrealized_pnl
        else:
            upnl = (mark - entry) * amt if pos else 0.0
        rows.append(SnapshotRow(s, float(mark), amt, entry, round(upnl, 8), now_ms))
    return tuple(rows), tuple(missing)


def tradable_symbols(rows: Iterable[SnapshotRow], *, allowlist: Allowlist) -> frozenset[str]:
    """Symbols that may receive new intents: a fresh snapshot and in the allowlist."""
    allowed = allowlist.as_set
    return frozenset(r.symbol for r in rows if r.symbol in allowed)


# -- 6. coverage ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Coverage:
    ratio: float
    covered: tuple[str, ...]
    missing: tuple[str, ...]


def measure_coverage(recent_intents: Iterable[str], *, fresh: frozenset[str]) -> Coverage:
    """Share of recent intent symbols with a fresh snapshot (1.0 when there are none)."""
    wanted = sorted(set(recent_intents))
    covered = tuple(s for s in wanted if s in fresh)
    missing = tuple(s for s in wanted if s not in fresh)
    ratio = 1.0 if not wanted else len(covered) / len(wanted)
    return Coverage(ratio=ratio, covered=covered, missing=missing)


# -- one cycle, end to end (what the shell calls) --------------------------------------------------


@dataclass(frozen=True, slots=True)
class CyclePlan:
    """Stages 1–4 of one cycle: the allowlist, top-K and the symbols to fetch."""

    allowlist: Allowlist
    top_k: int
    candidates: CandidatePlan


def plan_cycle(
    settings: SnapshotSettings,
    *,
    active: UniverseView | None,
    last_ok: UniverseView | None,
    positions: Iterable[str],
    recent_intents: Mapping[str, int],
    demand: Mapping[str, int],
    ewma_latency_s: float | None,
    now_ms: int,
) -> CyclePlan:
    allowlist = resolve_allowlist(settings, active=active, last_ok=last_ok, now_ms=now_ms)
    top_k = compute_top_k(ewma_latency_s=ewma_latency_s, settings=settings)
    candidates = choose_candidates(
        allowlist=allowlist, recent_intents=recent_intents, demand=demand, positions=positions, top_k=top_k,
        settings=settings,
    )
    return CyclePlan(allowlist, top_k, candidates)


@dataclass(frozen=True, slots=True)
class CycleOutcome:
    """Stages 5–6: the rows to write, symbols without a price, the tradable set and the coverage."""

    rows: tuple[SnapshotRow, ...]
    missing: tuple[str, ...]
    tradable: frozenset[str]
    coverage: Coverage


def finish_cycle(
    plan: CyclePlan,
    *,
    marks: Mapping[str, float],
    positions: Mapping[str, PositionView],
    recent_intents: Iterable[str],
    now_ms: int,
) -> CycleOutcome:
    rows, missing = build_snapshots(plan.candidates.symbols, marks=marks, positions=positions, now_ms=now_ms)
    tradable = tradable_symbols(rows, allowlist=plan.allowlist)
    coverage = measure_coverage(recent_intents, fresh=frozenset(r.symbol for r in rows))
    return CycleOutcome(rows, missing, tradable, coverage)
