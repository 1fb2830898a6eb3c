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
