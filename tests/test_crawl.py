"""Exhaustive crawls of the simulator: exact ground truth, near-minimal calls, seeds, resume."""

from __future__ import annotations

from pathlib import Path

import pytest

from crawler.cli.crawl import run_crawl
from crawler.core.errors import ConfigError
from crawler.core.kinds import ENTITY_STREAMS
from crawler.core.tasks import Op, Outcome, Task
from crawler.crawl.expand import LEADS_TO, Expander, feeders
from crawler.sim.catalog import Catalog
from crawler.sim.config import SimConfig
from crawler.sim.server import start_sim
from tests.crawlkit import assert_ground_truth, config_for, expected, read_output

CATALOG = Catalog(60, seed=3)


def existing_artist(catalog: Catalog, start: int = 0) -> str:
    return catalog.first_artist_ids(start=start)[0]


def api_calls(stats: dict) -> int:
    return stats["total"] - stats["by_endpoint"].get("token", 0)


@pytest.mark.parametrize("mode", ["extended", "development"])
async def test_exhaustive_crawl_is_the_ground_truth(tmp_path: Path, mode: str) -> None:
    async with await start_sim(SimConfig(mode=mode), CATALOG) as sim:
        config = config_for(tmp_path, sim.url, seeds={"artists": [existing_artist(CATALOG)]})
        result = await run_crawl(config)
        stats = await sim.stats()
    assert (result.exit_code, result.complete) == (0, True)
    truth = expected(CATALOG, config, mode)
    output = assert_ground_truth(config.crawl.out_dir, truth)
    assert len(output.ids["tracks"]) > 1000  # a real crawl, not a trivial one
    if mode == "extended":
        assert api_calls(stats) <= 1.02 * truth.min_calls
    else:  # auto mode probes each refused endpoint once on top of the single-ID minimum
        assert api_calls(stats) <= truth.min_calls + 8


def every_seed_kind(catalog: Catalog) -> dict[str, list[str]]:
    album = catalog.album_ids_of(2)[0]
    track = catalog.track_ids_of(4, 0)[0]
    name = catalog.view().artist(catalog.decode(existing_artist(catalog, 7)).main)["name"]
    return {
        "artists": [f"spotify:artist:{existing_artist(catalog, 1)}"],
        "albums": [f"https://open.spotify.com/album/{album}?si=abc"],
        "tracks": [track],
        "playlists": [f"https://open.spotify.com/intl-fr/playlist/{catalog.playlist_id(0)}"],
        "search": [name],
    }


async def test_every_seed_kind_and_form(tmp_path: Path) -> None:
    catalog = Catalog(30, seed=5)
    seeds = every_seed_kind(catalog)
    album, track = catalog.album_ids_of(2)[0], seeds["tracks"][0]
    expand = {"related_artists": False, "track_artists": False}
    async with await start_sim(SimConfig(), catalog) as sim:
        config = config_for(tmp_path, sim.url, seeds=seeds, expand=expand)
        result = await run_crawl(config)
    assert result.exit_code == 0
    truth = expected(catalog, config)
    output = assert_ground_truth(config.crawl.out_dir, truth)
    assert {album} <= output.sets()["albums"] and {track} <= output.sets()["tracks"]


