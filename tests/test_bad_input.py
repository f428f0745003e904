"""Bad input, full disks and unwritable directories: one clear line, a clean stop, nothing lost.

Each case goes through the real command line (`crawler.cli.main` in-process where a fault has
to be injected or no server is needed, `python -m crawler crawl` otherwise), because what a
user sees is the exit code and the one line on stderr, and what a rerun finds on disk.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest

from crawler.cli import main
from crawler.core.config import load_config
from crawler.sim.catalog import Catalog
from crawler.sim.config import SimConfig
from tests.crawlkit import (
    assert_ground_truth,
    expected,
    remount,
    run_crawl_cli,
    sim_in_thread,
    tmpfs,
    write_config,
)

CATALOG = Catalog(40, seed=5)
SEED = CATALOG.first_artist_ids()[0]
CREDS = '[[credentials]]\nclient_id = "a"\nclient_secret = "b"\n'
SEEDS = f'[seeds]\nartists = ["{SEED}"]\n'
NOSPACE = ("No space left on device", "rerun to resume")


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


# -- crawl.toml ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "names"),
    [
        (CREDS + SEEDS + "[crawl]\nout_dir = \n", "TOML syntax error: Invalid value (at line 7"),
        (CREDS + SEEDS + "[crawl]\nconcurency = 8\n", "crawl.concurency: unknown key"),
        (CREDS + SEEDS + "[api]\nmax_retries = '6'\n", "api.max_retries: expected an integer"),
        (SEEDS, "credentials: none configured"),
        (CREDS.replace('"b"', '"  "') + SEEDS, "credentials[0].client_secret: is missing or empty"),
        (
            CREDS + '[seeds]\nartists = ["https://open.spotify.com/album/0OdUWJ0sBjDrqHygGUXeCF"]',
            "seeds.artists: 'https://open.spotify.com/album/0OdUWJ0sBjDrqHygGUXeCF' is not an "
            "open.spotify.com/artist/<id> URL",
        ),
    ],
    ids=["syntax", "unknown-key", "wrong-type", "no-credentials", "empty-secret", "bad-seed"],
)
def test_bad_config_exits_2_naming_file_and_key_and_writes_nothing(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    text: str,
    names: str,
) -> None:
    for var in ("SPOTIFY_CLIENT_ID", "SPOTIFY_CLIENT_SECRET", "SPOTIPY_CLIENT_ID"):
        monkeypatch.delenv(var, raising=False)
    path = tmp_path / "crawl.toml"
    path.write_text(text)
    assert main(["crawl", "-c", str(path)]) == 2
    assert one_line(capsys.readouterr().err).startswith(f"error: {path}: {names}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["crawl.toml"]


# -- unwritable output -----------------------------------------------------------------------


def test_out_dir_below_a_regular_file_is_a_clean_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "blocker").write_text("not a directory\n")
    path = write_config(
        tmp_path, "http://127.0.0.1:9", seeds={"artists": [SEED]}, crawl={"out_dir": "blocker/out"}
    )
    code = main(["crawl", "-c", str(path)])
    err = one_line(capsys.readouterr().err)
    assert code != 0
    assert err.startswith("error: ") and "blocker/out" in err
    assert (tmp_path / "blocker").read_text() == "not a directory\n"


def test_read_only_out_dir_is_a_clean_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with tmpfs(tmp_path / "out", "1m") as out:
        remount(out, "ro")
        path = write_config(tmp_path, "http://127.0.0.1:9", seeds={"artists": [SEED]})
        code = main(["crawl", "-c", str(path)])
        err = one_line(capsys.readouterr().err)
        assert code != 0
        assert err.startswith("error: ") and str(out) in err and "Read-only file system" in err
        assert list(out.iterdir()) == []


# -- disk full -------------------------------------------------------------------------------


def test_disk_full_stops_cleanly_and_the_rerun_with_space_is_exact(tmp_path: Path) -> None:
    with (
        sim_in_thread(SimConfig(), CATALOG) as sim,
        tmpfs(tmp_path / "out", "256k") as out,
    ):
        path = write_config(tmp_path, sim.url, seeds={"artists": [SEED]})
        code, _, err = run_crawl_cli(path)
        assert code not in (0, 2), err
        assert all(words in one_line(err) for words in NOSPACE), err
        remount(out, "size=64m")
        code, _, err = run_crawl_cli(path)
        assert code == 0, err
        assert_ground_truth(out, expected(CATALOG, load_config(path, environ={})))


class _FailingOs:
    """`os` as crawler.store.outputs sees it, whose ``n``-th writev fails with ENOSPC (once)."""

    def __init__(self, n: int) -> None:
        self._left = n

    def writev(self, fd: int, buffers: list[Any]) -> int:
        self._left -= 1
        if self._left == 0:
            data = b"".join(buffers)
            os.write(fd, data[: len(data) // 2])  # a partial line reached the disk
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return os.writev(fd, buffers)

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)


def enospc_on_the_third_jsonl_write() -> None:
    """Fault injected into a crawler child process (see crawlkit.run_crawl_cli)."""
    import crawler.store.outputs

    crawler.store.outputs.os = _FailingOs(3)  # type: ignore[assignment]


def sqlite_full_on_the_third_commit() -> None:
    """Fault injected into a crawler child process: SQLite's own disk-full error, once."""
    import aiosqlite

    execute = aiosqlite.Connection.execute
    commits = 0

    def failing(self: aiosqlite.Connection, sql: str, *args: Any) -> Any:
        nonlocal commits
        if sql == "COMMIT":
            commits += 1
            if commits == 3:
                raise sqlite3.OperationalError("database or disk is full")
        return execute(self, sql, *args)

    aiosqlite.Connection.execute = failing  # type: ignore[method-assign]


