"""One line per event: ``EVENT key=value ...`` (or one JSON object with ``--log-format json``).

    log = EventLog(worker="router", profile="paper")
    log.event("CAPACITY_FULL", open=10, max=10)
    # 2026-11-21T12:00:00.123Z CAPACITY_FULL worker=router profile=paper open=10 max=10
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, Final, Literal, TextIO

LogFormat = Literal["text", "json"]
_LOGGER_NAME: Final = "quantum_trader"
_state: dict[str, LogFormat] = {"format": "text"}


def _quote(value: Any) -> str:
    if isinstance(value, float):
        text = f"{value:.6g}"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (list, tuple, dict)):
        text = json.dumps(value, separators=(",", ":"), default=str)
    else:
        text = str(value)
    if text == "" or any(c in text for c in ' "=\n\t'):
        text = json.dumps(text)
    return text


def format_text(event: str, fields: dict[str, Any]) -> str:
    return " ".join([event, *(f"{k}={_quote(v)}" for k, v in fields.items())])


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
                {"ts": when, "level": record.levelname.lower(), "event": event, **fields},
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
