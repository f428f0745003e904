"""The store alone, under the commit stream of a 1M-track crawl: CPU and wall per 1M tracks.

`python scripts/bench_store.py [--tracks 1000000]` replays, through the store interface and
the planning step (the engine's own code path, without HTTP or the simulator), what the
scale scenario commits: artists leading to album pages, album batches of 20 bringing ~13
tracks each (tasks born pending, each with its audio-features task), track batches of 50 and
feature batches of 100 finishing them, in commit groups the size a busy crawl makes. It
prints the store's CPU (the SQLite thread, file flushes, bookkeeping) per 1M tracks against
the target of issue 15 (≤ 10 s), so a change to the checkpoint can be measured in seconds
on a quiet or a busy machine alike (CPU time, not wall time, is what it compares).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import shutil
import string
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crawler.core.kinds import STREAMS, Op, State
from crawler.core.tasks import Outcome, Task
from crawler.store.plan import plan_commit
from crawler.store.sqlite import SqliteStore

TARGET_CPU_PER_1M_TRACKS = 10.0
ALBUM_BATCH, TRACK_BATCH, FEATURES_BATCH = 20, 50, 100
UNITS_PER_COMMIT = 170  # ~0.5 s of a 340 req/s crawl
WINDOW = 5000
ALPHABET = string.ascii_letters + string.digits


def _ids(rng: random.Random, n: int) -> list[str]:
    return ["".join(rng.choices(ALPHABET, k=22)) for _ in range(n)]


class Workload:
    """The engine's frontier in miniature: leased tasks per op, taken in batches."""

    def __init__(self, store: SqliteStore, rng: random.Random, tracks: int) -> None:
        self.store = store
        self.rng = rng
        self.queues: dict[Op, deque[Task]] = {op: deque() for op in Op}
        self.tracks_left = tracks
        self.album_line = b'{"id":"%s","tracks":' + b"x" * 4000 + b"}"
        self.track_line = b'{"id":"%s",' + b"y" * 1500 + b"}"
        self.features_line = b'{"id":"%s",' + b"z" * 400 + b"}"

    def room(self) -> dict[Op, int]:
        return {op: WINDOW - len(q) for op, q in self.queues.items()}

    def add(self, tasks: list[Task]) -> None:
        for task in tasks:
            self.queues[task.op].append(task)

    async def refill(self) -> None:
        for op, queue in self.queues.items():
            if self.store.claimable(op) and len(queue) <= WINDOW // 2:
                self.add(await self.store.claim(op, WINDOW - len(queue)))

    def _take(self, op: Op, n: int) -> list[Task]:
        queue = self.queues[op]
        return [queue.popleft() for _ in range(min(n, len(queue)))]

    def unit(self) -> Outcome | None:
        """The next unit's outcome, downstream first (as the batch policy does)."""
        for op, size in ((Op.FEATURES, FEATURES_BATCH), (Op.TRACK, TRACK_BATCH)):
            if len(self.queues[op]) >= size or (self.queues[op] and not self.tracks_left):
                return self._finish(self._take(op, size))
        if self.queues[Op.ALBUM]:
            return self._albums(self._take(Op.ALBUM, ALBUM_BATCH))
        for op in (Op.FEATURES, Op.TRACK):
            if self.queues[op]:
                return self._finish(self._take(op, TRACK_BATCH))
        return None

    def _finish(self, tasks: list[Task]) -> Outcome:
        line = self.features_line if tasks[0].op is Op.FEATURES else self.track_line
        stream = "audio_features" if tasks[0].op is Op.FEATURES else "tracks"
        return Outcome(
            states=[(t, State.DONE) for t in tasks],
            records=[(stream, line % t.key.encode()) for t in tasks],
        )

    def _albums(self, tasks: list[Task]) -> Outcome:
        outcome = Outcome(
            states=[(t, State.DONE) for t in tasks],
            records=[("albums", self.album_line % t.key.encode()) for t in tasks],
        )
        for _ in tasks:
            n = min(self.tracks_left, 6 + self.rng.randrange(15))
            self.tracks_left -= n
            outcome.discovered.extend((Op.TRACK, key) for key in _ids(self.rng, n))
        return outcome


async def run(tracks: int, work: Path) -> dict[str, float]:
    rng = random.Random(7)
    fingerprint = {"seeds": {}, "expand": {}, "output": {}}
    store = await SqliteStore.open(work / "cp.db", work / "out", fingerprint, STREAMS)
    load = Workload(store, rng, tracks)
    albums = tracks // 6 + 1  # enough to bring every track; the last ones bring none
    started_wall, started_cpu = time.perf_counter(), time.process_time()
    seeds = [(Op.ALBUM, key) for key in _ids(rng, albums)]
    load.add(await store.commit(plan_commit([], seeds=seeds, lease=load.room())))
    while True:
        outcomes = [o for o in (load.unit() for _ in range(UNITS_PER_COMMIT)) if o is not None]
        if not outcomes:
            await load.refill()
            if not any(load.queues.values()):
                break
            continue
        group = plan_commit(outcomes, features_from_tracks=True, lease=load.room())
        await store.commit(group, load.add)
        await load.refill()
    wall, cpu = time.perf_counter() - started_wall, time.process_time() - started_cpu
    cost = store.cost()
    counts = store.counts()
    await store.close()
    done_tracks = counts[(Op.TRACK, State.DONE)]
    assert done_tracks == tracks and counts[(Op.FEATURES, State.DONE)] == tracks, counts
    per = 1_000_000 / tracks
    return {
        "wall_s": wall * per,
        "process_cpu_s": cpu * per,
        "store_cpu_s": cost.cpu_seconds * per,
        **{f"{k}_s": v * per for k, v in cost.cpu_parts.items()},
        "commits": cost.commits,
        "db_mb": (work / "cp.db").stat().st_size / 2**20,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracks", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temporary dir")
    args = parser.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-store-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        figures = asyncio.run(run(args.tracks, work))
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    print(f"store under a {args.tracks:,}-track commit stream (figures per 1M tracks):")
    for key, value in figures.items():
        print(f"  {key:<16} {value:10.2f}")
    cpu = figures["store_cpu_s"]
    verdict = "PASS" if cpu <= TARGET_CPU_PER_1M_TRACKS else "FAIL"
    print(f"{verdict}: store CPU {cpu:.1f} s per 1M tracks (target ≤ {TARGET_CPU_PER_1M_TRACKS:g})")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
