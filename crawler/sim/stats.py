"""Live request counters behind GET /__stats, used by tests and benchmarks to see load."""

from __future__ import annotations

from collections import Counter
from typing import Any


class Stats:
    def __init__(self) -> None:
        self.in_flight = 0
        self.reset()

    def reset(self) -> None:
        self.total = 0
        self.throttled = 0
        self.peak_concurrency = self.in_flight
        self.by_endpoint: Counter[str] = Counter()
        self.by_status: Counter[int] = Counter()
        self.by_account: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()

    def enter(self) -> None:
        self.in_flight += 1
        self.peak_concurrency = max(self.peak_concurrency, self.in_flight)

    def leave(self, endpoint: str, status: int | None, account: str | None) -> None:
        """Records a finished request; `status` is None when no response was sent."""
        self.in_flight -= 1
        self.total += 1
        self.by_endpoint[endpoint] += 1
        if status is not None:
            self.by_status[status] += 1
            self.throttled += status == 429
        if account is not None:
            self.by_account[account] += 1

    def snapshot(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "by_endpoint": dict(self.by_endpoint),
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "by_account": dict(self.by_account),
            "throttled": self.throttled,
            "in_flight": self.in_flight,
            "peak_concurrency": self.peak_concurrency,
            "faults": dict(self.faults),
        }
