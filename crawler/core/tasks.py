"""The unit of crawl work: an operation on one key, persisted so a crash never loses it.

A task is ``(op, key)``; the checkpoint keeps one row per task, which makes the same table the
dedupe set (an entity is seen once its fetch task exists) and the durable frontier.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from msgspec import Raw

from crawler.core.kinds import Op, State

# One compact JSON object, without its newline: the API's own bytes, or bytes we built.
Line = bytes | Raw


def paged_key(entity_id: str, offset: int) -> str:
    return f"{entity_id}:{offset}"


def split_paged_key(key: str) -> tuple[str, int]:
    entity_id, _, offset = key.rpartition(":")
    return entity_id, int(offset)


class PlaylistPage(NamedTuple):
    """A page of a playlist's items: from ``offset`` up to ``end`` (what the page was planned
    to cover: a page served shorter leaves the rest to a follow-up page), read from the
    playlist's version ``snapshot``, which every item record names."""

    playlist_id: str
    offset: int
    end: int
    snapshot: str | None

    @property
    def key(self) -> str:
        return f"{self.playlist_id}:{self.offset}:{self.end}:{self.snapshot or ''}"

    @classmethod
    def of(cls, key: str, default_page: int) -> PlaylistPage:
        """Parse a key; older checkpoints wrote ``playlist:offset`` (no end, no snapshot)."""
        parts = key.split(":", 3)
        if len(parts) == 2:
            return cls(parts[0], int(parts[1]), int(parts[1]) + default_page, None)
        playlist_id, offset, end, snapshot = parts
        return cls(playlist_id, int(offset), int(end), snapshot or None)


class SearchPageKey(NamedTuple):
    """One page of a search seed: results ``offset`` on, of the first ``limit`` of ``type``.

    A first-page artist search of 10 is keyed by its bare query, as checkpoints before typed
    searches keyed it; other keys are tab-separated (a query is stripped, so it cannot
    start with a tab, and it comes last, so it may hold any).
    """

    q: str
    type: str = "artist"
    limit: int = 10
    offset: int = 0

    @property
    def key(self) -> str:
        if (self.type, self.limit, self.offset) == ("artist", 10, 0):
            return self.q
        return f"\t{self.type}\t{self.limit}\t{self.offset}\t{self.q}"

    @classmethod
    def of(cls, key: str) -> SearchPageKey:
        if not key.startswith("\t"):
            return cls(key)
        _, kind, limit, offset, q = key.split("\t", 4)
        return cls(q, kind, int(limit), int(offset))


class Task(NamedTuple):
    """A NamedTuple rather than a dataclass: millions are made, and these are cheap to make."""

    seq: int
    op: Op
    key: str


@dataclass
class Outcome:
    """What executing one unit produced; the store applies it atomically with others.

    ``records`` are (stream, line) pairs for the output streams: the objects of the unit's
    own tasks (already deduplicated by their task rows) and the edges the unit saw;
    ``new_lines`` are tasks that arrive finished with their object (tracks taken from album
    pages), written only if their task is new.
    """

    states: list[tuple[Task, State]] = field(default_factory=list)
    records: list[tuple[str, Line]] = field(default_factory=list)
    discovered: list[tuple[Op, str]] = field(default_factory=list)
    new_lines: list[tuple[Op, str, Line]] = field(default_factory=list)
    failures: list[tuple[Task, str]] = field(default_factory=list)
