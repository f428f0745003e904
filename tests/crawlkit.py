"""Shared by the crawl tests: configs pointed at a simulator, outputs read back and checked."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import subprocess
import sys
import threading
from collections.abc import Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest

from crawler.core.config import SIM_CREDENTIAL, Config, Credential, load_config
from crawler.core.kinds import ENTITY_STREAMS, STREAMS
from crawler.sim.catalog import Catalog
from crawler.sim.config import SimConfig
from crawler.sim.groundtruth import Expansion, GroundTruth, Search, Seeds, ground_truth
from crawler.sim.server import SimServer, start_sim
from crawler.sim.verify import read_stream, verify
from crawler.store.sqlite import committed_records

FULL = orjson.loads(orjson.dumps(dataclasses.asdict(Expansion.full())))  # plain JSON values


def write_config(
    tmp_path: Path,
    url: str,
    *,
    seeds: dict[str, list[Any]],
    expand: dict[str, Any] | None = None,
    credentials: Sequence[Credential | dict[str, Any]] | None = None,
    api: dict[str, Any] | None = None,
    crawl: dict[str, Any] | None = None,
    output: dict[str, bool] | None = None,
    store: dict[str, str] | None = None,
) -> Path:
    """A crawl.toml for a crawl of the simulator at ``url``; returns its path."""
    # A known, generous budget: these crawls measure the crawler, not the limit's discovery.
    default = msgspec.structs.replace(SIM_CREDENTIAL, rate=100_000, window_s=1)
    document = {
        "credentials": list(credentials or [default]),
        "api": {
            "base_url": url,
            "token_url": f"{url}/api/token",
            "max_retries": 4,
            "connect_timeout_s": 2,
            "read_timeout_s": 5,
            **(api or {}),
        },
        "seeds": seeds,
        "expand": {**FULL, **(expand or {})},
        "crawl": {"out_dir": "out", "concurrency": 16, "progress": "off", **(crawl or {})},
        "output": output or {},
        "store": store or {},
    }
    path = tmp_path / "crawl.toml"
    path.write_bytes(msgspec.toml.encode(document))
    return path


def config_for(tmp_path: Path, url: str, **kwargs: Any) -> Config:
    return load_config(write_config(tmp_path, url, **kwargs), environ={})


def expected(catalog: Catalog, config: Config, mode: str = "extended") -> GroundTruth:
    s, e = config.seeds, config.expand
    # A search seed is a plain string (an artist query) or a table with q, type and limit.
    searches = tuple(q if isinstance(q, str) else Search(q.q, q.type, q.limit) for q in s.search)
    return ground_truth(
        catalog,
        Seeds(s.artists, s.albums, s.tracks, s.playlists, searches),
        Expansion(
            e.related_artists,
            e.artist_albums,
            e.album_tracks,
            e.tracks,
            e.audio_features,
            e.track_artists,
        ),
        mode=mode,
    )


@dataclass
class Output:
    """The records of each stream read, and how many lines were torn."""

    records: dict[str, list[Hashable]]
    torn: int

    @property
    def ids(self) -> dict[str, list[Hashable]]:
        """The entity streams' records are their IDs."""
        return {s: records for s, records in self.records.items() if s in ENTITY_STREAMS}

    def duplicates(self) -> int:
        return sum(len(records) - len(set(records)) for records in self.records.values())

    def sets(self) -> dict[str, set[Hashable]]:
        return {name: set(records) for name, records in self.records.items()}


def read_output(out_dir: Path, streams: Iterable[str] = ENTITY_STREAMS) -> Output:
    """Every line must be a whole record of its stream; a line that is not counts as torn."""
    records: dict[str, list[Hashable]] = {}
    torn = 0
    for stream in streams:
        counts, cut = read_stream(out_dir, stream)
        records[stream] = list(counts.elements())
        torn += cut
    return Output(records, torn)


