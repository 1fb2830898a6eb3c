"""The shared-state rooms: one spelling per field name (Python and Lua), one allowlist normaliser."""

from __future__ import annotations

import dataclasses
import json

import pytest
from quantum_trader.core.messages import TradeIntent
from quantum_trader.ledger import allowlist, intents, positions, risk, scripts, snapshots, universe
from quantum_trader.ledger.allowlist import AllowlistConfig

NOW = 1_760_000_000_000
ALL_SCRIPTS = {name: getattr(scripts, name) for name in dir(scripts) if name.endswith("_LUA")}


def test_every_script_template_is_fully_rendered() -> None:
    assert len(ALL_SCRIPTS) == 7
    for name, text in ALL_SCRIPTS.items():
        assert "$" not in text, name


def test_scripts_spell_field_names_as_the_python_readers_do() -> None:
    assert f"'{risk.OPEN_NOTIONAL}'" in scripts.RESYNC_NOTIONAL_LUA
    assert f"[{positions.QTY!r}]" in scripts.RESYNC_NOTIONAL_LUA
    for field in (risk.DAY, risk.EQUITY_PEAK, risk.LOSS_STREAK, risk.ERROR_RATE, risk.ERROR_TS, risk.EXECUTIONS):
        assert f"'{field}'" in scripts.APPLY_LUA
    assert f"'{intents.NOTIONAL_FIELD}'" in scripts.DECIDE_LUA
    assert f"'{intents.NOTIONAL_FIELD}'" in scripts.REBUILD_SUMMARY_LUA


def test_field_constants_name_real_fields_of_the_records_they_describe() -> None:
    intent_fields = set(TradeIntent.model_fields)
    assert {intents.REDUCE_ONLY, intents.SYMBOL, intents.SIDE, intents.POSITION_SIZE_USD, intents.LEVERAGE} <= intent_fields
    pos = positions.Position("BTCUSDT", "BUY", 1.0, 100.0, 0.0, 0.0, NOW, "o-1")
    assert {positions.QTY, positions.ENTRY_PRICE, positions.SIDE} <= set(json.loads(pos.to_json()))
    risk_fields = {f.name for f in dataclasses.fields(risk.RiskState)}
    assert {risk.DAY, risk.REALIZED_PNL_TODAY, risk.LOSS_STREAK, risk.ERROR_TS} <= risk_fields
    assert snapshots.READ_FIELDS == ("mark_price", "ts")


def test_a_field_name_that_could_break_out_of_a_lua_string_is_refused() -> None:
    with pytest.raises(ValueError):
        scripts._quote("x') redis.call('FLUSHALL")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (["btcusdt", " ETHUSDT"], ("BTCUSDT", "ETHUSDT")),
        (["", "  ", "solusdt", "SOLUSDT "], ("SOLUSDT",)),
        ([], ()),
    ],
)
def test_profile_symbols_are_stripped_upper_cased_and_deduplicated(raw: list[str], expected: tuple[str, ...]) -> None:
    assert allowlist.normalise_symbols(raw) == expected


def _doc(symbols: list[str], *, valid_until: int) -> str:
    return json.dumps({"symbols": [{"symbol": s, "rank": i + 1, "volume_24h": 10.0 - i} for i, s in enumerate(symbols)],
                       "valid_until": valid_until, "universe_hash": universe.universe_hash(symbols)})


def test_universe_tiers_then_the_normalised_profile_list() -> None:
    cfg = AllowlistConfig(source="universe", symbols=(" btcusdt",))
    live, expired = universe.read_raw(_doc(["AUSDT"], valid_until=NOW + 1)), universe.read_raw(_doc(["BUSDT"], valid_until=NOW))
    assert allowlist.resolve(cfg, active=live, last_ok=None, now_ms=NOW).source == "active"
    got = allowlist.resolve(cfg, active=expired, last_ok=live, now_ms=NOW)
    assert (got.source, got.symbols) == ("last_ok", ("AUSDT",))
    got = allowlist.resolve(cfg, active=expired, last_ok=None, now_ms=NOW)
    assert (got.source, got.symbols, dict(got.volumes)) == ("profile", ("BTCUSDT",), {"BUSDT": 10.0})
    env = allowlist.resolve(AllowlistConfig(source="env", symbols=("ethusdt",)), active=live, last_ok=None, now_ms=NOW)
    assert (env.source, env.symbols) == ("env", ("ETHUSDT",))


def test_in_flight_summary_fails_closed_on_unreadable_values() -> None:
    fields = intents.summary_fields(["AUSDT"])
    busy, notional = intents.parse_summary(fields, ["1", None, "12.5"])
    assert (busy, notional) == (frozenset({("AUSDT", "BUY")}), 12.5)
    busy, notional = intents.parse_summary(fields, [None, "x", "nan?"])
    assert busy == frozenset({("AUSDT", "SELL")}) and notional == float("inf")


def test_a_snapshot_quote_is_read_when_sane_and_otherwise_unknown_without_losing_the_mark() -> None:
    parse = snapshots.parse_snapshot
    assert parse(["100", "5", "99.9", "100.1"]) == snapshots.SnapshotInfo(100.0, 5, bid=99.9, ask=100.1)
    for bid, ask in (("x", "100.1"), ("100.2", "100.1"), ("0", "100.1"), (None, "100.1"), ("99.9", "inf")):
        assert parse(["100", "5", bid, ask]) == snapshots.SnapshotInfo(100.0, 5)
    assert parse(["100", "5"]) == snapshots.SnapshotInfo(100.0, 5)
