"""The benchmark's own parts: configs it writes, its output checks, and the peer scripts.

A benchmark whose peers crawl less than the crawler, or whose checker waves a wrong crawl
through, would report a win that is not there; these tests keep both honest.  The peer runs
need spotipy and tekore (in the `test` and `bench` extras): skipped without them, failed
under CI=true.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path

import orjson
import pytest

from crawler.core.config import load_config
from crawler.sim.catalog import Catalog
from crawler.sim.config import SimConfig
from crawler.sim.server import start_sim
from tests.pg import unavailable

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
sys.path.insert(0, str(SCRIPTS))

import benchlib  # noqa: E402
from peers.peerlib import OUTPUT_FILES  # noqa: E402

ARTISTS = 30


@pytest.fixture(scope="module")
def truth() -> benchlib.Truth:
    return benchlib.ground_truth(ARTISTS, seed=1)


def _write(out: Path, ids: dict[str, list[str]]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for kind, name in OUTPUT_FILES.items():
        lines = (orjson.dumps({"id": i}) + b"\n" for i in ids.get(kind, []))
        (out / name).write_bytes(b"".join(lines))


def test_verify_accepts_exact_sets_only(tmp_path: Path, truth: benchlib.Truth) -> None:
    exact = {kind: sorted(ids) for kind, ids in truth.ids.items()}
    _write(tmp_path / "exact", exact)
    assert benchlib.verify(tmp_path / "exact", truth).ok

    duplicated = {**exact, "albums": [*exact["albums"], exact["albums"][0]]}
    _write(tmp_path / "dup", duplicated)
    verdict = benchlib.verify(tmp_path / "dup", truth)
    assert not verdict.ok
    assert verdict.problems == ["albums.jsonl: 1 duplicate lines"]

    short = {**exact, "tracks": exact["tracks"][1:]}
    _write(tmp_path / "short", short)
    assert benchlib.verify(tmp_path / "short", truth).problems == [
        "tracks.jsonl: 1 missing, 0 unexpected"
    ]


def test_crawler_config_is_valid(tmp_path: Path, truth: benchlib.Truth) -> None:
    credentials = [
        benchlib.Credential("A", "secretA", "acctA", rate=300, window_s=30),
        benchlib.Credential("B", "secretB", "acctB"),
    ]
    path = tmp_path / "crawl.toml"
    path.write_text(
        benchlib.crawler_config("http://127.0.0.1:9", truth.seeds, tmp_path / "out", credentials)
    )
    config = load_config(path)
    assert [c.rate for c in config.credentials] == [300, 0]
    assert config.api.token_url == "http://127.0.0.1:9/api/token"
    assert config.seeds.artists == truth.seeds
    assert config.crawl.out_dir == tmp_path / "out"


@pytest.mark.parametrize(
    ("library", "script"), [("spotipy", "spotipy_bfs.py"), ("tekore", "tekore_bfs.py")]
)
async def test_peer_crawls_the_ground_truth(
    tmp_path: Path, truth: benchlib.Truth, library: str, script: str
) -> None:
    if importlib.util.find_spec(library) is None:
        unavailable(f'{library} is not installed: pip install -e ".[test]"')
    server = await start_sim(SimConfig(), Catalog(ARTISTS, seed=1))
    try:
        argv = benchlib.peer_argv(script, server.url, tmp_path, truth.seeds)
        proc = await asyncio.create_subprocess_exec(*argv, stderr=asyncio.subprocess.PIPE)
        _, stderr = await asyncio.wait_for(proc.communicate(), timeout=120)
        assert proc.returncode == 0, stderr.decode()
        stats = await server.stats()
    finally:
        await server.close()
    verdict = benchlib.verify(tmp_path, truth)
    assert verdict.ok, verdict.problems
    # Level-by-level batches may be partial at each level, but never by much.
    assert truth.min_calls <= benchlib.api_calls(stats) <= truth.min_calls * 1.05
