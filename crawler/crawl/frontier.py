"""The in-memory window of the frontier: a bounded deque of leased tasks per operation.

The store holds every pending task; this process holds at most a window of each op, leased
to it, in the order the store handed them out. New tasks arrive leased from commits (as many
as there is room for); when the window runs low the frontier claims more from the store, so
memory stays flat however large the frontier grows.
"""

from __future__ import annotations

import itertools
import operator
import time
from collections import deque
from collections.abc import Mapping

from crawler.core.kinds import Op
from crawler.core.tasks import Task
from crawler.store.base import Store

_op = operator.itemgetter(1)  # of a Task


class Frontier:
    def __init__(self, windows: Mapping[Op, int], store: Store) -> None:
        self.windows = dict(windows)
        self._store = store
        self._queues: dict[Op, deque[Task]] = {op: deque() for op in Op}
        self._waiting_since: dict[Op, float] = {}

    def __len__(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def size(self, op: Op) -> int:
        return len(self._queues[op])

    def room(self) -> dict[Op, int]:
        """How many new tasks of each op the window can take from the next commit."""
        return {op: self.windows[op] - len(queue) for op, queue in self._queues.items()}

    def add(self, tasks: list[Task]) -> None:
        """Queue tasks leased to this process (a commit's come in a few runs of one op)."""
        for op, run in itertools.groupby(tasks, key=_op):
            self._queues[op].extend(run)
            self._waiting_since.setdefault(op, time.monotonic())

    def elsewhere(self, op: Op) -> bool:
        """Does the store hold claimable tasks of ``op`` beyond those in memory?"""
        return self._store.claimable(op)

    def needs_refill(self) -> bool:
        return any(self._low(op) for op in Op)

    def _low(self, op: Op) -> bool:
        return self._store.claimable(op) and len(self._queues[op]) <= self.windows[op] // 2

    async def refill(self) -> None:
        for op in Op:
            if self._low(op):
                self.add(await self._store.claim(op, self.windows[op] - len(self._queues[op])))

    def take(self, op: Op, size: int) -> list[Task]:
        queue = self._queues[op]
        batch = [queue.popleft() for _ in range(min(size, len(queue)))]
        if queue:
            self._waiting_since[op] = time.monotonic()
        else:
            self._waiting_since.pop(op, None)
        return batch

    def waited(self, op: Op) -> float:
        """Seconds the oldest queued task of ``op`` has waited for its batch to fill."""
        since = self._waiting_since.get(op)
        return 0.0 if since is None else time.monotonic() - since
