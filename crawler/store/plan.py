"""The pure planning step every store backend reuses: what a commit must do, decided in memory.

Backends differ in how they make a commit durable, not in what it means, so the rules live
here, free of I/O and unit-tested on their own: how outcomes group into one commit, which
candidates the artist budget admits, which checkpoint a configuration belongs to.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import msgspec

from crawler.core.kinds import ENTITIES, Op
from crawler.core.tasks import Outcome
from crawler.store.base import CommitGroup


def plan_commit(
    outcomes: Iterable[Outcome],
    *,
    seeds: Iterable[tuple[Op, str]] = (),
    meta: Mapping[str, Any] | None = None,
    artist_budget: int | None = None,
    features_from_tracks: bool = False,
    lease: Mapping[Op, int] | None = None,
) -> CommitGroup:
    """Group outcomes (and seed tasks) into one commit.

    Candidate keys are deduplicated here, in memory, because the same artist is credited on
    many tracks of one group: the store then looks up each key once. Records keep the
    workers' order; a task born finished keeps its first record.
    """
    fresh: dict[Op, dict[str, None]] = {}
    group = CommitGroup(
        meta=dict(meta or {}),
        artist_budget=artist_budget,
        features_from_tracks=features_from_tracks,
        lease=dict(lease or {}),
    )
    for op, key in seeds:
        fresh.setdefault(op, {})[key] = None
    for outcome in outcomes:
        for op, key in outcome.discovered:
            fresh.setdefault(op, {})[key] = None
        for op, key, line in outcome.new_lines:
            group.born_done.setdefault(op, {}).setdefault(key, (ENTITIES[op].stream, line))
        for task, state in outcome.states:
            group.settled.setdefault(state, []).append(task)
        group.records.extend(outcome.records)
        group.failures.extend(outcome.failures)
    group.fresh = {op: list(keys) for op, keys in fresh.items()}
    return group


def within_budget(candidates: Sequence[str], stored: set[str], budget: int) -> list[str]:
    """The candidates of which at most ``budget`` are new (first come, first in).

    Candidates already stored pass: they cost nothing and are deduplicated by the store.
    """
    fresh = [key for key in dict.fromkeys(candidates) if key not in stored]
    admitted = stored.union(fresh[: max(budget, 0)])
    return [key for key in candidates if key in admitted]


def fingerprint(seeds: Any, expand: Any, output: Any) -> dict[str, Any]:
    """What makes a checkpoint belong to a crawl: seeds, expansion and outputs, not tuning.

    ``max_artists`` is left out: raising the bound continues the same crawl. A plain artist
    search (first page) is kept as the bare query, as checkpoints before typed searches
    stored it, so those crawls still resume.
    """
    seeds_dict = _json(seeds)
    seeds_dict["search"] = [_search_seed(s) for s in seeds_dict.get("search", ())]
    expand_dict = _json(expand)
    expand_dict.pop("max_artists", None)
    return {"seeds": seeds_dict, "expand": expand_dict, "output": _json(output)}


def _json(value: Any) -> Any:
    """As stored in a checkpoint: JSON values only (tuples become lists)."""
    return msgspec.json.decode(msgspec.json.encode(value))


def _search_seed(seed: Any) -> Any:
    if isinstance(seed, dict) and seed.get("type") == "artist" and seed.get("limit") == 10:
        return seed["q"]
    return seed


def changed_keys(stored: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """The dotted keys whose values differ (``expand.related_artists``), for the refusal."""
    changed: list[str] = []
    for key in sorted(stored.keys() | current.keys()):
        old, new = stored.get(key), current.get(key)
        if old == new:
            continue
        if isinstance(old, dict) and isinstance(new, dict):
            changed.extend(f"{key}.{sub}" for sub in changed_keys(old, new))
        else:
            changed.append(key)
    return changed
