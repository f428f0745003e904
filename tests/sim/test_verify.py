"""The one output verifier: exact sets per stream, duplicates, torn lines, opt-in edges.

Tests, benchmarks and the chaos soak all judge crawls by it, so it is tested on outputs
written here from the ground truth and then spoilt in each way a crawl could spoil them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from crawler.core.kinds import EDGE_STREAMS, ENTITY_STREAMS, STREAMS
from crawler.sim.catalog import Catalog
from crawler.sim.groundtruth import Expansion, Search, Seeds, ground_truth
from crawler.sim.verify import EDGE_FIELDS, verify

CATALOG = Catalog(30, seed=2)
TRUTH = ground_truth(
    CATALOG,
    Seeds(
        artists=tuple(CATALOG.first_artist_ids(2)),
        playlists=(CATALOG.playlist_id(1),),
        search=(Search("mix", "playlist", 1),),
    ),
    Expansion.full(),
)


def records(stream: str) -> list[dict[str, Any]]:
    """The ground truth of a stream as the crawler's records (sorted, so files are stable)."""
    names = EDGE_FIELDS.get(stream)
    expected = sorted(getattr(TRUTH, stream), key=repr)
    if names is None:
        return [{"id": spotify_id, "name": "…"} for spotify_id in expected]
    return [dict(zip(names, edge, strict=True)) for edge in expected]


def write(out: Path, streams: tuple[str, ...] = STREAMS, **changed: list[dict]) -> Path:
    out.mkdir()
    for stream in streams:
        lines = changed.get(stream, records(stream))
        (out / f"{stream}.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in lines))
    return out


def test_the_ground_truth_written_is_exact_for_every_stream(tmp_path: Path) -> None:
    assert all(getattr(TRUTH, stream) for stream in STREAMS)  # nothing trivially empty
    checked = verify(write(tmp_path / "out"), TRUTH, STREAMS)
    assert checked.exact and checked.problems() == []
    assert checked.records == sum(len(getattr(TRUTH, s)) for s in STREAMS)
    assert [c.stream for c in checked.checks] == list(STREAMS)


def test_edge_streams_are_checked_only_when_asked_for(tmp_path: Path) -> None:
    out = write(tmp_path / "out", ENTITY_STREAMS)
    assert verify(out, TRUTH).exact
    edges = verify(out, TRUTH, EDGE_STREAMS)
    assert not edges.exact
    assert edges.missing == sum(len(getattr(TRUTH, s)) for s in EDGE_STREAMS)
    assert edges.problems()[0] == "playlists.jsonl: missing"
    with pytest.raises(ValueError, match="unknown streams"):
        verify(out, TRUTH, ("artists", "episodes"))


def test_a_record_twice_is_a_duplicate_and_a_changed_field_is_missing_and_unexpected(
    tmp_path: Path,
) -> None:
    items = records("playlist_items")
    local = next(i for i, r in enumerate(items) if r["is_local"])
    moved = [*items[:local], {**items[local], "position": 999}, *items[local + 1 :]]
    related = records("related_artists")
    out = write(
        tmp_path / "out",
        playlist_items=moved,
        related_artists=[*related, related[3]],
        artists=[*records("artists"), records("artists")[0]],
    )
    checked = verify(out, TRUTH, STREAMS)
    assert (checked["playlist_items"].missing, checked["playlist_items"].unexpected) == (1, 1)
    assert checked["related_artists"].duplicates == checked["artists"].duplicates == 1
    assert (checked.duplicates, checked.missing, checked.unexpected, checked.torn) == (2, 1, 1, 0)
    assert checked.problems() == [
        "artists.jsonl: 1 duplicate lines",
        "related_artists.jsonl: 1 duplicate lines",
        "playlist_items.jsonl: 1 missing, 1 unexpected",
    ]


def test_cut_and_incomplete_lines_are_torn(tmp_path: Path) -> None:
    out = write(tmp_path / "out")
    with (out / "artist_albums.jsonl").open("ab") as f:
        f.write(b'{"artist_id": "x", "album_id": "y", "position": 0}\n')  # no album_group
        f.write(b'["not", "a", "record"]\n')
    with (out / "tracks.jsonl").open("ab") as f:
        f.write(b'{"id": "cut')  # the last line, without its newline
    checked = verify(out, TRUTH, STREAMS)
    assert checked["artist_albums"].torn == 2
    assert checked["tracks"].torn == 2  # cut: unparseable, and no newline at the end
    assert checked.torn == 4 and checked.missing == checked.unexpected == 0
    assert not checked.exact
    assert "tracks.jsonl: 2 torn lines" in checked.problems()
