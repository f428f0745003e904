"""One rate-limit budget per account across processes, on PostgreSQL's clock.

The ledger of crawler.api.ledger, kept in the database (docs/postgres-store.md, "Rate limit"):

* Pacing is GCRA on the account's row. A grant hands out ``k`` send slots T apart, T being
  what the budget allows over the span (budget.pace), with a tolerance of burst − 1 slots, so
  that however many processes draw from it no interval of the span holds more than the
  budget. Slots are mapped to this process's clock from the grant's own round trip: slot −
  db_now after the answer came back, never early. A slot must be used within half the slack
  the span leaves over the server's window, less the round trip's uncertainty, or it is lost:
  the other half is for the requests' own jitter.
* A 429 parks the account for everyone: an UPDATE that keeps the later end, and a NOTIFY on
  which every process parks its copy of the account and drops its unspent slots.
* The learned budget (rate = 0, or a cut of a known one) lives in the row. Each process
  applies what it learns to its own copy at once and records it; the next sync replays the
  records onto the row under FOR UPDATE and adopts the row, so that every process paces to
  what all of them learned. The count a cut measures comes from ``budget_accepted``, fed by
  every process's accepted send times with its syncs. A slow start's in-flight allowance is
  shared too, bounded by one crawl's concurrency: each process may have its share of it out
  (divided among the live processes), so that together they overshoot no more than one.
  With all of it in use and no 429, they go on as a paced ramp (Budget's pace_past)
  instead of being held to one process's speed where no limit is found.
* QUOTA_EXCEEDED is warned of by the process whose UPDATE of ``quota_warned`` wins.

Tables are prefixed ``budget_`` beside the crawl store's. Live processes are the sessions with
this module's application_name on the database, so a killed process leaves no trace to expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import asyncpg

from crawler.api.budget import WINDOW_PAD_S, WINDOW_SLACK, Budget, pace
from crawler.api.clock import SYSTEM_CLOCK, Clock
from crawler.api.ledger import OnPark, SendLog
from crawler.core.errors import CrawlerError

log = logging.getLogger(__name__)

APPLICATION_NAME = "spotify-crawler budget"
CHANNEL = "budget_park"
# pg_advisory_xact_lock key serializing schema creation: "budget" in ASCII.
SCHEMA_LOCK = 0x627564676574
# A grant holds about this much of the account's pace, shared among the live processes.
GRANT_S = 0.5
# A used account's learned state is shared and adopted this often (a cut at once).
SYNC_S = 0.25
RETRY_S = 1.0
# What a statement on the ledger's connection may raise when the database fails or goes away;
# InternalClientError ("another operation is in progress") comes from a connection that was
# cut while a statement was under way.
DATABASE_ERRORS = (
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS budget_account (
    name text PRIMARY KEY,
    rate integer NOT NULL,
    tat float8 NOT NULL DEFAULT 0,           -- GCRA: epoch s of the next free slot (DB clock)
    parked_until float8 NOT NULL DEFAULT 0,  -- epoch s, DB clock
    quota_exceeded boolean NOT NULL DEFAULT false,
    quota_warned boolean NOT NULL DEFAULT false,
    estimate float8 NOT NULL,                -- Budget's state
    value float8 NOT NULL,
    in_flight float8 NOT NULL,
    probe_step float8 NOT NULL,
    probed integer NOT NULL
);
CREATE TABLE IF NOT EXISTS budget_accepted (
    account text NOT NULL,
    sent_at float8 NOT NULL                  -- epoch s, DB clock
);
CREATE INDEX IF NOT EXISTS budget_accepted_by_time ON budget_accepted (account, sent_at);
"""

