"""Exceptions that cross module boundaries; each maps to one exit code or one recorded outcome."""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path


class CrawlerError(Exception):
    """Base of every error the crawler reports to its user as one line."""

    exit_code = 1


class ConfigError(CrawlerError):
    """Bad configuration or command-line input: nothing has been written yet."""

    exit_code = 2


class CheckpointError(CrawlerError):
    """The checkpoint or the output files cannot be trusted: refuse rather than guess."""

    exit_code = 2


class AuthError(CrawlerError):
    """A credential was refused by the token endpoint; retrying cannot help."""


class AllAccountsParked(CrawlerError):
    """Every account is rate-limited for longer than the run may wait: pause, resume later."""

    exit_code = 3

    def __init__(self, resume_at: float, detail: str) -> None:
        self.resume_at = resume_at
        super().__init__(detail)


class RequestFailed(CrawlerError):
    """A request kept failing after its retries; the work is recorded as failed, not lost."""

    def __init__(self, endpoint: str, reason: str) -> None:
        self.endpoint = endpoint
        self.reason = reason
        super().__init__(f"{endpoint}: {reason}")


class Unreachable(CrawlerError):
    """A host could not be reached at all (DNS, refused, TLS, timeout): no request can succeed,
    so the crawl stops with what it has rather than failing every task."""

    def __init__(self, what: str, host: str, cause: str) -> None:
        self.host = host
        self.cause = cause
        super().__init__(f"cannot reach {what} at {host}: {cause}")


class EdgeUnavailable(CrawlerError):
    """The app may not call this endpoint (development mode, restricted app): skip that edge."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        super().__init__(f"{endpoint} is not available to this app")


def cannot_write(directory: Path, exc: OSError | sqlite3.Error, advice: str) -> CrawlerError:
    """One wording for a failed write, whether SQLite or a file write hit it first."""
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    if isinstance(exc, sqlite3.Error) and "disk is full" in reason:
        reason = f"{os.strerror(errno.ENOSPC)} ({reason})"
    return CrawlerError(f"cannot write to {directory}: {reason}; {advice}")
