"""The TradingProfile (contract, docs/design.md): one frozen settings model per worker, composed.

A profile file for ``qt`` is the same manifest ``kubectl apply`` takes. Field
names are camelCase in YAML (``targetOpenOrders``) and snake_case in Python
(``target_open_orders``). Durations are written ``"3s"``, ``"30m"``, ``"24h"``
and held as float seconds. Unknown fields are errors. Cross-field rules are
enforced here and nowhere else, so ``qt validate``, worker start-up, the CRD's
``x-kubernetes-validations`` and the admission webhook agree.

Typing is strict, as the API server's: ``"true"``, ``"0.8"``, ``"7"`` or ``no`` are not a
boolean or a number, a duration is a string, ``.inf``/``.nan`` are refused, and every
duration, rate and limit has a lower and an upper bound that keeps its rule meaningful.
Production profiles get hard health limits. The CRD (``quantum_operator.crd``) is generated
from these models, bounds and rules included, so every door refuses the same documents.

Nothing here reads the environment: no variable (``STRICT_HEALTH=0`` or any
other) can change a profile's strictness.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from quantum_trader.core.keys import PROFILE_NAME_RE, Keys
from quantum_trader.core.yamlsafe import safe_load

API_VERSION: Final = "quantumtrader.io/v1alpha1"
KIND: Final = "TradingProfile"

_NUM: Final = r"[0-9]+(\.[0-9]+)?"
# One grammar for every duration in a profile: '30s', '5m', '1h30m', '2m30s', '250ms', '7d'. Units in
# descending order, each at most once; a day count stands alone ('36h', not '1d12h'), because the CRD's
# CEL rules read durations with CEL's duration(), which knows no 'd'.
DURATION_PATTERN: Final = (
    rf"^({_NUM}d|({_NUM}h)?({_NUM}m)?({_NUM}s)?({_NUM}ms)?)$"
)
_DURATION_RE: Final = re.compile(DURATION_PATTERN)
_SEGMENT_RE: Final = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)")
_UNIT_S: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
TIMEFRAMES: Final = ("1m", "5m", "15m", "1h", "4h")
MAX_PROFILE_NAME: Final = 40  # child objects append '-executor', '-metrics': the name stays a DNS label
NAME_LIMIT_MESSAGE: Final = (
    f"at most {MAX_PROFILE_NAME} characters (child objects append '-executor', '-metrics')"
)
NAME_PATTERN_MESSAGE: Final = "lower-case letters, digits and '-', starting and ending with a letter or digit"
SECRET_NAME_PATTERN: Final = r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?)?$"
# Unknown fields with these names are credentials written inline: refused with a pointer to Secrets.
CREDENTIAL_FIELDS: Final = frozenset(
    {"apikey", "apisecret", "secret", "secretkey", "password", "passphrase", "token", "privatekey", "url", "key"}
)
CREDENTIALS_MESSAGE: Final = (
    "inline credentials are not allowed: put them in a Secret and name it in "
    "exchange.credentialsSecret or redis.urlSecret"
)
DOCUMENT: Final = {"document": True}  # validation context: a manifest (YAML/JSON), not Python code


def parse_duration(value: object, *, document: bool = False) -> float:
    """``"3s"`` → 3.0, ``"30m"`` → 1800.0. In a manifest (``document``) a duration is a string, as in
    the CRD; Python callers may pass seconds."""
    if isinstance(value, bool) or (document and not isinstance(value, str)):
        raise ValueError(f"a duration like '30s', '5m', '1h30m' or '24h' (got {value!r})")
    if isinstance(value, (int, float)):
        if value < 0 or value != value or value in (float("inf"), float("-inf")):
            raise ValueError("must be a finite duration, not negative")
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if text and _DURATION_RE.fullmatch(text):
            return sum(float(n) * _UNIT_S[u] for n, u in _SEGMENT_RE.findall(text))
    raise ValueError(f"a duration like '30s', '5m', '1h30m' or '24h' (got {value!r})")


def _duration_field(value: object, info: ValidationInfo) -> float:
    return parse_duration(value, document=bool(info.context and info.context.get("document")))


def format_duration(seconds: float) -> str:
    """Inverse of :func:`parse_duration`: the largest unit that divides evenly (hours up to a day)."""
    if seconds == 0:
        return "0s"
    for unit in ("d", "h", "m", "s"):
        if unit == "d" and seconds <= 86400:
            continue
        n = seconds / _UNIT_S[unit]
        if n >= 1 and abs(n - round(n)) < 1e-9:
            return f"{round(n)}{unit}"
    return f"{round(seconds * 1000)}ms"


Duration = Annotated[
    float,
    BeforeValidator(_duration_field),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN, "minLength": 2, "maxLength": 32}),
]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


@dataclass(frozen=True, slots=True)
class DurationBounds:
    """Lower and upper bound of a duration field (seconds), also emitted as a CEL rule in the CRD."""

    low: float
    high: float

    @property
    def message(self) -> str:
        return f"must be between {format_duration(self.low)} and {format_duration(self.high)}"

    def __call__(self, value: float) -> float:
        if not self.low <= value <= self.high:
            raise ValueError(f"{self.message} (got {format_duration(value)})")
        return value


def bounded(low: str, high: str) -> Any:
    """``Annotated[Duration, bounded("1s", "5m")]``: the duration must lie in [low, high]."""
    bounds = DurationBounds(parse_duration(low), parse_duration(high))
    return AfterValidator(bounds)


def duration_bounds(metadata: list[Any]) -> DurationBounds | None:
    """The :class:`DurationBounds` of a field (from its ``Annotated`` metadata), if any."""
    for item in metadata:
        func = getattr(item, "func", None)
        if isinstance(func, DurationBounds):
            return func
    return None


def _as_tuple(value: object) -> object:
    """YAML/JSON lists become tuples (strict mode accepts only tuples for tuple fields)."""
    return tuple(value) if isinstance(value, list) else value


def _secret_name(value: str) -> str:
    """A Secret's name, never a URL or a credential (the value is never echoed back)."""
    if value and (len(value) > 253 or not re.match(SECRET_NAME_PATTERN, value)):
        raise PydanticCustomError(
            "secret_name", "must name a Secret (lower-case DNS name), not hold a URL or credentials"
        )
    return value


