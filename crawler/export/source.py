"""What an export reads: the committed part of each stream, commit times, and the crawl's card.

The store fills an `ExportSource`; the export never opens the checkpoint itself, so it serves
any store (SQLite today, PostgreSQL later) and a crawl that is still running: a stream's file
may grow past what is committed while the export reads it, which `lengths` bounds (the jsonl
format copies just the committed bytes; the table formats read a copy of them).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from crawler.core.errors import CrawlerError
from crawler.core.kinds import stream_file

COPY_CHUNK = 1 << 20


class ExportError(CrawlerError):
    """A source the export cannot read as committed records: nothing was published."""


@dataclass(frozen=True)
class ExportSource:
    """``jsonl``: stream → its JSON-lines file (a stream without a file exports as empty tables).
    ``lengths``: stream → its committed byte length, where the file may hold more (a crawl
    appending to it, or the uncommitted tail an interrupted crawl left); absent = the whole file.
    ``fetched_at``: entity stream → (id, commit time in epoch seconds), read once, or a TSV
    file of such pairs (what the store writes, so that millions of them are never in memory).
    ``dataset``: what the crawl's card says about it (fingerprint, seeds, API mode,
    capabilities …), copied into ``dataset.json``.
    """

    jsonl: Mapping[str, Path]
    fetched_at: Mapping[str, Iterable[tuple[str, float]] | Path] = field(default_factory=dict)
    dataset: Mapping[str, Any] = field(default_factory=dict)
    lengths: Mapping[str, int] = field(default_factory=dict)

    def times(self) -> Iterator[float]:
        """Every commit time the source holds (for the span of a jsonl export)."""
        for pairs in self.fetched_at.values():
            if isinstance(pairs, Path):
                with pairs.open() as f:
                    yield from (float(line.rpartition("\t")[2]) for line in f)
            else:
                yield from (at for _, at in pairs)

    def size(self, stream: str) -> int:
        """Bytes of the stream to export: 0 when its file is absent."""
        path = self.jsonl.get(stream)
        if path is None or not path.exists():
            return 0
        actual = path.stat().st_size
        committed = self.lengths.get(stream, actual)
        if committed > actual:
            raise ExportError(
                f"{path} has {actual} bytes but {committed} are committed: the file was "
                "truncated or replaced after the crawl wrote it"
            )
        return committed

    def copy(self, stream: str, dst: BinaryIO) -> int:
        """Write the committed bytes of a stream to ``dst``, as they are; return its lines."""
        left = self.size(stream)
        lines = 0
        if not left:
            return lines
        with self.jsonl[stream].open("rb") as src:
            while left:
                chunk = src.read(min(left, COPY_CHUNK))
                if not chunk:
                    raise ExportError(f"{self.jsonl[stream]} shrank while it was exported")
                dst.write(chunk)
                lines += chunk.count(b"\n")
                left -= len(chunk)
        return lines

    def readable(self, stream: str, scratch: Path) -> Path | None:
        """A file holding exactly the committed bytes: the stream's own when all of it is
        committed, else a copy of the committed prefix in ``scratch`` (DuckDB buffers a FIFO
        whole, so it is no substitute). None for an empty stream."""
        size = self.size(stream)
        if not size:
            return None
        path = self.jsonl[stream]
        if size == path.stat().st_size:
            return path
        copy = scratch / stream_file(stream)
        with copy.open("wb") as dst:
            self.copy(stream, dst)
        return copy
