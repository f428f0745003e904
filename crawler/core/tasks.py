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
