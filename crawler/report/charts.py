"""What the report shows, as library-neutral specs (charts and tables) built from ReportData.

Keeping the choice of content apart from the plotting library is what let the libraries be
compared on identical charts (scripts/bench_report.py --compare); it also keeps the wording
of the notes ("not available to this app") in one place, where the tests read it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from crawler.report.model import Bins, CapabilityValue, Dataset, ReportData, Run, Timeline

XKind = Literal["time", "category", "number"]
Size = Literal["wide", "half", "small"]


@dataclass(frozen=True)
class Trace:
    name: str
    x: Sequence[float | str]  # epoch seconds on a time axis
    y: Sequence[float | None]  # None: no data (a gap)
    dash: bool = False
    group: str = ""  # traces of one group share a colour (an account's sent and believed)


@dataclass(frozen=True)
class Chart:
    """One plot, or when ``note`` is set a box saying why there is none."""

    key: str  # unique in the report
    title: str
    x_kind: XKind
    y_title: str
    traces: tuple[Trace, ...] = ()
    bars: bool = False
    stacked: bool = False
    horizontal: bool = False  # bars along y: long category labels (genres) stay readable
    log_xy: bool = False  # log-log, for heavy-tailed degree distributions
    x_title: str = ""
    size: Size = "half"
    runs: tuple[tuple[Run, float], ...] = ()  # time charts: each run and its end, shaded
    note: str | None = None


@dataclass(frozen=True)
class Cell:
    text: str
    number: bool = False  # right-aligned
    bad: bool = False  # shown in red: a failure, a refusal


@dataclass(frozen=True)
class Table:
    title: str
    head: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]


@dataclass(frozen=True)
class Section:
    title: str
    tables: tuple[Table, ...]
    charts: tuple[Chart, ...]


EXIT_MEANINGS = {
    0: "complete",
    1: "failed requests",
    2: "refused (config)",
    3: "paused: accounts banned",
    130: "interrupted",
}
CAPABILITY_NAMES = {
    "batch_artists": "several artists per call",
    "batch_albums": "several albums per call",
    "batch_tracks": "several tracks per call",
    "artist_albums_limit": "artist-albums page size",
    "related_artists": "related artists",
    "audio_features": "audio features",
}
UNAVAILABLE = "Not available to this app: the API refused it (as it does in development mode)."


def utc(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S")


def exit_meaning(code: int | None) -> str:
    if code is None:
        return "killed or still running"
    return EXIT_MEANINGS.get(code, "error")


def capability_text(value: CapabilityValue) -> str:
    if value is None:
        return "not probed yet"
    if isinstance(value, bool):
        return "available" if value else "not available to this app"
    return str(value)


def sections(data: ReportData) -> tuple[Section, ...]:
    out = []
    if data.timeline is not None:
        tl = data.timeline
        out.append(Section("The crawl", (runs_table(tl.runs, tl.run_ends),), crawl_charts(tl)))
    if data.dataset is not None:
        tables = (counts_table(data.dataset), capabilities_table(data.capabilities))
        out.append(Section("The dataset", tables, dataset_charts(data.dataset, data.capabilities)))
    return tuple(out)


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def runs_table(runs: Sequence[Run], ends: Mapping[int, float]) -> Table:
    rows = tuple(
        (
            Cell(str(run.id), number=True),
            Cell(run.worker or ""),
            Cell(utc(run.started)),
            Cell(_duration(ends[run.id] - run.started), number=True),
            Cell("—" if run.exit_code is None else str(run.exit_code), number=True),
            Cell(exit_meaning(run.exit_code), bad=run.exit_code not in (0, 130)),
        )
        for run in runs
    )
    head = ("run", "worker", "started", "ran", "exit", "meaning")
    return Table(f"Runs ({len(runs)})", head, rows)


def counts_table(ds: Dataset) -> Table:
    rows = tuple(
        (Cell(table), Cell("not exported" if n is None else f"{n:,}", number=True))
        for table, n in ds.counts.items()
    )
    return Table("Rows per table", ("table", "rows"), rows)


def capabilities_table(caps: Mapping[str, CapabilityValue]) -> Table:
    rows = tuple(
        (Cell(CAPABILITY_NAMES.get(name, name)), Cell(capability_text(value), bad=value is False))
        for name, value in caps.items()
    )
    return Table("Capabilities", ("edge or endpoint", "for this app"), rows)


def crawl_charts(tl: Timeline) -> tuple[Chart, ...]:
    times = [tl.start + (b + 0.5) * tl.width for b in range(tl.buckets)]
    runs = tuple((run, tl.run_ends[run.id]) for run in tl.runs)

    def lines(series: Mapping[str, Sequence[float | None]], suffix: str = "") -> list[Trace]:
        return [Trace(f"{n}{suffix}", times, values, group=n) for n, values in series.items()]

    def chart(
        key: str, title: str, y_title: str, traces: Sequence[Trace], empty: str, size: Size
    ) -> Chart:
        shown = tuple(t for t in traces if any(t.y))  # an all-zero series says nothing
        note = None if shown else empty
        return Chart(key, title, "time", y_title, shown, size=size, runs=runs, note=note)

    budget = [
        Trace(f"{n} believed", times, v, dash=True, group=n) for n, v in tl.budget_rps.items()
    ]
    commit = [Trace("commit", times, tl.commit_ms)]
    return (
        chart(
            "requests",
            "Requests per second, per account: sent vs the budget the crawler believed",
            "requests/s",
            lines(tl.used_rps, " sent") + budget,
            "No requests were sampled.",
            "wide",
        ),
        chart(
            "rate-limited",
            "429s per minute, per account and reason",
            "429s/min",
            lines(tl.rate_limited_pm),
            "No 429s: no account was rate-limited.",
            "half",
        ),
        chart(
            "parked",
            "Accounts parked (share of the time)",
            "share parked",
            lines(tl.parked),
            "No account was parked.",
            "half",
        ),
        chart(
            "status",
            "Responses per second, by status",
            "responses/s",
            lines(tl.status_rps),
            "No responses were sampled.",
            "half",
        ),
        chart(
            "faults",
            "Faults and retries per minute",
            "per minute",
            lines(tl.faults_pm),
            "No faults and no retries.",
            "half",
        ),
        chart(
            "written",
            "Entities written, per stream (crawl total)",
            "entities",
            lines(tl.written),
            "Nothing was written.",
            "half",
        ),
        chart(
            "pending",
            "Pending tasks, per operation",
            "tasks",
            lines(tl.pending),
            "Nothing was pending.",
            "half",
        ),
        chart(
            "commit",
            "Checkpoint commit latency (mean)",
            "ms",
            commit,
            "No commits were sampled.",
            "half",
        ),
    )


def _bars(bins: Bins, name: str = "") -> Trace:
    return Trace(name, [label for label, _ in bins], [n for _, n in bins])


def _stack(groups: Mapping[str, Bins]) -> tuple[Trace, ...]:
    """One trace per group on the union of their x values, so the bars can be stacked."""
    counts = {name: {float(x): n for x, n in bins} for name, bins in groups.items()}
    xs = sorted({x for by_x in counts.values() for x in by_x})
    return tuple(Trace(name, xs, [by_x.get(x, 0) for x in xs]) for name, by_x in counts.items())


def _missing(table: str, counts: Mapping[str, int | None], capable: CapabilityValue) -> str:
    if capable is False:
        return UNAVAILABLE
    if counts.get(table) is None:
        return f"The export has no {table} table."
    return "None crawled: the edge is switched off, or the crawl did not reach it yet."


def _histogram(
    key: str,
    title: str,
    x_kind: XKind,
    y_title: str,
    bins: Bins,
    empty: str,
    x_title: str = "",
    size: Size = "half",
    horizontal: bool = False,
) -> Chart:
    """A one-series bar chart, or the note ``empty`` when every bar is zero."""
    note = None if any(n for _, n in bins) else empty
    trace = (_bars(bins),)
    return Chart(
        key, title, x_kind, y_title, trace, bars=True, horizontal=horizontal, x_title=x_title,
        size=size, note=note,
    )  # fmt: skip


def dataset_charts(ds: Dataset, caps: Mapping[str, CapabilityValue]) -> tuple[Chart, ...]:
    charts: list[Chart] = [
        Chart(
            "release-years",
            "Albums by release year",
            "number",
            "albums",
            _stack(ds.release_years),
            bars=True,
            stacked=True,
            size="wide",
            note=None if ds.release_years else "No albums with a release year.",
        ),
        _histogram(
            "genres",
            f"Top {len(ds.top_genres)} genres (artists)",
            "category",
            "artists",
            tuple(reversed(ds.top_genres)),
            "No artist has a genre.",
            horizontal=True,
        ),
        _histogram(
            "durations",
            "Track length",
            "number",
            "tracks",
            ds.durations,
            "No track has a duration.",
            x_title="minutes (15+ in the last bin)",
        ),
    ]
    if ds.features:
        charts += [
            _histogram(
                f"feature-{name}",
                name.replace("_", " "),
                "category" if isinstance(bins[0][0], str) else "number",
                "tracks",
                bins,
                "No track has it.",
                size="small",
            )
            for name, bins in ds.features.items()
        ]
    else:
        note = _missing("audio_features", ds.counts, caps.get("audio_features"))
        charts.append(Chart("features", "Audio features", "number", "", size="wide", note=note))
    related = (_bars(ds.related_in, "named by n artists"), _bars(ds.related_out, "names n artists"))
    charts += [
        Chart(
            "related-degree",
            "Related-artists graph: degree distribution",
            "number",
            "artists",
            related,
            log_xy=True,
            x_title="degree n",
            note=None
            if ds.related_in
            else _missing("related_artists", ds.counts, caps.get("related_artists")),
        ),
        _histogram(
            "playlist-sizes",
            "Playlist sizes",
            "category",
            "playlists",
            ds.playlist_sizes,
            "No playlists.",
            x_title="items",
        ),
        _histogram(
            "playlist-items",
            "Playlist items by kind",
            "category",
            "items",
            ds.playlist_item_types,
            "No playlist items.",
        ),
    ]
    return tuple(charts)
