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
