"""Frozen data of the universe cycle: stages, reason codes, drops, candidates, results.

Every symbol that enters the cycle leaves it either selected (with a rank) or
dropped at one stage with one reason code (``Drop``). The funnel counts the
symbols remaining after each stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from quantum_trader.market.base import AssetClass

# Stages in order; the funnel records how many symbols remain after each.
STAGE_LISTED: Final = "listed"  # every market the exchange lists
STAGE_DISCOVERED: Final = "discovered"  # trading perpetuals quoted in DISCOVERY_QUOTES
STAGE_MERGED: Final = "merged"  # one listing per base asset (identity merge)
STAGE_ELIGIBLE: Final = "eligible"  # not stable/pegged, liquid enough (24h ticker)
STAGE_HEALTHY: Final = "healthy"  # data health audit (after auto-repair)
STAGE_FEATURED: Final = "featured"  # usable bars, finite features
STAGE_VETTED: Final = "vetted"  # passed the predictability/friction vetoes
STAGE_SELECTED: Final = "selected"  # top universe.size (and at most k per cluster)
STAGES: Final = (
    STAGE_LISTED,
    STAGE_DISCOVERED,
    STAGE_MERGED,
    STAGE_ELIGIBLE,
    STAGE_HEALTHY,
    STAGE_FEATURED,
    STAGE_VETTED,
    STAGE_SELECTED,
)

# Quote assets whose perpetuals enter discovery. USDC-quoted perpetuals enter only so the
# identity merge can see both listings of a base asset; the merge keeps the most liquid one.
DISCOVERY_QUOTES: Final = ("USDT", "USDC")
PREFERRED_QUOTE: Final = "USDT"  # wins a liquidity tie

# Reason codes (a drop's ``reason``; metrics use these as label values).
R_NOT_PERPETUAL: Final = "not_perpetual"
R_NOT_TRADING: Final = "not_trading"
R_QUOTE: Final = "quote_not_supported"
R_MERGED: Final = "merged_duplicate"
R_STABLE: Final = "stable_asset"
R_NO_TICKER: Final = "no_ticker"
R_LIQUIDITY: Final = "low_liquidity"
R_NO_KLINES: Final = "no_klines"
R_TOO_FEW_BARS: Final = "too_few_bars"
R_STALE: Final = "stale"
R_GAPS: Final = "gaps"
R_BAD_TIMESTAMPS: Final = "bad_timestamps"
R_NAN: Final = "nan_values"
R_BAD_PRICES: Final = "bad_prices"
R_CONSTANT: Final = "constant_price"
R_ZERO_VOLUME: Final = "zero_volume"
R_NON_FINITE: Final = "non_finite_feature"
R_LOW_EFFICIENCY: Final = "low_efficiency"
R_TOXIC: Final = "toxic_persistence"
R_FRICTION: Final = "high_friction"
R_CLUSTER: Final = "cluster_full"
R_CUTOFF: Final = "below_cutoff"

# Health problems a backfill may repair.
REPAIRABLE: Final = frozenset({R_NO_KLINES, R_TOO_FEW_BARS, R_STALE, R_GAPS, R_BAD_TIMESTAMPS})


@dataclass(frozen=True, slots=True)
class Drop:
    """Why a symbol left the cycle: the stage, a reason code and a human detail."""

    stage: str
    reason: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Candidate:
    """A listing that survived discovery and the identity merge."""

    symbol: str
    base: str
    quote: str
    asset_class: AssetClass
    volume_24h: float  # 24h quote volume from the ticker
    spread_bps: float | None = None  # from the ticker's bid/ask; None when unknown


@dataclass(frozen=True, slots=True)
class Discovery:
    """Outcome of discovery + identity merge + eligibility."""

    listed: int
    discovered: int
    merged: int  # identities after the merge
    candidates: tuple[Candidate, ...]  # eligible candidates, most liquid first
    drops: dict[str, Drop] = field(default_factory=dict)
    merges: dict[str, str] = field(default_factory=dict)  # dropped listing -> kept listing


@dataclass(frozen=True, slots=True)
class HealthIssue:
    """One unhealthy symbol/timeframe."""

    symbol: str
    timeframe: str
    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class Ranked:
    """A selected symbol with its rank (1 = best), score, suggested leverage and features."""

    symbol: str
    rank: int
    score: float
    volume_24h: float
    leverage: float
    features: dict[str, float]


@dataclass(frozen=True, slots=True)
class Selection:
    """Outcome of the pure compute stage (features → vetoes → score → rank → select)."""

    featured: int
    vetted: int
    selected: tuple[Ranked, ...]
    drops: dict[str, Drop]
