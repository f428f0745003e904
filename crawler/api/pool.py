"""The accounts of a crawl: which one sends each request, and parking them after a 429.

``AccountPool`` hands each request to the account with the most headroom. A 429 parks only its
account until Retry-After (or a backoff) has passed; ``AllAccountsParked`` is raised once every
account is parked for longer than the run may wait.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from crawler.api.account import Account, Ticket
from crawler.api.clock import SYSTEM_CLOCK, Clock
from crawler.api.ledger import Ledger, LocalLedger
from crawler.api.retry import Backoff
from crawler.core.errors import AllAccountsParked

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AccountStatus:
    account: str
    rate: float  # the budget it paces to, in requests per window; inf while slow-starting
    window_s: float
    learning: bool  # the limit is being discovered (configured rate 0)
    parked_until: float | None  # epoch seconds
    parked_for_run: bool
    quota_exceeded: bool  # its last answer was a 429 QUOTA_EXCEEDED


@dataclass(frozen=True, slots=True)
class PoolStatus:
    accounts: tuple[AccountStatus, ...]

    @property
    def all_parked_until(self) -> float | None:
        """Epoch seconds when the first account resumes, if every account is parked now."""
        ends = [a.parked_until for a in self.accounts]
        if not ends or any(end is None for end in ends):
            return None
        return min(end for end in ends if end is not None)


class AccountPool:
    def __init__(
        self,
        accounts: Mapping[str, tuple[int, float]],
        *,
        max_retry_after_s: float,
        backoff: Backoff,
        clock: Clock = SYSTEM_CLOCK,
        max_in_flight: float = math.inf,
        measured: Mapping[str, int] | None = None,
        on_measured: Callable[[str, int], None] | None = None,
        ledger: Ledger | None = None,
    ) -> None:
        """``accounts`` maps each account name to its (rate, window_s).

        ``max_in_flight`` (the crawl's concurrency, which is also the number of connections)
        bounds the tickets out at once: a ticket is a send time, and one that waited for a
        connection afterwards would make the pace and the window log lie. It also bounds an
        account's slow start. ``measured`` and ``on_measured``: budgets of accounts with an
        unknown rate, as an earlier run measured them, and where new measurements go.
        ``ledger``: where the accounts' pace, parks and learned budgets live (see ledger.py);
        by default in this process alone.
        """
        self._clock = clock
        self._ledger = ledger = ledger or LocalLedger()
        # Places in flight: tickets out, plus acquirers holding one while they wait for an
        # account. A semaphore wakes one waiter per freed place (there may be many: each
        # single-ID fallback of a batch waits here), and waiting for a place takes no time.
        self._places = None if max_in_flight == math.inf else asyncio.Semaphore(int(max_in_flight))
        self.accounts = [
            Account(
                name,
                rate,
                w,
                clock=clock,
                max_in_flight=max_in_flight,
                measured=(measured or {}).get(name),
                on_measured=on_measured,
                ledger=ledger,
            )
            for name, (rate, w) in accounts.items()
        ]
        self._by_name = {a.name: a for a in self.accounts}
        self._max_retry_after_s = max_retry_after_s
        self._backoff = backoff
        self._parks_changed = asyncio.Event()
        ledger.watch(self._parked)

    async def acquire(self) -> Ticket:
        """A ticket on the least loaded usable account, waiting while all are briefly parked."""
        if self._places is not None:
            await self._places.acquire()
        try:
            while True:
                now = self._clock.monotonic()
                usable = [a for a in self.accounts if not a.parked(now)]
                if not usable:
                    await self._wait_for_unpark(now)
                    continue
                ticket = await min(usable, key=lambda a: a.load(now)).admit()
                if ticket is not None:
                    return ticket
        except BaseException:
            self._free()
            raise

    def _free(self) -> None:
        if self._places is not None:
            self._places.release()

    async def _wait_for_unpark(self, now: float) -> None:
        waiting = [a.parked_until for a in self.accounts if not a.parked_for_run]
        if not waiting:
            await self._ledger.settled()  # so that every process names the same resume time
            now = self._clock.monotonic()
            resume_at = min(self._parked_epoch(a, now) for a in self.accounts)
            when = datetime.fromtimestamp(resume_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            raise AllAccountsParked(
                resume_at,
                f"all {len(self.accounts)} accounts are rate-limited until {when}; "
                "rerun then to resume",
            )
        await self._clock.wait(self._parks_changed, min(waiting) - now)

    def accepted(self, ticket: Ticket) -> None:
        if ticket.account.accepted(ticket):
            self._free()

    def released(self, ticket: Ticket) -> None:
        """The request got no answer about the budget (connection error, 401): free its place.

        Settling is idempotent, so callers may release every ticket once they are done with
        it, whatever else settled it before.
        """
        if ticket.account.released(ticket):
            self._free()

    def rate_limited(
        self, ticket: Ticket, retry_after: float | None, *, quota_exceeded: bool
    ) -> None:
        """Park the ticket's account after a 429 and learn from it.

        429s for requests sent before the current park began (or the last cut was made) are
        echoes of the same event (they were in flight together): they neither lengthen the
        backoff nor cut again.
        """
        account, now = ticket.account, self._clock.monotonic()
        if account.released(ticket):
            self._free()
        if ticket.sent_at > account.last_cut:
            account.cut(ticket)
        if quota_exceeded:
            account.quota_exceeded = True
            if not account.warned_quota:
                account.warned_quota = True
                self._ledger.warn_once(
                    account.name,
                    lambda: log.warning(
                        "account %s exceeded its quota (429 QUOTA_EXCEEDED): all its apps "
                        "share one budget, so more client IDs on this account will not help",
                        account.name,
                    ),
                )
        fresh = ticket.sent_at > account.park_started
        if retry_after is not None:
            delay = retry_after
        elif fresh:
            delay = self._backoff.ceiling(account.bare_429s)
            account.bare_429s += 1
        else:
            return
        if now + delay <= account.parked_until:
            return
        self._park(account, now, delay, "")
        self._ledger.parked(account.name, delay, quota_exceeded)

    def _park(self, account: Account, now: float, delay: float, where: str) -> None:
        was_parked = account.parked(now)
        account.parked_until = now + delay
        account.parked_epoch = None
        account.drop_slots()
        if not was_parked:
            account.park_started = now
        if delay > self._max_retry_after_s and not account.parked_for_run:
            account.parked_for_run = True
            log.warning(
                "account %s is rate-limited%s for %.0f s, longer than api.max_retry_after_s: "
                "not using it again in this run",
                account.name,
                where,
                delay,
            )
        elif not was_parked:
            log.info("account %s rate-limited%s: pausing it for %.1f s", account.name, where, delay)
        account.notify()
        self._parks_changed.set()
        self._parks_changed = asyncio.Event()

    def _parked(self, name: str, remaining_s: float, epoch: float) -> None:
        """The ledger's word on a park, this process's own or another's: the later end wins,
        and its epoch is the one every process tells the user."""
        account = self._by_name.get(name)
        if account is None:
            return
        now = self._clock.monotonic()
        if now + remaining_s > account.parked_until:
            self._park(account, now, remaining_s, " (seen by another process)")
        if now + remaining_s >= account.parked_until - 1e-3:
            account.parked_epoch = epoch

    def status(self) -> PoolStatus:
        now = self._clock.monotonic()
        return PoolStatus(
            tuple(
                AccountStatus(
                    account=a.name,
                    rate=a.budget.value,
                    window_s=a.window_s,
                    learning=a.budget.learning,
                    parked_until=self._parked_epoch(a, now) if a.parked(now) else None,
                    parked_for_run=a.parked_for_run,
                    quota_exceeded=a.quota_exceeded,
                )
                for a in self.accounts
            )
        )

    def _parked_epoch(self, account: Account, now: float) -> float:
        if account.parked_epoch is not None:
            return account.parked_epoch
        return self._clock.time() + (account.parked_until - now)
