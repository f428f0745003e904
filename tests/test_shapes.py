"""Responses of unexpected shapes: a recorded failure or a retry, never a crash or a bad line.

Bodies are generated (hypothesis) around the real shapes — missing fields, wrong types, nulls
where objects belong — and go through the client's real decoders and the real expander.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crawler.api.capabilities import Capabilities
from crawler.api.client import batch_decoder
from crawler.api.schema import decode_page, decode_playlist
from crawler.core.config import ExpandConfig, OutputConfig
from crawler.core.kinds import ENTITIES
from crawler.core.tasks import Op, State, Task
from crawler.crawl.expand import Expander

ID = st.text(alphabet="abcdefghijKLMNOP0123456789", min_size=22, max_size=22)
SCALAR = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=5)
JSON = st.recursive(
    SCALAR,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


def maybe(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """The right value most of the time, anything at all otherwise."""
    return st.one_of(value, value, JSON)


REF = st.fixed_dictionaries({"id": maybe(ID | st.none())})
TRACK = st.fixed_dictionaries(
    {
        "id": maybe(ID),
        "artists": maybe(st.lists(maybe(REF), max_size=3)),
        "type": maybe(st.just("track")),
    }
)
PAGE = st.fixed_dictionaries(
    {
        "items": maybe(st.lists(maybe(TRACK), max_size=4)),
        "total": maybe(st.integers(0, 120)),
        "limit": maybe(st.just(50)),
    }
)
ALBUM = st.fixed_dictionaries({"id": maybe(ID), "tracks": maybe(PAGE), "name": JSON})


class StubClient:
    """Serves pre-decoded bodies through the real decoders, as the transport would."""

    def __init__(self, body: bytes, decode: Any) -> None:
        self.capabilities = Capabilities.for_mode("extended")
        self._data = decode(body)

    async def _serve(self, *_: Any) -> Any:
        return self._data

    albums = tracks = album_tracks = playlist = playlist_items = _serve


def run_unit(client: StubClient, op: Op, keys: list[str]) -> Any:
    expander = Expander(client, ExpandConfig(), OutputConfig())  # type: ignore[arg-type]
    tasks = [Task(i + 1, op, key) for i, key in enumerate(keys)]
    return tasks, asyncio.run(expander.run(op, tasks))


def assert_clean(tasks: list[Task], outcome: Any) -> None:
    """Every task got a final state; every line is a JSON object with a string id."""
    assert sorted(t.seq for t, _ in outcome.states) == sorted(t.seq for t in tasks)
    for _, line in outcome.records:
        obj = orjson.loads(bytes(line))
        assert isinstance(obj, dict) and isinstance(obj["id"], str)
    for _, _, line in outcome.new_lines:
        assert isinstance(orjson.loads(bytes(line))["id"], str)
    failed = {t.seq for t, state in outcome.states if state is State.FAILED}
    assert failed == {t.seq for t, _ in outcome.failures}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.none(), ALBUM, JSON), min_size=1, max_size=4))
def test_album_batches_of_any_shape(albums: list[Any]) -> None:
    body = orjson.dumps({"albums": albums})
    try:
        client = StubClient(body, batch_decoder(ENTITIES[Op.ALBUM], len(albums)))
    except msgspec.DecodeError:
        return  # the transport retries such a body, then records the request as failed
    tasks, outcome = run_unit(client, Op.ALBUM, [f"a{i}" for i in range(len(albums))])
    assert_clean(tasks, outcome)
    for task, state in outcome.states:
        if albums[task.seq - 1] is None:
            assert state is State.MISSING


@settings(max_examples=50, deadline=None)
@given(st.lists(st.one_of(st.none(), TRACK, JSON), min_size=1, max_size=4))
def test_track_batches_of_any_shape(tracks: list[Any]) -> None:
    body = orjson.dumps({"tracks": tracks})
    try:
        client = StubClient(body, batch_decoder(ENTITIES[Op.TRACK], len(tracks)))
    except msgspec.DecodeError:
        return
    assert_clean(*run_unit(client, Op.TRACK, [f"t{i}" for i in range(len(tracks))]))


@settings(max_examples=50, deadline=None)
@given(maybe(PAGE))
def test_album_track_pages_of_any_shape(page: Any) -> None:
    try:
        client = StubClient(orjson.dumps(page), decode_page)
        tasks, outcome = run_unit(client, Op.ALBUM_TRACKS, ["x:50"])
    except msgspec.ValidationError:
        return  # a malformed page fails its one task: the engine records it
    assert_clean(tasks, outcome)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.one_of(st.none(), st.fixed_dictionaries({"track": maybe(TRACK)}), JSON), max_size=4)
)
def test_playlists_of_any_items(items: list[Any]) -> None:
    body = orjson.dumps({"items": {"items": items, "total": len(items), "limit": 50}})
    try:
        client = StubClient(body, decode_playlist)
        tasks, outcome = run_unit(client, Op.PLAYLIST, ["p"])
    except msgspec.ValidationError:
        return
    assert_clean(tasks, outcome)


def test_a_good_album_with_a_bad_track_fails_alone_and_adds_nothing() -> None:
    good = {"id": "g" * 22, "tracks": {"items": [], "total": 0, "limit": 50}}
    bad = {"id": "b" * 22, "tracks": {"items": [{"id": "t" * 22, "artists": "x"}], "total": 1}}
    body = orjson.dumps({"albums": [good, bad]})
    _, outcome = run_unit(
        StubClient(body, batch_decoder(ENTITIES[Op.ALBUM], 2)), Op.ALBUM, ["g", "b"]
    )
    assert [(t.key, s) for t, s in outcome.states] == [("g", State.DONE), ("b", State.FAILED)]
    assert outcome.discovered == []  # the bad album's track was taken back
    assert "unexpected response" in outcome.failures[0][1]
