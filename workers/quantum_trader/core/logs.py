"""One line per event: ``EVENT key=value ...`` (or one JSON object with ``--log-format json``).

    log = EventLog(worker="router", profile="paper")
    log.event("CAPACITY_FULL", open=10, max=10)
    # 2026-11-21T12:00:00.123Z CAPACITY_FULL worker=router profile=paper open=10 max=10

Every line is safe to ship, whatever a message field contained (both formats):

* a field named like a secret (``password``, ``secret``, ``token``, ``api_key``,
  ``signature``, ``credentials`` ...) is written as ``<redacted>``;
* secrets inside text are redacted: signed query strings (``signature=…``,
  ``apiKey=…``, ``X-MBX-APIKEY``), ``user:password@`` in URLs, ``Authorization``
  headers;
* a value is cut at :data:`MAX_FIELD_CHARS` characters (``…[+N chars]``);
* text format: control characters (CR, LF, ESC, NUL, ...) and non-ASCII are
  escaped inside a quoted value, so no field can forge a line or a terminal
  sequence.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any, Final, Literal, TextIO

LogFormat = Literal["text", "json"]
_LOGGER_NAME: Final = "quantum_trader"
_state: dict[str, LogFormat] = {"format": "text"}

MAX_FIELD_CHARS: Final = 2048
REDACTED: Final = "<redacted>"
_SECRET_NAME: Final = re.compile(  # whole words of a snake_case / kebab / camelCase field name
    r"(?:^|[_.-]|(?-i:(?<=[a-z])))(?:password|passwd|secret|token|api_?key|private_?key|signature|credentials?"
    r"|authorization)(?:$|[_.-]|(?-i:(?=[A-Z])))"
    r"|^(?:pass|pwd|auth)$",
    re.IGNORECASE,
)
_SECRET_IN_TEXT: Final = (
    # signed query strings and key parameters: signature=..., apiKey=..., X-MBX-APIKEY: ...
    (re.compile(r"(?i)\b(signature|api[_-]?key|apikey|secret|password|passwd|token|x-mbx-apikey)(['\"]?\s*[=:]\s*['\"]?)"
                r"[^\s&\"',;}]+"), r"\1\2" + REDACTED),
    # scheme://user:password@host
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]*:)[^@\s/]+@"), r"\1" + REDACTED + "@"),
    # Authorization: Bearer xyz
    (re.compile(r"(?i)\b(authorization\s*[=:]\s*)(bearer\s+|basic\s+)?[^\s,;]+"), r"\1\2" + REDACTED),
)
_NEEDS_QUOTES: Final = re.compile(r'[\s"=\\]|[^\x21-\x7e]')


def redact(text: str) -> str:
    """``text`` with secrets (signed query strings, URL passwords, auth headers) replaced by ``<redacted>``."""
    for pattern, repl in _SECRET_IN_TEXT:
        text = pattern.sub(repl, text)
    return text


def _cut(text: str) -> str:
    if len(text) <= MAX_FIELD_CHARS:
        return text
    return f"{text[:MAX_FIELD_CHARS]}…[+{len(text) - MAX_FIELD_CHARS} chars]"


def sanitize(name: str, value: Any) -> Any:
    """One field as logged: secret-named fields redacted, secrets in text redacted, long text cut."""
    if _SECRET_NAME.search(name) and value not in (None, "", 0, False):
        return REDACTED
    if isinstance(value, (bool, int, float)) or value is None:
        return value
    if isinstance(value, (list, tuple, dict)):
        text = json.dumps(value, separators=(",", ":"), default=str)
    else:
        text = str(value)
    return _cut(redact(text))


def _quote(value: Any) -> str:
    if isinstance(value, float):
        text = f"{value:.6g}"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    else:
        text = str(value)
    if text == "" or _NEEDS_QUOTES.search(text):
        text = json.dumps(text)  # escapes CR, LF, ESC, NUL and every non-ASCII character
    return text


def format_text(event: str, fields: dict[str, Any]) -> str:
    return " ".join([_quote(sanitize("event", event)), *(f"{_key(k)}={_quote(sanitize(k, v))}"
                                                         for k, v in fields.items())])


def _key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name) else json.dumps(_cut(name))


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        event = getattr(record, "qt_event", None)
        fields: dict[str, Any] = dict(getattr(record, "qt_fields", {}))
        if event is None:  # a foreign library's log line: keep it one line
            event = "LIB_LOG"
            fields = {"logger": record.name, "level": record.levelname.lower(), "msg": record.getMessage()}
            if record.exc_info:
                fields["exc"] = repr(record.exc_info[1])
        when = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        if _state["format"] == "json":
            return json.dumps(
                {"ts": when, "level": record.levelname.lower(), "event": event,
                 **{k: sanitize(k, v) for k, v in fields.items()}},
                default=str,
                separators=(",", ":"),
            )
        return f"{when} {format_text(event, fields)}"


def configure(fmt: LogFormat = "text", *, level: int = logging.INFO, stream: TextIO | None = None) -> None:
    """Install the one-line formatter on the root logger (idempotent)."""
    _state["format"] = fmt
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_qt", False):
            root.removeHandler(h)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(_Formatter())
    handler._qt = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("uvicorn.access", "httpx", "asyncio", "kopf.objects"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class EventLog:
    """Structured event logger bound to context fields (worker, profile, ...)."""

    def __init__(self, **context: Any) -> None:
        self._context = context
        self._logger = logging.getLogger(_LOGGER_NAME)

    def bind(self, **context: Any) -> EventLog:
        return EventLog(**{**self._context, **context})

    def _emit(self, level: int, event: str, fields: dict[str, Any]) -> None:
        if self._logger.isEnabledFor(level):
            self._logger.log(level, event, extra={"qt_event": event, "qt_fields": {**self._context, **fields}})

    def event(self, event: str, **fields: Any) -> None:
        self._emit(logging.INFO, event, fields)

    def warn(self, event: str, **fields: Any) -> None:
        self._emit(logging.WARNING, event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._emit(logging.ERROR, event, fields)

    def debug(self, event: str, **fields: Any) -> None:
        self._emit(logging.DEBUG, event, fields)
