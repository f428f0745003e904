"""The breadth-first crawl both peer scripts share, so they differ only in how they call the API.

The benchmark compares the crawler with what a user would write on spotipy or tekore instead.
That comparison is only fair if the peers crawl exactly what the crawler crawls, so the
expansion rules live here once: `crawl()` is a generator that yields the API calls of one
step of a BFS level and receives their results in the same order.  A peer only maps a `Call`
to its library's method and picks a driver: `run_sync` (one request at a time, as a typical
spotipy script) or `run_async` (each step's calls at once under a semaphore, as a typical
tekore script).

Expansion, level by level until nothing is pending:
  artists (batches of 50; nulls are missing and not expanded) → for each existing artist its
  related artists and every page of its albums (album, single, compilation) → albums (batches
  of 20) with their embedded first page of tracks, plus the further track pages of albums of
  more than 50 tracks → full tracks (batches of 50), whose credited artists join the artist
  set, together with their audio features (batches of 100, nulls skipped).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Literal, NamedTuple

import orjson

Kind = Literal["artists", "albums", "tracks", "audio_features"]
Op = Literal[
    "artists",
    "related_artists",
    "artist_albums",
    "albums",
    "album_tracks",
    "tracks",
    "audio_features",
]
Json = dict[str, Any]

KINDS: tuple[Kind, ...] = ("artists", "albums", "tracks", "audio_features")
# The file each kind is written to: the crawler's output layout, which the benchmark checks.
OUTPUT_FILES: dict[Kind, str] = {kind: f"{kind}.jsonl" for kind in KINDS}
# The API's maximum IDs per batch request.
BATCH: dict[Kind, int] = {"artists": 50, "albums": 20, "tracks": 50, "audio_features": 100}
PAGE = 50  # the maximum `limit` of artist-albums and album-tracks pages
INCLUDE_GROUPS = ("album", "single", "compilation")
DEFAULT_CLIENT = ("sim-client", "sim-secret")


@dataclass(frozen=True, slots=True)
class Call:
    """One API request: `arg` is an ID, or a batch of IDs for the batch endpoints."""

    op: Op
    arg: str | tuple[str, ...]
    offset: int = 0


class Page(NamedTuple):
    """What the BFS needs from a paging object: the items' IDs and where the next page starts."""

    ids: list[str]
    offset: int
    limit: int
    total: int


def page_of(paging: Json) -> Page:
    """A Page from a raw paging object (for libraries that hand out plain JSON, like spotipy)."""
    items = paging["items"]
    return Page([item["id"] for item in items], paging["offset"], paging["limit"], paging["total"])


# The result type of each op, as the peers must hand it back:
#   artists, albums, tracks, audio_features → list[Json | None] (objects to write; None = missing)
#   related_artists → list[str] (IDs);  artist_albums, album_tracks → Page
Result = Any
Crawl = Generator[list[Call], list[Result], None]


class Frontier:
    """A set of IDs to fetch: each ID is queued once, however often it is discovered."""

    def __init__(self, initial: Iterable[str] = ()) -> None:
        self.seen: set[str] = set()
        self._pending: list[str] = []
        self.add(initial)

    def add(self, ids: Iterable[str]) -> None:
        seen, pending = self.seen, self._pending
        for i in ids:
            if i not in seen:
                seen.add(i)
                pending.append(i)

    def __bool__(self) -> bool:
        return bool(self._pending)

    def take(self) -> list[str]:
        taken, self._pending = self._pending, []
        return taken


def chunks(ids: Sequence[str], size: int) -> Iterator[tuple[str, ...]]:
    for start in range(0, len(ids), size):
        yield tuple(ids[start : start + size])


class Sink:
    """The four JSON-lines outputs, one object per line, as the crawler writes them."""

    def __init__(self, out_dir: Path) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        self._files: dict[Kind, BinaryIO] = {
            kind: (out_dir / name).open("wb") for kind, name in OUTPUT_FILES.items()
        }
        self.written: dict[Kind, int] = dict.fromkeys(KINDS, 0)

    def write(self, kind: Kind, objects: Iterable[Json]) -> None:
        f = self._files[kind]
        n = 0
        for obj in objects:
            f.write(orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE))
            n += 1
        self.written[kind] += n

    def close(self) -> None:
        for f in self._files.values():
            f.close()

    def __enter__(self) -> Sink:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _ask(calls: list[Call]) -> Generator[list[Call], list[Result], list[Result]]:
    """Yields one step's calls to the driver; an empty step costs no round trip."""
    if not calls:
        return []
    return (yield calls)


