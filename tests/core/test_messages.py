from __future__ import annotations

import base64

import pytest
from quantum_trader.core.messages import (
    MESSAGE_TYPES,
    DeadLetter,
    ExecutionResult,
    GateDecision,
    MessageError,
    PolicyAudit,
    PositionEvent,
    Signal,
    TradeIntent,
    parse_count,
    raw_for_deadletter,
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


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ts", "-0.0"), ("ts", "-0"), ("ts", " 2 "), ("ts", "+2"), ("ts", "١٢"), ("ts", "1.0"), ("ts", "9" * 5000),
        ("price", "NaN"), ("price", "inf"), ("price", "-Infinity"), ("price", "1e999"),
        ("price", " 1.5"), ("price", "1_000"), ("price", "٣.٥"), ("price", "0x10"),
        ("rl_gate_pass", "yes"), ("rl_gate_pass", "on"), ("rl_gate_pass", "1"), ("rl_gate_pass", "TRUE"),
        ("rl_gate_pass", "True"), ("rl_gate_pass", " true"),
    ],
)
def test_loosely_written_scalar_is_refused_naming_the_field(field: str, value: str) -> None:
    with pytest.raises(MessageError) as info:
        Signal.from_fields({**SAMPLES[0].to_fields(), field: value})
    assert info.value.field == field


def test_trade_intent_rank_negative_zero_and_loose_reduce_only_are_refused() -> None:
    base = SAMPLES[1].to_fields()
    for field, value in (("rank", "-0.0"), ("ts", "-0.0"), ("reduce_only", "yes"), ("reduce_only", "1")):
        with pytest.raises(MessageError, match=field):
            TradeIntent.from_fields({**base, field: value})


def test_strict_numbers_that_writers_produce_are_accepted() -> None:
    fields = {**SAMPLES[0].to_fields(), "price": "1e-05", "atr": "0", "confidence": "0.5", "ts": "0"}
    s = Signal.from_fields(fields)
    assert (s.price, s.atr, s.ts) == (1e-05, 0.0, 0)
    assert Signal.from_fields({**fields, "price": "1.5e+20"}).price == 1.5e20


def test_negative_zero_float_reads_as_zero_and_is_written_as_zero() -> None:
    event = SAMPLES[4].model_copy(update={"pnl_usd": -0.0})
    assert event.to_fields()["pnl_usd"] == "0.0"
    parsed = PositionEvent.from_fields({**event.to_fields(), "pnl_usd": "-0.0"}).pnl_usd
    assert parsed == 0.0 and str(parsed) == "0.0"


def test_non_utf8_value_or_name_is_a_message_error_not_a_decode_crash() -> None:
    raw = {k.encode(): v.encode() for k, v in SAMPLES[0].to_fields().items()}
    with pytest.raises(MessageError, match="UTF-8") as info:
        Signal.from_fields({**raw, b"regime": b"\xff"})
    assert info.value.field == "regime"
    with pytest.raises(MessageError, match="UTF-8"):
        Signal.from_fields({**raw, b"\xc3(": b"x"})


def test_json_field_refuses_nan_and_infinity() -> None:
    for bad in ('{"a": NaN}', '{"a": Infinity}', '{"a": -Infinity}'):
        with pytest.raises(MessageError, match="funnel"):
            PolicyAudit.from_fields({**SAMPLES[-1].to_fields(), "funnel": bad})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("0", 0), ("2", 2), (b"12", 12), (None, None), (" 2 ", None), ("2\n", None), ("+2", None), ("-1", None),
     ("02", None), ("٢", None), ("2.0", None), ("", None), (b"\xff", None), ("9" * 30, None)],
)
def test_open_orders_count_parsing_is_strict(raw: str | bytes | None, expected: int | None) -> None:
    assert parse_count(raw) == expected


def test_dead_letter_raw_keeps_text_and_base64s_what_is_not_utf8() -> None:
    raw, encoded = raw_for_deadletter({b"ok": b"text", b"bad": b"\xff\x00", b"\xfe": b"v"})
    assert raw["ok"] == "text" and encoded == ["bad"]
    assert base64.b64decode(raw["bad"]) == b"\xff\x00"
    assert raw["base64:" + base64.b64encode(b"\xfe").decode()] == "v"
    letter = DeadLetter(reason="r", source_stream="s", raw=raw, raw_base64=encoded, code="non_utf8", ts=1)
    assert DeadLetter.from_fields(letter.to_fields()) == letter
