"""`spotify-crawler export`: every format's tables hold exactly the rows the JSON lines imply.

The sources are real crawls of the simulator (both modes) plus edge-stream files written here
from the simulator's model, the way the crawler will write them (related artists with ranks,
artist albums with groups, playlists and their items, local files and episodes included).
Expected rows are derived from the JSON lines by this file's own reading of the objects, not by
the export's SQL, and compared in full and in order.
"""

from __future__ import annotations

import asyncio
import collections
import csv
import datetime as dt
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from crawler.cli import main
from crawler.cli.crawl import run_crawl
from crawler.core.config import Config
from crawler.core.kinds import STREAMS, stream_file
from crawler.export import (
    INSTALL_HINT,
    TABLES,
    ExportError,
    ExportSource,
    dataset_json_path,
    export,
)
from crawler.export import convert as convert_module
from crawler.sim.catalog import Catalog
from crawler.sim.config import SimConfig
from crawler.sim.server import start_sim
from tests.crawlkit import config_for

CATALOG = Catalog(24, seed=3, playlists=40)
TABLE_FORMATS = ("parquet", "duckdb", "sqlite", "csv")
EPOCH = 1_767_225_600.0

# The public interface (issue 13): each table has at least these columns, in this order.
PUBLIC = {
    "artists": "id name genres popularity followers image_url fetched_at",
    "albums": "id name album_type release_date release_date_precision release_year total_tracks "
    "label popularity upc fetched_at",
    "tracks": "id name album_id disc_number track_number duration_ms explicit popularity isrc "
    "fetched_at",
    "audio_features": "track_id danceability energy key loudness mode speechiness acousticness "
    "instrumentalness liveness valence tempo time_signature duration_ms",
    "album_artists": "album_id artist_id position",
    "track_artists": "track_id artist_id position",
    "artist_albums": "artist_id album_id album_group position",
    "related_artists": "artist_id related_artist_id rank",
    "playlists": "id name owner_id snapshot_id followers total_items fetched_at",
    "playlist_items": "playlist_id position item_type item_id added_at added_by is_local",
}


@dataclass(frozen=True)
class Crawl:
    config: Config
    out: Path
    extended: bool

    def source(self, **changes: Any) -> ExportSource:
        """The crawl's streams, with a commit time for every entity (distinct, increasing)."""
        source = ExportSource(
            jsonl={s: self.out / stream_file(s) for s in STREAMS},
            fetched_at={s: list(fetched_times(self.out, s).items()) for s in FETCHED},
            dataset={"api_mode": "test"},
        )
        return replace(source, **changes)


FETCHED = ("artists", "albums", "tracks", "playlists")


def fetched_times(out: Path, stream: str) -> dict[str, float]:
    offset = FETCHED.index(stream) * 100_000
    return {o["id"]: EPOCH + offset + k / 4 for k, o in enumerate(objects(out, stream))}


def objects(out: Path, stream: str) -> list[dict[str, Any]]:
    path = out / stream_file(stream)
    return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


# -- the sources: a crawl, then edge streams written from the simulator's model ----------


def varied_playlists(count: int = 2) -> list[str]:
    """Playlists whose items hold every kind: tracks, episodes, local files, removed tracks."""
    view = CATALOG.view()
    chosen = []
    for q in range(CATALOG.playlists):
        items = orjson.loads(view.playlist_items_json(q, 0, 100, "tracks"))["items"]
        kinds = {(i["item"] or {}).get("type") for i in items} | {
            "local" for i in items if i["is_local"]
        }
        if {"track", "episode", "local", None} <= kinds:
            chosen.append(CATALOG.playlist_id(q))
    assert len(chosen) >= count, "the catalog needs playlists with every kind of item"
    return chosen[:count]


