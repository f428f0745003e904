"""The batch policy: which unit of work goes next, and when a partial batch may go.

Pure functions of a snapshot of the dispatcher's situation, so the rules can be read and
tested without an event loop. Waiting for batches to fill keeps the request count near the
minimum; waiting too long starves the pipeline. The rules, in order:

1. A full batch goes at once, downstream operations first (``PRIORITY``).
2. At a stall (nothing in flight or awaiting commit) a partial batch goes at once: nothing can
   fill it. Operations that lead somewhere go before tracks and audio features, which lead
   nowhere new and so are worth letting fill.
3. A partial batch that no queued or unsettled unit can still grow goes at once: waiting
   costs time and saves nothing.
4. While most workers are idle, a partial batch of a leading op may go early, within a budget
   of ``PARTIAL_SHARE`` extra requests: early in a crawl that keeps the pipeline full.
5. Otherwise a partial batch waits at most ``linger``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

from crawler.core.kinds import Op

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
# Ops whose results rarely add work: at a stall their partial batches wait for more.
SINKS = frozenset({Op.TRACK, Op.FEATURES})
# Partial batches sent early (while workers idle) may cost at most this share of requests
# (plus a few): the price of a pipeline that does not wait for batches to fill.
PARTIAL_SHARE = 0.01
PARTIAL_SPARE = 3
PARTIAL_MIN_WAIT_S = 0.02


@dataclass(frozen=True, slots=True)
class Queued:
    """One op's queue as the policy sees it."""

    size: int  # tasks waiting in memory
    batch: int  # tasks one request can take
    waited: float  # seconds the oldest has waited for its batch to fill
    may_grow: bool  # could queued or unsettled work still add tasks of this op?


@dataclass(frozen=True, slots=True)
class Situation:
    queues: Mapping[Op, Queued]  # ops with tasks waiting
    stalled: bool  # no unit is in flight or awaiting its commit
    in_flight: int
    concurrency: int
    units: int  # units dispatched this run
    partials: int  # of which early partial batches (rule 4)
    linger_s: float


class Pick(NamedTuple):
    """Take ``size`` tasks of ``op`` now; or, with ``op`` None, look again after ``wait``."""

    op: Op | None
    size: int = 0
    partial: bool = False
    wait: float | None = None


NOTHING = Pick(None)


def pick(s: Situation) -> Pick:
    queues = s.queues
    partial: list[Op] = []
    for op in PRIORITY:
        queued = queues.get(op)
        if queued is None or queued.size == 0:
            continue
        if queued.size >= queued.batch:
            return Pick(op, queued.batch)
        partial.append(op)
    if not partial:
        return NOTHING
    leading = [op for op in partial if op not in SINKS]
    if s.stalled:
        op = (leading or partial)[0]
        return Pick(op, queues[op].size)
    for op in partial:
        if not queues[op].may_grow:
            return Pick(op, queues[op].size)
    idle = s.in_flight <= s.concurrency // 4
    if idle and leading and s.partials < PARTIAL_SHARE * s.units + PARTIAL_SPARE:
        op = max(leading, key=lambda o: queues[o].waited)
        if queues[op].waited >= PARTIAL_MIN_WAIT_S:
            return Pick(op, queues[op].size, partial=True)
    wait: float | None = None
    for op in partial:
        remaining = s.linger_s - queues[op].waited
        if remaining <= 0:
            return Pick(op, queues[op].size)
        wait = remaining if wait is None else min(wait, remaining)
    if idle and leading:
        wait = min(wait or PARTIAL_MIN_WAIT_S, PARTIAL_MIN_WAIT_S)
    return Pick(None, wait=wait)


def may_grow(
    op: Op,
    feeders: frozenset[Op],
    unsettled: Mapping[Op, int],
    queued: Mapping[Op, int],
    elsewhere: Mapping[Op, bool],
) -> bool:
    """Could work queued in memory, held by the store, or not yet committed add tasks of
    ``op``? ``feeders`` are the ops whose units may lead to it (``expand.feeders``)."""
    return elsewhere[op] or any(
        unsettled.get(src, 0) or queued.get(src, 0) or elsewhere[src] for src in feeders
    )
