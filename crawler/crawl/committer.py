"""The group committer: the only writer, applying every outcome gathered since its last commit.

Workers hand their outcomes here and move on; one loop turns them into a ``CommitGroup`` and
commits it. Grouping is what makes durability cheap (one fsync and one transaction for many
units), and it costs latency, so the loop commits at once while the dispatcher is short of
work (the new tasks are useful now) and gathers a larger group only while the crawl is busy.
A committer that falls behind holds response bytes in memory: ``backlogged`` tells the
dispatcher to stop starting work until it catches up.

Errors never escape the loop: a failed commit is reported through ``on_error`` (after which
nothing more is committed, so the next run redoes that work), and the loop ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from crawler.core.errors import CrawlerError, cannot_write
from crawler.core.kinds import Op
from crawler.core.tasks import Outcome, Task
from crawler.store.base import CommitGroup, Store

log = logging.getLogger("crawler.crawl.committer")


class GroupCommitter:
    def __init__(
        self,
        store: Store,
        *,
        interval_s: float,
        max_backlog: int,
        group: Callable[[list[Outcome], dict[str, Any], Iterable[tuple[Op, str]]], CommitGroup],
        new: Callable[[list[Task]], None],
        settled: Callable[[list[Op]], None],
        on_error: Callable[[CrawlerError], None],
        hungry: Callable[[], bool],
        needs_refill: Callable[[], bool],
        refill: Callable[[], Awaitable[None]],
        wake: Callable[[], None],
        out_dir: Path,
    ) -> None:
        """``group`` builds the commit of some outcomes (with extra meta and seed tasks);
        ``new`` gets the new tasks leased to this process as soon as they exist, ``settled``
        the ops of the units a commit made durable; ``wake`` tells the dispatcher that a
        refill brought work."""
        self._store = store
        self._interval = interval_s
        self._max_backlog = max_backlog
        self._group = group
        self._new = new
        self._settled = settled
        self._on_error = on_error
        self._hungry = hungry
        self._needs_refill = needs_refill
        self._refill = refill
        self._wake_dispatcher = wake
        self._out_dir = out_dir
        self._outcomes: list[tuple[Op, Outcome]] = []
        self._wake = asyncio.Event()
        self._committing = False
        self._closing = False
        self._failed = False

    # ------------------------------------------------------------------ the workers' side

    def add(self, op: Op, outcome: Outcome) -> None:
        self._outcomes.append((op, outcome))
        self._wake.set()

    @property
    def backlogged(self) -> bool:
        return len(self._outcomes) >= self._max_backlog

    @property
    def busy(self) -> bool:
        """Outcomes are waiting or being committed: work is on its way to the frontier."""
        return bool(self._outcomes) or self._committing

    def nudge(self) -> None:
        """The dispatcher is starving: commit what there is now."""
        self._wake.set()

    def close(self) -> None:
        """Commit what is left, then end the loop."""
        self._closing = True
        self._wake.set()

    # ------------------------------------------------------------------ the loop

    async def commit(
        self, meta: dict[str, Any] | None = None, seeds: Iterable[tuple[Op, str]] = ()
    ) -> None:
        """Commit every outcome gathered so far (with ``meta`` and ``seeds``), now."""
        settling, self._outcomes = self._outcomes, []
        if self._failed:
            return  # after a write error nothing more is committed: the rerun redoes it
        group = self._group([outcome for _, outcome in settling], meta or {}, seeds)
        self._committing = True
        try:
            await self._store.commit(group, self._new)
        except (OSError, sqlite3.Error) as exc:  # ENOSPC, or SQLite's "disk is full"
            self._fail(
                cannot_write(
                    self._out_dir, exc, "fix it and rerun to resume (nothing committed is lost)"
                )
            )
            return
        except CrawlerError as exc:
            self._fail(exc)
            return
        finally:
            self._committing = False
        self._settled([op for op, _ in settling])

    async def run(self) -> None:
        """The commit loop; it ends after ``close`` once everything is committed."""
        try:
            await self._loop()
        except CrawlerError as exc:  # a refill's claim lost the store: its own one line
            self._fail(exc)
        except Exception as exc:
            log.exception("the committer failed")
            self._fail(CrawlerError(f"checkpoint failed: {exc}"))

    def _fail(self, error: CrawlerError) -> None:
        self._failed = True
        self._on_error(error)

    async def _loop(self) -> None:
        last = time.monotonic()
        while not self._failed:
            self._wake.clear()
            refill = self._needs_refill() and not self._closing
            if not self._outcomes and not refill:
                if self._closing:
                    return
                await self._wake.wait()
                continue
            due = last + self._interval - time.monotonic()
            if (
                self._outcomes
                and due > 0
                and not (self._hungry() or self._closing or refill or self.backlogged)
            ):
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(due):
                        await self._wake.wait()
                continue
            if self._outcomes:
                await self.commit()
                last = time.monotonic()
            if self._needs_refill() and not self._closing and not self._failed:
                await self._refill()
                self._wake_dispatcher()