_NOW = "extract(epoch FROM clock_timestamp())::float8"
_ENSURE = """
INSERT INTO budget_account AS a (name, rate, estimate, value, in_flight, probe_step, probed)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (name) DO UPDATE SET rate = excluded.rate, estimate = excluded.estimate,
    value = excluded.value, in_flight = excluded.in_flight, probe_step = excluded.probe_step,
    probed = excluded.probed
WHERE a.rate <> excluded.rate
"""
_STATE = f"""
SELECT estimate, value, in_flight, probe_step, probed, {_NOW} AS db_now,
       (SELECT count(*) FROM pg_stat_activity
         WHERE datname = current_database() AND application_name = $2) AS live
  FROM budget_account WHERE name = $1
"""
_LEARN = """
UPDATE budget_account SET estimate = $2, value = $3, in_flight = $4, probe_step = $5, probed = $6
 WHERE name = $1
"""
_ACCEPT = """
INSERT INTO budget_accepted (account, sent_at) SELECT $1, t FROM unnest($2::float8[]) AS t
"""
_PRUNE = "DELETE FROM budget_accepted WHERE account = $1 AND sent_at < $2"
_COUNT = "SELECT count(*) FROM budget_accepted WHERE account = $1 AND sent_at > $2"
_GRANT = f"""
WITH now AS (SELECT {_NOW} AS t)
UPDATE budget_account a SET tat = greatest(a.tat, now.t - $2::float8) + $3::float8 * $4::float8
  FROM now WHERE a.name = $1 AND a.parked_until <= now.t
RETURNING a.tat - $3::float8 * $4::float8 AS first_slot, now.t AS db_now
"""
_PARKED = f"SELECT parked_until - {_NOW}, parked_until FROM budget_account WHERE name = $1"
_PARK = f"""
WITH now AS (SELECT {_NOW} AS t),
u AS (UPDATE budget_account a SET parked_until = greatest(a.parked_until, now.t + $2::float8),
             quota_exceeded = $3::boolean
        FROM now WHERE a.name = $1 RETURNING a.parked_until, a.parked_until - now.t AS remaining)
SELECT remaining, parked_until,
       pg_notify($4::text, remaining::text || ' ' || parked_until::text || ' ' || $1::text)
  FROM u
"""
_WARN = "UPDATE budget_account SET quota_warned = true WHERE name = $1 AND NOT quota_warned"


class SharedBudget(Budget):
    """A Budget that records what it learns, for the ledger to replay onto the shared row."""

    def __init__(
        self, rate: int, max_in_flight: float, measured: float | None, clock: Clock
    ) -> None:
        super().__init__(rate, max_in_flight, measured)
        self.rate = rate
        self.concurrency = max_in_flight  # one crawl's; a process gets its share of it
        self.events: list[tuple[Any, ...]] = []
        self._clock = clock
        self.initial = self.state()  # a new row's: the events replay onto it

    def grow(self, limited: bool, in_flight: int, accepted: float) -> None:
        super().grow(limited, in_flight, accepted)
        self.events.append(("grow", limited, in_flight, accepted))

    def remeasure(self) -> None:
        super().remeasure()
        self.events.append(("remeasure",))

    def cut(self, accepted: int) -> None:
        # The time of the 429's answer stands in for the refused request's send time, a
        # round trip earlier: the shared count of accepted requests starts a window before it.
        super().cut(accepted)
        self.events.append(("cut", accepted, self._clock.monotonic()))

    def accepted_late(self) -> None:
        super().accepted_late()
        self.events.append(("late",))

    def state(self) -> tuple[float, float, float, float, int]:
        return self.estimate, self.value, self.in_flight, self._probe_step, self._probed

    def adopt(self, row: asyncpg.Record, live: int) -> None:
        """Take the shared state as this process's, with its share of the in-flight allowance."""
        self.estimate = row["estimate"]
        self.value = min(self.ceiling, row["value"])
        self.max_in_flight = max(1.0, self.concurrency / live)
        self.in_flight = max(1.0, row["in_flight"] / live)
        self._probe_step, self._probed = row["probe_step"], row["probed"]


@dataclass
class _Grant:
    """``k`` send slots ``spacing`` apart from ``first`` (local clock), of which ``i`` are
    used or lost; slot j is lost ``grace`` after its time, or after the answer that granted
    it if it was due by then. Kept as arithmetic, not a slot per item: a grant at a high rate
    is thousands of slots, most of which expire unused."""

    first: float
    spacing: float
    k: int
    answered: float
    grace: float
    i: int = 0

    def at(self) -> float:
        return self.first + self.i * self.spacing

    def expire(self, now: float) -> None:
        """Skip the slots lost by ``now`` (a prefix: their expiry grows with j)."""
        if self.answered + self.grace >= now:
            return  # none lost yet: no slot expires before the answer's grace
        lost = min(self.k, max(0, math.ceil((now - self.grace - self.first) / self.spacing)))
        # The division may round either way by a step: settle on the exact first survivor.
        while lost < self.k and self.first + lost * self.spacing + self.grace < now:
            lost += 1
        while lost > 0 and self.first + (lost - 1) * self.spacing + self.grace >= now:
            lost -= 1
        self.i = max(self.i, lost)