SecretName = Annotated[
    str,
    AfterValidator(_secret_name),
    WithJsonSchema({"type": "string", "maxLength": 253, "pattern": SECRET_NAME_PATTERN}),
]
Symbols = Annotated[tuple[str, ...], BeforeValidator(_as_tuple)]


def _rule(field: str, message: str) -> PydanticCustomError:
    """A cross-field rule violation; ``field`` is the path below the model that raises it."""
    return PydanticCustomError("rule", "{message}", {"field": field, "message": message})


class Settings(BaseModel):
    """Base of every settings model: frozen, camelCase aliases, unknown fields forbidden."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        validate_default=False,  # defaults are already valid values (and durations in seconds)
        strict=True,
        allow_inf_nan=False,
    )


class FaultSettings(Settings):
    """Fault injection for the simulated exchange (tests and drills only)."""

    discovery: Literal["", "fail"] = Field("", description="'fail': market discovery raises. Default ''.")
    klines: Literal["", "fail"] = Field("", description="'fail': every kline fetch raises. Default ''.")
    stale_symbols: Symbols = Field(
        (), description="Symbols whose klines stop some bars before now until repaired. Default []."
    )
    stale_bars: int = Field(
        20, ge=1, le=10_000, description="How many bars the stale symbols lag behind (bars). Default 20."
    )
    unrepairable_symbols: Symbols = Field(
        (), description="Stale symbols that a backfill cannot repair. Default []."
    )
    latency_ms: int = Field(0, ge=0, le=60_000, description="Added latency per request (ms). Default 0.")
    reject_rate: Fraction = Field(0.0, description="Share of orders the sim rejects (0..1). Default 0.")


class ExchangeSettings(Settings):
    """Which exchange supplies market data and takes orders."""

    name: Literal["sim", "replay", "binanceusdm"] = Field("sim", description="Exchange adapter. Default sim.")
    credentials_secret: SecretName = Field(
        "", description="Name of a Secret with keys 'apiKey' and 'secret' (never the keys). Default ''."
    )
    seed: int = Field(7, ge=0, le=2**31 - 1, description="Sim: market seed; every process sees the same market. Default 7.")
    speed: float = Field(1.0, gt=0, le=10_000, description="Sim: virtual-clock speed (x real time). Default 1.")
    data: str = Field("", description="Replay: folder of <SYMBOL>_<timeframe>.csv files. Default ''.")
    market_data: Literal["mainnet", "testnet"] = Field(
        "mainnet", description="binanceusdm: where market data comes from (orders follow environment)."
    )
    faults: FaultSettings = Field(default_factory=FaultSettings)


class UniverseWeights(Settings):
    """Score = trend·w_trend + momentum·w_momentum + volatility quality·w_volatility."""

    trend: float = Field(1.0, ge=0, le=100, description="Weight of EMA-slope trend (1h). Default 1.0.")
    momentum: float = Field(1.0, ge=0, le=100, description="Weight of ROC momentum (15m and 1h). Default 1.0.")
    volatility: float = Field(0.5, ge=0, le=100, description="Weight of volatility quality. Default 0.5.")


class EfficiencyThresholds(Settings):
    """Minimum Kaufman efficiency ratio per asset class (a single 0.05 threshold once let only a stablecoin pass)."""

    major: Fraction = Field(0.02, description="BTC, ETH and other majors. Default 0.02.")
    alt: Fraction = Field(0.02, description="Everything else. Default 0.02.")
    stable: Fraction = Field(0.05, description="Pegged assets (only relevant if not excluded). Default 0.05.")


class UniverseSettings(Settings):
    """Universe worker: discovery, features, vetoes, ranking, publication."""

    size: int = Field(10, ge=1, le=200, description="Symbols in the published universe. Default 10.")
    refresh_interval: Annotated[Duration, bounded("1m", "1d")] = Field(
        1800.0, description="Time between publications (1m..1d). Default 30m."
    )
    valid_for: Annotated[Duration, bounded("1m", "7d")] = Field(
        3600.0,
        description="valid_until = generated_at + validFor; then the universe is empty (1m..7d). Default 1h.",
    )
    stuck_alert_after: Annotated[Duration, bounded("10m", "7d")] = Field(
        21600.0, description="Alert when universe_hash has not changed for this long (10m..7d). Default 6h."
    )
    timeframes: Annotated[tuple[Literal["1m", "5m", "15m", "1h", "4h"], ...], BeforeValidator(_as_tuple)] = Field(
        ("15m", "1h"), description="Feature timeframes. Default [15m, 1h]."
    )
    bars: int = Field(500, ge=50, le=5000, description="Bars fetched per symbol and timeframe. Default 500.")
    min_quote_volume_24h: float = Field(
        1_000_000.0, ge=0, le=1e12, alias="minQuoteVolume24h", description="Liquidity floor: 24h quote volume (USDT). Default 1000000."
    )
    exclude_stable: bool = Field(True, description="Exclude pegged/stable assets from the alpha universe.")
    efficiency_min: EfficiencyThresholds = Field(default_factory=EfficiencyThresholds)
    toxic_hurst: float = Field(
        0.60, ge=0, le=1, description="Veto when Hurst exceeds this with negative momentum. Default 0.60."
    )
    friction_veto: bool = Field(True, description="Veto when friction exceeds |momentum|. Default true.")
    spread_bps: float = Field(2.0, ge=0, le=1000, description="Assumed spread for the friction estimate (bps).")
    fee_bps: float = Field(
        4.0, ge=0, le=100, description="Taker fee per side for the friction estimate (bps). Default 4."
    )
    max_per_cluster: int = Field(
        0, ge=0, le=200, description="At most k symbols per correlation cluster; 0 disables. Default 0."
    )
    cluster_correlation: Fraction = Field(
        0.8, description="Returns correlation above which symbols share a cluster. Default 0.8."
    )
    weights: UniverseWeights = Field(default_factory=UniverseWeights)


class HealthSettings(Settings):
    """Data health audit: staleness, gaps, too few bars. Production profiles are always strict."""

    strict: bool = Field(True, description="Exclude unhealthy symbols. Default true; production: always.")
    max_staleness_bars: int = Field(
        2, ge=1, le=1000, description="A timeframe is stale when its last bar is older than this many bars. Default 2."
    )
    auto_repair: bool = Field(True, description="Backfill stale/gappy symbols and re-audit. Default true.")
    max_repair_rounds: int = Field(2, ge=0, le=10, description="Repair → re-audit rounds at most. Default 2.")
    min_bars: int = Field(100, ge=10, le=5000, description="Fewer bars than this is unhealthy. Default 100.")
    max_gap_bars: int = Field(0, ge=0, le=1000, description="Missing bars tolerated inside the window. Default 0.")


class SizeBoostSettings(Settings):
    """Router size boost for the best candidates of a batch."""

    rank1_confidence: Fraction = Field(0.90, description="Rank 1 at or above this is boosted. Default 0.90.")
    rank1_factor: float = Field(1.30, ge=1.0, le=5.0, description="Rank 1 boost factor. Default 1.30.")
    rank2_confidence: Fraction = Field(0.85, description="Rank 2 at or above this is boosted. Default 0.85.")
    rank2_factor: float = Field(1.10, ge=1.0, le=5.0, description="Rank 2 boost factor. Default 1.10.")


class RouterSettings(Settings):
    """Router: capacity- and quality-aware best-of-N batching."""

    max_open_orders: int = Field(10, ge=0, le=1000, description="Hard capacity cap (positions + orders). Default 10.")
    target_open_orders: int = Field(3, ge=0, le=1000, description="Normal desired open count. Default 3.")
    max_new_per_cycle: int = Field(2, ge=1, le=100, description="Burst limit: intents per batch. Default 2.")
    candidate_window: Annotated[Duration, bounded("100ms", "1m")] = Field(
        3.0, description="Batch window; also candidate staleness (100ms..1m). Default 3s."
    )
    batch_size: int = Field(10, ge=1, le=1000, description="Decide early when this many are buffered. Default 10.")
    min_confidence: Fraction = Field(
        0.55, description="Guard before the expected-value rule: below it, LOW_CONFIDENCE_DROP (a calibrated "
        "probability; 0.55 is reachable by a calibrated model). Default 0.55."
    )
    super_confidence: Fraction = Field(
        0.70, description="At or above: may bypass the target (the highest a calibrated model reaches on the sim). "
        "Default 0.70."
    )
    filter_tradable: bool = Field(True, description="Drop symbols outside cfg:tradable_symbols. Default true.")
    stop_loss_atr: float = Field(1.5, gt=0, le=100, description="Stop loss distance in ATRs. Default 1.5.")
    take_profit_atr: float = Field(3.0, gt=0, le=100, description="Take profit distance in ATRs. Default 3.0.")
    leverage: float = Field(2.0, gt=0, le=125, description="Leverage on intents. Default 2.")
    lease_ttl: Annotated[Duration, bounded("1s", "5m")] = Field(
        10.0, description="Leader lease TTL; a standby takes over after it (1s..5m). Default 10s."
    )
    size_boost: SizeBoostSettings = Field(default_factory=SizeBoostSettings)

    @model_validator(mode="after")
    def _rules(self) -> RouterSettings:
        if self.target_open_orders > self.max_open_orders:
            raise _rule(
                "targetOpenOrders",
                f"must be <= maxOpenOrders ({self.target_open_orders} > {self.max_open_orders})",
            )
        if self.min_confidence > self.super_confidence:
            raise _rule(
                "minConfidence",
                f"must be <= superConfidence ({self.min_confidence} > {self.super_confidence})",
            )
        return self


class SnapshotSettings(Settings):
    """Snapshot worker: which symbols get exchange snapshots."""

    allowlist_source: Literal["universe", "env"] = Field(
        "universe", description="universe: active → last_ok → allowlist; env: allowlist only."
    )
    allowlist: Symbols = Field((), description="Profile allowlist (last tier / env source).")
    ranking: Literal["intent", "volume", "alphabetical"] = Field(
        "intent", description="Backfill ranking after intent symbols and positions. Default intent."
    )
    min_top_k: int = Field(10, ge=1, le=1000, description="Minimum symbols per cycle. Default 10.")
    target_cycle: Annotated[Duration, bounded("1s", "10m")] = Field(
        10.0, description="Snapshot cycle target; top-K = cycle / EWMA latency (1s..10m). Default 10s."
    )
    max_top_k: int = Field(200, ge=1, le=1000, description="Upper bound on top-K. Default 200.")
    intent_window: Annotated[Duration, bounded("1m", "7d")] = Field(
        1800.0, description="Recent intents considered (1m..7d). Default 30m."
    )
    ttl: Annotated[Duration, bounded("5s", "1h")] = Field(
        60.0, description="TTL of snapshots and cfg:tradable_symbols (5s..1h). Default 60s."
    )


class GateSettings(Settings):
    """Gate: one decision per intent, fixed rule order."""

    kill_score_warning: Fraction = Field(0.6, description="Block risk increase at or above. Default 0.6.")
    kill_score_critical: Fraction = Field(0.8, description="Block everything not reduce-only. Default 0.8.")
    cooldown: Annotated[Duration, bounded("0s", "1d")] = Field(
        300.0, description="No new risk on a symbol after a close (0s = none .. 1d). Default 5m."
    )
    max_exposure_usd: float = Field(1000.0, gt=0, le=1e12, description="Gross open notional cap (USD). Default 1000.")
    max_leverage: float = Field(10.0, gt=0, le=125, description="Leverage cap per intent. Default 10.")
    daily_loss_limit_usd: float = Field(200.0, gt=0, le=1e12, description="Realised loss today cap (USD). Default 200.")
    max_snapshot_age: Annotated[Duration, bounded("1s", "1h")] = Field(
        30.0, description="Older snapshot: stale_snapshot (1s..1h). Default 30s."
    )
    max_intent_age: Annotated[Duration, bounded("1s", "1h")] = Field(
        30.0, description="Older opening intent (by its ts): stale_intent; reduce-only exempt (1s..1h). Default 30s."
    )
    kill_drawdown_usd: float = Field(
        100.0, gt=0, le=1e12, description="Drawdown (USD) that alone gives kill score 1. Default 100."
    )
    kill_loss_streak: int = Field(6, ge=1, le=1_000_000, description="Consecutive losses that alone give 1. Default 6.")
    kill_error_rate: Fraction = Field(0.5, description="Execution error rate that alone gives 1. Default 0.5.")

    @model_validator(mode="after")
    def _rules(self) -> GateSettings:
        if self.kill_score_warning > self.kill_score_critical:
            raise _rule(
                "killScoreWarning",
                f"must be <= killScoreCritical ({self.kill_score_warning} > {self.kill_score_critical})",
            )
        return self


class AiSettings(Settings):
    """AI worker and ``qt train``."""

    timeframe: Literal["1m", "5m", "15m", "1h"] = Field("15m", description="Signal bar. Default 15m.")
    horizon_bars: int = Field(4, ge=1, le=96, description="Label horizon (bars). Default 4.")
    history_bars: int = Field(2000, ge=200, le=100_000, description="Training history per symbol (bars). Default 2000.")
    train_symbols: int = Field(40, ge=1, le=1000, description="Most liquid symbols pooled for training. Default 40.")
    retrain_interval: Annotated[Duration, bounded("10m", "30d")] = Field(
        86400.0, description="Retrain cadence (CronJob) (10m..30d). Default 24h."
    )
    allow_fallback: bool = Field(True, description="Emit fallback-* signals with no promoted model.")
    min_auc: Fraction = Field(0.52, description="Quality gate: out-of-sample AUC at least. Default 0.52.")
    max_calibration_error: Fraction = Field(0.05, description="Quality gate: ECE at most. Default 0.05.")
    hold_below: Fraction = Field(0.55, description="Confidence below this is HOLD. Default 0.55.")


class ExecutorSettings(Settings):
    """Executor: sizing base, fees and slippage."""

    base_size_usd: float = Field(10.0, gt=0, le=1e7, description="Base position size (USD). Default 10.")
    fee_bps: float = Field(4.0, ge=0, le=100, description="Taker fee (bps). Default 4.")
    max_slippage_bps: float = Field(10.0, ge=0, le=1000, description="Paper slippage bound (bps). Default 10.")
    max_position_usd: float = Field(
        100.0, gt=0, le=1e12,
        description="A size below the exchange minimum (notional/step) is raised to it only up to this notional "
        "per position (USD; also within gate.maxExposureUsd); beyond: below_min_notional. Default 100.",
    )
    maintenance_margin_rate: float = Field(
        0.005, ge=0, lt=1,
        description="Maintenance margin (fraction of notional) for the liquidation price checked at entry "
        "(isolated margin at the intent's leverage); a stop beyond it: liquidation_before_stop. Default 0.005.",
    )
    monitor_interval: Annotated[Duration, bounded("100ms", "1m")] = Field(
        1.0, description="SL/TP price check interval (100ms..1m). Default 1s."
    )
    reconcile_interval: Annotated[Duration, bounded("5s", "1h")] = Field(
        60.0, description="Exchange reconciliation interval (5s..1h). Default 60s."
    )
    ledger_retention: Annotated[Duration, bounded("1h", "90d")] = Field(
        604800.0,
        description="Keep exactly-once ledger entries this long; redelivery happens within minutes "
        "(1h..90d). Default 7d.",
    )


class RedisSettings(Settings):
    url_secret: SecretName = Field("", description="Secret with key 'url'; empty: the chart's Redis.")


class WorkersSettings(Settings):
    image: str = Field("", description="Worker image; empty: the operator's default.")
    resources: dict[str, dict[str, str]] = Field(
        default_factory=dict, description="Kubernetes resources for every worker container."
    )
    log_format: Literal["", "text", "json"] = Field(
        "", description="Worker log format; '' = the operator's default (its QT_LOG_FORMAT, else text)."
    )


PRODUCTION_MAX_STALENESS_BARS: Final = 3
PRODUCTION_MAX_GAP_BARS: Final = 2
PRODUCTION_MIN_BARS: Final = 100  # the longest feature window (1h EMA slope, Hurst) needs this much history
PRODUCTION_MIN_REPAIR_ROUNDS: Final = 1


def production_health_issues(health: HealthSettings) -> list[tuple[str, str]]:
    """(field, message) for each health threshold a production profile may not loosen (seed 004)."""
    out: list[tuple[str, str]] = []
    if health.max_staleness_bars > PRODUCTION_MAX_STALENESS_BARS:
        out.append(("maxStalenessBars", f"production allows at most {PRODUCTION_MAX_STALENESS_BARS} "
                                        f"(got {health.max_staleness_bars})"))
    if health.max_gap_bars > PRODUCTION_MAX_GAP_BARS:
        out.append(("maxGapBars", f"production allows at most {PRODUCTION_MAX_GAP_BARS} (got {health.max_gap_bars})"))
    if health.min_bars < PRODUCTION_MIN_BARS:
        out.append(("minBars", f"production needs at least {PRODUCTION_MIN_BARS} (got {health.min_bars})"))
    if not health.auto_repair:
        out.append(("autoRepair", "production requires autoRepair: true"))
    if health.max_repair_rounds < PRODUCTION_MIN_REPAIR_ROUNDS:
        out.append(("maxRepairRounds", f"production needs at least {PRODUCTION_MIN_REPAIR_ROUNDS} "
                                       f"(got {health.max_repair_rounds})"))
    return out


class TradingProfileSpec(Settings):
    """``spec`` of a TradingProfile."""

    environment: Literal["paper", "testnet", "production"] = Field(
        "paper", description="paper: simulated fills; testnet/production: real orders."
    )
    paused: bool = Field(False, description="Trading workers scaled to zero; the universe keeps running.")
    exchange: ExchangeSettings = Field(default_factory=ExchangeSettings)
    universe: UniverseSettings = Field(default_factory=UniverseSettings)
    health: HealthSettings = Field(default_factory=HealthSettings)
    router: RouterSettings = Field(default_factory=RouterSettings)
    snapshot: SnapshotSettings = Field(default_factory=SnapshotSettings)
    gate: GateSettings = Field(default_factory=GateSettings)
    ai: AiSettings = Field(default_factory=AiSettings)
    executor: ExecutorSettings = Field(default_factory=ExecutorSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    workers: WorkersSettings = Field(default_factory=WorkersSettings)

    @model_validator(mode="after")
    def _rules(self) -> TradingProfileSpec:
        if self.environment == "production" and not self.health.strict:
            raise _rule("health.strict", "production requires health.strict: true (it cannot be disabled)")
        if self.environment in ("testnet", "production") and self.exchange.name != "binanceusdm":
            raise _rule(
                "exchange.name",
                f"{self.environment} places real orders and needs exchange.name: binanceusdm "
                f"(got {self.exchange.name})",
            )
        if self.exchange.name == "replay" and not self.exchange.data:
            raise _rule("exchange.data", "replay needs a folder of CSV files")
        if self.environment == "production":
            for field, message in production_health_issues(self.health):
                raise _rule(f"health.{field}", message)
        return self

    @property
    def mode(self) -> Literal["paper", "testnet", "live"]:
        """Execution mode: production trades live."""
        return "live" if self.environment == "production" else self.environment


class Metadata(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow", strict=True)
    name: str
    namespace: str = ""  # '' = a local profile file; set by Kubernetes (and the operator's ConfigMap)

    @field_validator("name")
    @classmethod
    def _name_fits_children(cls, name: str) -> str:
        if not PROFILE_NAME_RE.match(name):
            raise _rule("", NAME_PATTERN_MESSAGE)
        if len(name) > MAX_PROFILE_NAME:
            raise _rule("", f"{NAME_LIMIT_MESSAGE} (got {len(name)})")
        return name


class TradingProfile(BaseModel):
    """A whole TradingProfile manifest."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)
    api_version: Literal["quantumtrader.io/v1alpha1"] = Field(API_VERSION, alias="apiVersion")
    kind: Literal["TradingProfile"] = KIND
    metadata: Metadata
    spec: TradingProfileSpec  # required, as in the CRD (`spec: {}` takes every default)
    status: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def keys(self) -> Keys:
        """Every Redis name of this profile (namespaced when the profile has a namespace)."""
        return Keys(self.name, namespace=self.metadata.namespace)


