"""The unit of crawl work: an operation on one key, persisted so a crash never loses it.

A task is ``(op, key)``; the checkpoint keeps one row per task, which makes the same table the
dedupe set (an entity is seen once its fetch task exists) and the durable frontier.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import NamedTuple

from msgspec import Raw

# One compact JSON object, without its newline: the API's own bytes, or bytes we built.
Line = bytes | Raw


class Op(IntEnum):
    ARTIST = 1
    ALBUM = 2
    TRACK = 3
    FEATURES = 4
    RELATED = 5
    ARTIST_ALBUMS = 6
    ALBUM_TRACKS = 7
    PLAYLIST = 8
    PLAYLIST_ITEMS = 9
    SEARCH = 10


class State(IntEnum):
    PENDING = 0
    DONE = 1
    MISSING = 2
    FAILED = 3
    SKIPPED = 4


# Entities written to JSON lines: the op that fetches them and the file they go to.
OUTPUT_FILES: dict[Op, str] = {
    Op.ARTIST: "artists.jsonl",
    Op.ALBUM: "albums.jsonl",
    Op.TRACK: "tracks.jsonl",
    Op.FEATURES: "audio_features.jsonl",
}
# Client kind whose capability decides each batchable op's batch size.
BATCH_KINDS: dict[Op, str] = {
    Op.ARTIST: "artists",
    Op.ALBUM: "albums",
    Op.TRACK: "tracks",
    Op.FEATURES: "audio-features",
}
# Dispatch order: downstream first keeps the frontier short; upstream batches get time to fill.
PRIORITY: tuple[Op, ...] = (
    Op.FEATURES,
    Op.TRACK,
    Op.ALBUM_TRACKS,
    Op.ALBUM,
    Op.PLAYLIST_ITEMS,
    Op.PLAYLIST,
    Op.ARTIST_ALBUMS,
    Op.RELATED,
    Op.ARTIST,
    Op.SEARCH,
)


def paged_key(entity_id: str, offset: int) -> str:
    return f"{entity_id}:{offset}"


def split_paged_key(key: str) -> tuple[str, int]:
    entity_id, _, offset = key.rpartition(":")
    return entity_id, int(offset)


class Task(NamedTuple):
    """A NamedTuple rather than a dataclass: millions are made, and these are cheap to make."""

    seq: int
    op: Op
    key: str


@dataclass
class Outcome:
    """What executing one unit produced; the checkpoint applies it atomically with others.

    ``lines`` are the objects (compact JSON, the API's own bytes) of the unit's own tasks,
    already deduped by their task rows; ``new_lines`` are written only if their task is new
    (tracks taken from album pages).
    """

    states: list[tuple[Task, State]] = field(default_factory=list)
    lines: list[tuple[Op, Line]] = field(default_factory=list)
    discovered: list[tuple[Op, str]] = field(default_factory=list)
    new_lines: list[tuple[Op, str, Line]] = field(default_factory=list)
    failures: list[tuple[Task, str]] = field(default_factory=list)
