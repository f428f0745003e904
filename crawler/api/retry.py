"""Backoff policy and the failures worth retrying, shared by API and token requests."""

from __future__ import annotations

import random
import socket
import ssl
from dataclasses import dataclass

import aiohttp

# Failures where the same request may well succeed a moment later: dropped or reset
# connections, truncated bodies (ClientPayloadError) and connect/read timeouts.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (aiohttp.ClientError, TimeoutError)

# 2**30 × any sane base is already far above any cap; bounding the exponent keeps the
# arithmetic finite however long a request keeps failing.
_MAX_EXPONENT = 30


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff; retries use full jitter so workers that failed together spread out."""

    base_s: float = 0.5
    cap_s: float = 30.0

    def ceiling(self, attempt: int) -> float:
        """The longest wait after the ``attempt``-th consecutive failure (0-based)."""
        return min(self.cap_s, self.base_s * 2 ** min(attempt, _MAX_EXPONENT))

    def delay(self, attempt: int) -> float:
        return random.uniform(0.0, self.ceiling(attempt))


def describe(exc: BaseException) -> str:
    """A one-line reason for a transient failure, for RequestFailed and the debug log."""
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "truncated response body"
    return f"connection failed ({type(exc).__name__})"


def fault_kind(exc: BaseException) -> str:
    """The kind of a transient failure, as the metrics and the time series count them."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "truncated"
    return "connection"


@dataclass(frozen=True, slots=True)
class NetworkFailure:
    """A failure to reach a host at all, before any HTTP answer: its cause in a few words.

    ``retries`` caps the retries worth making: a name that does not resolve or a certificate
    that is not trusted will not change within a retry cycle (one retry covers a resolver's
    hiccup), while a refused or silent port may be a server restarting.
    """

    cause: str
    retries: int | None = None  # None: the configured max_retries

    def allows(self, failures: int, max_retries: int) -> bool:
        """Whether another retry is worth it after ``failures`` failed attempts."""
        limit = max_retries if self.retries is None else min(self.retries, max_retries)
        return failures < limit


def network_failure(exc: BaseException, *, read_timeouts: bool) -> NetworkFailure | None:
    """The NetworkFailure behind ``exc``, or None if the host was reached (or may have been).

    ``read_timeouts``: count a connection that never answered as unreachable (right for the
    token endpoint, whose one small answer never takes long; an API response may).
    """
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        error = exc.certificate_error
        detail = error.verify_message if isinstance(error, ssl.SSLCertVerificationError) else ""
        return NetworkFailure(f"TLS certificate not trusted ({detail or 'verify failed'})", 0)
    if isinstance(exc, aiohttp.ClientSSLError):
        return NetworkFailure("TLS handshake failed (is it an https server?)", 0)
    if isinstance(exc, aiohttp.ClientConnectorError):
        os_error = exc.os_error
        if isinstance(os_error, socket.gaierror):
            return NetworkFailure("DNS lookup failed (the host name does not resolve)", 1)
        if isinstance(os_error, ConnectionRefusedError):
            return NetworkFailure("connection refused")
        return NetworkFailure(f"connection failed ({os_error.strerror or type(os_error).__name__})")
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return NetworkFailure("timed out connecting")
    if read_timeouts and isinstance(exc, TimeoutError):
        return NetworkFailure("timed out waiting for an answer")
    return None
