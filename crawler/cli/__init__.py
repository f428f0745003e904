"""Command line: one sub-command per job; each sub-module registers its own arguments."""

from __future__ import annotations

import argparse
import sys

from crawler.cli import crawl as crawl_cli
from crawler.cli import export as export_cli
from crawler.sim import cli as sim_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spotify-crawler",
        description="Async, resumable crawler of the Spotify Web API catalog.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    crawl_cli.register(sub)
    export_cli.register(sub)
    sim_cli.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