def crawl(tmp: Path, mode: str) -> Crawl:
    """A real crawl writes every stream: entities, related artists, artist albums, playlists
    (seeded) and their items."""
    seeds = {"artists": [CATALOG.artist_id(1)], "playlists": varied_playlists()}

    async def run() -> Config:
        async with await start_sim(SimConfig(mode=mode), CATALOG) as sim:
            config = config_for(tmp, sim.url, seeds=seeds)
            result = await run_crawl(config)
            assert result.exit_code == 0, result.message
            return config

    config = asyncio.run(run())
    return Crawl(config, config.crawl.out_dir, mode == "extended")


@pytest.fixture(scope="module")
def extended(tmp_path_factory: pytest.TempPathFactory) -> Crawl:
    return crawl(tmp_path_factory.mktemp("extended"), "extended")


@pytest.fixture(scope="module")
def development(tmp_path_factory: pytest.TempPathFactory) -> Crawl:
    return crawl(tmp_path_factory.mktemp("development"), "development")


# -- what the JSON lines imply, read independently of the export -------------------------


def iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def epoch_iso(epoch: float) -> str:
    return iso(dt.datetime.fromtimestamp(epoch, dt.UTC))


def first_url(obj: dict[str, Any]) -> str | None:
    return obj["images"][0]["url"] if obj.get("images") else None


def total(obj: dict[str, Any], key: str) -> int | None:
    return (obj.get(key) or {}).get("total")


