"""Progress of a long crawl: a status area redrawn on a terminal, periodic log lines otherwise.

The engine fills a ``Progress`` (plain values, so the display is tested without an engine);
``ProgressDisplay`` shows it. On a terminal the status area is a few lines, each cut to the
terminal's current width (re-read at every redraw and on SIGWINCH): a line that wraps leaves a
row behind at each redraw. Log records are printed above the area through the console handler
of ``crawler.core.logs``, and the area is drawn again below them. Off a terminal, and whenever
the logs are JSON (a log shipper reads that stream, and escape sequences between its objects
would corrupt it), progress is a log line every 10 s instead.

The ETA is shown only when it can be told (``Trend.eta``): once nothing pending can add more
than a sliver of work (``frontier_closed``), or, with ``max_artists``, from the pace at which
the budget's artists are fetched; the work left is counted in requests. A trend of the
pending total cannot tell it: the engine runs track and audio-features tasks before the
albums that bring more of them, so the pending total falls for a minute and then jumps (in a
recorded crawl, "pending fell for 60 s" gave ETAs of 2-33 s with 91-121 s to go).

The hand-written area was chosen over rich's ``Live``: it costs 35-55 us of CPU per redraw to
rich's 175-290 us (both negligible at 2 redraws/s), but rich adds 20-110 ms to every start of the
command line, and its log handler would replace the formats ``crawler.core.logs`` defines.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import shutil
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal, NamedTuple, TextIO

from crawler.api.pool import AccountStatus
from crawler.core.kinds import ENTITIES, ENTITY_STREAMS, Op, State
from crawler.core.logs import ConsoleHandler, JsonFormatter, console_handlers, fields
from crawler.crawl.expand import LEADS_TO

log = logging.getLogger("crawler.crawl.progress")

Mode = Literal["auto", "bar", "log", "off"]
BAR_INTERVAL_S = 0.5
LOG_INTERVAL_S = 10.0
# The request rate shown is the rate over this recent window, not the average since the start.
RATE_WINDOW_S = 10.0
# ETAs come from the pace over the last minute, once at least MIN_SPAN_S of it was seen.
ETA_WINDOW_S = 60.0
MIN_SPAN_S = 20.0
SETTLED = (State.DONE, State.MISSING, State.SKIPPED)


@dataclass(frozen=True, slots=True)
class OpCounts:
    done: int  # settled: fetched, or found missing, or skipped
    pending: int
    failed: int = 0


@dataclass(frozen=True, slots=True)
class Progress:
    """One moment of a crawl, as the engine's snapshot function reports it."""

    elapsed_s: float  # of this run
    ops: Mapping[str, OpCounts]  # by op name (``op_counts``), in the order they are shown
    written: Mapping[str, int]  # records per output stream
    requests: int
    rate_limited: int
    in_flight: int
    accounts: tuple[AccountStatus, ...] = ()
    paused_until_epoch: float | None = None  # every account is parked until then
    max_artists: int = 0  # 0: unbounded
    final: bool = False

    @property
    def pending(self) -> int:
        return sum(c.pending for c in self.ops.values())


def op_counts(counts: Mapping[tuple[Op, State], int]) -> dict[str, OpCounts]:
    """``Progress.ops`` from the checkpoint's counts per (op, state)."""
    return {
        op.name.lower(): OpCounts(
            done=sum(counts.get((op, s), 0) for s in SETTLED),
            pending=counts.get((op, State.PENDING), 0),
            failed=counts.get((op, State.FAILED), 0),
        )
        for op in Op
    }


def _batch_size(op_name: str) -> int:
    """IDs per request: the batch size of an entity endpoint, 1 for every other op's task."""
    op = Op.__members__.get(op_name.upper())
    kind = ENTITIES.get(op) if op is not None else None
    return kind.batch_size if kind else 1


