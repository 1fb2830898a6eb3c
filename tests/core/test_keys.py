import pytest
from quantum_trader.core.keys import WORKERS, Keys


def test_keys_share_the_profile_hash_tag_prefix() -> None:
    k = Keys("paper")
    assert k.ai_signal == "quantum:{paper}:stream:ai.signal"
    assert k.trade_intent == "quantum:{paper}:stream:trade.intent"
    assert k.gate_decision == "quantum:{paper}:stream:gate.decision"
    assert k.execution_result == "quantum:{paper}:stream:execution.result"
    assert k.position_event == "quantum:{paper}:stream:position.event"
    assert k.policy_audit == "quantum:{paper}:stream:policy.audit"
    assert k.deadletter == "quantum:{paper}:stream:deadletter"
    assert k.universe_active == "quantum:{paper}:cfg:universe:active"
    assert k.universe_last_ok == "quantum:{paper}:cfg:universe:last_ok"
    assert k.tradable_symbols == "quantum:{paper}:cfg:tradable_symbols"
    assert k.position_snapshot("BTCUSDT") == "quantum:{paper}:position:snapshot:BTCUSDT"
    assert k.open_orders == "quantum:{paper}:state:open_orders"
    assert k.positions == "quantum:{paper}:state:positions"
    assert k.heartbeat("gate") == "quantum:{paper}:worker:gate:heartbeat"


def test_two_profiles_never_share_a_key() -> None:
    a, b = Keys("alpha"), Keys("beta")
    names = ["ai_signal", "trade_intent", "open_orders", "positions", "universe_active", "tradable_symbols"]
    assert not {getattr(a, n) for n in names} & {getattr(b, n) for n in names}


@pytest.mark.parametrize("bad", ["", "Paper", "a_b", "x" * 64, "-a"])
def test_invalid_profile_names_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid profile name"):
        Keys(bad)


def test_unknown_worker_heartbeat_is_refused() -> None:
    with pytest.raises(ValueError):
        Keys("paper").heartbeat("nope")
    assert len(WORKERS) == 6


def test_same_named_profiles_in_two_namespaces_get_separate_prefixes_each_in_one_hash_slot() -> None:
    from quantum_trader.core.profile import parse_profile

    local = Keys("paper")
    a, b = Keys("paper", namespace="team-a"), Keys("paper", namespace="team-b")
    assert local.prefix == "quantum:{paper}:"  # a profile file without a namespace: unchanged
    assert a.prefix == "quantum:{team-a.paper}:" and b.prefix == "quantum:{team-b.paper}:"
    assert a.control_paused != b.control_paused
    doc = {"apiVersion": "quantumtrader.io/v1alpha1", "kind": "TradingProfile", "spec": {},
           "metadata": {"name": "paper", "namespace": "team-a"}}
    assert parse_profile(doc).keys == a  # what the operator's ConfigMap gives every worker
    del doc["metadata"]["namespace"]
    assert parse_profile(doc).keys == local
