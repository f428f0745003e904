"""Command line: one sub-command per job; each sub-module registers its own arguments."""

from __future__ import annotations

import argparse
import sys

from crawler import __version__
from crawler.cli import crawl, export, report, status
from crawler.sim import cli as sim_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spotify-crawler",
        description="Async, resumable crawler of the Spotify Web API catalog.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    crawl.register(sub)
    status.register(sub)
    export.register(sub)
    report.register(sub)
    sim_cli.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