def _crawl_twice_with_a_fault(tmp_path: Path, patch: str) -> str:
    """Crawl with ``patch`` (expecting a clean stop), then without: exactly the ground truth.

    Returns the error line of the first run.
    """
    with sim_in_thread(SimConfig(), CATALOG) as sim:
        path = write_config(tmp_path, sim.url, seeds={"artists": [SEED]})
        code, _, err = run_crawl_cli(path, patch=f"{__name__}:{patch}", timeout=60)
        line = one_line(err)
        assert code not in (0, 2), err
        code, _, err = run_crawl_cli(path)
        assert code == 0, err
    assert_ground_truth(tmp_path / "out", expected(CATALOG, load_config(path, environ={})))
    return line


def test_enospc_writing_jsonl_stops_cleanly_and_the_rerun_is_exact(tmp_path: Path) -> None:
    err = _crawl_twice_with_a_fault(tmp_path, "enospc_on_the_third_jsonl_write")
    assert all(words in err for words in NOSPACE), err


def test_disk_full_at_the_sqlite_commit_stops_cleanly_and_the_rerun_is_exact(
    tmp_path: Path,
) -> None:
    err = _crawl_twice_with_a_fault(tmp_path, "sqlite_full_on_the_third_commit")
    assert "disk is full" in err and "rerun to resume" in err, err


# -- damaged checkpoints and outputs ---------------------------------------------------------


@pytest.fixture
def finished_crawl(tmp_path: Path) -> Path:
    """The config of a crawl that completed; its outputs are in tmp_path/out."""
    with sim_in_thread(SimConfig(), CATALOG) as sim:
        path = write_config(
            tmp_path, sim.url, seeds={"artists": [SEED]}, expand={"artist_albums": []}
        )
        code, _, err = run_crawl_cli(path)
    assert code == 0, err
    return path


def _refused(path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """A rerun that must be refused with exit 2 before a request; returns its error line."""
    assert main(["crawl", "-c", str(path)]) == 2
    return one_line(capsys.readouterr().err)


@pytest.mark.parametrize(
    "damage",
    [
        b"this is not a database, it was overwritten by an editor\n" * 40,
        b"SQLite format 3\x00" + bytes(range(256)) * 16,  # a header, then garbage
    ],
    ids=["garbage", "bad-pages"],
)
def test_corrupted_checkpoint_is_refused_and_left_byte_identical(
    finished_crawl: Path, capsys: pytest.CaptureFixture[str], damage: bytes
) -> None:
    out = finished_crawl.parent / "out"
    checkpoint = out / "checkpoint.db"
    checkpoint.write_bytes(damage)
    files = {p.name: p.read_bytes() for p in out.iterdir()}
    err = _refused(finished_crawl, capsys)
    assert err.startswith(f"error: {checkpoint}: checkpoint is unreadable"), err
    assert "--fresh" in err
    after = {p.name: p.read_bytes() for p in out.iterdir()}
    stats = orjson.loads(after.pop("stats.json"))
    assert {name: data for name, data in files.items() if name != "stats.json"} == after
    assert (stats["exit_code"], stats["message"]) == (2, err.removeprefix("error: "))


def test_jsonl_shorter_than_the_checkpoint_says_is_refused(
    finished_crawl: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    artists = finished_crawl.parent / "out" / "artists.jsonl"
    edited = artists.read_bytes().splitlines(keepends=True)[:-1]  # a user deleted a line
    artists.write_bytes(b"".join(edited))
    err = _refused(finished_crawl, capsys)
    assert err.startswith(f"error: {artists} has "), err
    assert "the file was edited or replaced" in err and "--fresh" in err
    assert artists.read_bytes() == b"".join(edited)
