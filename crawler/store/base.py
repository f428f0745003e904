"""The store seam: the one interface the engine talks to about durable work and output.

A store holds the frontier and dedupe set (one task per ``(op, key)``), the output streams,
failures, counts and meta (fingerprint, learned capabilities, the last run's outcome). The
engine never sees SQL or files. Two properties make "nothing lost, nothing written twice"
hold behind any backend:

* **Claims are leases.** ``claim`` and ``commit`` hand tasks to exactly one holder; a task
  leased to a process that dies goes back to the pool (SQLite: the process lock dies with it;
  PostgreSQL: the lease's owner is found dead), and its outcome can only be committed by the
  holder of the lease.
* **A commit is atomic.** A ``CommitGroup`` (new tasks, finished tasks, failures, records by
  stream) becomes durable in one transaction, or not at all, and the tasks it creates are
  known to be new because the store says so (not because they sort after the last one seen),
  so several writers can share one frontier.

What to commit is decided by the pure planning step (``store.plan``) that every backend
reuses: candidate keys deduplicated, the artist budget, audio features derived from tracks.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from crawler.core.errors import CrawlerError
from crawler.core.kinds import Op, State
from crawler.core.tasks import Line, Task
from crawler.core.timeseries import Run, Sample


@dataclass
class CommitGroup:
    """What one commit applies; built by ``plan.plan_commit`` from the workers' outcomes.

    ``fresh`` are candidate tasks, inserted only where ``(op, key)`` is unknown; ``born_done``
    are tasks that arrive finished with their record (tracks from album pages), written only
    if new; ``settled`` moves leased tasks to their final state; ``records`` are appended to
    their streams in order. ``lease`` caps, per op, how many of the new tasks the committer
    takes for itself (what its in-memory window has room for); the rest stay claimable.
    """

    fresh: dict[Op, list[str]] = field(default_factory=dict)
    born_done: dict[Op, dict[str, tuple[str, Line]]] = field(default_factory=dict)
    settled: dict[State, list[Task]] = field(default_factory=dict)
    records: list[tuple[str, Line]] = field(default_factory=list)
    failures: list[tuple[Task, str]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    artist_budget: int | None = None  # new artist tasks this commit may still admit
    features_from_tracks: bool = False  # every new track task brings its audio-features task
    lease: Mapping[Op, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StoreCost:
    """What the store cost this run, for stats.json: where to optimise first."""

    commits: int
    commit_seconds: float  # wall time of commits (waits for a busy event loop included)
    cpu_seconds: float
    cpu_parts: Mapping[str, float]


class Store(Protocol):
    """A crawl's durable state. One instance per process; the engine is its only writer."""

    shared: bool  # may other processes crawl the same crawl at the same time?

    @property
    def meta(self) -> Mapping[str, Any]:
        """Fingerprint, capabilities, ``seeded``, the last run's outcome: small JSON values."""
        ...

    def counts(self) -> Counter[tuple[Op, State]]:
        """Tasks per (op, state), over every run of this crawl."""
        ...

    def written(self) -> Counter[str]:
        """Records committed per output stream, over every run of this crawl."""
        ...

    def claimable(self, op: Op) -> bool:
        """Might ``claim(op)`` find work beyond what this process already holds?"""
        ...

    def busy_elsewhere(self) -> bool:
        """Do other processes hold leases of this crawl? Their outcomes may still add work,
        so the crawl is not finished while they do."""
        ...

    def watch(self, on_change: Callable[[CrawlerError | None], None]) -> None:
        """Call ``on_change(None)`` when ``claimable`` or ``busy_elsewhere`` may have changed
        because of other processes, or ``on_change(error)`` when the store can no longer
        tell. A single-process store never calls it."""
        ...

    async def claim(self, op: Op, limit: int) -> list[Task]:
        """Lease up to ``limit`` pending tasks of ``op`` held by no one, oldest first."""
        ...

    async def commit(
        self, group: CommitGroup, on_new: Callable[[list[Task]], None] | None = None
    ) -> list[Task]:
        """Apply ``group`` atomically; return the new tasks leased to the caller.

        ``on_new`` gets them as soon as they exist, before the transaction is durable: work
        may start on them, as its outcome can only be committed by a later transaction.
        """
        ...

    async def begin_run(self) -> int:
        """Record that a run started, and return its id: ``status`` and the report tell runs
        apart by it."""
        ...

    async def end_run(self, exit_code: int, message: str) -> None:
        """Record the run's verdict, so ``status`` agrees with how the last run ended."""
        ...

    def record_sample(self, sample: Sample) -> None:
        """Keep a sample of the time series: durable with the next commit or the run's end
        (so sampling never opens a transaction of its own)."""
        ...

    async def samples(self) -> list[Sample]:
        """The time series, oldest first (thinned where old: see the backend)."""
        ...

    async def runs(self) -> list[Run]: ...

    async def reset_failed(self) -> int:
        """Failed tasks of earlier runs become pending again; returns how many."""
        ...

    async def states(self, keys: Iterable[tuple[Op, str]]) -> dict[tuple[Op, str], State]:
        """The state of each known task among ``keys`` (seeds, for the run's verdict)."""
        ...

    async def failures(self, limit: int = 20) -> list[tuple[Op, str, str]]:
        """(op, key, reason) of failed tasks, oldest first."""
        ...

    async def stream_files(self, scratch: Path) -> dict[str, tuple[Path, int]]:
        """Per stream with records: a JSON-lines file and how many of its bytes are committed
        (a running crawl's file may hold more), in commit order. A backend that keeps its
        records elsewhere writes the files in ``scratch``. What ``export`` reads."""
        ...

    def fetched_at(self, op: Op) -> AsyncIterator[list[tuple[str, float]]]:
        """(key, epoch seconds) of the tasks of ``op`` committed done, in chunks: the
        records' ``fetched_at`` for the export."""
        ...

    def cost(self) -> StoreCost: ...

    async def close(self) -> None: ...


def pending(counts: Mapping[tuple[Op, State], int], op: Op | None = None) -> int:
    """Tasks still to do, of one op or all."""
    ops = Op if op is None else (op,)
    return sum(counts.get((o, State.PENDING), 0) for o in ops)


def failed(counts: Mapping[tuple[Op, State], int]) -> int:
    return sum(counts.get((op, State.FAILED), 0) for op in Op)
