"""The in-memory window of the frontier: a bounded deque of pending tasks per operation.

The checkpoint holds every pending task; memory holds at most ``window`` of each op, the
oldest ones, in sequence order. When more arrive than fit, the op is marked *spilled* and the
rest are read back from the checkpoint as the window drains, so memory stays flat however
large the frontier grows.
"""

from __future__ import annotations

import itertools
import operator
import time
from collections import deque

from crawler.core.tasks import Op, Task
from crawler.store.sqlite import Checkpoint

_op = operator.itemgetter(1)  # of a Task


class Frontier:
    def __init__(self, window: int) -> None:
        self.window = window
        self._queues: dict[Op, deque[Task]] = {op: deque() for op in Op}
        # Highest seq read into memory per op; tasks above it live only in the checkpoint.
        self._cursor: dict[Op, int] = dict.fromkeys(Op, 0)
        # On (re)start every op may have pending rows in the checkpoint.
        self._spilled: dict[Op, bool] = dict.fromkeys(Op, True)
        self._waiting_since: dict[Op, float] = {}

    def __len__(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def size(self, op: Op) -> int:
        return len(self._queues[op])

    def add(self, tasks: list[Task]) -> None:
        """Queue new tasks (in seq order) unless their op already overflowed to disk."""
        # The checkpoint creates new tasks op by op: a commit's tasks come in a few long runs.
        for op, run in itertools.groupby(tasks, key=_op):
            if self._spilled[op]:
                continue
            queue = self._queues[op]
            batch = list(run)
            room = self.window - len(queue)
            if len(batch) > room:
                self._spilled[op] = True
                del batch[room:]
            if batch:
                queue.extend(batch)
                self._cursor[op] = batch[-1].seq
                self._waiting_since.setdefault(op, time.monotonic())

    def spilled(self, op: Op) -> bool:
        """Does the checkpoint hold pending tasks of ``op`` beyond those in memory?"""
        return self._spilled[op]

    def needs_refill(self) -> bool:
        return any(self._low(op) for op in Op)

    def _low(self, op: Op) -> bool:
        return self._spilled[op] and len(self._queues[op]) <= self.window // 2

    async def refill(self, checkpoint: Checkpoint) -> None:
        for op in Op:
            if not self._low(op):
                continue
            room = self.window - len(self._queues[op])
            tasks = await checkpoint.load_pending(op, self._cursor[op], room)
            if len(tasks) < room:
                self._spilled[op] = False
            if tasks:
                self._queues[op].extend(tasks)
                self._cursor[op] = tasks[-1].seq
                self._waiting_since.setdefault(op, time.monotonic())

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