def assert_ground_truth(
    out_dir: Path, truth: GroundTruth, streams: Iterable[str] = STREAMS
) -> Output:
    """The `streams` written (by default all of them: entities and edges) are exactly the
    ground truth: no record missing or unexpected, none twice, no torn line."""
    streams = tuple(streams)
    checked = verify(out_dir, truth, streams)
    assert checked.exact, checked.problems()
    return read_output(out_dir, streams)


async def start_crawl(config_path: Path, *args: str) -> asyncio.subprocess.Process:
    """`python -m crawler crawl` in a child process, as a user (or a killer) would run it."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "crawler",
        "crawl",
        "-c",
        str(config_path),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


# -- added for the bad-input, secrets and chaos tests ---------------------------------------


@contextlib.contextmanager
def sim_in_thread(config: SimConfig, catalog: Catalog) -> Iterator[SimServer]:
    """A simulator on its own event loop in a thread, for tests that call the blocking CLI.

    `crawler.cli.main` runs its own event loop, so an in-process crawl (needed to monkeypatch
    the crawler) cannot share the test's loop with the simulator.
    """
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    sim = asyncio.run_coroutine_threadsafe(start_sim(config, catalog), loop).result(30)
    try:
        yield sim
    finally:
        asyncio.run_coroutine_threadsafe(sim.close(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()


def record_tokens(sim: SimServer) -> list[str]:
    """Every access token ``sim`` issues from now on, in order (the list fills as it runs).

    The token store prunes expired grants, so its own table is no complete record; wrapping
    `issue` of this one store instance is. It reaches into the server's private state, which
    is the simulator's own package, not the crawler's.
    """
    tokens: list[str] = []
    store = sim._state.tokens
    issue = store.issue

    def recording(client_id: str, client_secret: str) -> tuple[str, int]:
        token, expires_in = issue(client_id, client_secret)
        tokens.append(token)
        return token, expires_in

    store.issue = recording  # type: ignore[method-assign]
    return tokens


# Runs `patch` ("module:function") in the child before the CLI, to inject a fault there.
_PATCHED_CLI = """
import importlib, sys
module, _, name = sys.argv.pop(1).partition(":")
getattr(importlib.import_module(module), name)()
from crawler.cli import main
sys.exit(main(sys.argv[1:]))
"""


def run_crawl_cli(
    config_path: Path, *args: str, patch: str | None = None, timeout: float = 120
) -> tuple[int, str, str]:
    """`python -m crawler crawl` to completion: (exit code, stdout, stderr).

    With ``patch`` the child first calls that function, so a fault can be injected into a real
    crawler process; a crawl that then hangs fails the test after ``timeout`` instead of
    hanging it. The child runs from the repository root so that ``tests.…`` imports.
    """
    argv = ["-m", "crawler"] if patch is None else ["-c", _PATCHED_CLI, patch]
    try:
        proc = subprocess.run(
            [sys.executable, *argv, "crawl", "-c", str(config_path), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=Path(__file__).resolve().parents[1],
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the crawl did not end within {timeout} s (hung): {exc.stderr!r}")
    return proc.returncode, proc.stdout, proc.stderr


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` (e.g. "256k") mounted at ``path``; skips the test if not permitted."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def remount(path: Path, options: str) -> None:
    """Changes a tmpfs mounted by `tmpfs` in place (size=…, ro, rw): its files stay."""
    subprocess.run(["mount", "-o", f"remount,{options}", str(path)], check=True)


# -- interrupting a crawl at checkpoint progress, not after a fixed sleep -------------------


async def until_committed(
    proc: asyncio.subprocess.Process, checkpoint: Path, records: int, poll_s: float = 0.01
) -> None:
    """Return once ``records`` are committed; fail if the crawl ended before that.

    The poll only looks for the event (a commit past the mark): how long it takes to come
    does not matter, so the test holds on a machine of any speed.
    """
    while committed_records(checkpoint) < records:
        if proc.returncode is not None:
            _, err = await proc.communicate()
            raise AssertionError(
                f"the crawl ended (exit {proc.returncode}) before committing {records} "
                f"records: {err.decode()[-2000:]}"
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(proc.wait()), poll_s)
