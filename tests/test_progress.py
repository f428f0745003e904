"""The progress display: fits the terminal, keeps log lines above it, ends on the true counts.

Every redraw is driven by calling the display's steps (or by a snapshot that signals it was
taken), with injected clocks and terminal widths: nothing waits for time to pass.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import orjson
import pytest

from crawler.api.pool import AccountStatus
from crawler.core.kinds import Op, State
from crawler.core.logs import ConsoleHandler, console_handlers
from crawler.crawl.progress import (
    OpCounts,
    Progress,
    ProgressDisplay,
    Trend,
    duration,
    frontier_closed,
    op_counts,
    requests_left,
    resolve_mode,
)
from tests.test_logs import logging_to

EPOCH = 1_700_000_000.0  # 22:13:20 UTC
CLEAR_1 = "\r\x1b[2K"  # to the first column, erase the line
UP_CLEAR = "\x1b[1A\x1b[2K"  # one line up, erase it


class Terminal(io.StringIO):
    """What a terminal receives; ``isatty`` as a terminal would answer."""

    encoding = "utf-8"

    def __init__(self) -> None:
        super().__init__()
        self.on_write: Callable[[], None] = lambda: None

    def isatty(self) -> bool:
        return True

    def write(self, text: str) -> int:
        n = super().write(text)
        self.on_write()
        return n

    def take(self) -> str:
        text = self.getvalue()
        self.seek(0)
        self.truncate()
        return text


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Clock times ("parked until 22:13:50") in UTC, whatever the machine's zone."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def account(name: str, **kw: Any) -> AccountStatus:
    values: dict[str, Any] = {
        "account": name,
        "rate": 180.0,
        "window_s": 30.0,
        "learning": False,
        "parked_until": None,
        "parked_for_run": False,
        "quota_exceeded": False,
    }
    return AccountStatus(**{**values, **kw})


def progress(**kw: Any) -> Progress:
    values: dict[str, Any] = {
        "elapsed_s": 192.0,
        "ops": {
            "artist": OpCounts(1200, 340),
            "album": OpCounts(15000, 2100, 3),
            "track": OpCounts(170000, 2960),
            "features": OpCounts(160000, 0),
            "search": OpCounts(0, 0),
        },
        "written": {
            "artists": 1200,
            "albums": 15000,
            "tracks": 180000,
            "audio_features": 170000,
            "playlists": 0,
            "related_artists": 9000,
        },
        "requests": 9000,
        "rate_limited": 12,
        "in_flight": 32,
        "accounts": (account("acct-a"),),
    }
    return Progress(**{**values, **kw})


def busy() -> Progress:
    """A crawl with everything to show: more than any terminal line holds."""
    return progress(
        accounts=(
            account("acct-a"),
            account("acct-b", parked_until=EPOCH + 30),
            account("acct-c", learning=True, rate=50.0),
            account("acct-d", parked_for_run=True, quota_exceeded=True),
        ),
        paused_until_epoch=EPOCH + 42,
        max_artists=2400,
    )


def bar(
    snapshot: Callable[[], Progress], term: Terminal, width: int | Callable[[], int] = 80, **kw: Any
) -> ProgressDisplay:
    columns = width if callable(width) else (lambda: width)
    return ProgressDisplay(
        "bar", snapshot, term, clock=kw.pop("clock", Clock()), wall=lambda: EPOCH, columns=columns
    )


class Screen:
    """Enough of a terminal to see what the display leaves on it, and whether a row wrapped."""

    TOKENS = re.compile(r"\r|\n|\x1b\[[0-9;]*[A-Za-z]|[^\r\n\x1b]+")

    def __init__(self, width: int = 1000) -> None:
        self.width = width
        self.rows: list[list[str]] = [[]]
        self.row = self.col = 0
        self.wraps = 0

    def feed(self, text: str) -> Screen:
        for token in self.TOKENS.findall(text):
            if token == "\r":
                self.col = 0
            elif token == "\n":
                self._next_row()
            elif token == "\x1b[2K":
                self.rows[self.row] = []
            elif token == "\x1b[1A":
                self.row = max(0, self.row - 1)
            elif token.startswith("\x1b"):
                raise AssertionError(f"unexpected escape sequence {token!r}")
            else:
                for char in token:
                    if self.col == self.width:
                        self.wraps += 1
                        self._next_row()
                    line = self.rows[self.row]
                    line.extend(" " * (self.col + 1 - len(line)))
                    line[self.col] = char
                    self.col += 1
        return self

    def _next_row(self) -> None:
        self.row, self.col = self.row + 1, 0
        if self.row == len(self.rows):
            self.rows.append([])

    @property
    def text(self) -> list[str]:
        return ["".join(row) for row in self.rows]


def rows(written: str) -> list[str]:
    """The rows a stream of output leaves on a wide terminal."""
    return Screen().feed(written).text


# ---------------------------------------------------------------------------- width


@pytest.mark.parametrize("width", [40, 80, 200])
def test_redraws_never_wrap_nor_leave_rows_behind_at_any_width(width: int) -> None:
    term = Terminal()
    display = bar(busy, term, width)
    display.open()
    for _ in range(5):
        display.tick()
    display.final()
    screen = Screen(width).feed(term.getvalue())
    assert screen.wraps == 0
    assert all(len(row) < width for row in screen.text)  # the last column is kept free
    assert len(screen.text) == 5 and screen.text[-1] == ""  # four rows, then a fresh line
    assert screen.text[1].startswith("final after 3m12s"[: width - 2])
    cut = [row for row in screen.text if row.endswith("\u2026")]
    assert len(cut) == {40: 4, 80: 3, 200: 0}[width]  # what did not fit is cut, visibly


def test_width_is_read_again_at_each_redraw() -> None:
    width = [200]
    term = Terminal()
    display = bar(busy, term, lambda: width[0])
    display.open()
    assert max(map(len, rows(term.take()))) > 80
    width[0] = 40
    display.redraw()  # what SIGWINCH calls
    assert max(map(len, rows(term.take()))) < 40
    width[0] = 80
    display.tick()
    assert max(map(len, rows(term.take()))) < 80


async def test_sigwinch_redraws_at_the_new_width() -> None:
    width = [200]
    term = Terminal()
    written = asyncio.Event()
    snapshots = 0

    def snapshot() -> Progress:
        nonlocal snapshots
        snapshots += 1
        return busy()

    display = ProgressDisplay(
        "bar", snapshot, term, interval=3600, wall=lambda: EPOCH, columns=lambda: width[0]
    )
    async with display:
        term.take()
        term.on_write = written.set
        width[0] = 40
        os.kill(os.getpid(), signal.SIGWINCH)
        await asyncio.wait_for(written.wait(), 30)  # a hang guard, not a speed bound
        redrawn = term.take()
        term.on_write = lambda: None
    assert redrawn.startswith(CLEAR_1 + UP_CLEAR * 3)
    assert max(map(len, rows(redrawn))) < 40
    assert snapshots == 2  # the first draw and the final one: a resize takes no snapshot
    assert signal.getsignal(signal.SIGWINCH) == signal.SIG_DFL


# ---------------------------------------------------------------------------- logs above


def test_log_lines_are_printed_above_the_status_area_which_is_redrawn() -> None:
    term = Terminal()
    handler = ConsoleHandler(term)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        display = bar(busy, term)
        display.open()
        drawn = term.take()
        assert drawn.count("\n") == 3  # four rows: written, pace, work, accounts
        logging.getLogger("crawler.test").warning("account acct-b rate-limited")
        assert term.take() == (
            CLEAR_1 + UP_CLEAR * 3 + "WARNING crawler.test: account acct-b rate-limited\n" + drawn
        )
        display.final()
        term.take()
        logging.getLogger("crawler.test").warning("after the end")
        assert term.take() == "WARNING crawler.test: after the end\n"  # plain, below it
    finally:
        root.removeHandler(handler)
    assert handler.overlay is None


def test_a_screen_of_logs_and_redraws_keeps_every_log_line_and_one_status_area() -> None:
    term = Terminal()
    with logging_to(term):
        for handler in console_handlers(term):
            handler.setFormatter(logging.Formatter("%(message)s"))
        display = bar(busy, term)
        display.open()
        for i in range(3):
            display.tick()
            logging.getLogger("crawler.test").warning("warning %d", i)
        display.final()
    screen = Screen(80).feed(term.getvalue())
    assert screen.wraps == 0
    assert screen.text[:3] == ["warning 0", "warning 1", "warning 2"]
    assert screen.text[4].startswith("final after 3m12s") and len(screen.text) == 8


def test_first_draw_erases_nothing_and_redraws_replace_the_area() -> None:
    term = Terminal()
    p = progress(accounts=())  # three rows
    display = bar(lambda: p, term)
    display.open()
    first = term.take()
    assert not first.startswith("\r") and first.count("\n") == 2
    display.tick()
    assert term.take() == CLEAR_1 + UP_CLEAR * 2 + first


# ---------------------------------------------------------------------------- final counts


def test_final_redraw_shows_the_final_counts_and_nothing_after_it() -> None:
    term = Terminal()
    stale = progress()
    done = progress(
        elapsed_s=200.0,
        ops={"artist": OpCounts(1540, 0), "album": OpCounts(17100, 0, 3)},
        written={"artists": 1540, "albums": 17097, "tracks": 26295, "audio_features": 26000},
        requests=10000,
        in_flight=0,
    )
    display = bar(lambda: stale, term)
    display.open()
    display.final(done)
    final_rows = rows(term.take())
    assert final_rows[0] == "artists 1,540  albums 17,097  tracks 26,295  audio_features 26,000"
    assert final_rows[1] == "final after 3m20s  10,000 req (50/s)  429s 12"
    assert final_rows[2] == "pending 0  artist 1,540/1,540  album 17,100/17,103 (3 failed)"
    assert final_rows[3] == "accounts  acct-a 180/30s"
    assert final_rows[4:] == [""]  # the line is ended: the shell prompt starts below it
    display.tick()
    display.redraw()
    display.final(stale)
    assert term.take() == ""


async def test_leaving_the_block_draws_the_final_counts_from_a_last_snapshot() -> None:
    term = Terminal()
    ticked = asyncio.Event()
    state: dict[str, Any] = {"p": progress(), "calls": 0}

    def snapshot() -> Progress:
        state["calls"] += 1
        if state["calls"] == 3:  # open, then two ticks of the timer
            ticked.set()
        return state["p"]

    async with ProgressDisplay("bar", snapshot, term, interval=0.001, columns=lambda: 100):
        await ticked.wait()
        state["p"] = progress(written={"artists": 99999}, ops={})
    text = term.getvalue()
    assert text.count(CLEAR_1) >= 3
    last = rows(text)
    assert last[0] == "artists 99,999"
    assert last[1].startswith("final after 3m12s")
    assert text.endswith("\n")


# ---------------------------------------------------------------------------- ETA


def feed(trend: Trend, frames: list[tuple[int, dict[str, OpCounts]]], **kw: Any) -> Progress:
    """One sample every 10 s: (requests sent so far, ops); returns the last progress."""
    p = progress()
    for i, (requests, ops) in enumerate(frames):
        p = progress(requests=requests, ops=ops, **kw)
        trend.add(i * 10.0, p)
    return p


def sinks(tracks: int, features: int) -> dict[str, OpCounts]:
    """Only tasks that add no work pending: a closed frontier."""
    return {"track": OpCounts(1000, tracks), "features": OpCounts(1000, features)}


def test_no_eta_while_pending_tasks_can_still_add_work() -> None:
    # Pending falls for two minutes, but 126 albums wait (each brings tracks): the frontier
    # is open. A recorded crawl showed "ETA 2s" here by the pending trend, with 95 s to go.
    trend = Trend()
    frames = [
        (100 * i, {**sinks(3000 - 200 * i, 0), "album": OpCounts(648, 126)}) for i in range(13)
    ]
    assert trend.eta(feed(trend, frames)) is None
    growing = Trend()
    frames = [(100 * i, sinks(1000 + 500 * i, 1000 + 500 * i)) for i in range(7)]
    frames[-1][1]["related"] = OpCounts(10, 1)  # one more artist's related artists to list
    assert growing.eta(feed(growing, frames)) is None


def test_eta_once_the_frontier_is_closed_from_the_requests_left_at_the_recent_pace() -> None:
    trend = Trend()
    # 1,000 features (10 requests of 100) and 500 tracks (10 of 50) pending; 60 requests in
    # the last 60 s, 1 req/s: 20 s. (By tasks, 1,500 at the pace they settled, it would
    # read as if a features request cost what a track request does.)
    frames = [(1000 + 10 * i, sinks(500, 1000)) for i in range(7)]
    assert trend.eta(feed(trend, frames)) == pytest.approx(20.0)
    young = Trend()
    assert young.eta(feed(young, frames[:2])) is None  # 10 s seen: too little to tell
    term = Terminal()
    clock = Clock()
    requests = iter(range(0, 1000, 10))
    display = bar(
        lambda: progress(requests=next(requests), ops=sinks(500, 1000)), term, 120, clock=clock
    )
    display.open()
    clock.now += 10
    display.tick()
    assert "ETA" not in term.getvalue()
    clock.now += 10
    display.tick()
    assert "  ETA 20s  " in rows(term.getvalue())[1]


def test_frontier_closes_when_only_sinks_are_pending_or_the_artist_budget_is_spent() -> None:
    related = {**sinks(5, 5), "related": OpCounts(10, 3)}  # related artists lead to artists
    assert not frontier_closed(progress(ops=related))
    spent = {**related, "artist": OpCounts(390, 0, 10)}
    assert frontier_closed(progress(ops=spent, max_artists=400))
    assert not frontier_closed(progress(ops=spent, max_artists=401))
    waiting = {**spent, "artist": OpCounts(390, 10)}  # fetching an artist lists its albums
    assert not frontier_closed(progress(ops=waiting, max_artists=400))
    assert frontier_closed(progress(ops={"album": OpCounts(5, 0), **sinks(0, 0)}))
    # A partial batch of 7 albums behind 1,275 related-artists requests (a recorded crawl's
    # last 11 minutes): that batch adds a sliver; a full one, or one album page, more.
    sliver = {**spent, "related": OpCounts(696, 1275), "album": OpCounts(26030, 7)}
    assert frontier_closed(progress(ops=sliver, max_artists=400))
    for more in ({"album": OpCounts(26030, 20)}, {"album_tracks": OpCounts(10, 1)}):
        assert not frontier_closed(progress(ops={**sliver, **more}, max_artists=400))
    assert requests_left(progress(ops={"artist": OpCounts(0, 51), "related": OpCounts(0, 3)})) == 5


def test_eta_from_the_artist_budget_and_never_zero_while_work_is_pending() -> None:
    def budgeted(artists: int, albums: int) -> dict[str, OpCounts]:
        return {"artist": OpCounts(artists, 100), "album": OpCounts(0, albums)}

    trend = Trend()  # 10 artists per 10 s, while the frontier keeps growing
    frames = [(10 * i, budgeted(100 + 10 * i, 500 + 100 * i)) for i in range(7)]
    p = feed(trend, frames, max_artists=400)
    assert trend.eta(p) == pytest.approx(240.0)  # 240 artists to go at 1/s
    slow = Trend()  # the pending albums alone take longer than the artists: that is the ETA
    frames = [(i, budgeted(100 + 10 * i, 500 + 100 * i)) for i in range(7)]
    # 1,100 albums (55 requests of 20) and 100 artists (2 of 50) at 6 requests a minute
    assert slow.eta(feed(slow, frames, max_artists=400)) == pytest.approx(57 * 60 / 6)
    stalled = Trend()  # no artist fetched for 20 s: they wait behind other work
    frames = [(10 * i, budgeted(100 + 10 * min(i, 4), 500)) for i in range(7)]
    assert stalled.eta(feed(stalled, frames, max_artists=400)) is None
    spent = Trend()  # the budget is fetched and 592 tasks wait, albums among them
    frames = [(10 * i, {**budgeted(400, 92), **sinks(250, 250)}) for i in range(7)]
    p = feed(spent, frames, max_artists=400)
    assert p.pending == 692 and spent.eta(p) is None  # not "ETA 0s"
    assert duration(0.2) == "1s" and duration(0) == "0s" and duration(3725) == "1h02m"
    assert duration(75) == "1m15s" and duration(90061) == "1d01h"


def test_no_eta_in_the_final_counts() -> None:
    trend = Trend()
    p = feed(trend, [(10 * i, sinks(500, 1000)) for i in range(7)])
    assert trend.eta(p) is not None
    assert trend.eta(replace(p, final=True)) is None


# ---------------------------------------------------------------------------- content


def test_rows_show_written_pace_work_and_every_account_state() -> None:
    term = Terminal()
    display = bar(busy, term, 400)
    display.open()
    written, pace, work, accounts = rows(term.take())
    assert written == (
        "artists 1,200  albums 15,000  tracks 180,000  audio_features 170,000  "
        "related_artists 9,000"
    )  # an edge stream with nothing written yet (playlists) is left out
    assert pace == (
        "3m12s  PAUSED: all accounts parked until 22:14:02 (in 42s)  - req/s  9,000 req  "
        "429s 12  in flight 32"
    )
    assert work == (
        "pending 5,400  artist 1,200/1,540 (max 2,400)  album 15,000/17,103 (3 failed)  "
        "track 170,000/172,960  features 160,000/160,000"
    )  # ops with work waiting first; an op with nothing at all (search) is left out
    assert accounts == (
        "accounts  acct-a 180/30s  acct-b parked until 22:13:50  acct-c learning 50/30s  "
        "acct-d parked for this run (quota exceeded)"
    )


def test_request_rate_is_over_the_recent_window_not_since_the_start() -> None:
    term = Terminal()
    clock = Clock()
    requests = iter([0, 100_000, 100_000, 101_000])
    display = bar(lambda: progress(requests=next(requests)), term, 200, clock=clock)
    display.open()
    term.take()
    clock.now += 10
    display.tick()
    assert " 10,000 req/s " in rows(term.take())[1]
    clock.now += 300  # a 5-minute pause of all accounts
    display.tick()
    assert " 0 req/s " in rows(term.take())[1]
    clock.now += 10
    display.tick()
    assert " 100 req/s " in rows(term.take())[1]  # 1,000 in the last 10 s; on average 316/s


def test_op_counts_settle_done_missing_and_skipped() -> None:
    counts = {
        (Op.ARTIST, State.DONE): 5,
        (Op.ARTIST, State.MISSING): 2,
        (Op.ARTIST, State.PENDING): 7,
        (Op.ALBUM, State.SKIPPED): 1,
        (Op.ALBUM, State.FAILED): 4,
    }
    ops = op_counts(counts)
    assert list(ops) == [op.name.lower() for op in Op]
    assert ops["artist"] == OpCounts(7, 7, 0)
    assert ops["album"] == OpCounts(1, 0, 4)
    assert ops["search"] == OpCounts(0, 0, 0)


# ---------------------------------------------------------------------------- modes


def test_auto_mode_is_the_bar_on_a_terminal_only_and_never_with_json_logs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TERM", "xterm-256color")
    term = Terminal()
    assert resolve_mode("auto", term) == "bar"
    assert resolve_mode("auto", io.StringIO()) == "log"
    assert resolve_mode("bar", io.StringIO()) == "bar"  # asked for: obeyed
    assert resolve_mode("off", term) == "off"
    with logging_to(term, "json"):
        assert resolve_mode("auto", term) == "log" and resolve_mode("bar", term) == "log"
        assert resolve_mode("auto", Terminal()) == "bar"  # JSON goes elsewhere: not in the way
    monkeypatch.setenv("TERM", "dumb")
    assert resolve_mode("auto", term) == "log"
    with pytest.raises(ValueError, match="progress mode 'fancy'"):
        resolve_mode("fancy", term)


def test_log_mode_writes_a_line_per_tick_and_a_final_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    stream = io.StringIO()
    display = ProgressDisplay("auto", busy, stream, clock=clock, wall=lambda: EPOCH)
    assert display.mode == "log" and display.interval == 10.0
    with caplog.at_level(logging.INFO, "crawler.crawl.progress"):
        display.open()
        assert caplog.records == []  # the first line comes after one interval
        clock.now += 10
        display.tick()
        display.final()
        display.tick()
    assert stream.getvalue() == ""  # log lines go through logging, not onto the stream
    periodic, final = (r.getMessage() for r in caplog.records)
    assert periodic.startswith("artists 1,200 albums 15,000 tracks 180,000 ")
    assert " | 3m12s PAUSED: all accounts parked until 22:14:02 (in 42s) " in periodic
    assert " 0 req/s " in periodic and " | pending 5,400 artist 1,200/1,540 (max 2,400) " in final
    assert " | final after 3m12s 9,000 req (47/s) 429s 12 | " in final


def test_json_logs_carry_progress_as_fields_and_no_escape_sequences() -> None:
    term = Terminal()
    clock = Clock()
    with logging_to(term, "json"):
        display = ProgressDisplay("bar", busy, term, clock=clock, wall=lambda: EPOCH)
        display.open()
        clock.now += 10
        display.tick()
        display.final()
    text = term.getvalue()
    assert "\x1b" not in text and "\r" not in text
    periodic, final = (orjson.loads(line) for line in text.splitlines())
    assert periodic["logger"] == "crawler.crawl.progress"
    assert periodic["message"].startswith("artists 1,200 ")
    values = periodic["fields"]
    assert values["written"]["tracks"] == 180000 and values["pending"] == 5400
    assert values["ops"]["album"] == {"done": 15000, "pending": 2100, "failed": 3}
    assert values["rate_per_s"] == 0.0 and values["eta_s"] is None and values["final"] is False
    assert values["accounts"][1]["parked_until"] == EPOCH + 30
    assert final["fields"]["final"] is True


def test_off_mode_shows_nothing(caplog: pytest.LogCaptureFixture) -> None:
    term = Terminal()
    calls = []
    display = ProgressDisplay("off", lambda: calls.append(1) or progress(), term)
    with caplog.at_level(logging.DEBUG):
        display.open()
        display.tick()
        display.final()
    assert term.getvalue() == "" and caplog.records == [] and calls == []
    assert console_handlers(term) == []