# -- loading and error reporting ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProfileIssue:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ProfileError(ValueError):
    """An invalid profile: one :class:`ProfileIssue` per problem, each printable as one line."""

    def __init__(self, issues: list[ProfileIssue], *, source: str = "") -> None:
        self.issues = issues
        self.source = source
        super().__init__("\n".join(str(i) for i in issues))


def _issues(exc: ValidationError, *, root: str) -> list[ProfileIssue]:
    out: list[ProfileIssue] = []
    for err in exc.errors():
        parts = [str(p) for p in err["loc"]]
        ctx = err.get("ctx") or {}
        if err["type"] == "rule":
            parts.extend(str(ctx["field"]).split("."))
            message = str(ctx["message"])
        elif err["type"] == "extra_forbidden" and parts[-1].lower() in CREDENTIAL_FIELDS:
            message = CREDENTIALS_MESSAGE
        elif err["type"] == "extra_forbidden":
            message = f"unknown field {parts[-1]!r}"
        elif err["type"] == "missing":
            message = "required field missing"
        elif err["type"] == "value_error":
            message = str(ctx.get("error", err["msg"]))
        elif err["type"] == "secret_name" or (parts[-1:] and parts[-1].endswith("Secret")):
            message = err["msg"]  # never echo what was written where a Secret's name belongs
        else:
            message = f"{err['msg']}{_echo(err.get('input'))}"
        path = ".".join(p for p in ([root] if root else []) + parts if p)
        out.append(ProfileIssue(path, message))
    return out