def requests_left(p: Progress) -> int:
    """Requests the pending tasks need: a batch endpoint takes up to its batch size of IDs.

    Tasks are no unit of time (an audio-features request settles 100 of them, a related-
    artists request one); requests are, on an API that limits them.
    """
    return sum(-(-c.pending // _batch_size(name)) for name, c in p.ops.items())


def frontier_closed(p: Progress) -> bool:
    """Whether the work left is all but known: nothing pending can add more than a sliver.

    An op can add work if the expander's ``LEADS_TO`` says so: track and audio-features tasks
    add nothing, and once the artist budget is spent neither do those that only lead to
    artists (related artists, search). A partial batch of albums, which waits for company,
    is the sliver tolerated: 7 albums stayed pending through the last 11 minutes of a
    recorded crawl, and fewer than 20 albums add a few requests of tracks. (A seed track
    leads to its artists; seeds are fetched first, so that is ignored.)
    """
    artists = p.ops.get("artist")
    spent = bool(p.max_artists and artists) and (
        artists.done + artists.pending + artists.failed >= p.max_artists
    )
    for name, counts in p.ops.items():
        op = Op.__members__.get(name.upper())
        if not counts.pending or (op is Op.ALBUM and counts.pending < _batch_size(name)):
            continue
        if op is None or LEADS_TO[op] - ({Op.ARTIST} if spent else set()):
            return False
    return True


class Sample(NamedTuple):
    t: float  # monotonic
    requests: int
    artists: int  # artist tasks done


class Trend:
    """Recent samples of a crawl: its request rate and, when it can be told, its ETA."""

    def __init__(self) -> None:
        self._samples: deque[Sample] = deque()

    def add(self, now: float, p: Progress) -> None:
        artists = p.ops.get("artist")
        self._samples.append(Sample(now, p.requests, artists.done if artists else 0))
        horizon = now - max(RATE_WINDOW_S, ETA_WINDOW_S)
        # Keep one sample at or before the horizon: the far end of the window.
        while len(self._samples) > 1 and self._samples[1].t <= horizon:
            self._samples.popleft()

    def _since(self, seconds: float) -> Sample:
        """The latest sample taken ``seconds`` ago or earlier, else the oldest one."""
        t = self._samples[-1].t - seconds
        found = self._samples[0]
        for sample in self._samples:
            if sample.t > t:
                break
            found = sample
        return found

    def rate(self) -> float | None:
        """Requests per second over the last RATE_WINDOW_S (or as much of it as was seen)."""
        now, then = self._samples[-1], self._since(RATE_WINDOW_S)
        return (now.requests - then.requests) / (now.t - then.t) if now.t > then.t else None

    def eta(self, p: Progress) -> float | None:
        """Seconds until nothing is pending, or None while that cannot be told.

        The pace is that of the last minute (MIN_SPAN_S of it at least). Once the frontier is
        closed (``frontier_closed``) the pending tasks are all the work left: the ETA is the
        time their requests take at the pace requests went. While it is open only the artist
        budget bounds the crawl, and only while artists are still being fetched (some in the
        last MIN_SPAN_S): the ETA is the time to fetch the rest of the budget at the pace
        artists were fetched, and never less than what the pending tasks take.
        """
        if p.final or not p.pending:
            return None
        now, then = self._samples[-1], self._since(ETA_WINDOW_S)
        span, sent = now.t - then.t, now.requests - then.requests
        if span < MIN_SPAN_S or sent <= 0:
            return None
        known = requests_left(p) * span / sent
        if frontier_closed(p):
            return known
        artists = p.ops.get("artist")
        if not (p.max_artists and artists and artists.done < p.max_artists):
            return None
        fetched = now.artists - then.artists
        if now.artists == self._since(MIN_SPAN_S).artists:
            return None  # the budget's artists wait behind other work: no pace to go by
        return max(known, (p.max_artists - artists.done) * span / fetched)


# ---------------------------------------------------------------------------- rendering


def duration(seconds: float) -> str:
    """Whole seconds, rounded up: a wait that is not over never reads "0s"."""
    s = max(0, math.ceil(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def clock_time(epoch: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(epoch))


def account_state(a: AccountStatus) -> str:
    # An unknown limit starts unpaced (a slow start per round trip): no budget to show yet.
    budget = f"{a.rate:,.0f}/{a.window_s:g}s" if math.isfinite(a.rate) else "slow start"
    if a.parked_for_run:
        state = "parked for this run"
    elif a.parked_until is not None:
        state = f"parked until {clock_time(a.parked_until)}"
    elif a.learning:
        state = f"learning {budget}"
    else:
        state = budget
    return f"{a.account} {state}{' (quota exceeded)' if a.quota_exceeded else ''}"


def sections(
    p: Progress, rate: float | None, eta: float | None, now_epoch: float
) -> list[list[str]]:
    """The status as groups of items, most telling first: written, pace, work, accounts."""
    written = [f"{name} {n:,}" for name, n in p.written.items() if n or name in ENTITY_STREAMS]
    if p.final:
        average = p.requests / p.elapsed_s if p.elapsed_s > 0 else 0.0
        pace = [f"final after {duration(p.elapsed_s)}", f"{p.requests:,} req ({average:,.0f}/s)"]
    else:
        pace = [duration(p.elapsed_s)]
        if p.paused_until_epoch is not None:
            until, wait = (
                clock_time(p.paused_until_epoch),
                duration(p.paused_until_epoch - now_epoch),
            )
            pace.append(f"PAUSED: all accounts parked until {until} (in {wait})")
        if eta is not None:
            pace.append(f"ETA {duration(eta)}")
        pace.append("- req/s" if rate is None else f"{rate:,.0f} req/s")
        pace.append(f"{p.requests:,} req")
    pace.append(f"429s {p.rate_limited:,}")
    if not p.final:
        pace.append(f"in flight {p.in_flight}")
    # Ops with work waiting come first, so that a narrow terminal cuts the finished ones.
    shown = [(name, c) for name, c in p.ops.items() if c.done or c.pending or c.failed]
    work = [f"pending {p.pending:,}"]
    for name, c in sorted(shown, key=lambda item: item[1].pending == 0):
        item = f"{name} {c.done:,}/{c.done + c.pending + c.failed:,}"
        if name == "artist" and p.max_artists:
            item += f" (max {p.max_artists:,})"
        if c.failed:
            item += f" ({c.failed:,} failed)"
        work.append(item)
    groups = [written, pace, work]
    if p.accounts:
        groups.append(["accounts", *map(account_state, p.accounts)])
    return groups


def log_fields(p: Progress, rate: float | None, eta: float | None) -> dict[str, Any]:
    """What a JSON progress line carries, as numbers rather than text."""
    return {
        "elapsed_s": round(p.elapsed_s, 3),
        "written": dict(p.written),
        "ops": {name: asdict(c) for name, c in p.ops.items()},
        "pending": p.pending,
        "requests": p.requests,
        "rate_per_s": None if rate is None else round(rate, 1),
        "rate_limited": p.rate_limited,
        "in_flight": p.in_flight,
        "accounts": [asdict(a) for a in p.accounts],
        "paused_until_epoch": p.paused_until_epoch,
        "max_artists": p.max_artists,
        "eta_s": None if eta is None else round(eta),
        "final": p.final,
    }


# ---------------------------------------------------------------------------- display


def resolve_mode(mode: str, stream: TextIO) -> Mode:
    """``auto``: the status area on a terminal, log lines elsewhere; JSON logs: log lines."""
    if mode == "off":
        return "off"
    if any(isinstance(h.formatter, JsonFormatter) for h in console_handlers(stream)):
        return "log"
    if mode == "auto":
        tty = stream.isatty() and os.environ.get("TERM") != "dumb"
        return "bar" if tty else "log"
    if mode not in ("bar", "log"):
        raise ValueError(f"progress mode {mode!r}: expected auto, bar, log or off")
    return "bar" if mode == "bar" else "log"


class ProgressDisplay:
    """Shows a crawl's progress until the crawl ends, then its final counts.

    ``async with ProgressDisplay(mode, snapshot) as display:`` draws at once, then every
    ``interval`` (0.5 s on a terminal, 10 s as log lines); leaving the block shows the final
    counts from one last snapshot, unless ``display.final(progress)`` already did. The
    synchronous ``open``/``tick``/``final`` are the same steps without the timer (tests drive
    them with an injected clock, wall clock and terminal width).
    """

    def __init__(
        self,
        mode: str,
        snapshot: Callable[[], Progress],
        stream: TextIO | None = None,
        *,
        interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        columns: Callable[[], int] | None = None,
    ) -> None:
        self.stream = stream or sys.stderr
        self.mode = resolve_mode(mode, self.stream)
        self.interval = interval or (BAR_INTERVAL_S if self.mode == "bar" else LOG_INTERVAL_S)
        self._snapshot = snapshot
        self._clock, self._wall = clock, wall
        self._columns = columns or self._terminal_columns
        utf = (getattr(self.stream, "encoding", None) or "").lower().startswith("utf")
        self._ellipsis = "\u2026" if utf else "~"
        self._trend = Trend()
        self._shown: tuple[Progress, float | None, float | None] | None = None
        self._lines: list[str] = []  # the status area as it is on screen now
        self._lock = threading.RLock()  # log records may come from other threads
        self._handlers: list[ConsoleHandler] = []
        self._ticker: asyncio.Task[None] | None = None
        self._finished = False

    # -------------------------------------------------------------- steps

    def open(self) -> None:
        """Take the first sample and, on a terminal, draw and route log lines above."""
        if self.mode == "off":
            return
        if self.mode == "bar":
            self._handlers = console_handlers(self.stream)
            for handler in self._handlers:
                handler.overlay = self.print_above
        self._show(self._snapshot(), announce=False)

    def tick(self) -> None:
        """Take a snapshot and show it (the timer's step)."""
        if self.mode != "off" and not self._finished:
            self._show(self._snapshot(), announce=True)

    def final(self, progress: Progress | None = None) -> None:
        """Show the final counts (``progress``, else a last snapshot) and stop showing more."""
        if self.mode == "off" or self._finished:
            return
        self._show(replace(progress or self._snapshot(), final=True), announce=True)
        self._finished = True
        if self.mode == "bar":
            with self._lock:
                self._write("\n")
                self._lines = []
                for handler in self._handlers:
                    handler.overlay = None

    def redraw(self) -> None:
        """Draw the status shown last again, cut to the terminal's width now (on SIGWINCH)."""
        if self._shown is None or self.mode != "bar" or self._finished:
            return
        width = self._columns()
        lines = [self._fit("  ".join(g), width) for g in sections(*self._shown, self._wall())]
        with self._lock:
            self._write(self._clear() + "\n".join(lines))
            self._lines = lines

    def print_above(self, text: str) -> None:
        """Write a log line where it belongs: above the status area, which is drawn again."""
        with self._lock:
            self._write(self._clear() + text + "\n" + "\n".join(self._lines))

    # -------------------------------------------------------------- timer

    async def __aenter__(self) -> ProgressDisplay:
        self.open()
        if self.mode != "off":
            self._ticker = asyncio.create_task(self._tick_every_interval())
        if self.mode == "bar":
            self._on_resize(self.redraw)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        if self.mode == "bar":
            self._on_resize(None)
        self.final()

    async def _tick_every_interval(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.tick()

    @staticmethod
    def _on_resize(callback: Callable[[], None] | None) -> None:
        winch = getattr(signal, "SIGWINCH", None)
        if winch is None:
            return  # Windows: the width is still re-read at every redraw
        loop = asyncio.get_running_loop()
        with contextlib.suppress(RuntimeError, ValueError):  # not the main thread: no signals
            if callback is None:
                loop.remove_signal_handler(winch)
            else:
                loop.add_signal_handler(winch, callback)

    # -------------------------------------------------------------- output

    def _show(self, p: Progress, *, announce: bool) -> None:
        self._trend.add(self._clock(), p)
        self._shown = (p, self._trend.rate(), self._trend.eta(p))
        if self.mode == "bar":
            self.redraw()
        elif announce:
            groups = sections(*self._shown, self._wall())
            line = " | ".join(" ".join(g) for g in groups)
            log.info("%s", line, extra=fields(**log_fields(*self._shown)))

    def _fit(self, line: str, width: int) -> str:
        # The last column stays free: a character written there leaves the cursor in a
        # pending wrap, which some terminals turn into a blank row at the next newline.
        room = max(width - 1, 1)
        return line if len(line) <= room else line[: room - 1] + self._ellipsis

    def _clear(self) -> str:
        """From the end of the status area to its first column, erasing each of its lines."""
        if not self._lines:
            return ""
        return "\r\x1b[2K" + "\x1b[1A\x1b[2K" * (len(self._lines) - 1)

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def _terminal_columns(self) -> int:
        try:
            return os.get_terminal_size(self.stream.fileno()).columns
        except (AttributeError, OSError, ValueError):
            return shutil.get_terminal_size().columns
