"""The ``export`` sub-command: a crawl's committed outputs as tables (see crawler/export/)."""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from crawler.api.capabilities import Capabilities
from crawler.cli.common import command, one_line_errors, run_async
from crawler.core.config import Config, load_config
from crawler.core.errors import ConfigError
from crawler.core.kinds import Op
from crawler.core.logs import setup_logging
from crawler.export import FORMATS, ExportSource, Format, export
from crawler.store import crawl_fingerprint, open_store_readonly

log = logging.getLogger("crawler.export")

# Edges an app can be refused (development mode): the card names those that were.
OPTIONAL_EDGES = ("related_artists", "audio_features")
# The tables with a fetched_at column, and the ops that fetch their entities.
FETCHED = {"artists": Op.ARTIST, "albums": Op.ALBUM, "tracks": Op.TRACK, "playlists": Op.PLAYLIST}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = command(
        sub,
        "export",
        help="write the committed outputs as Parquet, DuckDB, SQLite, CSV or JSON-lines tables",
        description="Turns what a crawl has committed (finished, running or interrupted) into "
        "analysis-ready tables, with a dataset.json describing them.",
    )
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument(
        "--to",
        type=Path,
        help="target: a directory for parquet, csv and jsonl, a file for duckdb and sqlite "
        "(default: <out_dir>/export/<format>, or <out_dir>/export/spotify.duckdb / .sqlite)",
    )
    p.add_argument("--force", action="store_true", help="replace an existing target")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.set_defaults(func=export_command)


def default_target(config: Config, fmt: Format) -> Path:
    base = config.crawl.out_dir / "export"
    return base / f"spotify.{fmt}" if fmt in ("duckdb", "sqlite") else base / fmt


def export_command(args: argparse.Namespace) -> int:
    setup_logging(args.verbose)

    def run() -> int:
        config = load_config(args.config, credentials=False)
        to = args.to if args.to is not None else default_target(config, args.format)
        to.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".export-source-", dir=to.parent) as scratch:
            source = run_async(store_source(config, Path(scratch)))
            try:
                result = export(source, args.format, to, force=args.force)
            except KeyboardInterrupt:
                print(f"interrupted: {to} was left as it was", file=sys.stderr)
                return 130
        print(
            f"exported {sum(result.rows.values()):,} rows in {len(result.rows)} "
            f"{'streams' if result.format == 'jsonl' else 'tables'} to {result.target} "
            f"in {result.seconds:.1f} s; dataset card: {result.dataset_json}"
        )
        return 0

    return one_line_errors(run)


def dataset_card(config: Config, capabilities: Mapping[str, Any] | None) -> dict[str, Any]:
    """What dataset.json says about the crawl."""
    crawl = crawl_fingerprint(config)
    caps = Capabilities.from_dict(dict(capabilities)) if capabilities else None
    return {
        "fingerprint": hashlib.sha256(orjson.dumps(crawl, option=orjson.OPT_SORT_KEYS)).hexdigest(),
        "seeds": crawl["seeds"],
        "expand": crawl["expand"],
        "api_mode": config.api.mode,
        "capabilities": caps.to_dict() if caps else None,
        "unavailable_edges": (
            [edge for edge in OPTIONAL_EDGES if getattr(caps, edge) is False] if caps else None
        ),
    }


async def store_source(config: Config, scratch: Path) -> ExportSource:
    """What the crawl's store has committed (read without disturbing a running crawl): the
    streams' files and committed lengths, and the commit times of the fetched entities,
    written to ``scratch`` as TSV so that millions of them never sit in memory."""
    if config.store.backend == "sqlite" and not config.crawl.checkpoint_path.exists():
        raise ConfigError(
            f"{config.crawl.checkpoint_path}: no crawl to export; run `spotify-crawler crawl` first"
        )
    store = await open_store_readonly(config)
    try:
        files = await store.stream_files(scratch)
        fetched: dict[str, Path] = {}
        for stream, op in FETCHED.items():
            path = fetched[stream] = scratch / f"fetched_{stream}.tsv"
            with path.open("w") as f:
                async for chunk in store.fetched_at(op):
                    f.writelines(f"{key}\t{at!r}\n" for key, at in chunk)
        card = dataset_card(config, store.meta.get("capabilities"))
    finally:
        await store.close()
    return ExportSource(
        jsonl={stream: path for stream, (path, _) in files.items()},
        fetched_at=fetched,
        dataset=card,
        lengths={stream: length for stream, (_, length) in files.items()},
    )