async def test_units_lead_only_where_the_engine_expects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine sends a partial batch at once when no unit can add to it (``LEADS_TO``):
    an edge the expander follows but the table lacks would cost requests, so check them all."""
    catalog = Catalog(30, seed=5)
    edges: set[tuple[Op, Op]] = set()
    run = Expander.run

    async def recording(self: Expander, op: Op, tasks: list[Task]) -> Outcome:
        outcome = await run(self, op, tasks)
        edges.update((op, found) for found, _ in outcome.discovered)
        edges.update((op, found) for found, _, _ in outcome.new_lines)
        return outcome

    monkeypatch.setattr(Expander, "run", recording)
    async with await start_sim(SimConfig(), catalog) as sim:
        config = config_for(tmp_path, sim.url, seeds=every_seed_kind(catalog))
        assert (await run_crawl(config)).exit_code == 0
    seeded = feeders(seed_tracks=True)
    assert {src for src, _ in edges} >= set(Op) - {Op.FEATURES}  # every kind of unit ran
    assert all(src in seeded[dst] for src, dst in edges)
    assert all(dst in LEADS_TO[src] for src, dst in edges if src is not Op.TRACK)
    assert Op.TRACK not in feeders(seed_tracks=False)[Op.FEATURES]


async def test_max_artists_bounds_the_crawl(tmp_path: Path) -> None:
    async with await start_sim(SimConfig(), CATALOG) as sim:
        config = config_for(
            tmp_path,
            sim.url,
            seeds={"artists": [existing_artist(CATALOG)]},
            expand={"max_artists": 7, "artist_albums": []},
        )
        assert (await run_crawl(config)).exit_code == 0
    output = read_output(config.crawl.out_dir)
    assert output.duplicates() == 0
    assert 1 <= len(output.ids["artists"]) <= 7


async def test_rerun_of_a_complete_crawl_writes_nothing_new(tmp_path: Path) -> None:
    async with await start_sim(SimConfig(), CATALOG) as sim:
        config = config_for(tmp_path, sim.url, seeds={"artists": [existing_artist(CATALOG)]})
        assert (await run_crawl(config)).exit_code == 0
        before = {p.name: p.read_bytes() for p in config.crawl.out_dir.glob("*.jsonl")}
        sim.reset_stats()
        assert (await run_crawl(config)).exit_code == 0
        assert api_calls(await sim.stats()) == 0
    after = {p.name: p.read_bytes() for p in config.crawl.out_dir.glob("*.jsonl")}
    assert after == before


async def test_no_seeds_is_a_config_error(tmp_path: Path) -> None:
    config = config_for(tmp_path, "http://127.0.0.1:9", seeds={})
    with pytest.raises(ConfigError, match="no seeds configured"):
        await run_crawl(config)


def typed_searches(catalog: Catalog) -> list[dict[str, object]]:
    """A search of each kind, paged (limits beyond one page), from the catalog's own words."""
    model = catalog.model
    genre = next(g for i in range(catalog.artists) for g in model.artist(i).genres if " " in g)
    album_word = model.album(*catalog.decode(catalog.album_ids_of(2)[0])[1:3]).name.split()[0]
    return [
        {"q": f'genre:"{genre}"', "type": "track", "limit": 25},
        {"q": album_word, "type": "album", "limit": 12},
        {"q": "mix", "type": "playlist", "limit": 15},
        {"q": "zzz no such name", "type": "artist", "limit": 5},
    ]


@pytest.mark.parametrize("mode", ["extended", "development"])
async def test_typed_searches_and_playlists_are_the_ground_truth(tmp_path: Path, mode: str) -> None:
    """Every stream exact: search results of every kind become seeds (paged, 10 a page in
    development mode), playlists are written with every item, of every kind, by position."""
    catalog = Catalog(30, seed=5, playlists=40)
    seeds = {"search": typed_searches(catalog), "playlists": [catalog.playlist_id(1)]}
    expand = {"artist_albums": [], "related_artists": False}
    async with await start_sim(SimConfig(mode=mode), catalog) as sim:
        config = config_for(tmp_path, sim.url, seeds=seeds, expand=expand)
        result = await run_crawl(config)
        calls = (await sim.stats())["by_endpoint"]
    assert result.exit_code == 0, result.message
    truth = expected(catalog, config, mode)
    assert_ground_truth(config.crawl.out_dir, truth)
    assert len(truth.playlists) > 2 and len(truth.playlist_items) > 100
    kinds = {item[2] for item in truth.playlist_items}
    assert kinds == {"track", "episode", None}  # catalog tracks, episodes, removed tracks
    assert len(truth.tracks) > 25  # the genre search found tracks, more than one page's worth
    # A development-mode app in mode "auto" may be refused limit 50 once per search first.
    probes = len(seeds["search"]) if mode == "development" else 0
    assert truth.calls["search"] <= calls["search"] <= truth.calls["search"] + probes


async def test_edge_streams_switched_off_are_not_written(tmp_path: Path) -> None:
    catalog = Catalog(30, seed=5)
    off = dict.fromkeys(("playlists", "related_artists", "artist_albums", "playlist_items"), False)
    seeds = {"artists": [existing_artist(catalog)], "playlists": [catalog.playlist_id(0)]}
    async with await start_sim(SimConfig(), catalog) as sim:
        config = config_for(tmp_path, sim.url, seeds=seeds, output=off)
        assert (await run_crawl(config)).exit_code == 0
    out = config.crawl.out_dir
    assert sorted(p.name for p in out.glob("*.jsonl")) == [
        "albums.jsonl",
        "artists.jsonl",
        "audio_features.jsonl",
        "tracks.jsonl",
    ]
    assert_ground_truth(out, expected(catalog, config), ENTITY_STREAMS)