def _further_pages(op: Op, owner: str, first: Page) -> list[Call]:
    return [Call(op, owner, at) for at in range(first.offset + first.limit, first.total, PAGE)]


def _present(batches: Iterable[list[Json | None]]) -> list[Json]:
    return [obj for batch in batches for obj in batch if obj is not None]


def crawl(seeds: Iterable[str], sink: Sink) -> Crawl:
    """The BFS to a fixpoint from the seed artists; see the module docstring for the rules."""
    artists, albums, tracks = Frontier(seeds), Frontier(), Frontier()
    while artists or albums or tracks:
        batches = [Call("artists", b) for b in chunks(artists.take(), BATCH["artists"])]
        found = _present((yield from _ask(batches)))
        sink.write("artists", found)

        calls = [Call(op, a["id"]) for a in found for op in ("related_artists", "artist_albums")]
        more: list[Call] = []
        for call, result in zip(calls, (yield from _ask(calls)), strict=True):
            if call.op == "related_artists":
                artists.add(result)
            else:
                albums.add(result.ids)
                more += _further_pages("artist_albums", str(call.arg), result)
        for page in (yield from _ask(more)):
            albums.add(page.ids)

        batches = [Call("albums", b) for b in chunks(albums.take(), BATCH["albums"])]
        found = _present((yield from _ask(batches)))
        sink.write("albums", found)
        more = []
        for album in found:
            first = page_of(album["tracks"])
            tracks.add(first.ids)
            more += _further_pages("album_tracks", album["id"], first)
        for page in (yield from _ask(more)):
            tracks.add(page.ids)

        # Features need only the IDs, so they travel with the track batches in one step.
        new = tracks.take()
        calls = [Call("tracks", b) for b in chunks(new, BATCH["tracks"])]
        features = [Call("audio_features", b) for b in chunks(new, BATCH["audio_features"])]
        results = yield from _ask(calls + features)
        found = _present(results[: len(calls)])
        sink.write("tracks", found)
        sink.write("audio_features", _present(results[len(calls) :]))
        artists.add(credit["id"] for track in found for credit in track["artists"])


def run_sync(steps: Crawl, execute: Callable[[Call], Result]) -> int:
    """Answers every call in turn, one request at a time; returns the number of calls made."""
    made = 0
    results: list[Result] | None = None
    while True:
        try:
            calls = steps.send(results)  # None primes the generator
        except StopIteration:
            return made
        results = [execute(call) for call in calls]
        made += len(calls)


async def run_async(
    steps: Crawl, execute: Callable[[Call], Awaitable[Result]], concurrency: int
) -> int:
    """Answers each step's calls with asyncio.gather, at most `concurrency` in flight."""
    gate = asyncio.Semaphore(concurrency)

    async def one(call: Call) -> Result:
        async with gate:
            return await execute(call)

    made = 0
    results: list[Result] | None = None
    while True:
        try:
            calls = steps.send(results)
        except StopIteration:
            return made
        results = list(await asyncio.gather(*(one(call) for call in calls)))
        made += len(calls)


# -- command line --------------------------------------------------------------------------


def parse_args(description: str, concurrency: int | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--api", required=True, help="simulator origin, e.g. http://127.0.0.1:8080")
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument(
        "--artist", action="append", required=True, help="seed artist ID or URI (repeatable)"
    )
    p.add_argument("--client-id", default=DEFAULT_CLIENT[0])
    p.add_argument("--client-secret", default=DEFAULT_CLIENT[1])
    if concurrency is not None:
        p.add_argument("--concurrency", type=int, default=concurrency, help="requests in flight")
    args = p.parse_args()
    args.api = args.api.rstrip("/")
    args.artist = [seed.rsplit(":", 1)[-1].rsplit("/", 1)[-1] for seed in args.artist]
    return args


def api_prefix(origin: str) -> str:
    """The Web API base both libraries prepend to relative paths (with the trailing slash)."""
    return f"{origin}/v1/"


def token_url(origin: str) -> str:
    return f"{origin}/api/token"


def report(sink: Sink, calls: int, started: float) -> None:
    """One summary line on stderr, so a peer run is readable without the harness."""
    summary = {"calls": calls, "written": sink.written, "elapsed_s": time.monotonic() - started}
    sys.stderr.write(orjson.dumps(summary).decode() + "\n")
