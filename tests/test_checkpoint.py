"""The checkpoint and sinks: what is committed is exactly what the files hold."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from crawler.core.errors import CheckpointError
from crawler.core.tasks import Op, Outcome, State, Task
from crawler.store.sqlite import Checkpoint

FP = {"seeds": {"artists": ["a"]}, "expand": {}}


async def open_cp(tmp_path: Path, fingerprint: dict | None = FP) -> Checkpoint:
    return await Checkpoint.open(tmp_path / "cp.db", tmp_path / "out", fingerprint)


async def test_dedupe_and_new_tasks(tmp_path: Path) -> None:
    cp = await open_cp(tmp_path)
    new = await cp.commit([], seeds=[(Op.ARTIST, "a"), (Op.ARTIST, "b"), (Op.ARTIST, "a")])
    assert [(t.op, t.key) for t in new] == [(Op.ARTIST, "a"), (Op.ARTIST, "b")]
    outcome = Outcome(discovered=[(Op.ARTIST, "b"), (Op.ARTIST, "c"), (Op.ALBUM, "b")])
    new = await cp.commit([outcome])
    assert [(t.op, t.key) for t in new] == [(Op.ARTIST, "c"), (Op.ALBUM, "b")]
    assert cp.pending() == 4
    await cp.close()


async def test_each_new_track_gets_one_features_task(tmp_path: Path) -> None:
    cp = await open_cp(tmp_path)
    found = Outcome(discovered=[(Op.TRACK, "t1"), (Op.TRACK, "t2"), (Op.TRACK, "t1")])
    new = await cp.commit([found], track_features=True)
    assert sorted((t.op, t.key) for t in new) == [
        (Op.TRACK, "t1"),
        (Op.TRACK, "t2"),
        (Op.FEATURES, "t1"),
        (Op.FEATURES, "t2"),
    ]
    again = Outcome(discovered=[(Op.TRACK, "t2"), (Op.TRACK, "t3")])
    new = await cp.commit([again], track_features=True)
    assert [(t.op, t.key) for t in new] == [(Op.TRACK, "t3"), (Op.FEATURES, "t3")]
    new = await cp.commit([Outcome(discovered=[(Op.TRACK, "t4")])], track_features=False)
    assert [(t.op, t.key) for t in new] == [(Op.TRACK, "t4")]
    assert cp.pending(Op.FEATURES) == 3
    await cp.close()


async def test_new_lines_are_written_once(tmp_path: Path) -> None:
    cp = await open_cp(tmp_path)
    first = Outcome(new_lines=[(Op.TRACK, "t1", b'{"id":"t1"}')])
    second = Outcome(new_lines=[(Op.TRACK, "t1", b'{"id":"t1"}'), (Op.TRACK, "t2", b"{}")])
    await cp.commit([first, second])
    await cp.commit([second])
    await cp.close()
    assert (tmp_path / "out" / "tracks.jsonl").read_bytes() == b'{"id":"t1"}\n{}\n'


async def test_uncommitted_tail_is_truncated_and_state_survives(tmp_path: Path) -> None:
    cp = await open_cp(tmp_path)
    (task,) = await cp.commit([], seeds=[(Op.ARTIST, "a")])
    await cp.commit([Outcome(states=[(task, State.DONE)], lines=[(Op.ARTIST, b'{"id":"a"}')])])
    await cp.close()
    path = tmp_path / "out" / "artists.jsonl"
    with path.open("ab") as f:
        f.write(b'{"id":"torn')  # a crash between write and commit
    cp = await open_cp(tmp_path)
    assert path.read_bytes() == b'{"id":"a"}\n'
    assert cp.counts[(Op.ARTIST, State.DONE)] == 1
    assert await cp.load_pending(Op.ARTIST, 0, 10) == []
    await cp.close()


async def test_file_shorter_than_checkpoint_is_refused(tmp_path: Path) -> None:
    cp = await open_cp(tmp_path)
    await cp.commit([Outcome(lines=[(Op.ALBUM, b'{"id":"b"}')])])
    await cp.close()
    (tmp_path / "out" / "albums.jsonl").write_bytes(b"{")
    with pytest.raises(CheckpointError, match=r"albums\.jsonl has 1 bytes but the checkpoint"):
        await open_cp(tmp_path)


async def test_other_settings_are_refused_with_the_way_out(tmp_path: Path) -> None:
    cp = await open_cp(tmp_path)
    await cp.close()
    with pytest.raises(CheckpointError, match=r"different settings \(seeds\).*--fresh"):
        await open_cp(tmp_path, {"seeds": {"artists": ["z"]}, "expand": {}})


async def test_checkpoint_of_an_older_schema_is_refused_with_the_way_out(tmp_path: Path) -> None:
    cp = await open_cp(tmp_path)
    await cp.close()
    with sqlite3.connect(tmp_path / "cp.db") as db:
        db.execute("UPDATE meta SET value = '1' WHERE key = 'schema'")
    with pytest.raises(CheckpointError, match=r"checkpoint schema 1 is not 2; rerun with --fresh"):
        await open_cp(tmp_path)


async def test_corrupt_checkpoint_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "cp.db"
    garbage = b"this is not sqlite" * 100
    path.write_bytes(garbage)
    with pytest.raises(CheckpointError, match=r"unreadable.*left untouched"):
        await open_cp(tmp_path)
    assert path.read_bytes() == garbage


async def test_failed_tasks_are_retried_on_the_next_run(tmp_path: Path) -> None:
    cp = await open_cp(tmp_path)
    (task,) = await cp.commit([], seeds=[(Op.ALBUM, "x")])
    await cp.commit([Outcome(states=[(task, State.FAILED)], failures=[(task, "HTTP 500")])])
    assert await cp.failures() == [("album", "x", "HTTP 500")]
    await cp.close()
    cp = await open_cp(tmp_path)
    assert await cp.reset_failed() == 1
    assert await cp.load_pending(Op.ALBUM, 0, 10) == [Task(task.seq, Op.ALBUM, "x")]
    assert await cp.failures() == []
    await cp.close()


async def test_artist_budget_caps_admission(tmp_path: Path) -> None:
    cp = await open_cp(tmp_path)
    new = await cp.commit([], seeds=[(Op.ARTIST, k) for k in "abcde"], artist_budget=3)
    assert [t.key for t in new] == ["a", "b", "c"]
    await cp.close()


async def test_readonly_open_leaves_files_alone(tmp_path: Path) -> None:
    cp = await open_cp(tmp_path)
    await cp.commit([Outcome(lines=[(Op.ARTIST, b"{}")])], seeds=[(Op.ALBUM, "x")])
    await cp.close()
    path = tmp_path / "out" / "artists.jsonl"
    with path.open("ab") as f:
        f.write(b"tail of a running crawl")
    cp = await open_cp(tmp_path, None)
    assert cp.pending(Op.ALBUM) == 1
    await cp.close()
    assert path.read_bytes().endswith(b"tail of a running crawl")
