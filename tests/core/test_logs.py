"""Log lines cannot leak secrets or be forged by what a message field contains."""

from __future__ import annotations

import io
import json
import logging

import pytest
from quantum_trader.core import logs
from quantum_trader.core.logs import EventLog, format_text


@pytest.fixture
def capture() -> io.StringIO:
    out = io.StringIO()
    logs.configure("text", stream=out)
    return out


def test_control_characters_in_a_field_cannot_forge_a_second_line_or_a_terminal_sequence() -> None:
    line = format_text("DEADLETTER", {"id": "1-0\r\n2026-01-01T00:00:00.000Z FILLED worker=executor\x1b[2J\x00"})
    assert "\n" not in line and "\r" not in line and "\x1b" not in line and "\x00" not in line
    assert "\\r\\n" in line and "\\u001b" in line and "\\u0000" in line


def test_non_ascii_and_line_separators_are_escaped() -> None:
    line = format_text("E", {"s": "a\u2028b\u0085c"})
    assert "\u2028" not in line and "\u0085" not in line


def test_a_200kb_field_is_cut_to_a_bounded_line() -> None:
    line = format_text("DEADLETTER", {"raw": "x" * 200_000})
    assert len(line) < logs.MAX_FIELD_CHARS + 200 and "[+197952 chars]" in line


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("GET https://fapi.binance.com/fapi/v1/order?symbol=BTCUSDT&timestamp=1&signature=abc123def", "abc123def"),
        ("binance 400: apiKey=K3yK3y&recvWindow=5000", "K3yK3y"),
        ("redis://default:hunter2@redis:6379/0 refused", "hunter2"),
        ("headers {'X-MBX-APIKEY': 'mbxkey'}", "mbxkey"),
        ("Authorization: Bearer tok.en.value", "tok.en.value"),
    ],
)
def test_secrets_inside_error_text_are_redacted(text: str, secret: str) -> None:
    line = format_text("EXCHANGE_ERROR", {"error": text})
    assert secret not in line and "<redacted>" in line


def test_fields_named_like_secrets_are_never_echoed_in_either_format(capture: io.StringIO) -> None:
    log = EventLog(worker="executor", profile="p")
    log.warn("CREDENTIALS_REFUSED", api_key="AKIA123", secret="s3cr3t", redis_password="pw", passed=3)
    logs.configure("json", stream=capture)
    log.warn("CREDENTIALS_REFUSED", apiKey="AKIA123", token="t0k")
    text = capture.getvalue()
    for secret in ("AKIA123", "s3cr3t", "t0k", "=pw"):
        assert secret not in text
    assert "passed=3" in text
    last = json.loads(text.strip().splitlines()[-1])
    assert last["apiKey"] == "<redacted>" and last["event"] == "CREDENTIALS_REFUSED"
    logs.configure("text", stream=capture)


def test_foreign_library_lines_are_sanitised_too(capture: io.StringIO) -> None:
    logging.getLogger("ccxt.base").warning("retry https://x/y?signature=deadbeef\nforged")
    out = capture.getvalue()
    assert "deadbeef" not in out and out.count("\n") == 1
