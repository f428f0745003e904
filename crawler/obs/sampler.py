"""The crawl's time series: a ``Sample`` of the run's counters every few seconds, into the store.

One function reads the counters (``observe``); the sampler stores what it returns, and the
Prometheus metrics serve the same numbers, so a chart and a dashboard never disagree.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from crawler.api.pool import PoolStatus
from crawler.core.kinds import Op, State
from crawler.core.stats import Stats
from crawler.core.timeseries import Sample
from crawler.store.base import Store

SAMPLE_EVERY_S = 5.0


@dataclass(frozen=True)
class Sources:
    """Where the counters live: the run's stats, the store, the rate limiter's beliefs."""

    stats: Stats
    store: Store
    accounts: Callable[[], PoolStatus]
    run: int
    worker: str | None = None


def observe(src: Sources, at: float) -> Sample:
    stats, store = src.stats, src.store
    by_status: Counter[int] = Counter()
    for (_, status), n in stats.requests.items():
        by_status[status] += n
    limited: defaultdict[str, dict[str, int]] = defaultdict(dict)
    for (account, reason), n in stats.rate_limited_by.items():
        limited[account][reason] = n
    counts = store.counts()
    cost = store.cost()
    accounts = src.accounts().accounts
    return Sample(
        at=at,
        run=src.run,
        worker=src.worker,
        requests=dict(by_status),
        rate_limited=dict(limited),
        faults=dict(stats.faults),
        retries=stats.retries,
        written=dict(store.written()),
        pending={op.name.lower(): counts[(op, State.PENDING)] for op in Op},
        commits=cost.commits,
        commit_s=cost.commit_seconds,
        # While a limit is being discovered there is no believed budget (the ramp is open).
        budget={a.account: a.rate / a.window_s for a in accounts if math.isfinite(a.rate)},
        used={a.account: stats.sent[a.account] for a in accounts},
        parked_until={a.account: a.parked_until for a in accounts if a.parked_until},
    )


class Sampler:
    """Records a sample every ``every_s`` until cancelled, and one more at the end."""

    def __init__(
        self,
        sources: Sources,
        every_s: float = SAMPLE_EVERY_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sources = sources
        self._every = every_s
        self._clock = clock

    def sample(self) -> None:
        started = time.thread_time()
        self._sources.store.record_sample(observe(self._sources, self._clock()))
        self._sources.stats.timeseries_cpu_s += time.thread_time() - started

    async def run(self) -> None:
        try:
            while True:
                self.sample()
                await asyncio.sleep(self._every)
        finally:
            self.sample()  # what the run did after its last periodic sample
