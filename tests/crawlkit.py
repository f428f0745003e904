"""Shared by the crawl tests: configs pointed at a simulator, outputs read back and checked."""

from __future__ import annotations

import asyncio
import collections
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from crawler.config import Config, load_config
from crawler.sim.catalog import Catalog
from crawler.sim.groundtruth import Expansion, GroundTruth, Seeds, ground_truth
from crawler.tasks import OUTPUT_FILES

FULL = {
    "related_artists": True,
    "artist_albums": ["album", "single", "compilation"],
    "album_tracks": True,
    "tracks": "auto",
    "audio_features": True,
    "track_artists": True,
}


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return orjson.dumps(value).decode()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return str(value)


def write_config(
    tmp_path: Path,
    url: str,
    *,
    seeds: dict[str, list[str]],
    expand: dict[str, Any] | None = None,
    credentials: list[dict[str, Any]] | None = None,
    api: dict[str, Any] | None = None,
    crawl: dict[str, Any] | None = None,
) -> Path:
    """A crawl.toml for a crawl of the simulator at ``url``; returns its path."""
    credentials = credentials or [
        {"client_id": "sim-client", "client_secret": "sim-secret", "account": "sim-account"}
    ]
    sections: dict[str, dict[str, Any]] = {
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
    }
    lines = []
    for cred in credentials:
        lines.append("[[credentials]]")
        lines += [f"{k} = {toml_value(v)}" for k, v in cred.items()]
    for name, table in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in table.items()]
    path = tmp_path / "crawl.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def config_for(tmp_path: Path, url: str, **kwargs: Any) -> Config:
    return load_config(write_config(tmp_path, url, **kwargs), environ={})


def expected(catalog: Catalog, config: Config, mode: str = "extended") -> GroundTruth:
    s, e = config.seeds, config.expand
    return ground_truth(
        catalog,
        Seeds(s.artists, s.albums, s.tracks, s.playlists, s.search),
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
    ids: dict[str, list[str]]
    torn: int

    def duplicates(self) -> int:
        return sum(
            n - 1 for ids in self.ids.values() for n in collections.Counter(ids).values() if n > 1
        )

    def sets(self) -> dict[str, set[str]]:
        return {name: set(ids) for name, ids in self.ids.items()}


def read_output(out_dir: Path) -> Output:
    """Every line must be a JSON object with an id; a line that is not counts as torn."""
    ids: dict[str, list[str]] = {}
    torn = 0
    for name in OUTPUT_FILES.values():
        key = name.removesuffix(".jsonl")
        ids[key] = []
        path = out_dir / name
        if not path.exists():
            continue
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            torn += 1
        for line in data.splitlines():
            try:
                obj = orjson.loads(line)
                ids[key].append(obj["id"])
            except (orjson.JSONDecodeError, KeyError, TypeError):
                torn += 1
    return Output(ids, torn)


def assert_ground_truth(out_dir: Path, truth: GroundTruth) -> Output:
    output = read_output(out_dir)
    assert output.torn == 0
    assert output.duplicates() == 0
    sets = output.sets()
    assert sets["artists"] == set(truth.artists)
    assert sets["albums"] == set(truth.albums)
    assert sets["tracks"] == set(truth.tracks)
    assert sets["audio_features"] == set(truth.audio_features)
    return output


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
