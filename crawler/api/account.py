"""One account's quota: when its next request may go, what its answers teach, when it is parked.

The credentials that name the same account share it. ``admit`` waits until the pace, the
rolling window and the in-flight allowance (see budget.py) all have room; every ticket it hands
out is settled exactly once, as accepted, rate-limited (the pool's ``rate_limited``) or
released (no answer that says anything about the budget), which frees its place in flight.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from crawler.api.budget import RAMP_HORIZON, span
from crawler.api.clock import Clock
from crawler.api.ledger import Ledger, LocalLedger

log = logging.getLogger(__name__)


@dataclass(slots=True, eq=False)
class Ticket:
    """Permission to send one request now on ``account``."""

    account: Account
    sent_at: float  # the account's clock.monotonic()
    limited: bool  # it had to wait for room
    in_flight: int  # requests in flight on its account once it was sent, itself included
    settled: bool = False


class Account:
    def __init__(
        self,
        name: str,
        rate: int,
        window_s: float,
        *,
        clock: Clock,
        max_in_flight: float = math.inf,
        measured: float | None = None,
        on_measured: Callable[[str, int], None] | None = None,
        ledger: Ledger | None = None,
    ) -> None:
        """``measured``: the budget an earlier run measured (see Budget); ``on_measured`` is
        told every budget this one measures, so that a later run can start from it; ``ledger``:
        where the pace, parks and learned budget shared with other processes live."""
        self.name = name
        self.window_s = window_s
        ledger = ledger or LocalLedger()
        self._span = span(window_s)
        self._slots = ledger.slots(name, window_s, self._span, self._learned_elsewhere)
        self.budget = ledger.budget(name, rate, max_in_flight, measured)
        self._on_measured = on_measured
        self._clock = clock
        self._tuned_for = math.nan
        self._accepted: deque[float] = deque()  # send times of requests not refused by a 429
        self._lately: deque[float] = deque()  # their answer times within the ramp's horizon
        self.in_flight = 0
        self.queued = 0
        self._changed = asyncio.Event()  # room may have appeared: waiters look again
        self._first_sent: float | None = None
        self._remeasure_at: float | None = None  # see Budget
        self._measured_at: float | None = None  # send time of the 429 that measured
        self.parked_until = 0.0  # clock.monotonic()
        self.parked_epoch: float | None = None  # its epoch as the ledger has it, if it does
        self.parked_for_run = False
        self.park_started = -math.inf
        self.last_cut = -math.inf
        self.bare_429s = 0  # consecutive 429s without Retry-After, for the backoff
        self.quota_exceeded = False
        self.warned_quota = False
        self._retune()

    def parked(self, now: float) -> bool:
        return self.parked_for_run or now < self.parked_until

    def _recent(self, times: deque[float], now: float) -> int:
        """Drops times older than the span; returns how many are left."""
        horizon = now - self._span
        while times and times[0] <= horizon:
            times.popleft()
        return len(times)

    def load(self, now: float) -> float:
        """Share of the allowance already committed, counting requests waiting for it."""
        waiting = self.queued + 1
        return max(
            (self._slots.sent(now) + waiting) / self.budget.value,
            (self.in_flight + waiting) / self.budget.in_flight,
        )

    def delay(self, now: float) -> float | None:
        """Seconds until one more request may go; None: not before one in flight is settled."""
        if self.in_flight >= self.budget.in_flight:
            return None
        return self._slots.delay(now, self.budget.value)

    def notify(self) -> None:
        """Wake the requests waiting for room (something settled, was retuned or parked)."""
        if self.queued:
            self._changed.set()
            self._changed = asyncio.Event()

    async def admit(self) -> Ticket | None:
        """Wait for room; None if the account got parked meanwhile.

        Waiters look again whenever something changes, rather than each booking a future
        slot, so a budget retuned while they wait applies to them at once.
        """
        limited = self.queued > 0
        self.queued += 1
        try:
            while True:
                now = self._clock.monotonic()
                if self.parked(now):
                    return None
                wait = self.delay(now)
                if wait == 0:
                    break
                limited = True
                await self._clock.wait(self._changed, wait)
        finally:
            self.queued -= 1
        self._slots.take(now)
        self.in_flight += 1
        if self._first_sent is None:
            self._first_sent = now
            if self.budget.learning and not self.budget.ramping:  # an earlier run measured it
                self._remeasure_at = now + self.window_s
        return Ticket(self, now, limited, self.in_flight)

    def released(self, ticket: Ticket) -> bool:
        """Free the ticket's place in flight; False if it was settled already."""
        if ticket.settled:
            return False
        ticket.settled = True
        self.in_flight -= 1
        self.notify()
        return True

    def accepted(self, ticket: Ticket) -> bool:
        """Learn from a success; False (and nothing learned) if it was settled already."""
        if not self.released(ticket):
            return False
        now = self._clock.monotonic()
        self._recent(self._accepted, now)
        self._accepted.append(ticket.sent_at)
        self._slots.accepted(ticket.sent_at)
        horizon = self.window_s * RAMP_HORIZON
        while self._lately and self._lately[0] <= now - horizon:
            self._lately.popleft()
        self._lately.append(now)
        self.bare_429s = 0
        self.quota_exceeded = False
        if self._remeasure_at is not None and ticket.sent_at >= self._remeasure_at:
            self._remeasure_at = None
            self._measured_at = None
            self.budget.remeasure()
        if (
            self._measured_at is not None
            and ticket.sent_at <= self.last_cut
            and ticket.sent_at > self._measured_at - self.window_s
        ):
            self.budget.accepted_late()
            self._tell_measured()
        self.budget.grow(ticket.limited, ticket.in_flight, len(self._lately) * self._span / horizon)
        self._retune()
        return True

    def accepted_since(self, sent_at: float) -> int:
        """Accepted requests sent since one window before ``sent_at``.

        Requests sent together reach the server in any order, so those sent just after the
        refused one count too: the server had accepted them into the same window.
        """
        horizon = sent_at - self.window_s
        return sum(1 for t in self._accepted if t > horizon)

    def _retune(self) -> None:
        value = self.budget.value
        if value == math.inf or abs(value - self._tuned_for) < 1:
            return
        self._tuned_for = value
        self._slots.retune(value, self._clock.monotonic())
        self.notify()

    def _learned_elsewhere(self) -> None:
        """The ledger changed the budget or the schedule: pace to it, let the waiters look."""
        self._retune()
        self.notify()

    def drop_slots(self) -> None:
        """Parked: send times the ledger handed out before are void."""
        self._slots.drop()

    def _tell_measured(self) -> None:
        if self._on_measured is not None:
            self._on_measured(self.name, round(self.budget.estimate))

    def cut(self, ticket: Ticket) -> None:
        """A 429 for ``ticket``: measure the budget, or cut it (see Budget)."""
        old, was_ramping = self.budget.value, self.budget.ramping
        accepted = self.accepted_since(ticket.sent_at)
        self.budget.cut(accepted)
        self.last_cut = self._clock.monotonic()
        measured = was_ramping and not self.budget.ramping
        if measured:
            self._measured_at = ticket.sent_at
            self._tell_measured()
            if self._first_sent is not None:
                first_window_ends = self._first_sent + self.window_s
                if ticket.sent_at < first_window_ends:
                    self._remeasure_at = first_window_ends
        self._tuned_for = math.nan  # whatever it was, pace to the new value
        self._retune()
        # The end of a ramp is worth telling the user: it is the limit this run found.
        log.log(
            logging.INFO if measured else logging.DEBUG,
            "account %s: 429 after %d accepted requests in %g s; pacing %s → %.0f per window",
            self.name,
            accepted,
            self.window_s,
            "unpaced" if old == math.inf else f"{old:.0f}",
            self.budget.value,
        )
