"""The crawl engine: a dispatcher and its workers, around the group committer.

Shape of a run (after "500 Lines or Less" and Scrapy): the dispatcher takes work from the
frontier, grouped into units (the batch policy decides which and when), and starts at most
``concurrency`` workers; each worker runs one unit through the expander and hands its outcome
to the committer, which applies every outcome gathered since its last commit in one store
transaction and feeds the new tasks back into the frontier. Nothing is written except by the
committer, so the store always describes exactly what the outputs hold.

One counter decides when the crawl is over: *unsettled* units, taken from the frontier and
not yet committed (in flight, or waiting in the committer). While any is unsettled, new work
may still appear; with none unsettled and nothing left in the frontier or the store, the crawl
is finished; with none unsettled but a partial batch waiting, nothing can fill it (a stall).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from crawler.api.client import SpotifyClient
from crawler.core.config import Config
from crawler.core.errors import CrawlerError, EdgeUnavailable, RequestFailed
from crawler.core.kinds import Op, State
from crawler.core.stats import Stats
from crawler.core.tasks import Outcome, SearchPageKey, Task
from crawler.crawl.committer import GroupCommitter
from crawler.crawl.expand import BadShape, Expander
from crawler.crawl.frontier import Frontier
from crawler.crawl.policy import Pick, Queued, Situation, may_grow, pick
from crawler.crawl.progress import Progress, op_counts
from crawler.store.base import CommitGroup, Store, failed
from crawler.store.plan import plan_commit

log = logging.getLogger("crawler.crawl.engine")

EXIT_OK, EXIT_FAILED, EXIT_PAUSED, EXIT_INTERRUPTED = 0, 1, 3, 130
# A well-formed ID that names nothing: asking the tracks batch endpoint for it costs one call
# and tells whether this app may use that endpoint (200 with [null]) or not (403).
PROBE_ID = "0" * 22
FRONTIER_WINDOW = 5000
# Outcomes waiting for a commit, per worker, before the dispatcher waits for the committer.
BACKLOG_PER_WORKER = 4
# Units whose responses hold tracks: they wait for the tracks endpoint's probe.
HOLDS_TRACKS = frozenset({Op.ALBUM, Op.ALBUM_TRACKS, Op.PLAYLIST, Op.PLAYLIST_ITEMS})
# Seeds named one by one when they do not exist; more are counted.
MISSING_SEEDS_SHOWN = 10


@dataclass(frozen=True)
class RunResult:
    exit_code: int
    complete: bool
    message: str


Unit = tuple[Op, list[Task]]


def _windows(store: Store, client: SpotifyClient, concurrency: int) -> dict[Op, int]:
    """How many tasks of each op this process may hold. Alone, a large window saves claims;
    sharing a crawl, a process holds what its requests in flight can use soon (one round of
    full batches), so that the others find work to claim."""
    if not store.shared:
        return dict.fromkeys(Op, FRONTIER_WINDOW)
    caps = client.capabilities
    return {op: min(FRONTIER_WINDOW, concurrency * caps.batch_size(op)) for op in Op}


class Engine:
    def __init__(self, config: Config, client: SpotifyClient, store: Store, stats: Stats) -> None:
        self.config = config
        self.client = client
        self.store = store
        self.stats = stats
        self.frontier = Frontier(_windows(store, client, config.crawl.concurrency), store)
        self.expander = Expander(
            client, config.expand, config.output, frozenset(config.seeds.tracks)
        )
        concurrency = config.crawl.concurrency
        self._linger = config.crawl.linger_ms / 1000
        self._unsettled: Counter[Op] = Counter()
        self._unsettled_total = 0
        self._workers: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(concurrency)
        self._wake = asyncio.Event()  # the dispatcher may find new work
        self._units = 0
        self._partials = 0
        self._busy = max(1, concurrency * 3 // 4)  # slots in use that mean "busy"
        self._starving = False
        self._stopping = False
        self._interrupted = False
        self._error: CrawlerError | None = None
        self._probe: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._probe.set_result(None)  # replaced by the probe itself once the run starts
        self.committer = GroupCommitter(
            store,
            interval_s=config.crawl.commit_interval_ms / 1000,
            max_backlog=BACKLOG_PER_WORKER * concurrency,
            group=self._group,
            new=self._new_tasks,
            settled=self._settled,
            on_error=self._stop,
            hungry=lambda: self._starving or len(self._workers) < self._busy,
            needs_refill=self.frontier.needs_refill,
            refill=self.frontier.refill,
            wake=self._wake.set,
            out_dir=config.crawl.out_dir,
        )
        self.started = time.monotonic()
        self.last_progress = time.time()  # when a commit last settled units (for metrics)
        self.commit_wait_s = 0.0  # dispatcher idle while new work waited for a commit

    # ------------------------------------------------------------------ public

    async def run(self) -> RunResult:
        try:
            await self._start()
        except CrawlerError as exc:
            self._stop(exc)
            return await self._result()
        committer = asyncio.create_task(self.committer.run())
        try:
            await self._dispatch()
            await self._drain()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe  # a crawl with no album still hears of its failure
        except CrawlerError as exc:
            self._stop(exc)
        finally:
            self._probe.cancel()
            self.committer.close()
            await committer
        return await self._result()

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
        status = self.client.status()
        return Progress(
            elapsed_s=time.monotonic() - self.started,
            ops=op_counts(self.store.counts()),
            written=dict(self.store.written()),
            requests=self.stats.total_requests,
            rate_limited=self.stats.rate_limited,
            in_flight=len(self._workers),
            accounts=status.accounts,
            paused_until_epoch=status.all_parked_until,
            max_artists=self.config.expand.max_artists,
        )

    # ------------------------------------------------------------------ starting

    async def _start(self) -> None:
        retried = await self.store.reset_failed()
        if retried:
            log.info("retrying %d tasks that failed in an earlier run", retried)
        if not self.store.meta.get("seeded"):
            await self.committer.commit({"seeded": True}, seeds=self._seed_tasks())
            if self._error is not None:
                raise self._error
        self.store.watch(self._store_changed)
        # In flight beside the first units: only a unit that holds tracks needs its answer.
        self._probe = asyncio.create_task(self._probe_tracks_endpoint())
        await self.frontier.refill()

    def _seed_tasks(self) -> list[tuple[Op, str]]:
        seeds = self.config.seeds
        return [
            *((Op.ARTIST, i) for i in seeds.artists),
            *((Op.ALBUM, i) for i in seeds.albums),
            *((Op.TRACK, i) for i in seeds.tracks),
            *((Op.PLAYLIST, i) for i in seeds.playlists),
            *((Op.SEARCH, SearchPageKey(s.q, s.type, s.limit).key) for s in seeds.search),
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
        committer = self.committer
        while not self._stopping:
            self._wake.clear()
            # Backpressure: outcomes hold their response bytes until committed, so a
            # committer that falls behind must slow the workers, not grow the heap.
            backlog = committer.backlogged
            choice = Pick(None) if backlog else pick(self._situation())
            if choice.op is not None:
                self._starving = False
                return self._take(choice)
            if not backlog and self._finished():
                return None
            self._starving = True
            committer.nudge()
            # Idle because work is still on its way through the committer: that wait is
            # what checkpointing costs the crawl's throughput.
            waiting_for_commit = committer.busy
            started = time.monotonic()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(choice.wait):
                    await self._wake.wait()
            if waiting_for_commit:
                self.commit_wait_s += time.monotonic() - started
        return None

    def _situation(self) -> Situation:
        frontier = self.frontier
        caps = self.client.capabilities
        sizes = {op: frontier.size(op) for op in Op}
        elsewhere = {op: frontier.elsewhere(op) for op in Op}
        queues = {
            op: Queued(
                size=size,
                batch=caps.batch_size(op),
                waited=frontier.waited(op),
                may_grow=may_grow(op, self.expander.feeders[op], self._unsettled, sizes, elsewhere),
            )
            for op, size in sizes.items()
            if size
        }
        return Situation(
            queues=queues,
            stalled=self._unsettled_total == 0,
            in_flight=len(self._workers),
            concurrency=self.config.crawl.concurrency,
            units=self._units,
            partials=self._partials,
            linger_s=self._linger,
        )

    def _take(self, choice: Pick) -> Unit:
        op = choice.op
        assert op is not None
        self._units += 1
        self._partials += choice.partial
        self._unsettled[op] += 1
        self._unsettled_total += 1
        return op, self.frontier.take(op, choice.size)

    def _finished(self) -> bool:
        return (
            self._unsettled_total == 0
            and len(self.frontier) == 0
            and not any(self.frontier.elsewhere(op) for op in Op)
            and not self.store.busy_elsewhere()
        )

    def _store_changed(self, error: CrawlerError | None) -> None:
        """Other processes of a shared crawl freed or finished work (or the store failed)."""
        if error is not None:
            self._stop(error)
            return
        self.committer.nudge()  # it refills the frontier, then wakes the dispatcher
        self._wake.set()

    def _stop(self, error: CrawlerError | None = None) -> None:
        if error is not None and self._error is None:
            self._error = error
        self._stopping = True
        self._wake.set()

    # ------------------------------------------------------------------ working

    async def _work(self, op: Op, tasks: list[Task]) -> None:
        outcome: Outcome | None = None
        try:
            if op in HOLDS_TRACKS:
                await self._probe  # tracks = "auto": keep them, or fetch them in full?
            outcome = await self.expander.run(op, tasks)
        except EdgeUnavailable:
            outcome = Outcome(states=[(t, State.SKIPPED) for t in tasks])
        except RequestFailed as exc:
            outcome = _failed(tasks, exc.reason)
        except BadShape as exc:
            outcome = _failed(tasks, f"unexpected response: {exc}")
        except CrawlerError as exc:  # all accounts parked, a refused credential, …
            self._stop(exc)  # the unit's tasks stay pending: the next run does them
        except Exception as exc:  # a response no check anticipated must not end a day-long run
            log.exception("unexpected error on %s %s", op.name.lower(), tasks[0].key)
            outcome = _failed(tasks, f"unexpected error: {type(exc).__name__}: {exc}")
        finally:
            self._workers.discard(asyncio.current_task())  # type: ignore[arg-type]
            self._slots.release()
            self._wake.set()
        if outcome is not None:
            self.committer.add(op, outcome)

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

    def _group(
        self, outcomes: list[Outcome], meta: dict[str, Any], seeds: Iterable[tuple[Op, str]]
    ) -> CommitGroup:
        limit = self.config.expand.max_artists
        budget = None
        if limit:
            counts = self.store.counts()
            budget = limit - sum(counts[(Op.ARTIST, s)] for s in State)
        return plan_commit(
            outcomes,
            seeds=seeds,
            meta={**meta, **self._learned()},
            artist_budget=budget,
            features_from_tracks=self.expander.edge_enabled(Op.FEATURES),
            lease=self.frontier.room(),
        )

    def _learned(self) -> dict[str, Any]:
        """Capabilities to store: the first time, then whenever the client learned more than
        the store holds. What other processes sharing the crawl stored is taken first, so a
        refusal one of them met is not met again by the rest."""
        caps = self.client.capabilities
        stored = self.store.meta.get("capabilities")
        if stored is not None:
            caps.changed |= caps.merge(stored)
        if not caps.changed and stored is not None:
            return {}
        caps.changed = False
        return {"capabilities": caps.to_dict()}

    def _new_tasks(self, tasks: list[Task]) -> None:
        """New tasks leased to this process, handed over before their commit is durable: work
        may start on them at once, because its outcome can only be committed by a later
        transaction, which requires this one to have committed first."""
        self.frontier.add(tasks)
        self._wake.set()

    def _settled(self, ops: list[Op]) -> None:
        if ops:
            self.last_progress = time.time()
        self._unsettled.subtract(ops)
        self._unsettled_total -= len(ops)
        self._wake.set()

    # ------------------------------------------------------------------ result

    async def _result(self) -> RunResult:
        error = self._error
        if error is not None:
            return RunResult(getattr(error, "exit_code", EXIT_FAILED), False, str(error))
        if self._interrupted:
            return RunResult(
                EXIT_INTERRUPTED, False, "interrupted; rerun the same command to resume"
            )
        missing = await self._missing_seeds()
        seeds = self._seed_tasks()
        if seeds and len(missing) == len(seeds):
            return RunResult(
                EXIT_FAILED, False, f"none of the {len(seeds)} seeds exists: nothing to crawl"
            )
        n_failed = failed(self.store.counts())
        if n_failed:
            return RunResult(
                EXIT_FAILED,
                False,
                f"{n_failed} tasks failed (see `spotify-crawler status`); rerun to retry them",
            )
        return RunResult(EXIT_OK, True, "crawl complete")

    async def _missing_seeds(self) -> list[tuple[Op, str]]:
        """Seeds that turned out not to exist (404, null in a batch, a search with no
        result), each named once: a typo in a seed must not pass for an empty catalog."""
        states = await self.store.states(self._seed_tasks())
        missing = [key for key, state in states.items() if state is State.MISSING]
        for op, key in missing[:MISSING_SEEDS_SHOWN]:
            if op is Op.SEARCH:
                log.warning("seed search %r found nothing", SearchPageKey.of(key).q)
            else:
                log.warning("seed %s %s does not exist", op.name.lower(), key)
        if len(missing) > MISSING_SEEDS_SHOWN:
            log.warning("… and %d more seeds that do not exist", len(missing) - MISSING_SEEDS_SHOWN)
        return missing


def _failed(tasks: list[Task], reason: str) -> Outcome:
    return Outcome(
        states=[(t, State.FAILED) for t in tasks],
        failures=[(t, reason) for t in tasks],
    )
