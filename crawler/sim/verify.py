"""Is a crawl's output the simulator's ground truth?  One verifier for tests, bench and soak.

Every output stream is a file of JSON lines.  Each line becomes the element of its stream's
ground-truth set: an entity's `id`, a playlist's `id`, an edge's fields as a tuple in the
order of `groundtruth`'s edge types.  A line that is not a whole JSON object with those
fields counts as torn (a cut last line, or one a crash left half-written), and a record read
twice counts as a duplicate, for edges too: the same record twice.
"""

from __future__ import annotations

import collections
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import orjson

from crawler.core.kinds import ENTITY_STREAMS, STREAMS, stream_file
from crawler.sim.groundtruth import GroundTruth

# The fields of each edge stream's records that make up its GroundTruth tuples, in order.
EDGE_FIELDS: dict[str, tuple[str, ...]] = {
    "related_artists": ("artist_id", "related_artist_id", "rank"),
    "artist_albums": ("artist_id", "album_id", "album_group", "position"),
    "playlist_items": (
        "playlist_id",
        "position",
        "item_type",
        "item_id",
        "added_at",
        "added_by",
        "is_local",
    ),
}


def record_key(stream: str, record: dict[str, Any]) -> Hashable:
    """The element of the stream's GroundTruth set that one record stands for: an ID, or the
    tuple of an edge's fields (KeyError or TypeError for a record that is not whole)."""
    names = EDGE_FIELDS.get(stream)
    if names is None:
        return record["id"]
    return tuple(record[name] for name in names)


@dataclass(frozen=True)
class Counts:
    """Records read (whole lines only), and what is wrong with them."""

    records: int
    duplicates: int
    torn: int
    missing: int
    unexpected: int

    @property
    def exact(self) -> bool:
        return not (self.duplicates or self.torn or self.missing or self.unexpected)


@dataclass(frozen=True, kw_only=True)
class StreamCheck(Counts):
    """One stream's file against its expected set.

    A missing file reads as empty: `exact` if nothing was expected (a crawl may leave out a
    stream it has nothing for), but named among the `problems`.
    """

    stream: str
    present: bool

    @property
    def file(self) -> str:
        return stream_file(self.stream)

    def problems(self) -> list[str]:
        found = [] if self.present else [f"{self.file}: missing"]
        if self.torn:
            found.append(f"{self.file}: {self.torn} torn lines")
        if self.duplicates:
            found.append(f"{self.file}: {self.duplicates} duplicate lines")
        if self.missing or self.unexpected:
            found.append(f"{self.file}: {self.missing} missing, {self.unexpected} unexpected")
        return found


@dataclass(frozen=True, kw_only=True)
class Verification(Counts):
    """The checks of the streams asked for, in that order; the counts are their sums."""

    checks: tuple[StreamCheck, ...]

    @classmethod
    def of(cls, checks: tuple[StreamCheck, ...]) -> Verification:
        totals = {f.name: sum(getattr(c, f.name) for c in checks) for f in fields(Counts)}
        return cls(**totals, checks=checks)

    def __getitem__(self, stream: str) -> StreamCheck:
        return next(check for check in self.checks if check.stream == stream)

    def problems(self) -> list[str]:
        return [problem for check in self.checks for problem in check.problems()]


def read_stream(out_dir: Path, stream: str) -> tuple[collections.Counter[Hashable], int]:
    """(how often each record occurs, torn lines) of one stream; a missing file is empty.

    A last line without its newline is torn whatever it parses to: a writer always ends a
    record with one, so the line was cut.
    """
    path = out_dir / stream_file(stream)
    data = path.read_bytes() if path.exists() else b""
    torn = int(bool(data) and not data.endswith(b"\n"))
    counts: collections.Counter[Hashable] = collections.Counter()
    for line in data.splitlines():
        try:
            counts[record_key(stream, orjson.loads(line))] += 1
        except (orjson.JSONDecodeError, KeyError, TypeError):
            torn += 1
    return counts, torn


def check_stream(out_dir: Path, stream: str, expected: frozenset[Any]) -> StreamCheck:
    counts, torn = read_stream(out_dir, stream)
    return StreamCheck(
        stream=stream,
        present=(out_dir / stream_file(stream)).exists(),
        records=sum(counts.values()),
        duplicates=sum(n - 1 for n in counts.values()),
        torn=torn,
        missing=len(expected - counts.keys()),
        unexpected=len(counts.keys() - expected),
    )


def verify(
    out_dir: Path, truth: GroundTruth, streams: Iterable[str] = ENTITY_STREAMS
) -> Verification:
    """Each of `streams` in `out_dir` against its exact set in `truth`.

    The entity streams are the default: edge streams are checked only when asked for, since
    a crawl writes only those its configuration switches on.
    """
    names = tuple(streams)
    unknown = set(names) - set(STREAMS)
    if unknown:
        raise ValueError(f"unknown streams: {sorted(unknown)}")
    return Verification.of(tuple(check_stream(out_dir, s, getattr(truth, s)) for s in names))
