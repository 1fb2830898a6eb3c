"""core names the market layer's hooks by string (it never imports above itself): each must resolve."""

from __future__ import annotations

import pytest
from quantum_trader.core import service


@pytest.mark.parametrize("hook", sorted(service.EXCHANGE_ENTRYPOINTS))
def test_every_exchange_hook_resolves_to_a_callable(hook: str) -> None:
    assert callable(service._resolve(service.EXCHANGE_ENTRYPOINTS[hook]))


def test_every_worker_entrypoint_resolves_to_its_main() -> None:
    for name in service.WORKER_ENTRYPOINTS:
        assert service.load_entrypoint(name).__name__ == "main"



def test_every_worker_main_takes_its_own_config_and_never_the_profile() -> None:
    import asyncio
    import dataclasses
    import inspect

    import redis.asyncio
    from quantum_trader import compose
    from quantum_trader.core.clock import WallClock
    from quantum_trader.core.profile import default_profile

    ctx = service.WorkerContext(name="gate", profile=default_profile("t"), redis=redis.asyncio.Redis(),
                                clock=WallClock(), stop=asyncio.Event())
    assert not hasattr(ctx, "profile") and ctx.profile_name == "t"  # name and keys only: settings come as config
    for name in service.WORKER_ENTRYPOINTS:
        params = inspect.signature(service.load_entrypoint(name)).parameters
        assert list(params) == ["ctx", "config"], (name, list(params))
        config = compose.worker_config(name, default_profile("t"))
        assert params["config"].annotation == type(config).__name__, name
        assert dataclasses.is_dataclass(config) and type(config).__dataclass_params__.frozen, name  # type: ignore[attr-defined]
        for f in dataclasses.fields(config):
            assert "TradingProfile" not in str(f.type), (name, f.name, f.type)
