"""The crawl's time series: what each run's counters said, every few seconds.

The store keeps ``Sample`` and ``Run`` rows for the report (``crawler/report``) and the
metrics read the same numbers, so this module sits below both, free of their dependencies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Run:
    """One process of the crawl, from start to exit.

    ``ended`` and ``exit_code`` are None for a run still going or one that was killed (it
    never wrote its end). Exit 3 is a pause: every account was banned for too long.
    """

    id: int  # unique in the crawl, across workers
    started: float  # epoch seconds
    ended: float | None = None
    exit_code: int | None = None
    worker: str | None = None  # the PostgreSQL worker, None for a single-process crawl


@dataclass(frozen=True)
class Sample:
    """What one worker's counters said at one moment.

    Counters that the process keeps (requests, 429s, faults, retries, per-account requests
    used, commits) count from the start of their run, so a store may drop any row to
    downsample and the rates between the rows left stay exact. ``written`` and ``pending``
    are the store's totals for the whole crawl (the same for every worker); ``budget`` and
    ``parked_until`` are the worker's rate limiter's current beliefs (a ``parked_until`` in
    the past means running). Take one more sample at exit: what a run did after its last
    sample is not seen. HTTP statuses read back from JSON as strings are taken as they are.
    """

    at: float  # epoch seconds
    run: int
    worker: str | None = None
    requests: Mapping[int, int] = field(default_factory=dict)  # responses by HTTP status
    rate_limited: Mapping[str, Mapping[str, int]] = field(default_factory=dict)  # acct→reason→n
    faults: Mapping[str, int] = field(default_factory=dict)  # by kind: timeout, reset, 5xx…
    retries: int = 0
    written: Mapping[str, int] = field(default_factory=dict)  # entities per stream
    pending: Mapping[str, int] = field(default_factory=dict)  # pending tasks per operation
    commits: int = 0
    commit_s: float = 0.0  # wall time of those commits
    budget: Mapping[str, float] = field(default_factory=dict)  # account → believed requests/s
    used: Mapping[str, int] = field(default_factory=dict)  # account → requests sent
    parked_until: Mapping[str, float] = field(default_factory=dict)  # account → epoch s
