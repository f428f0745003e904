"""Backoff policy and the failures worth retrying, shared by API and token requests."""

from __future__ import annotations

import random
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