class _Due:
    """The unspent slots of this process's grants, in time order."""

    def __init__(self) -> None:
        self._grants: deque[_Grant] = deque()

    def __len__(self) -> int:
        return sum(g.k - g.i for g in self._grants)

    def add(self, grant: _Grant) -> None:
        self._grants.append(grant)

    def expire(self, now: float) -> None:
        grants = self._grants
        while grants:
            grants[0].expire(now)
            if grants[0].i < grants[0].k:
                return
            grants.popleft()

    def next_at(self) -> float | None:
        return self._grants[0].at() if self._grants else None

    def pop(self) -> None:
        grant = self._grants[0]
        grant.i += 1
        if grant.i == grant.k:
            self._grants.popleft()

    def clear(self) -> None:
        self._grants.clear()


@dataclass(eq=False)
class PgSlots:
    """An account's slots as granted to this process, and what it has to tell the row."""

    ledger: PgLedger
    name: str
    window_s: float
    span_s: float
    wake: Callable[[], None]
    budget: SharedBudget | None = None
    log: SendLog = field(init=False)
    due: _Due = field(default_factory=_Due)
    unsent_accepted: list[float] = field(default_factory=list)  # local send times
    wanted: bool = False
    adopted: bool = False  # the row's state is this process's: it may send
    kick: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        self.log = SendLog(self.span_s)

    @property
    def slack_s(self) -> float:
        """What the span adds to the server's window (budget.span)."""
        return self.window_s * WINDOW_SLACK + WINDOW_PAD_S

    def sent(self, now: float) -> int:
        return self.log.count(now)

    def delay(self, now: float, budget: float) -> float | None:
        if self.ledger.lost is not None:
            raise self.ledger.lost
        if not self.adopted:  # until then a slow start would not know its share
            self._want()
            return None
        if budget == math.inf:  # a slow start: the in-flight allowance alone bounds it
            return 0.0
        self.due.expire(now)  # a slot sent late could crowd a later window
        if len(self.due) <= 1:
            self._want()
        at = self.due.next_at()
        return None if at is None else max(0.0, at - now)

    def take(self, now: float) -> None:
        at = self.due.next_at()
        if at is not None and at <= now:
            self.due.pop()
        self.log.times.append(now)
        self.ensure_running()

    def retune(self, budget: float, now: float) -> None:
        """Grants are made at the row's budget, which each sync adopts."""

    def accepted(self, sent_at: float) -> None:
        self.unsent_accepted.append(sent_at)

    def drop(self) -> None:
        """Parked, after a 429 that may have cut the budget: share that at once."""
        self.due.clear()
        self.kick.set()

    def _want(self) -> None:
        self.wanted = True
        self.kick.set()
        self.ensure_running()

    def ensure_running(self) -> None:
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        clock = self.ledger.clock
        while True:
            kicked = await clock.wait(self.kick, SYNC_S)
            self.kick.clear()
            if not (kicked or self.sent(clock.monotonic())):
                continue  # unused for a span: nothing to share, nothing to adopt
            try:
                await self.ledger.sync(self)
            except DATABASE_ERRORS as exc:
                if self.ledger.lose(exc):
                    return
                log.warning("rate-limit ledger: sync of account %s failed: %s", self.name, exc)
                await clock.sleep(RETRY_S)
                self.kick.set()


