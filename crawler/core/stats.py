"""Request counters of one run, bumped by the API client; dumped to stats.json."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Stats:
    """Plain counters: cheap to bump from hot paths. Entity counts live in the store."""

    started: float = field(default_factory=time.monotonic)
    requests: Counter[tuple[str, int]] = field(default_factory=Counter)
    retries: int = 0
    rate_limited: int = 0
    rate_limited_by: Counter[tuple[str, str]] = field(default_factory=Counter)  # account, reason
    faults: Counter[str] = field(default_factory=Counter)  # timeout, reset, truncated, 5xx …
    sent: Counter[str] = field(default_factory=Counter)  # requests sent per account
    # CPU of taking the time-series samples: what watching the crawl costs it.
    timeseries_cpu_s: float = 0.0

    def record_response(self, endpoint: str, status: int) -> None:
        self.requests[(endpoint, status)] += 1
        if status == 429:
            self.rate_limited += 1

    def record_429(self, account: str, reason: str) -> None:
        """``reason``: ``window`` (Retry-After), ``bare`` (no header), ``quota``
        (QUOTA_EXCEEDED)."""
        self.rate_limited_by[(account, reason)] += 1

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def as_dict(self) -> dict[str, Any]:
        by_endpoint: dict[str, dict[str, int]] = {}
        for (endpoint, status), count in sorted(self.requests.items()):
            by_endpoint.setdefault(endpoint, {})[str(status)] = count
        return {
            "requests": by_endpoint,
            "requests_total": self.total_requests,
            "retries": self.retries,
            "rate_limited": self.rate_limited,
            "timeseries_cpu_s": round(self.timeseries_cpu_s, 3),
        }
