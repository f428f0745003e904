"""Where the state an account shares with other processes crawling with it lives.

An account's budget is the server's, not one process's: processes that crawl with the same
account must draw their send times from one schedule, park it together after a 429, and learn
one budget. ``Account`` and ``AccountPool`` keep everything that is one process's own (tickets,
requests in flight, who waits) and reach the shared part through a ``Ledger``:

* ``Slots`` (one per account): when the next request may go, and what was sent and accepted;
* the learned ``Budget`` the ledger hands out (a subclass may record what it learns);
* parks: the pool publishes each one, and is told of every park made anywhere (``watch``);
* the QUOTA_EXCEEDED warning, given once per account by whichever process sees it first.

``LocalLedger`` keeps it all in this process (a crawl alone on its accounts); the PostgreSQL
ledger (crawler.store.pg_budget) keeps it in the database, for several processes.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import Protocol

from crawler.api.budget import Budget, Pacer

# (account, seconds it stays parked from now, the epoch at which it resumes)
OnPark = Callable[[str, float, float], None]


class Slots(Protocol):
    """An account's send schedule, as this process sees it."""

    def sent(self, now: float) -> int:
        """Requests this process sent on the account within the span, for choosing accounts."""
        ...

    def delay(self, now: float, budget: float) -> float | None:
        """Seconds until a request may go at ``budget`` per span; None: once woken."""
        ...

    def take(self, now: float) -> None:
        """A request goes now (delay said 0)."""
        ...

    def retune(self, budget: float, now: float) -> None: ...

    def accepted(self, sent_at: float) -> None:
        """A request sent at ``sent_at`` was accepted: it counts toward a later measurement."""
        ...

    def drop(self) -> None:
        """The account got parked: send times handed out before are void."""
        ...


class Ledger(Protocol):
    def budget(self, name: str, rate: int, max_in_flight: float, measured: float | None) -> Budget:
        """The account's learned budget (see Budget)."""
        ...

    def slots(self, name: str, window_s: float, span_s: float, wake: Callable[[], None]) -> Slots:
        """``wake`` is called when the schedule or the budget changed from outside."""
        ...

    def watch(self, on_park: OnPark) -> None:
        """Tell ``on_park`` of every park of an account, made here or elsewhere."""
        ...

    def parked(self, name: str, delay_s: float, quota_exceeded: bool) -> None:
        """This process parked the account for ``delay_s`` from now."""
        ...

    def warn_once(self, name: str, warn: Callable[[], None]) -> None:
        """Call ``warn`` unless the account's QUOTA_EXCEEDED was warned of already."""
        ...

    async def settled(self) -> None:
        """Wait until what was published so far is known to every process."""
        ...


class SendLog:
    """This process's send times on an account within the last span."""

    def __init__(self, span_s: float) -> None:
        self.span = span_s
        self.times: deque[float] = deque()

    def count(self, now: float) -> int:
        horizon = now - self.span
        while self.times and self.times[0] <= horizon:
            self.times.popleft()
        return len(self.times)


class LocalSlots:
    """A leaky bucket (see Pacer), and the rolling log of send times that caps any span at the
    budget: the bucket alone admits burst + drain × span, which the log keeps from adding up
    across a retune."""

    def __init__(self, span_s: float) -> None:
        self._span = span_s
        self._pacer: Pacer | None = None  # none while the budget is unpaced (slow start)
        self._sent = SendLog(span_s)

    def sent(self, now: float) -> int:
        return self._sent.count(now)

    def delay(self, now: float, budget: float) -> float | None:
        wait = self._pacer.delay(now) if self._pacer is not None else 0.0
        if self._sent.count(now) >= budget:
            wait = max(wait, self._sent.times[0] + self._span - now)
        return wait

    def take(self, now: float) -> None:
        if self._pacer is not None:
            self._pacer.take(now)
        self._sent.times.append(now)

    def retune(self, budget: float, now: float) -> None:
        if budget == math.inf:
            return
        if self._pacer is None:
            self._pacer = Pacer(budget, self._span)
        else:
            self._pacer.retune(budget, self._span, now)

    def accepted(self, sent_at: float) -> None:
        """Account counts its own acceptances; nobody else needs them."""

    def drop(self) -> None:
        """The bucket holds no send times, only their level."""


class LocalLedger:
    """Everything in this process: a crawl alone on its accounts."""

    def budget(self, name: str, rate: int, max_in_flight: float, measured: float | None) -> Budget:
        return Budget(rate, max_in_flight, measured)

    def slots(
        self, name: str, window_s: float, span_s: float, wake: Callable[[], None]
    ) -> LocalSlots:
        return LocalSlots(span_s)

    def watch(self, on_park: OnPark) -> None:
        """The pool made every park there is itself."""

    def parked(self, name: str, delay_s: float, quota_exceeded: bool) -> None:
        """Nobody else to tell."""

    def warn_once(self, name: str, warn: Callable[[], None]) -> None:
        warn()  # the pool asks once per account

    async def settled(self) -> None:
        """Nothing is ever in transit."""
