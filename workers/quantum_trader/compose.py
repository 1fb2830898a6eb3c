"""The composition: which settings go to which worker (the one place that reads a whole profile for them).

Every worker's entry point is ``main(ctx, config)`` with a config type of its own — a frozen
dataclass holding the worker's section of the profile plus the few values it shares with
another stage. A shared value is declared once in the profile, in its owner's section, and is
passed explicitly here:

=========  ===================================================================================
worker     config: own section + shared values (declared in)
=========  ===================================================================================
universe   ``UniverseConfig``: ``universe``, ``health`` + ``environment`` (top level)
ai         ``AiConfig``: ``ai`` + ``router.stopLossAtr`` (the untrained fallback's claimed win/loss size)
router     ``RouterConfig``: ``router`` + ``base_size_usd`` (``executor.baseSizeUsd``) and the
           entry rule's ``costs`` (``executor.feeBps``/``maxSlippageBps``, ``universe.spreadBps``)
snapshot   ``SnapshotConfig``: ``snapshot``
gate       ``GateConfig``: ``gate`` + ``allowlist`` (``snapshot.allowlist``/``allowlistSource``)
           and ``spec_paused`` (``paused``, top level)
executor   ``ExecutorConfig``: ``executor`` + ``limits`` (``gate.cooldown``,
           ``gate.maxSnapshotAge``, ``gate.maxExposureUsd``, the time exit ``ai.horizonBars`` ×
           ``ai.timeframe``), ``spread_bps`` (``universe.spreadBps``: the paper venue's spread)
           and ``mode`` (top level)
=========  ===================================================================================

The service shell binds a worker to its config (``core.service.worker_main``); keys and the
key prefix come from the profile through ``ctx.keys``, the exchange from ``spec.exchange``.
Worker modules are imported lazily (an idle worker imports only what it needs).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from quantum_trader.core.profile import TradingProfile

if TYPE_CHECKING:
    from quantum_trader.ai.worker import AiConfig
    from quantum_trader.executor.worker import ExecutorConfig
    from quantum_trader.gate.worker import GateConfig
    from quantum_trader.router.worker import RouterConfig
    from quantum_trader.snapshot.worker import SnapshotConfig
    from quantum_trader.universe.worker import UniverseConfig


def universe_config(profile: TradingProfile) -> UniverseConfig:
    from quantum_trader.universe.worker import UniverseConfig

    spec = profile.spec
    return UniverseConfig(universe=spec.universe, health=spec.health, environment=spec.environment)


def ai_config(profile: TradingProfile) -> AiConfig:
    from quantum_trader.ai.worker import AiConfig

    return AiConfig(settings=profile.spec.ai, fallback_stop_atr=profile.spec.router.stop_loss_atr)


def router_config(profile: TradingProfile) -> RouterConfig:
    from quantum_trader.router.core import entry_costs
    from quantum_trader.router.worker import RouterConfig

    spec = profile.spec
    return RouterConfig(settings=spec.router, base_size_usd=spec.executor.base_size_usd,
                        costs=entry_costs(executor=spec.executor, universe=spec.universe))


def snapshot_config(profile: TradingProfile) -> SnapshotConfig:
    from quantum_trader.snapshot.worker import SnapshotConfig

    return SnapshotConfig(settings=profile.spec.snapshot)


def gate_config(profile: TradingProfile) -> GateConfig:
    from quantum_trader.gate.worker import GateConfig
    from quantum_trader.ledger.allowlist import AllowlistConfig

    spec = profile.spec
    return GateConfig(settings=spec.gate, spec_paused=spec.paused,
                      allowlist=AllowlistConfig(source=spec.snapshot.allowlist_source, symbols=spec.snapshot.allowlist))


def executor_config(profile: TradingProfile) -> ExecutorConfig:
    from quantum_trader.executor.batch import limits_from
    from quantum_trader.executor.worker import ExecutorConfig

    spec = profile.spec
    return ExecutorConfig(settings=spec.executor, limits=limits_from(spec.gate, spec.ai),
                          spread_bps=spec.universe.spread_bps, mode=spec.mode)


_CONFIGS: dict[str, Any] = {
    "universe": universe_config,
    "ai": ai_config,
    "router": router_config,
    "snapshot": snapshot_config,
    "gate": gate_config,
    "executor": executor_config,
}


def worker_config(name: str, profile: TradingProfile) -> object:
    """The config of worker ``name`` (what ``core.service.worker_main`` passes to its ``main``)."""
    if name not in _CONFIGS:
        raise ValueError(f"unknown worker {name!r}; choose one of {', '.join(_CONFIGS)}")
    config: object = _CONFIGS[name](profile)
    return config