class PgLedger:
    """The ledger of every account of this process, on one connection of its own."""

    def __init__(self, conn: asyncpg.Connection, clock: Clock) -> None:
        self.clock = clock
        self._conn = conn
        self._lock = asyncio.Lock()  # one statement at a time on the connection
        self._slots: dict[str, PgSlots] = {}
        self._created: set[str] = set()
        self._offset: float | None = None  # DB epoch − local monotonic
        self._offset_rtt = math.inf
        self._on_park: OnPark | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self._backend_pid = conn.get_server_pid()
        self.lost: CrawlerError | None = None  # the connection is gone: no slot will come

    @classmethod
    async def connect(cls, dsn: str, *, clock: Clock = SYSTEM_CLOCK) -> PgLedger:
        conn = await asyncpg.connect(dsn, server_settings={"application_name": APPLICATION_NAME})
        try:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", SCHEMA_LOCK)
                await conn.execute(SCHEMA)
            ledger = cls(conn, clock)
            await conn.add_listener(CHANNEL, ledger._notified)
        except BaseException:
            await conn.close()
            raise
        return ledger

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.settled()
        for slots in self._slots.values():
            if slots.task is not None:
                slots.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await slots.task
        await self._conn.close()

    # -- the Ledger interface ---------------------------------------------------------------

    def budget(self, name: str, rate: int, max_in_flight: float, measured: float | None) -> Budget:
        budget = SharedBudget(rate, max_in_flight, measured, self.clock)
        self._slots[name].budget = budget
        return budget

    def slots(self, name: str, window_s: float, span_s: float, wake: Callable[[], None]) -> PgSlots:
        slots = self._slots.get(name)
        if slots is None:
            slots = self._slots[name] = PgSlots(self, name, window_s, span_s, wake)
        return slots

    def watch(self, on_park: OnPark) -> None:
        self._on_park = on_park

    def parked(self, name: str, delay_s: float, quota_exceeded: bool) -> None:
        self._spawn(self._park(name, delay_s, quota_exceeded))

    def warn_once(self, name: str, warn: Callable[[], None]) -> None:
        self._spawn(self._warn_once(name, warn))

    async def settled(self) -> None:
        while self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    def lose(self, exc: BaseException) -> bool:
        """After a failed sync: if the connection is gone (asyncpg does not reconnect, nor
        could slots be trusted across a server restart), fail the requests waiting for slots,
        which would otherwise wait for ever (the crawl stops, exit 1, as it does when the
        store's connection is lost) and return True; else False (a retry may succeed)."""
        if not self._conn.is_closed():
            return False
        if self.lost is None:
            self.lost = CrawlerError(
                f"rate-limit ledger: lost the database ({exc}); "
                "rerun to resume: nothing committed is lost"
            )
            for slots in self._slots.values():
                slots.wake()
        return True

    # -- the database -----------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(self._logged(coro))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    @staticmethod
    async def _logged(coro: Coroutine[Any, Any, None]) -> None:
        """A publication that failed leaves this process's own park standing: say so."""
        try:
            await coro
        except DATABASE_ERRORS as exc:
            log.warning("rate-limit ledger: could not share a 429 with other processes: %s", exc)

    @contextlib.asynccontextmanager
    async def _transaction(self, slots: PgSlots) -> AsyncIterator[None]:
        """A transaction on the connection, which first makes sure the account has its row."""
        async with self._lock:
            try:
                async with self._conn.transaction():
                    if slots.name not in self._created:
                        assert slots.budget is not None
                        budget = slots.budget
                        await self._conn.execute(_ENSURE, slots.name, budget.rate, *budget.initial)
                        self._created.add(slots.name)
                    yield
            except BaseException:
                self._created.discard(slots.name)  # its row may have been rolled back
                raise

    def _db_time(self, local: float) -> float:
        assert self._offset is not None
        return local + self._offset

    def _measured_offset(self, db_now: float, t0: float, t1: float) -> None:
        """Keep the offset of the quickest round trip: it is the most certain (± rtt/2)."""
        if t1 - t0 <= self._offset_rtt:
            self._offset, self._offset_rtt = db_now - (t0 + t1) / 2, t1 - t0

    async def sync(self, slots: PgSlots) -> None:
        """Share what this process learned, adopt the row, and take slots if they are wanted."""
        budget = slots.budget
        assert budget is not None
        async with self._transaction(slots):
            events, budget.events = budget.events, []
            t0 = self.clock.monotonic()
            row = await self._conn.fetchrow(
                _STATE + (" FOR UPDATE" if events else ""), slots.name, APPLICATION_NAME
            )
            t1 = self.clock.monotonic()
            self._measured_offset(row["db_now"], t0, t1)
            live = max(1, row["live"])
            if slots.unsent_accepted:
                times = [self._db_time(t) for t in slots.unsent_accepted]
                slots.unsent_accepted.clear()
                await self._conn.execute(_ACCEPT, slots.name, times)
                await self._conn.execute(_PRUNE, slots.name, row["db_now"] - 2 * slots.window_s)
            if events:
                row = await self._replay(slots, row, events, live)
            budget.adopt(row, live)
            slots.adopted = True
            if slots.wanted and budget.value < math.inf:
                slots.wanted = False
                await self._grant(slots, budget.value, live)
        slots.wake()

    async def _replay(
        self, slots: PgSlots, row: asyncpg.Record, events: list[tuple[Any, ...]], live: int
    ) -> dict[str, Any]:
        """Apply this process's records to the row's state, as one Budget would have."""
        assert slots.budget is not None
        # A slow start's allowance is for all processes together, bounded as one crawl's is:
        # the requests in flight when the window fills are what earns 429s. With several
        # processes live they could send more than that: at it, they go on paced (pace_past).
        shared = Budget(slots.budget.rate, slots.budget.concurrency, pace_past=live > 1)
        shared.estimate, shared.value, shared.in_flight = (
            row["estimate"],
            row["value"],
            row["in_flight"],
        )
        shared._probe_step, shared._probed = row["probe_step"], row["probed"]
        for kind, *args in events:
            if kind == "grow":
                limited, in_flight, accepted = args
                shared.grow(limited, in_flight * live, accepted * live)
            elif kind == "cut":
                local, at = args
                since = self._db_time(at) - slots.window_s
                everyone = await self._conn.fetchval(_COUNT, slots.name, since)
                shared.cut(max(local, everyone))
            elif kind == "remeasure":
                shared.remeasure()
            else:
                shared.accepted_late()
        state = (shared.estimate, shared.value, shared.in_flight)
        await self._conn.execute(_LEARN, slots.name, *state, shared._probe_step, shared._probed)
        names = ("estimate", "value", "in_flight", "probe_step", "probed")
        return dict(zip(names, (*state, shared._probe_step, shared._probed), strict=True))

    async def _grant(self, slots: PgSlots, value: float, live: int) -> None:
        burst, drain = pace(value, slots.span_s)
        spacing = 1 / drain
        k = max(1, math.floor(GRANT_S * drain / live))
        t0 = self.clock.monotonic()
        granted = await self._conn.fetchrow(
            _GRANT, slots.name, (burst - 1) * spacing, float(k), spacing
        )
        t1 = self.clock.monotonic()
        if granted is None:  # parked meanwhile, perhaps by a process whose NOTIFY is on its way
            left, until = await self._conn.fetchrow(_PARKED, slots.name)
            if left > 0 and self._on_park is not None:
                self._on_park(slots.name, left, until)
            return
        self._measured_offset(granted["db_now"], t0, t1)
        # Mapped from after the answer, a slot is late by up to the round trip, never early.
        first = t1 + granted["first_slot"] - granted["db_now"]
        grace = slots.slack_s / 2 - (t1 - t0)
        slots.due.add(_Grant(first, spacing, k, t1, grace))

    async def _park(self, name: str, delay_s: float, quota_exceeded: bool) -> None:
        slots = self._slots[name]
        async with self._transaction(slots):
            row = await self._conn.fetchrow(_PARK, name, delay_s, quota_exceeded, CHANNEL)
        if row is not None and self._on_park is not None:
            self._on_park(name, row["remaining"], row["parked_until"])

    def _notified(self, conn: object, pid: int, channel: str, payload: str) -> None:
        if pid == self._backend_pid:
            return  # our own park: _park told the pool already
        left, until, name = payload.split(" ", 2)
        if name in self._slots and self._on_park is not None:
            self._on_park(name, float(left), float(until))

    async def _warn_once(self, name: str, warn: Callable[[], None]) -> None:
        async with self._transaction(self._slots[name]):
            first = await self._conn.execute(_WARN, name)
        if first == "UPDATE 1":
            warn()
