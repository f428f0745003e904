"""Log lines for people and for log shippers; no secret gets through either format."""

from __future__ import annotations

import contextlib
import io
import logging
import re
import sys
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson
import pytest

from crawler.core.logs import LogFormat, console_handlers, fields, redact, setup_logging

log = logging.getLogger("crawler.test.logs")

TOKEN = "BQD4x9Yc2mVd7LwqRt8sN3kP6fHj1zAeXu5oGiCyTbWn0"
BASIC = "bGVhay1hcHAtYTpzM2NyZXQtYS03ZjNjOWUxZDJiNGE="  # leak-app-a:s3cret-a-7f3c9e1d2b4a
PASSWORD = "hunter2-Zq@9"


@contextlib.contextmanager
def logging_to(
    stream: TextIO | None, fmt: LogFormat = "human", verbose: bool = False
) -> Iterator[None]:
    """``setup_logging`` for one test, undone afterwards (the root logger is global)."""
    root = logging.getLogger()
    level = root.level
    setup_logging(verbose, fmt, stream)
    try:
        yield
    finally:
        for handler in console_handlers():
            root.removeHandler(handler)
        root.setLevel(level)
        logging.captureWarnings(False)


def json_lines(text: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in text.splitlines()]


def test_human_format_is_the_classic_line_and_verbose_adds_debug() -> None:
    out = io.StringIO()
    with logging_to(out):
        log.debug("not shown")
        log.info("crawl %s", "started", extra=fields(run=1))
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO crawler\.test\.logs: crawl started\n",
        out.getvalue(),
    ), out.getvalue()
    verbose = io.StringIO()
    with logging_to(verbose, verbose=True):
        log.debug("shown")
    assert verbose.getvalue().endswith(" DEBUG crawler.test.logs: shown\n")


def test_json_format_is_one_object_per_line_with_fields() -> None:
    out = io.StringIO()
    with logging_to(out, "json"):
        log.warning("account %s parked", "acct-a", extra=fields(account="acct-a", delay_s=30.5))
        log.info("no fields")
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            log.exception("failed")
    first, second, third = json_lines(out.getvalue())
    assert set(first) == {"time", "level", "logger", "message", "fields"}
    assert first["level"] == "WARNING" and first["logger"] == "crawler.test.logs"
    assert first["message"] == "account acct-a parked"
    assert first["fields"] == {"account": "acct-a", "delay_s": 30.5}
    assert first["time"].endswith("Z")
    stamp = datetime.fromisoformat(first["time"].replace("Z", "+00:00"))
    assert stamp.tzinfo is not None and stamp.utcoffset() == UTC.utcoffset(None)
    assert abs((datetime.now(UTC) - stamp).total_seconds()) < 3600  # UTC, not local time
    assert second["fields"] == {}
    assert third["message"] == "failed" and "RuntimeError: boom" in third["exception"]


SECRET_MESSAGES = [
    (f"GET /v1/artists Authorization: Bearer {TOKEN}", "Authorization: Bearer [redacted]"),
    (f"token request with Basic {BASIC} refused", "with Basic [redacted] refused"),
    (
        f"cannot connect to postgresql://crawler:{PASSWORD}@db.local:5432/crawl",
        "postgresql://crawler:[redacted]@db.local:5432/crawl",
    ),
    (f'token response {{"access_token": "{TOKEN}", "expires_in": 3600}}', '"expires_in": 3600'),
    ("grant_type=client_credentials&client_secret=s3cret-a-7f3c9e1d2b4a&x=1", "&x=1"),
]


@pytest.mark.parametrize("fmt", ["human", "json"])
@pytest.mark.parametrize(("message", "kept"), SECRET_MESSAGES)
def test_secrets_are_redacted_in_messages_args_tracebacks_and_fields(
    fmt: LogFormat, message: str, kept: str
) -> None:
    out = io.StringIO()
    with logging_to(out, fmt):
        log.info(message)
        log.info("%s", message)
        log.info("fields", extra=fields(dsn=message, nested={"header": [message]}))
        try:
            raise ValueError(message)
        except ValueError:
            log.exception("request failed")
    text = out.getvalue()
    for secret in (TOKEN, BASIC, PASSWORD, "s3cret-a"):
        assert secret not in text
    # Once in each: message, args, traceback, and in JSON both fields.
    assert text.count("[redacted]") == (5 if fmt == "json" else 3)
    if fmt == "json":
        lines = json_lines(text)
        assert kept in lines[0]["message"] and kept in lines[1]["message"]
        assert (
            kept in lines[2]["fields"]["dsn"] and kept in lines[2]["fields"]["nested"]["header"][0]
        )
        assert kept in lines[3]["exception"]
    else:
        assert text.count(kept) == 3  # message, args, traceback


def test_redaction_leaves_prose_and_plain_urls_alone() -> None:
    for text in (
        "the bearer token expired: refreshing",
        "basic auth refused by https://accounts.spotify.com/api/token",
        "simulator at http://127.0.0.1:8080/v1 (user@example.com)",
        "password authentication failed for user crawler",
    ):
        assert redact(text) == text


def test_setup_again_replaces_its_handler_and_follows_a_redirected_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with logging_to(io.StringIO()):
        setup_logging(False)  # no stream: whatever sys.stderr is when a record comes
        assert len(console_handlers()) == 1
        log.warning("to stderr")
        assert capsys.readouterr().err.endswith(" WARNING crawler.test.logs: to stderr\n")
        assert console_handlers(sys.stderr) == console_handlers()


def test_python_warnings_go_through_logging() -> None:
    out = io.StringIO()
    with logging_to(out, "json"):
        warnings.warn("deprecated knob", UserWarning, stacklevel=1)
    (line,) = json_lines(out.getvalue())
    assert line["logger"] == "py.warnings" and "deprecated knob" in line["message"]
