"""What every sub-command shares: one-line errors, the event loop, logging."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from crawler.core.errors import CrawlerError

T = TypeVar("T")


def one_line_errors(run: Callable[[], int]) -> int:
    """Run a command; an error the user can act on is one line on stderr, never a traceback."""
    try:
        return run()
    except CrawlerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # the machine, not the crawl: still one line
        print(f"error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 1


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run on uvloop where it exists (it is a dependency except on Windows)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.run(coro)
    return uvloop.run(coro)


def command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, **kwargs: Any
) -> argparse.ArgumentParser:
    """A sub-command reading a crawl.toml: every one takes ``-c/--config`` the same way."""
    parser = sub.add_parser(name, **kwargs)
    parser.add_argument("-c", "--config", default="crawl.toml", help="config file (crawl.toml)")
    return parser
