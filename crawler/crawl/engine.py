"""The crawl engine: a dispatcher, worker coroutines, and one group-committing writer.

Shape of a run (after "500 Lines or Less" and Scrapy): the dispatcher takes work from the
frontier, grouped into units (full batches first), and starts at most ``concurrency`` workers;
each worker runs one unit through the expander and hands its outcome to the committer, which
applies every outcome gathered since its last commit in one checkpoint transaction and feeds the
new tasks back into the frontier. Nothing is written except by the committer, so the checkpoint
always describes exactly what the output files hold.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from crawler.api.client import SpotifyClient
from crawler.core.config import Config
from crawler.core.errors import (
    AllAccountsParked,
    CrawlerError,
    EdgeUnavailable,
    RequestFailed,
    cannot_write,
)
from crawler.core.kinds import ENTITIES, Op, State
from crawler.core.stats import Stats
from crawler.core.tasks import PRIORITY, Outcome, Task
from crawler.crawl.expand import BadShape, Expander
from crawler.crawl.frontier import Frontier
from crawler.crawl.progress import Progress, op_counts
from crawler.store.sqlite import Checkpoint

log = logging.getLogger("crawler.crawl.engine")

EXIT_OK, EXIT_FAILED, EXIT_PAUSED, EXIT_INTERRUPTED = 0, 1, 3, 130
# A well-formed ID that names nothing: asking the tracks batch endpoint for it costs one call
# and tells whether this app may use that endpoint (200 with [null]) or not (403).
PROBE_ID = "0" * 22
FRONTIER_WINDOW = 5000
# Ops whose results rarely add work: at a stall their partial batches wait for more.
SINKS = frozenset({Op.TRACK, Op.FEATURES})
# Partial batches sent early (while workers idle) may cost at most this share of requests
# (plus a few): the price of a pipeline that does not wait for batches to fill.
PARTIAL_SHARE = 0.01
PARTIAL_SPARE = 3
PARTIAL_MIN_WAIT_S = 0.02
# Outcomes waiting for a commit, per worker, before the dispatcher waits for the committer.
BACKLOG_PER_WORKER = 4


@dataclass(frozen=True)
class RunResult:
    exit_code: int
    complete: bool
    message: str


Unit = tuple[Op, list[Task]]


class Engine:
    def __init__(
        self, config: Config, client: SpotifyClient, checkpoint: Checkpoint, stats: Stats
    ) -> None:
        self.config = config
        self.client = client
        self.checkpoint = checkpoint
        self.stats = stats
        self.frontier = Frontier(FRONTIER_WINDOW)
        self.expander = Expander(client, config.expand, frozenset(config.seeds.tracks))
        self._linger = config.crawl.linger_ms / 1000
        self._commit_interval = config.crawl.commit_interval_ms / 1000
        self._outcomes: list[tuple[Op, Outcome]] = []
        # Units per op taken from the frontier whose outcome is not committed yet: what may
        # still add tasks to the frontier.
        self._unsettled: Counter[Op] = Counter()
        self._workers: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(config.crawl.concurrency)
        self._wake = asyncio.Event()  # the dispatcher may find new work
        self._commit_wake = asyncio.Event()  # the committer may have something to do
        self._committing = False
        self._units = 0
        self._partials = 0
        self._max_backlog = BACKLOG_PER_WORKER * config.crawl.concurrency
        self._busy = max(1, config.crawl.concurrency * 3 // 4)  # slots in use that mean "busy"
        self._starving = False
        self._stopping = False
        self._closing = False
        self._interrupted = False
        self._halt_error: CrawlerError | None = None
        self._write_error: CrawlerError | None = None
        self.started = time.monotonic()
        self.commit_wait_s = 0.0  # dispatcher idle while new work waited for a commit

    # ------------------------------------------------------------------ public

    async def run(self) -> RunResult:
        retried = await self.checkpoint.reset_failed()
        if retried:
            log.info("retrying %d tasks that failed in an earlier run", retried)
        if not self.checkpoint.meta.get("seeded"):
            await self._commit(seeds=self._seed_tasks(), meta={"seeded": True})
        await self._probe_tracks_endpoint()
        await self.frontier.refill(self.checkpoint)
        committer = asyncio.create_task(self._committer())
        try:
            await self._dispatch()
            await self._drain()
        finally:
            self._closing = True
            self._commit_wake.set()
            await committer
        return self._result()

    def interrupt(self) -> None:
        """First SIGINT/SIGTERM: finish what is in flight, commit, exit 130. Second: now."""
        if self._interrupted:
            log.warning("second interrupt: exiting now; the checkpoint is consistent")
            os._exit(EXIT_INTERRUPTED)
        log.warning("interrupted: finishing requests in flight (interrupt again to quit now)")
        self._interrupted = True
        self._stop()

    def snapshot(self) -> Progress:
        """What a progress display needs, cheap enough to call twice a second."""
        counts = self.checkpoint.counts
        status = self.client.status()
        return Progress(
            elapsed_s=time.monotonic() - self.started,
            ops=op_counts(counts),
            written={k.stream: counts[(op, State.DONE)] for op, k in ENTITIES.items()},
            requests=self.stats.total_requests,
            rate_limited=self.stats.rate_limited,
            in_flight=len(self._workers),
            accounts=status.accounts,
            paused_until_epoch=status.all_parked_until,
            max_artists=self.config.expand.max_artists,
        )

    # ------------------------------------------------------------------ seeding

    def _seed_tasks(self) -> list[tuple[Op, str]]:
        seeds = self.config.seeds
        return [
            *((Op.ARTIST, i) for i in seeds.artists),
            *((Op.ALBUM, i) for i in seeds.albums),
            *((Op.TRACK, i) for i in seeds.tracks),
            *((Op.PLAYLIST, i) for i in seeds.playlists),
            *((Op.SEARCH, q) for q in seeds.search),
        ]

    async def _probe_tracks_endpoint(self) -> None:
        """``tracks = "auto"`` must know, before the first album page, what to do with tracks."""
        caps = self.client.capabilities
        if (
            self.config.expand.tracks == "auto"
            and self.config.expand.album_tracks
            and caps.batch_tracks is None
        ):
            try:
                await self.client.tracks([PROBE_ID])
            except RequestFailed as exc:
                log.warning("could not probe the tracks endpoint (%s): keeping album tracks", exc)

    # ------------------------------------------------------------------ dispatching

    async def _dispatch(self) -> None:
        while not self._stopping:
            await self._slots.acquire()
            unit = await self._next_unit()
            if unit is None:
                self._slots.release()
                return
            worker = asyncio.create_task(self._work(*unit))
            self._workers.add(worker)

    async def _next_unit(self) -> Unit | None:
        """Wait for a unit worth a request, or return None when the crawl is over."""
        while not self._stopping:
            self._wake.clear()
            # Backpressure: outcomes hold their response bytes until committed, so a
            # committer that falls behind must slow the workers, not grow the heap.
            backlog = len(self._outcomes) >= self._max_backlog
            unit, wait = (None, None) if backlog else self._pick()
            if unit is not None:
                self._starving = False
                return unit
            if not backlog and self._finished():
                return None
            self._starving = True
            self._commit_wake.set()
            # Idle because work is still on its way through the committer: that wait is
            # what checkpointing costs the crawl's throughput.
            waiting_for_commit = backlog or bool(self._outcomes) or self._committing
            started = time.monotonic()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()
            if waiting_for_commit:
                self.commit_wait_s += time.monotonic() - started
        return None

    def _batch_size(self, op: Op) -> int:
        return self.client.capabilities.batch_size(op)

    def _pick(self) -> tuple[Unit | None, float | None]:
        """A full batch if any; else a partial one, if it is worth a request now.

        Waiting for batches to fill keeps the request count near the minimum. A partial
        batch goes out (a) at a stall, or once no unit queued or not yet committed can add to
        it (``Expander.feeders``): waiting then costs time and saves nothing, (b) after
        lingering ``linger_ms`` while other work is in flight, or (c) sooner, while most
        workers are idle, within a budget of PARTIAL_SHARE extra requests: early in a crawl
        that is what keeps the pipeline full. At a stall, tracks and audio features (which
        lead nowhere new) keep filling while anything else can go.
        """
        frontier = self.frontier
        partial: list[Op] = []
        for op in PRIORITY:
            queued = frontier.size(op)
            if queued == 0:
                continue
            size = self._batch_size(op)
            if queued >= size:
                return self._take(op, size, partial=False), None
            partial.append(op)
        if not partial:
            return None, None
        stalled = not self._workers and not self._outcomes and not self._committing
        leading = [op for op in partial if op not in SINKS]
        if stalled:
            op = (leading or partial)[0]
            return self._take(op, frontier.size(op), partial=False), None
        for op in partial:
            if not self._may_grow(op):  # a batch nothing can fill further: waiting is lost time
                return self._take(op, frontier.size(op), partial=False), None
        idle = len(self._workers) <= self.config.crawl.concurrency // 4
        if idle and leading and self._partials < PARTIAL_SHARE * self._units + PARTIAL_SPARE:
            op = max(leading, key=frontier.waited)
            if frontier.waited(op) >= PARTIAL_MIN_WAIT_S:
                return self._take(op, frontier.size(op), partial=True), None
        wait: float | None = None
        for op in partial:
            remaining = self._linger - frontier.waited(op)
            if remaining <= 0:
                return self._take(op, frontier.size(op), partial=False), None
            wait = remaining if wait is None else min(wait, remaining)
        if idle and leading:
            wait = min(wait or PARTIAL_MIN_WAIT_S, PARTIAL_MIN_WAIT_S)
        return None, wait

    def _may_grow(self, op: Op) -> bool:
        """Could queued work, or work not yet committed, still add tasks of ``op``?"""
        frontier = self.frontier
        return frontier.spilled(op) or any(
            self._unsettled[src] or frontier.size(src) or frontier.spilled(src)
            for src in self.expander.feeders[op]
        )

    def _take(self, op: Op, size: int, *, partial: bool) -> Unit:
        self._units += 1
        self._unsettled[op] += 1
        self._partials += partial
        return op, self.frontier.take(op, size)

    def _finished(self) -> bool:
        return (
            not self._workers
            and not self._outcomes
            and not self._committing
            and len(self.frontier) == 0
            and not self.frontier.needs_refill()
        )

    def _stop(self, error: CrawlerError | None = None) -> None:
        if error is not None and self._halt_error is None:
            self._halt_error = error
        self._stopping = True
        self._wake.set()

    # ------------------------------------------------------------------ working

    async def _work(self, op: Op, tasks: list[Task]) -> None:
        outcome: Outcome | None = None
        try:
            outcome = await self.expander.run(op, tasks)
        except EdgeUnavailable:
            outcome = Outcome(states=[(t, State.SKIPPED) for t in tasks])
        except RequestFailed as exc:
            outcome = self._failed(tasks, exc.reason)
        except BadShape as exc:
            outcome = self._failed(tasks, f"unexpected response: {exc}")
        except AllAccountsParked as exc:
            self._stop(exc)  # the tasks stay pending: the next run does them
        except CrawlerError as exc:
            self._stop(exc)
        except (asyncio.CancelledError, KeyboardInterrupt):
            raise
        except Exception as exc:  # a response no check anticipated must not end a day-long run
            log.exception("unexpected error on %s %s", op.name.lower(), tasks[0].key)
            outcome = self._failed(tasks, f"unexpected error: {type(exc).__name__}: {exc}")
        finally:
            self._workers.discard(asyncio.current_task())  # type: ignore[arg-type]
            self._slots.release()
            self._wake.set()
        if outcome is not None:
            self._outcomes.append((op, outcome))
            self._commit_wake.set()

    def _failed(self, tasks: list[Task], reason: str) -> Outcome:
        self.stats.failures += len(tasks)
        return Outcome(
            states=[(t, State.FAILED) for t in tasks],
            failures=[(t, reason) for t in tasks],
        )

    async def _drain(self) -> None:
        """Let requests in flight finish (bounded), then cancel the rest: they stay pending."""
        if not self._workers:
            return
        grace = self.config.api.read_timeout_s if self._interrupted else None
        _, late = await asyncio.wait(set(self._workers), timeout=grace)
        for worker in late:
            worker.cancel()
        if late:
            await asyncio.wait(late)

    # ------------------------------------------------------------------ committing

    async def _committer(self) -> None:
        """Commit loop; if it dies, the crawl stops (a crawl that cannot commit must not run)."""
        try:
            await self._commit_loop()
        except Exception as exc:
            log.exception("the checkpoint committer failed")
            self._write_error = self._write_error or CrawlerError(f"checkpoint failed: {exc}")
            self._stop(self._write_error)

    async def _commit_loop(self) -> None:
        last = time.monotonic()
        while True:
            self._commit_wake.clear()
            refill = self.frontier.needs_refill() and not self._stopping
            if not self._outcomes and not refill:
                if self._closing:
                    return
                await self._commit_wake.wait()
                continue
            # Commit at once while workers are short of work (new tasks are useful now); only
            # a busy crawl, with its slots full, waits to gather a bigger group.
            hungry = self._starving or len(self._workers) < self._busy
            due = last + self._commit_interval - time.monotonic()
            if self._outcomes and due > 0 and not (hungry or self._closing or refill):
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(due):
                        await self._commit_wake.wait()
                continue
            if self._outcomes:
                await self._commit()
                last = time.monotonic()
            if self.frontier.needs_refill() and not self._stopping:
                await self.frontier.refill(self.checkpoint)
            self._wake.set()

    async def _commit(
        self, seeds: list[tuple[Op, str]] | None = None, meta: dict[str, Any] | None = None
    ) -> None:
        settling, self._outcomes = self._outcomes, []
        if self._write_error is not None:
            return  # after a write error nothing more is committed: the rerun redoes it
        limit = self.config.expand.max_artists
        budget = None
        if limit:
            budget = limit - sum(self.checkpoint.counts[(Op.ARTIST, s)] for s in State)
        self._committing = True
        try:
            await self.checkpoint.commit(
                [outcome for _, outcome in settling],
                seeds=seeds or (),
                meta={**(meta or {}), **self._learned()},
                artist_budget=budget,
                on_new=self._discovered,
                track_features=self.expander.edge_enabled(Op.FEATURES),
            )
        except (OSError, sqlite3.Error) as exc:  # ENOSPC, or SQLite's "database or disk is full"
            self._write_error = cannot_write(
                self.checkpoint.out_dir,
                exc,
                "fix it and rerun to resume (nothing committed is lost)",
            )
            self._stop(self._write_error)
            return
        finally:
            self._committing = False
        self._unsettled.subtract(op for op, _ in settling)

    def _learned(self) -> dict[str, Any]:
        """Capabilities to store: the first time, then whenever the client learned more."""
        caps = self.client.capabilities
        if not caps.changed and "capabilities" in self.checkpoint.meta:
            return {}
        caps.changed = False
        return {"capabilities": caps.to_dict()}

    def _discovered(self, tasks: list[Task]) -> None:
        self.frontier.add(tasks)
        self._wake.set()

    # ------------------------------------------------------------------ result

    def _result(self) -> RunResult:
        failed = sum(self.checkpoint.counts[(op, State.FAILED)] for op in Op)
        error = self._write_error or self._halt_error
        if error is not None:
            code = getattr(error, "exit_code", EXIT_FAILED)
            return RunResult(code, False, str(error))
        if self._interrupted:
            return RunResult(
                EXIT_INTERRUPTED, False, "interrupted; rerun the same command to resume"
            )
        if failed:
            return RunResult(
                EXIT_FAILED,
                False,
                f"{failed} tasks failed (see `spotify-crawler status`); rerun to retry them",
            )
        return RunResult(EXIT_OK, True, "crawl complete")
