"""Every Redis name of one profile, in one place (DESIGN §2, contract).

No other module may spell a stream, key or consumer-group literal: they all ask
a :class:`Keys` built from the profile (``TradingProfile.keys``). The prefix is
``quantum:{<profile>}:`` for a profile file without a namespace (``qt run``) and
``quantum:{<namespace>.<profile>}:`` for a profile in a Kubernetes namespace, so two
same-named profiles in two namespaces never share keys on one Redis. Either way the hash
tag ``{...}`` keeps all keys of one profile in one Redis Cluster slot (namespaces and
profile names are DNS labels: the ``.`` cannot be part of either).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

PROFILE_NAME_RE: Final = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")

# Stream suffixes (``P:stream:<name>``).
STREAM_POLICY_AUDIT: Final = "policy.audit"
STREAM_AI_SIGNAL: Final = "ai.signal"
STREAM_TRADE_INTENT: Final = "trade.intent"
STREAM_GATE_DECISION: Final = "gate.decision"
STREAM_EXECUTION_RESULT: Final = "execution.result"
STREAM_POSITION_EVENT: Final = "position.event"
STREAM_DEADLETTER: Final = "deadletter"
STREAM_RECONCILE: Final = "reconcile.event"
STREAM_ROUTER_DROP: Final = "router.drop"
STREAM_OPS_AUDIT: Final = "ops.audit"

ALL_STREAMS: Final = (
    STREAM_POLICY_AUDIT,
    STREAM_AI_SIGNAL,
    STREAM_TRADE_INTENT,
    STREAM_GATE_DECISION,
    STREAM_EXECUTION_RESULT,
    STREAM_POSITION_EVENT,
    STREAM_DEADLETTER,
    STREAM_RECONCILE,
    STREAM_ROUTER_DROP,
    STREAM_OPS_AUDIT,
)

# Worker names; each consuming worker has one consumer group of the same name.
WORKER_UNIVERSE: Final = "universe"
WORKER_AI: Final = "ai"
WORKER_ROUTER: Final = "router"
WORKER_SNAPSHOT: Final = "snapshot"
WORKER_GATE: Final = "gate"
WORKER_EXECUTOR: Final = "executor"
WORKERS: Final = (WORKER_UNIVERSE, WORKER_AI, WORKER_ROUTER, WORKER_SNAPSHOT, WORKER_GATE, WORKER_EXECUTOR)

# Which worker consumes which stream (its group is named after the worker).
GROUP_ROUTER: Final = WORKER_ROUTER
GROUP_SNAPSHOT: Final = WORKER_SNAPSHOT
GROUP_GATE: Final = WORKER_GATE
GROUP_EXECUTOR: Final = WORKER_EXECUTOR


def validate_profile_name(name: str) -> str:
    """Return ``name`` if it is a valid profile (and Kubernetes object) name, else raise ValueError."""
    if not PROFILE_NAME_RE.match(name):
        raise ValueError(
            f"invalid profile name {name!r}: lower-case letters, digits and '-', 1-63 characters"
        )
    return name


@dataclass(frozen=True, slots=True)
class Keys:
    """All key names of one profile. ``Keys("paper").stream(STREAM_AI_SIGNAL)``;
    ``Keys("paper", namespace="trading")`` for the profile ``paper`` of namespace ``trading``."""

    profile: str
    namespace: str = ""

    def __post_init__(self) -> None:
        validate_profile_name(self.profile)
        if self.namespace and not PROFILE_NAME_RE.match(self.namespace):
            raise ValueError(f"invalid namespace {self.namespace!r}: a DNS label")

    @property
    def hash_tag(self) -> str:
        """``<namespace>.<profile>`` or ``<profile>``: the Redis Cluster hash tag of every key."""
        return f"{self.namespace}.{self.profile}" if self.namespace else self.profile

    @property
    def prefix(self) -> str:
        return f"quantum:{{{self.hash_tag}}}:"

    def stream(self, name: str) -> str:
        if name not in ALL_STREAMS:
            raise ValueError(f"unknown stream {name!r}")
        return f"{self.prefix}stream:{name}"

    # -- streams -----------------------------------------------------------------
    @property
    def policy_audit(self) -> str:
        return self.stream(STREAM_POLICY_AUDIT)

    @property
    def ai_signal(self) -> str:
        return self.stream(STREAM_AI_SIGNAL)

    @property
    def trade_intent(self) -> str:
        return self.stream(STREAM_TRADE_INTENT)

    @property
    def gate_decision(self) -> str:
        return self.stream(STREAM_GATE_DECISION)

    @property
    def execution_result(self) -> str:
        return self.stream(STREAM_EXECUTION_RESULT)

    @property
    def position_event(self) -> str:
        return self.stream(STREAM_POSITION_EVENT)

    @property
    def deadletter(self) -> str:
        return self.stream(STREAM_DEADLETTER)

    @property
    def reconcile_event(self) -> str:
        """Executor reconciliation events (exchange view vs Redis state)."""
        return self.stream(STREAM_RECONCILE)

    @property
    def router_drop(self) -> str:
        """Router drop/fate records (one entry per dropped candidate, for ``qt why``)."""
        return self.stream(STREAM_ROUTER_DROP)

    @property
    def ops_audit(self) -> str:
        """Operations done or refused on the profile (``qt pause`` … and the REST API): who, what, why."""
        return self.stream(STREAM_OPS_AUDIT)

    # -- config / state ------------------------------------------------------------
    @property
    def universe_active(self) -> str:
        return f"{self.prefix}cfg:universe:active"

    @property
    def universe_last_ok(self) -> str:
        return f"{self.prefix}cfg:universe:last_ok"

    @property
    def universe_funnel(self) -> str:
        """Last universe cycle's per-symbol fate (JSON): rank or drop reason, for ``qt why``."""
        return f"{self.prefix}cfg:universe:funnel"

    @property
    def snapshot_skipped(self) -> str:
        """Hash symbol → ``reason|detail`` of candidates the snapshot could not price last cycle
        (``unknown_symbol``, ...), TTL = the snapshot TTL; shown by ``qt why``."""
        return f"{self.prefix}snapshot:skipped"

    @property
    def tradable_symbols(self) -> str:
        return f"{self.prefix}cfg:tradable_symbols"

    def position_snapshot(self, symbol: str) -> str:
        return f"{self.prefix}position:snapshot:{symbol}"

    @property
    def position_snapshot_pattern(self) -> str:
        return f"{self.prefix}position:snapshot:*"

    @property
    def open_orders(self) -> str:
        return f"{self.prefix}state:open_orders"

    @property
    def positions(self) -> str:
        return f"{self.prefix}state:positions"

    @property
    def held_signals(self) -> str:
        """Hash symbol → JSON of the router's latest verdict on a signal for a held symbol (renew or close);
        written by the router, applied and deleted by the executor's monitor (ledger/held.py)."""
        return f"{self.prefix}state:held_signals"

    @property
    def executed_intents(self) -> str:
        """Hash intent_id → order_id: the executor's exactly-once ledger."""
        return f"{self.prefix}state:executed_intents"

    @property
    def decided_intents(self) -> str:
        """Hash intent_id → decision_id: the gate's one-decision-per-intent ledger."""
        return f"{self.prefix}state:decided_intents"

    @property
    def pending_intents(self) -> str:
        """Hash intent_id → TradeIntent as JSON (typed values) of EXECUTE decisions not yet executed.

        The gate writes it atomically with an EXECUTE decision; the executor deletes the field
        atomically with the execution result. Doubles as the gate's in-flight set.
        """
        return f"{self.prefix}state:pending_intents"

    @property
    def pending_summary(self) -> str:
        """Hash ``<SYMBOL>:<SIDE>`` → count of in-flight opening EXECUTEs, ``_notional`` → their USD sum.

        Maintained atomically with ``pending_intents`` (gate +, executor −) so the gate reads in-flight
        risk in O(batch), not O(in-flight).
        """
        return f"{self.prefix}state:pending_summary"

    @property
    def ledger_age(self) -> str:
        """Sorted set intent_id → epoch ms of its decision (written by the gate with the ledger).

        Every executed intent was decided first, so the executor prunes ``decided_intents``
        and ``executed_intents`` entries older than ``executor.ledgerRetention`` with it.
        """
        return f"{self.prefix}state:ledger_age"

    @property
    def published_signals(self) -> str:
        """Hash signal_id → intent_id: signals the router already turned into intents (dedup ledger)."""
        return f"{self.prefix}state:routed_signals"

    @property
    def risk_state(self) -> str:
        """Hash of executor-maintained risk inputs: equity peak, realised pnl today, loss streak, ..."""
        return f"{self.prefix}state:risk"

    @property
    def cooldowns(self) -> str:
        """Hash symbol → epoch ms until which new risk on the symbol is cooling down."""
        return f"{self.prefix}state:cooldowns"

    @property
    def router_lease(self) -> str:
        return f"{self.prefix}lease:router"

    @property
    def control_paused(self) -> str:
        """Operator-set flag: when present the router publishes nothing and the gate blocks `paused`."""
        return f"{self.prefix}control:paused"

    @property
    def control_no_new_positions(self) -> str:
        """Operator-set flag before deleting a live profile: executor opens nothing new."""
        return f"{self.prefix}control:no_new_positions"

    def consumer_alive(self, group: str, consumer: str) -> str:
        """String with a short TTL (value ``host|pid``): a consumer of ``group`` is alive while it exists.

        Written by the bus (core/bus.py, core/consumers.py); a missing key lets another consumer
        claim the dead one's pending entries at once and remove it from the group.
        """
        return f"{self.prefix}bus:alive:{group}:{consumer}"

    def heartbeat(self, worker: str) -> str:
        if worker not in WORKERS:
            raise ValueError(f"unknown worker {worker!r}")
        return f"{self.prefix}worker:{worker}:heartbeat"

    @property
    def model_registry(self) -> str:
        """Hash version → model card JSON."""
        return f"{self.prefix}model:registry"

    @property
    def model_promoted(self) -> str:
        """String: the promoted model version."""
        return f"{self.prefix}model:promoted"

    @property
    def model_fallback(self) -> str:
        """String: JSON of the best baseline of the last training run (served when nothing is promoted)."""
        return f"{self.prefix}model:fallback"

    def model_artifact(self, version: str) -> str:
        """String (bytes): a model version's artefact bundle."""
        return f"{self.prefix}model:artifact:{version}"

    @property
    def run_clock(self) -> str:
        """Hash ``speed``, ``anchor_wall_ms``, ``anchor_sim_ms``: how ``qt run``'s pipeline clock maps to wall time."""
        return f"{self.prefix}run:clock"

    @property
    def rate_budget(self) -> str:
        """Shared exchange request-weight budget across workers (per minute window)."""
        return f"{self.prefix}exchange:weight"
