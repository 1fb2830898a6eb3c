"""The universe hash, the document, and the fail-closed reader other workers use."""

from __future__ import annotations

import hashlib
import json

from quantum_trader.core.keys import Keys
from quantum_trader.universe.publication import (
    active_symbols,
    age_seconds,
    build_document,
    is_stuck,
    next_hash_since,
    parse_document,
    read_active_symbols,
    universe_hash,
)

T0 = 1_800_000_000_000


def doc(symbols: list[str], *, generated_at: int = T0, valid_for_s: float = 3600.0) -> dict:  # type: ignore[type-arg]
    rows = [{"symbol": s, "rank": i, "score": 1.0, "volume_24h": 1.0} for i, s in enumerate(symbols, start=1)]
    return build_document(
        symbols=rows, timeframes=("15m", "1h"), generated_at=generated_at, valid_for_s=valid_for_s,
        hash_since=generated_at, checks={"non_empty": bool(rows)},
    )


def test_hash_is_first_16_hex_of_sha256_of_sorted_symbols_joined_by_comma() -> None:
    expected = hashlib.sha256(b"BTCUSDT,ETHUSDT").hexdigest()[:16]
    assert universe_hash(["ETHUSDT", "BTCUSDT"]) == expected
    assert universe_hash(["BTCUSDT", "ETHUSDT"]) == expected
    assert len(expected) == 16
    assert universe_hash([]) == hashlib.sha256(b"").hexdigest()[:16]


def test_document_has_the_contract_fields() -> None:
    d = doc(["ETHUSDT", "BTCUSDT"])
    assert {"version", "generator", "features_window", "universe_hash", "generated_at", "valid_until", "symbols"} <= set(d)
    assert d["features_window"] == "15m,1h"
    assert d["valid_until"] == T0 + 3_600_000
    assert d["universe_hash"] == universe_hash(["BTCUSDT", "ETHUSDT"])
    assert json.loads(json.dumps(d)) == d


def test_non_finite_features_are_written_as_null() -> None:
    d = build_document(symbols=[{"symbol": "X", "rank": 1, "hurst": float("nan")}], timeframes=("1h",),
                       generated_at=T0, valid_for_s=60, hash_since=T0, checks={})
    assert d["symbols"][0]["hurst"] is None


def test_active_symbols_in_rank_order_until_valid_until_then_empty() -> None:
    d = doc(["AUSDT", "BUSDT"])
    d["symbols"].reverse()  # rank, not list order, decides
    assert active_symbols(d, now_ms=T0) == ["AUSDT", "BUSDT"]
    assert active_symbols(d, now_ms=T0 + 3_599_999) == ["AUSDT", "BUSDT"]
    assert active_symbols(d, now_ms=T0 + 3_600_000) == []


def test_active_symbols_fail_closed_on_missing_malformed_or_tampered_documents() -> None:
    assert active_symbols(None, now_ms=T0) == []
    good = doc(["AUSDT", "BUSDT"])
    tampered = {**good, "symbols": [*good["symbols"], {"symbol": "EVILUSDT", "rank": 3}]}
    assert active_symbols(tampered, now_ms=T0) == []
    assert active_symbols({**good, "valid_until": "soon"}, now_ms=T0) == []
    assert active_symbols({**good, "symbols": "AUSDT"}, now_ms=T0) == []
    assert active_symbols({**good, "symbols": [{"rank": 1}]}, now_ms=T0) == []
    assert parse_document("not json") is None and parse_document("[1]") is None and parse_document(None) is None


def test_hash_since_carries_over_while_the_hash_is_unchanged_and_stuck_alert_fires() -> None:
    first = doc(["AUSDT"], generated_at=T0)
    same = next_hash_since(first, new_hash=first["universe_hash"], generated_at=T0 + 1800_000)
    assert same == T0
    assert next_hash_since(first, new_hash="0" * 16, generated_at=T0 + 1800_000) == T0 + 1800_000
    assert next_hash_since(None, new_hash="x", generated_at=5) == 5
    assert not is_stuck(first, now_ms=T0 + 6 * 3600_000 - 1, stuck_after_s=6 * 3600)
    assert is_stuck(first, now_ms=T0 + 6 * 3600_000, stuck_after_s=6 * 3600)
    assert not is_stuck(None, now_ms=T0, stuck_after_s=1)
    assert age_seconds(first, now_ms=T0 + 90_000) == 90.0


async def test_reader_reads_the_active_key_and_expires(aredis_client) -> None:  # type: ignore[no-untyped-def]
    keys = Keys("paper")
    assert await read_active_symbols(aredis_client, keys, now_ms=T0) == []
    await aredis_client.set(keys.universe_active, json.dumps(doc(["BTCUSDT"])))
    assert await read_active_symbols(aredis_client, keys, now_ms=T0 + 1) == ["BTCUSDT"]
    assert await read_active_symbols(aredis_client, keys, now_ms=T0 + 3_600_000) == []