def _echo(value: object) -> str:
    """`` (got 'true')`` for a short scalar; nothing for maps, lists or long values (no secret leaks)."""
    if isinstance(value, (dict, list, tuple)) or value is None:
        return ""
    text = repr(value)
    return f" (got {text})" if len(text) <= 64 else ""


def parse_profile(document: Mapping[str, Any]) -> TradingProfile:
    """Validate a manifest (already parsed from YAML); raise :class:`ProfileError`."""
    if not isinstance(document, Mapping):
        raise ProfileError([ProfileIssue("", "a TradingProfile manifest must be a mapping")])
    try:
        return TradingProfile.model_validate(dict(document), context=DOCUMENT)
    except ValidationError as exc:
        raise ProfileError(_issues(exc, root="")) from None


def parse_spec(spec: Mapping[str, Any]) -> TradingProfileSpec:
    """Validate a bare ``spec`` (the operator and the webhook receive it this way)."""
    try:
        return TradingProfileSpec.model_validate(dict(spec), context=DOCUMENT)
    except ValidationError as exc:
        raise ProfileError(_issues(exc, root="spec")) from None


def load_profile(path: str | Path) -> TradingProfile:
    """Read and validate a profile YAML file; every failure is a :class:`ProfileError`."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError([ProfileIssue("", f"{p}: cannot read ({exc.strerror})")], source=str(p)) from None
    try:
        document = safe_load(text)  # alias bombs, huge or deep documents refused (core/yamlsafe.py)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{p}:{mark.line + 1}" if mark is not None else str(p)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ProfileError([ProfileIssue("", f"{where}: invalid YAML: {problem}")], source=str(p)) from None
    if document is None:
        raise ProfileError([ProfileIssue("", f"{p}: empty file")], source=str(p))
    try:
        return parse_profile(document)
    except ProfileError as exc:
        raise ProfileError(exc.issues, source=str(p)) from None


def default_profile(name: str = "paper") -> TradingProfile:
    """The profile ``qt`` uses without ``--profile``: ``examples/paper.yaml`` semantics."""
    return TradingProfile(metadata=Metadata(name=name), spec=TradingProfileSpec())


def spec_to_json(spec: TradingProfileSpec) -> dict[str, Any]:
    """The spec as the camelCase JSON a manifest or ConfigMap holds (durations as strings)."""
    return spec.model_dump(mode="json", by_alias=True)
