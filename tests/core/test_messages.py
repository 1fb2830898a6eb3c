from __future__ import annotations

import pytest
from quantum_trader.core.messages import (
    MESSAGE_TYPES,
    ExecutionResult,
    GateDecision,
    MessageError,
    PolicyAudit,
    PositionEvent,
    Signal,
    TradeIntent,
)

SAMPLES = [
    Signal(signal_id="s1", symbol="BTCUSDT", side="HOLD", confidence=0.1234567890123, model="lgbm-3",
           model_version="3", price=97123.45, atr=512.5, regime="unknown", rl_gate_pass=False, ts=1),
    TradeIntent(intent_id="i1", signal_id="s1", symbol="ETHUSDT", side="SELL", position_size_usd=13.0, leverage=2.0,
                entry_price=3000.1, stop_loss=3050.0, take_profit=2900.0, confidence=0.93, score=0.96, rank=1,
                size_boost=1.3, reduce_only=True, ts=2),
    GateDecision(decision_id="d1", intent_id="i1", symbol="ETHUSDT", side="SELL", decision="BLOCKED",
                 reason="cooldown:ETHUSDT", kill_score=0.25, ts=3),
    ExecutionResult(order_id="PAPER-0123456789ab", intent_id="i1", decision_id="d1", symbol="ETHUSDT", side="SELL",
                    qty=0.004, price=3000.2, notional_usd=12.0008, slippage_bps=-0.33, fee_usd=0.0048,
                    status="FILLED", reason="none", mode="paper", ts=4),
    PositionEvent(event="CLOSED", symbol="ETHUSDT", side="SELL", qty=0.004, entry_price=3000.2, exit_price=2900.0,
                  pnl_usd=0.39, close_reason="take_profit", order_id="PAPER-0123456789ab", ts=5),
    PolicyAudit(version="1.0.0", generator="universe_v1", features_window="15m,1h", universe_hash="67a5831f40571c1b",
                universe_count=2, symbols=["BTCUSDT", "ETHUSDT"], valid_until=10, funnel={"discovery": {"in": 540}},
                ts=6),
]


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: m.TYPE)
def test_round_trip_through_flat_fields_is_lossless(message) -> None:
    fields = message.to_fields()
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in fields.items())
    assert fields["v"] == "1" and "ts" in fields
    as_bytes = {k.encode(): v.encode() for k, v in fields.items()}
    assert type(message).from_fields(as_bytes) == message
    assert type(message).from_fields(fields) == message


def test_unknown_fields_are_ignored() -> None:
    fields = {**SAMPLES[0].to_fields(), "extra_field": "whatever"}
    assert Signal.from_fields(fields) == SAMPLES[0]


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("confidence", "1.5", "less than or equal to 1"),
        ("confidence", "nan", "finite"),
        ("side", "LONG", "BUY"),
        ("price", "abc", "valid number"),
        ("rl_gate_pass", "maybe", "boolean"),
        ("v", "2", "unsupported schema version"),
    ],
)
def test_malformed_field_raises_one_typed_error_naming_the_field(field: str, value: str, needle: str) -> None:
    with pytest.raises(MessageError) as info:
        Signal.from_fields({**SAMPLES[0].to_fields(), field: value})
    assert info.value.field == field
    assert needle in info.value.reason


def test_missing_required_field_is_named() -> None:
    fields = SAMPLES[1].to_fields()
    del fields["intent_id"]
    with pytest.raises(MessageError, match="intent_id") as info:
        TradeIntent.from_fields(fields)
    assert info.value.reason == "required field missing"


def test_json_field_with_bad_json_is_rejected() -> None:
    with pytest.raises(MessageError, match="symbols"):
        PolicyAudit.from_fields({**SAMPLES[-1].to_fields(), "symbols": "[oops"})


def test_every_contract_stream_has_a_message_type() -> None:
    for name in ("ai.signal", "trade.intent", "gate.decision", "execution.result", "position.event", "policy.audit"):
        assert name in MESSAGE_TYPES
