"""Logging set-up: lines for people or JSON objects for log shippers, secrets always redacted.

A crawl runs for days in the background and its stderr is often read by a log shipper, so the
format is a choice; what is never a choice is leaking a credential. Call sites already keep
tokens and passwords out of their messages (tests/test_secrets.py checks it); the filter here
is the second line of defence, for the message nobody thought of (an exception that quotes a
header, a DSN in a driver's error).

Structured values ride on a record as ``extra=fields(key=value, ...)``: the JSON format emits
them under ``"fields"``, the human format leaves them out (its message already says it).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

import orjson

LogFormat = Literal["human", "json"]
HUMAN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
REDACTED = "[redacted]"

_SECRETS = (
    # Authorization headers: OAuth bearer tokens and the client-credentials Basic pair.
    # (16 characters at least, so that prose such as "the bearer token expired" stays.)
    (re.compile(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]{16,}"), rf"\1\2{REDACTED}"),
    # The password of a URL's user info: postgresql://user:password@host/db. A password may
    # hold an unencoded "@", so the match runs to the last "@" before the path.
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s:/@]*:)[^\s/]*@"), rf"\1{REDACTED}@"),
    # Secrets as form fields or JSON members: client_secret=…, "access_token": "…".
    (
        re.compile(
            r"(?i)\b((?:access_token|refresh_token|client_secret|password)[\"']?\s*[:=]\s*[\"']?)"
            r"[^\s\"'&,}]+"
        ),
        rf"\1{REDACTED}",
    ),
)


def redact(text: str) -> str:
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


def fields(**values: Any) -> dict[str, Any]:
    """The ``extra`` of a record whose values a JSON log line should carry as data."""
    return {"fields": values}


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {k: _redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(v) for v in value]
    return value


class RedactSecrets(logging.Filter):
    """Rewrites a record before any formatter sees it: message, traceback and fields."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: the formatter reports it through handleError
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        values = getattr(record, "fields", None)
        if values is not None:
            record.fields = _redact_value(values)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (ISO 8601, UTC), level, logger, message, fields."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "fields": getattr(record, "fields", None) or {},
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            doc["exception"] = record.exc_text
        if record.stack_info:
            doc["stack"] = record.stack_info
        return orjson.dumps(doc, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


class ConsoleHandler(logging.StreamHandler[TextIO]):
    """The crawler's log output; a live progress display can take over how lines are written.

    While ``overlay`` is set, each formatted record goes to it instead of the stream, so the
    display can print the line above its status area rather than onto its end. Without an
    explicit stream the handler writes to whatever ``sys.stderr`` is at the time (as logging's
    own last-resort handler does), so a handler that outlives a redirected stderr never writes
    to a closed file.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        logging.Handler.__init__(self)
        self._stream = stream
        self.overlay: Callable[[str], None] | None = None

    @property
    def stream(self) -> TextIO:
        return self._stream or sys.stderr

    @stream.setter
    def stream(self, value: TextIO | None) -> None:
        self._stream = value

    def emit(self, record: logging.LogRecord) -> None:
        overlay = self.overlay
        if overlay is None:
            super().emit(record)
            return
        try:
            text = self.format(record)
        except Exception:
            self.handleError(record)
            return
        overlay(text)


def setup_logging(verbose: bool, fmt: LogFormat = "human", stream: TextIO | None = None) -> None:
    """Route every logger (and Python warnings) to one console handler on ``stream``.

    Calling it again replaces the handler it installed before; other handlers on the root
    logger (a test runner's capture, say) are left alone.
    """
    root = logging.getLogger()
    for old in console_handlers():
        root.removeHandler(old)
    handler = ConsoleHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(HUMAN_FORMAT))
    handler.addFilter(RedactSecrets())
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.captureWarnings(True)


def console_handlers(stream: TextIO | None = None) -> list[ConsoleHandler]:
    """The handlers ``setup_logging`` installed (those writing to ``stream``, if given)."""
    return [
        h
        for h in logging.getLogger().handlers
        if isinstance(h, ConsoleHandler) and (stream is None or h.stream is stream)
    ]