def expected_tables(crawl: Crawl, with_fetched: bool = True) -> dict[str, list[tuple[Any, ...]]]:
    out = crawl.out
    at = {
        s: {k: epoch_iso(v) for k, v in fetched_times(out, s).items()} if with_fetched else {}
        for s in FETCHED
    }
    artists, albums = objects(out, "artists"), objects(out, "albums")
    tracks, playlists = objects(out, "tracks"), objects(out, "playlists")
    features = objects(out, "audio_features")
    feature_names = PUBLIC["audio_features"].split()[1:]

    def credits(objs: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return [(o["id"], a["id"], k) for o in objs for k, a in enumerate(o["artists"])]

    def edges(stream: str, keys: str) -> list[tuple[Any, ...]]:
        return [tuple(o[k] for k in keys.split()) for o in objects(out, stream)]

    rows = {
        "artists": [
            (
                o["id"],
                o["name"],
                o["genres"],
                o.get("popularity"),
                total(o, "followers"),
                first_url(o),
                at["artists"].get(o["id"]),
            )
            for o in artists
        ],
        "albums": [
            (
                o["id"],
                o["name"],
                o["album_type"],
                o["release_date"],
                o["release_date_precision"],
                int(o["release_date"][:4]),
                o["total_tracks"],
                o.get("label"),
                o.get("popularity"),
                o["external_ids"]["upc"],
                at["albums"].get(o["id"]),
                first_url(o),
            )
            for o in albums
        ],
        "tracks": [
            (
                o["id"],
                o["name"],
                o["album"]["id"],
                o["disc_number"],
                o["track_number"],
                o["duration_ms"],
                o["explicit"],
                o.get("popularity"),
                o.get("external_ids", {}).get("isrc"),
                at["tracks"].get(o["id"]),
                o["is_local"],
            )
            for o in tracks
        ],
        "audio_features": [(o["id"], *(o[k] for k in feature_names)) for o in features],
        "album_artists": credits(albums),
        "track_artists": credits(tracks),
        "artist_albums": edges("artist_albums", "artist_id album_id album_group position"),
        "related_artists": edges("related_artists", "artist_id related_artist_id rank"),
        "playlists": [
            (
                o["id"],
                o["name"],
                o["owner"]["id"],
                o["snapshot_id"],
                total(o, "followers"),
                total(o, "items"),
                at["playlists"].get(o["id"]),
                o["owner"]["display_name"],
                o["description"],
                o["public"],
                o["collaborative"],
            )
            for o in playlists
        ],
        "playlist_items": [
            (
                o["playlist_id"],
                o["position"],
                o["item_type"],
                o["item_id"],
                iso(dt.datetime.fromisoformat(o["added_at"])) if o["added_at"] else None,
                o["added_by"],
                o["is_local"],
                o["snapshot_id"],
            )
            for o in objects(out, "playlist_items")
        ],
    }
    for table in TABLES:  # in the export's documented order
        index = [[c.name for c in table.columns].index(k) for k in table.order]
        rows[table.name].sort(key=lambda r: tuple((r[i] is None, r[i]) for i in index))
    return rows


# -- reading an export back, whatever its format ------------------------------------------


def normal(kind: str, value: Any, fmt: str) -> Any:
    """One value as Python sees it in the JSON lines, from how ``fmt`` stores it."""
    if fmt == "csv" and value == "":
        return None
    if value is None:
        return None
    if kind == "time":
        return iso(value) if isinstance(value, dt.datetime) else value
    if fmt == "csv":
        return {
            "int": int,
            "real": float,
            "bool": lambda v: {"true": True, "false": False}[v],
            "list": orjson.loads,
            "text": str,
        }[kind](value)
    if fmt == "sqlite" and kind == "bool":
        return bool(value)
    if fmt == "sqlite" and kind == "list":
        return orjson.loads(value)
    return value


def read_export(fmt: str, to: Path) -> dict[str, tuple[list[str], list[tuple[Any, ...]]]]:
    """table → (column names, rows), values normalised to what the JSON lines hold."""
    raw: dict[str, tuple[list[str], list[tuple[Any, ...]]]] = {}
    for table in TABLES:
        if fmt == "csv":
            with (to / f"{table.name}.csv").open(newline="") as f:
                header, *rows = list(csv.reader(f))
            raw[table.name] = (header, [tuple(r) for r in rows])
        elif fmt == "sqlite":
            with sqlite3.connect(to) as db:
                cur = db.execute(f"SELECT * FROM {table.name}")
                raw[table.name] = ([d[0] for d in cur.description], cur.fetchall())
        else:
            con = duckdb.connect(str(to), read_only=True) if fmt == "duckdb" else duckdb.connect()
            con.execute("SET TimeZone = 'UTC'")
            name = table.name if fmt == "duckdb" else f"read_parquet('{to / table.name}.parquet')"
            cur = con.execute(f"SELECT * FROM {name}")
            raw[table.name] = ([d[0] for d in cur.description], cur.fetchall())
            con.close()
    kinds = {t.name: [c.kind for c in t.columns] for t in TABLES}
    return {
        name: (
            cols,
            [tuple(normal(k, v, fmt) for k, v in zip(kinds[name], r, strict=True)) for r in rows],
        )
        for name, (cols, rows) in raw.items()
    }


# -- the tests ----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", TABLE_FORMATS)
def test_every_table_has_exactly_the_rows_the_json_lines_imply(
    extended: Crawl, tmp_path: Path, fmt: str
) -> None:
    result = export(extended.source(), fmt, tmp_path / "x")  # type: ignore[arg-type]
    got = read_export(fmt, tmp_path / "x")
    want = expected_tables(extended)
    assert set(got) == set(PUBLIC)
    for name, (columns, rows) in got.items():
        assert columns[: len(PUBLIC[name].split())] == PUBLIC[name].split(), name
        assert rows == want[name], name  # every row, every value, in the documented order
        assert result.rows[name] == len(rows)
    # A real crawl with every kind of row; keys unique where they are keys.
    assert len(want["tracks"]) > 1000 and len(want["related_artists"]) > 100
    for name, key in (("artists", 1), ("albums", 1), ("tracks", 1), ("track_artists", 3)):
        keys = [r[:key] for r in got[name][1]]
        assert len(keys) == len(set(keys)), name
    multi = collections.Counter(r[0] for r in want["track_artists"])
    assert max(multi.values()) >= 2  # positions are checked on tracks with several artists


def test_development_mode_objects_give_nulls(development: Crawl, tmp_path: Path) -> None:
    for fmt in ("parquet", "sqlite"):
        export(development.source(), fmt, tmp_path / fmt)  # type: ignore[arg-type]
        got = read_export(fmt, tmp_path / fmt)
        assert {n: r for n, (_, r) in got.items()} == expected_tables(development)
        assert got["artists"][1] and got["albums"][1] and got["tracks"][1]
        for table, name in (
            ("artists", "popularity"),
            ("artists", "followers"),
            ("albums", "label"),
            ("albums", "popularity"),
            ("tracks", "popularity"),
            ("artist_albums", "album_group"),
            ("playlists", "followers"),
        ):
            columns, rows = got[table]
            assert {r[columns.index(name)] for r in rows} == {None}, (table, name)
        # The edges a development-mode app is refused are empty tables, not missing ones.
        assert got["audio_features"][1] == [] and got["related_artists"][1] == []


def test_absent_streams_export_as_empty_tables(extended: Crawl, tmp_path: Path) -> None:
    only = {"artists": extended.out / "artists.jsonl"}
    result = export(ExportSource(only), "parquet", tmp_path / "x")
    assert result.rows["artists"] == len(objects(extended.out, "artists")) > 0
    assert all(n == 0 for name, n in result.rows.items() if name != "artists")
    got = read_export("parquet", tmp_path / "x")
    assert all(got[name][1] == [] for name in result.rows if name != "artists")
    assert result.first_fetched_at is None
    assert {r[-1] for r in got["artists"][1]} == {None}  # no commit times given: null


@pytest.mark.parametrize("fmt", [*TABLE_FORMATS, "jsonl"])
def test_exporting_twice_gives_identical_tables(extended: Crawl, tmp_path: Path, fmt: str) -> None:
    first = export(extended.source(), fmt, tmp_path / "a")  # type: ignore[arg-type]
    second = export(extended.source(), fmt, tmp_path / "b")  # type: ignore[arg-type]
    assert first.rows == second.rows
    if fmt == "jsonl":
        return
    assert read_export(fmt, tmp_path / "a") == read_export(fmt, tmp_path / "b")
    if fmt in ("parquet", "csv"):  # the files themselves are byte for byte the same
        for table in TABLES:
            name = f"{table.name}.{fmt}"
            assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_jsonl_copies_the_committed_bytes_of_every_stream(extended: Crawl, tmp_path: Path) -> None:
    result = export(extended.source(), "jsonl", tmp_path / "x")
    for stream in STREAMS:
        data = (extended.out / stream_file(stream)).read_bytes()
        assert (tmp_path / "x" / stream_file(stream)).read_bytes() == data
        assert result.rows[stream] == data.count(b"\n")
    assert result.rows["tracks"] > 1000


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_only_the_committed_prefix_is_exported(extended: Crawl, tmp_path: Path, fmt: str) -> None:
    """A running crawl appends past the committed length; an interrupted one leaves a torn
    tail. Neither reaches the export (the table formats read a copy of the prefix)."""
    src = tmp_path / "src"
    src.mkdir()
    lengths = {}
    for stream in STREAMS:
        data = (extended.out / stream_file(stream)).read_bytes()
        lengths[stream] = len(data)
        (src / stream_file(stream)).write_bytes(data + data[: len(data) // 3 + 7])  # uncommitted
    source = extended.source(jsonl={s: src / stream_file(s) for s in STREAMS}, lengths=lengths)
    result = export(source, fmt, tmp_path / "x")  # type: ignore[arg-type]
    if fmt == "jsonl":
        for stream in STREAMS:
            copied = (tmp_path / "x" / stream_file(stream)).read_bytes()
            assert copied == (extended.out / stream_file(stream)).read_bytes()
    else:
        got = read_export(fmt, tmp_path / "x")
        assert {n: r for n, (_, r) in got.items()} == expected_tables(extended)
    assert result.rows["tracks"] == len(objects(extended.out, "tracks"))


def test_fetched_at_is_joined_by_id_and_summarised(extended: Crawl, tmp_path: Path) -> None:
    result = export(extended.source(), "duckdb", tmp_path / "x.duckdb")
    times = [t for s in FETCHED for t in fetched_times(extended.out, s).values()]
    first, last = (dt.datetime.fromtimestamp(t, dt.UTC) for t in (min(times), max(times)))
    assert result.first_fetched_at == first.isoformat(timespec="microseconds")
    assert result.last_fetched_at == last.isoformat(timespec="microseconds")
    card = orjson.loads(dataset_json_path("duckdb", tmp_path / "x.duckdb").read_bytes())
    assert (card["first_fetched_at"], card["last_fetched_at"]) == (
        result.first_fetched_at,
        result.last_fetched_at,
    )
    assert card["tables"] == result.rows and card["files"] == ["x.duckdb"]
    assert card["format"] == "duckdb" and card["api_mode"] == "test"


# -- the command line ---------------------------------------------------------------------


def cli(crawl: Crawl, *args: str) -> int:
    return main(["export", "-c", str(crawl.config.path), *args])


def test_cli_writes_the_dataset_card(
    development: Crawl, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    to = tmp_path / "pq"
    assert cli(development, "--format", "parquet", "--to", str(to)) == 0
    assert f"to {to}" in capsys.readouterr().out
    card = orjson.loads((to / "dataset.json").read_bytes())
    got = read_export("parquet", to)
    assert card["tables"] == {name: len(rows) for name, (_, rows) in got.items()}
    assert sorted(card["files"]) == sorted(f"{t.name}.parquet" for t in TABLES)
    assert sorted(p.name for p in to.iterdir()) == sorted([*card["files"], "dataset.json"])
    seeds = development.config.seeds
    assert card["seeds"]["artists"] == list(seeds.artists)
    assert len(card["fingerprint"]) == 64 and card["api_mode"] == "auto"
    assert card["expand"]["related_artists"] is True
    # The crawl of a development-mode app learned that these edges are refused.
    assert card["capabilities"]["related_artists"] is False
    assert card["unavailable_edges"] == ["related_artists", "audio_features"]
    # The store keeps every entity's commit time: the card spans them, every row has one.
    assert card["first_fetched_at"] <= card["last_fetched_at"]
    unfetched = {}
    for table, (columns, rows) in got.items():
        if "fetched_at" not in columns:
            unfetched[table] = rows
            continue
        at = columns.index("fetched_at")
        assert all(row[at] is not None for row in rows), table
        unfetched[table] = [(*row[:at], None, *row[at + 1 :]) for row in rows]
    assert unfetched == expected_tables(development, False)


def test_cli_default_target_and_existing_target_refused_without_force(
    extended: Crawl, capsys: pytest.CaptureFixture[str]
) -> None:
    to = extended.out / "export" / "spotify.sqlite"
    assert cli(extended, "--format", "sqlite") == 0
    first = read_export("sqlite", to)
    capsys.readouterr()
    assert cli(extended, "--format", "sqlite") == 2
    err = capsys.readouterr().err
    assert err == f"error: {to} already exists; pass --force to replace it\n"
    assert read_export("sqlite", to) == first
    to.write_bytes(b"not a database")
    assert cli(extended, "--format", "sqlite", "--force") == 0
    assert read_export("sqlite", to) == first
    assert dataset_json_path("sqlite", to).exists()


def test_cli_refuses_a_target_holding_the_crawl(
    extended: Crawl, capsys: pytest.CaptureFixture[str]
) -> None:
    before = sorted(p.name for p in extended.out.iterdir())
    assert cli(extended, "--format", "jsonl", "--to", str(extended.out), "--force") == 2
    assert "holds the crawl's own" in capsys.readouterr().err
    assert sorted(p.name for p in extended.out.iterdir()) == before


def test_cli_without_duckdb_says_how_to_install_it(
    extended: Crawl,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, "duckdb", None)  # `import duckdb` now raises ImportError
    assert cli(extended, "--format", "parquet", "--to", str(tmp_path / "x")) == 2
    assert capsys.readouterr().err == f"error: this export needs DuckDB: {INSTALL_HINT}\n"
    assert not (tmp_path / "x").exists()
    # JSON lines need no DuckDB.
    assert cli(extended, "--format", "jsonl", "--to", str(tmp_path / "j")) == 0


@pytest.mark.parametrize("tail", [b"", b'{"id": "uncommitted"}\n'])
def test_a_bad_line_is_one_error_and_publishes_nothing(
    extended: Crawl, tmp_path: Path, tail: bytes
) -> None:
    """Also when the committed prefix is read from a copy, which is removed with the rest."""
    bad = tmp_path / "tracks.jsonl"
    data = (extended.out / "tracks.jsonl").read_bytes() + b'{"id": "x", "name": \n'
    bad.write_bytes(data + tail)
    source = extended.source(jsonl={"tracks": bad}, lengths={"tracks": len(data)})
    with pytest.raises(ExportError, match=str(bad)):
        export(source, "parquet", tmp_path / "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tracks.jsonl"]


# -- interrupted exports ------------------------------------------------------------------


class Interrupted(Exception):
    pass


@pytest.fixture
def interrupt_at_third_table(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Raise inside the export once two tables (or streams) are written."""
    progress = convert_module._progress
    written: list[str] = []

    def failing(name: str, rows: int, started: float) -> None:
        progress(name, rows, started)
        if not name.startswith("read "):
            written.append(name)
        if len(written) == 2:
            raise Interrupted

    monkeypatch.setattr(convert_module, "_progress", failing)
    yield
    assert len(written) == 2  # the export did get that far


@pytest.mark.parametrize("fmt", [*TABLE_FORMATS, "jsonl"])
def test_an_interrupted_export_leaves_no_target(
    extended: Crawl, tmp_path: Path, fmt: str, interrupt_at_third_table: None
) -> None:
    with pytest.raises(Interrupted):
        export(extended.source(), fmt, tmp_path / "x")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []  # no target, no dataset.json, no work directory


def test_an_interrupted_replacement_keeps_the_previous_target(
    extended: Crawl, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    to = tmp_path / "x"
    export(extended.source(), "csv", to)
    before = {p.name: p.read_bytes() for p in to.iterdir()}

    def fail(*_args: Any) -> int:
        raise Interrupted

    monkeypatch.setitem(convert_module._WRITERS, "csv", fail)
    with pytest.raises(Interrupted):
        export(extended.source(), "csv", to, force=True)
    assert {p.name: p.read_bytes() for p in to.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x"]


def test_sqlite_rows_cross_chunk_boundaries(
    extended: Crawl, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(convert_module, "SQLITE_CHUNK", 7)
    export(extended.source(), "sqlite", tmp_path / "x.sqlite")
    got = read_export("sqlite", tmp_path / "x.sqlite")
    assert {n: r for n, (_, r) in got.items()} == expected_tables(extended)


# -- offline ------------------------------------------------------------------------------


def test_duckdb_installs_and_loads_no_extension(extended: Crawl, tmp_path: Path) -> None:
    """DuckDB keeps installed extensions under ~/.duckdb: with HOME empty and every proxy
    pointing nowhere, an export that tried to download one would fail or leave a file."""
    home = tmp_path / "home"
    home.mkdir()
    env = {
        **os.environ,
        "HOME": str(home),
        "http_proxy": "http://127.0.0.1:9",
        "https_proxy": "http://127.0.0.1:9",
    }
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "crawler", "export", "-c", str(extended.config.path)),
            *("--format", "parquet", "--to", str(tmp_path / "x")),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert proc.returncode == 0, proc.stderr
    assert list(home.iterdir()) == []
    assert "artists: " in proc.stderr  # a progress line per table
