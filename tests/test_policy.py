"""The batch policy, rule by rule, as the pure function it is (no event loop)."""

from __future__ import annotations

from typing import Any

from crawler.core.kinds import Op
from crawler.crawl.expand import feeders
from crawler.crawl.policy import (
    NOTHING,
    PARTIAL_MIN_WAIT_S,
    Pick,
    Queued,
    Situation,
    may_grow,
    pick,
)


def situation(queues: dict[Op, Queued], **changes: Any) -> Situation:
    values: dict[str, Any] = {
        "queues": queues,
        "stalled": False,
        "in_flight": 20,
        "concurrency": 32,
        "units": 1000,
        "partials": 0,
        "linger_s": 1.0,
    }
    return Situation(**{**values, **changes})


def q(size: int, batch: int = 50, waited: float = 0.0, may_grow: bool = True) -> Queued:
    return Queued(size, batch, waited, may_grow)


def test_a_full_batch_goes_first_downstream_first() -> None:
    queues = {Op.ARTIST: q(50), Op.TRACK: q(60), Op.FEATURES: q(10, batch=100)}
    assert pick(situation(queues)) == Pick(Op.TRACK, 50)


def test_nothing_queued_is_nothing_to_do() -> None:
    assert pick(situation({})) == NOTHING


def test_at_a_stall_a_leading_partial_goes_before_tracks() -> None:
    queues = {Op.TRACK: q(7), Op.ARTIST: q(3)}
    assert pick(situation(queues, stalled=True)) == Pick(Op.ARTIST, 3)
    assert pick(situation({Op.TRACK: q(7)}, stalled=True)) == Pick(Op.TRACK, 7)


def test_a_partial_batch_nothing_can_grow_goes_at_once() -> None:
    queues = {Op.ALBUM: q(5, batch=20, may_grow=False)}
    assert pick(situation(queues)) == Pick(Op.ALBUM, 5)


def test_a_partial_batch_waits_out_its_linger_then_goes() -> None:
    busy = {"in_flight": 30}
    decision = pick(situation({Op.ALBUM: q(5, batch=20, waited=0.4)}, **busy))
    assert decision.op is None and abs(decision.wait - 0.6) < 1e-9
    assert pick(situation({Op.ALBUM: q(5, batch=20, waited=1.0)}, **busy)) == Pick(Op.ALBUM, 5)


def test_idle_workers_send_early_partials_within_their_budget() -> None:
    idle = {"in_flight": 2}
    early = situation({Op.ARTIST: q(4, waited=PARTIAL_MIN_WAIT_S)}, **idle)
    assert pick(early) == Pick(Op.ARTIST, 4, partial=True)
    spent = situation({Op.ARTIST: q(4, waited=PARTIAL_MIN_WAIT_S)}, partials=13, **idle)
    assert pick(spent).op is None  # 1 % of 1,000 units + 3 already spent
    too_soon = pick(situation({Op.ARTIST: q(4, waited=0.0)}, **idle))
    assert too_soon.op is None and too_soon.wait == PARTIAL_MIN_WAIT_S
    sinks_wait = pick(situation({Op.TRACK: q(4, waited=PARTIAL_MIN_WAIT_S)}, **idle))
    assert sinks_wait.op is None  # tracks lead nowhere: no early partial for them


def test_may_grow_looks_at_feeders_in_memory_in_the_store_and_in_flight() -> None:
    feeds = feeders(seed_tracks=False)
    nowhere = dict.fromkeys(Op, False)
    assert not may_grow(Op.TRACK, feeds[Op.TRACK], {}, {}, nowhere)
    assert may_grow(Op.TRACK, feeds[Op.TRACK], {Op.ALBUM: 1}, {}, nowhere)
    assert may_grow(Op.TRACK, feeds[Op.TRACK], {}, {Op.ARTIST: 3}, nowhere)
    assert may_grow(Op.TRACK, feeds[Op.TRACK], {}, {}, {**nowhere, Op.PLAYLIST: True})
    assert may_grow(Op.TRACK, feeds[Op.TRACK], {}, {}, {**nowhere, Op.TRACK: True})
    assert not may_grow(Op.TRACK, feeds[Op.TRACK], {Op.FEATURES: 2}, {}, nowhere)
