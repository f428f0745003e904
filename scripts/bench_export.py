"""Benchmark ``spotify-crawler export``: wall time and peak RSS of each format on a 1M-track crawl.

The crawl's outputs are synthesised from the simulator's renderer (every object a crawl of the
whole catalog writes, in the API's own bytes, plus the edge streams the crawl will write:
related artists, artist albums, playlists and their items) instead of crawling for minutes;
``--from DIR`` exports a real crawl's ``out_dir`` instead. Each export runs in its own process,
measured from outside (wall time, CPU, VmHWM) by ``benchlib.run_measured``, and its row counts
are checked against the lines of the JSON files.

    python scripts/bench_export.py                      # 6,500 artists, ≥ 1M tracks, all formats
    python scripts/bench_export.py --artists 300 --formats parquet,sqlite   # a smoke run

Targets (issue 13): ``--format parquet`` of the 1M-track crawl in ≤ 60 s and ≤ 1 GB RSS.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import orjson
from benchlib import machine, run_measured

from crawler.core.kinds import STREAMS, stream_file
from crawler.sim.catalog import Catalog

TARGET_WALL_S = 60.0
TARGET_RSS_MB = 1024.0
FETCHED = ("artists", "albums", "tracks", "playlists")  # the streams with commit times
FORMATS = ("parquet", "duckdb", "sqlite", "csv", "jsonl")
EPOCH = 1_767_225_600.0  # 2026-01-01: the synthetic crawl's first commit


def synthesise(out: Path, artists: int, seed: int, extended: bool) -> dict[str, int]:
    """Writes every stream of a whole-catalog crawl to ``out``; returns lines per stream."""
    catalog = Catalog(artists, seed=seed, cache_mb=64)
    view, model = catalog.view(extended=extended), catalog.model
    out.mkdir(parents=True, exist_ok=True)
    files = {s: (out / stream_file(s)).open("wb") for s in STREAMS}
    lines = dict.fromkeys(STREAMS, 0)
    clock = iter(range(1 << 62))
    with contextlib.ExitStack() as stack:
        fetched = {s: stack.enter_context(_fetched_path(out, s).open("w")) for s in FETCHED}

        def write(stream: str, line: bytes, spotify_id: str | None = None) -> None:
            files[stream].write(line + b"\n")
            lines[stream] += 1
            if spotify_id is not None:
                fetched[stream].write(f"{spotify_id}\t{EPOCH + next(clock) / 1000:.3f}\n")

        for i in range(artists):
            if not model.artist_exists(i):
                continue
            artist_id = catalog.artist_id(i)
            write("artists", view.artist_json(i), artist_id)
            if extended:
                for rank, j in enumerate(model.related(i)):
                    edge = {"artist_id": artist_id, "related_artist_id": catalog.artist_id(j)}
                    write("related_artists", orjson.dumps({**edge, "rank": rank}))
            for position, (owner, a, group) in enumerate(model.discography(i, GROUPS)):
                edge = {"artist_id": artist_id, "album_id": catalog.album_id(owner, a)}
                edge |= {"album_group": group if extended else None, "position": position}
                write("artist_albums", orjson.dumps(edge))
            for a in range(model.artist(i).albums):
                write("albums", view.album_json(i, a), catalog.album_id(i, a))
                for t, track_id in enumerate(catalog.track_ids_of(i, a), 1):
                    write("tracks", view.track_json((i, a, t)), track_id)
                    features = view.audio_features_json((i, a, t))
                    if extended and features != b"null":
                        write("audio_features", features)
        for q in range(model.playlists):
            for line in _playlist(catalog, q, extended):
                write(*line)
    for f in files.values():
        f.close()
    return lines


GROUPS = ("album", "single", "compilation", "appears_on")


def _fetched_path(out: Path, stream: str) -> Path:
    return out / f"fetched_at.{stream}.tsv"


def _playlist(catalog: Catalog, q: int, extended: bool) -> Iterator[tuple[str, bytes, str | None]]:
    view, model = catalog.view(extended=extended), catalog.model
    obj = view.playlist(q)
    yield "playlists", view.playlist_json(q), obj["id"]
    for position in range(model.playlist(q).items):
        key = model.playlist_item(q, position)
        item = {"playlist_id": obj["id"], "snapshot_id": obj["snapshot_id"]}
        item |= {"position": position, "item_type": "track" if key else None}
        item |= {"item_id": catalog.track_id(*key) if key else None}
        item |= {"added_at": "2020-01-01T12:00:00Z", "added_by": obj["owner"]["id"]}
        yield "playlist_items", orjson.dumps({**item, "is_local": False}), None


# -- the measured child: one export, with fetched_at from the synthesised file ------------


def child(src: Path, fmt: str, to: Path) -> int:
    """Commit times stream from a file, as they would from the store's cursor."""
    import logging

    from crawler.export import ExportSource, export

    def pairs(path: Path) -> Iterator[tuple[str, float]]:
        with path.open() as f:
            for line in f:
                spotify_id, at = line.split("\t")
                yield spotify_id, float(at)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    source = ExportSource(
        jsonl={s: src / stream_file(s) for s in STREAMS},
        fetched_at={
            s: pairs(_fetched_path(src, s)) for s in FETCHED if _fetched_path(src, s).exists()
        },
        dataset={"bench": True},
    )
    result = export(source, fmt, to)  # type: ignore[arg-type]
    sys.stdout.write(orjson.dumps(result.rows).decode() + "\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--artists", type=int, default=6500)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--mode", choices=("extended", "development"), default="extended")
    p.add_argument("--formats", default=",".join(FORMATS))
    p.add_argument("--runs", type=int, default=1, help="exports per format (all are printed)")
    p.add_argument("--from", dest="src", type=Path, help="export this out_dir, not a synthesis")
    p.add_argument("--workdir", type=Path, help="scratch directory (default: the temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the synthesised crawl and exports")
    p.add_argument("--child", nargs=3, metavar=("SRC", "FORMAT", "TO"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child(Path(args.child[0]), args.child[1], Path(args.child[2]))

    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="export-bench-", dir=args.workdir))
    try:
        return _bench(args, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def _bench(args: argparse.Namespace, work: Path) -> int:
    print(f"machine: {machine()}", file=sys.stderr)
    src = args.src
    if src is None:
        src = work / "out"
        started = time.monotonic()
        lines = synthesise(src, args.artists, args.seed, args.mode == "extended")
        print(
            f"synthesised {args.artists:,} artists ({args.mode}) in "
            f"{time.monotonic() - started:.0f} s: {lines}",
            file=sys.stderr,
        )
    else:
        lines = {s: _lines(src / stream_file(s)) for s in STREAMS}
    size_mb = sum(
        (src / stream_file(s)).stat().st_size for s in STREAMS if (src / stream_file(s)).exists()
    )
    print(f"source: {src}, {size_mb / 2**20:,.0f} MB of JSON lines, {lines['tracks']:,} tracks")
    ok = passed = True  # every export's rows are right / the targets are met
    rows = []
    for fmt in args.formats.split(","):
        for run in range(args.runs):
            to = work / f"export-{fmt}-{run}"
            log = work / f"export-{fmt}-{run}.log"
            proc = run_measured(
                [sys.executable, __file__, "--child", str(src), fmt, str(to)], log, 1800
            )
            counts = _counts(log) if proc.returncode == 0 else {}
            right = proc.returncode == 0 and _consistent(counts, lines, fmt)
            size = (
                sum(f.stat().st_size for f in to.rglob("*") if f.is_file())
                if to.is_dir()
                else (to.stat().st_size if to.exists() else 0)
            )
            rows.append((fmt, run + 1, proc.wall_s, proc.cpu_s, proc.max_rss_mb, size, right))
            if not right:
                print(f"  FAIL {fmt}: exit {proc.returncode} {proc.stderr_tail}", file=sys.stderr)
            ok &= right
            if to.is_dir():
                shutil.rmtree(to)
            to.unlink(missing_ok=True)
    head = f"{'format':<8}{'run':>4}{'wall s':>9}{'CPU s':>9}{'peak RSS MB':>13}{'size MB':>10}"
    print(f"\n{head}  rows")
    for fmt, run, wall, cpu, rss, size, right in rows:
        print(
            f"{fmt:<8}{run:>4}{wall:>9.1f}{cpu:>9.1f}{rss:>13.0f}{size / 2**20:>10.0f}  "
            f"{'match the JSON lines' if right else 'WRONG'}"
        )
    parquet = [r for r in rows if r[0] == "parquet"]
    if parquet and lines["tracks"] >= 1_000_000:
        wall = statistics.median(r[2] for r in parquet)
        rss = max(r[4] for r in parquet)
        checks = (("wall s (median)", wall, TARGET_WALL_S), ("peak RSS MB", rss, TARGET_RSS_MB))
        for name, value, target in checks:
            verdict = "PASS" if value <= target and ok else "FAIL"
            print(
                f"{verdict} parquet, {lines['tracks']:,} tracks: {name} {value:.1f} ≤ {target:.0f}"
            )
            passed &= verdict == "PASS"
    elif parquet:
        print(f"(targets apply to ≥ 1,000,000 tracks; this source has {lines['tracks']:,})")
    print("PASS" if ok and passed else "FAIL")
    return 0 if ok and passed else 1


def _lines(path: Path) -> int:
    if not path.exists():
        return 0
    with path.open("rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


def _counts(log: Path) -> dict[str, int]:
    for line in reversed(log.read_text().splitlines()):
        if line.startswith("{"):
            return orjson.loads(line)
    return {}


def _consistent(counts: dict[str, int], lines: dict[str, int], fmt: str) -> bool:
    """Every stream's table (or copied stream) has a row per line; the credit tables, derived
    from lists inside the objects, are checked by tests/test_export.py."""
    return all(counts.get(stream) == lines[stream] for stream in STREAMS) and (
        fmt != "jsonl" or counts == lines
    )


if __name__ == "__main__":
    sys.exit(main())
