"""The ``crawl`` and ``status`` sub-commands: wiring config, client, checkpoint and engine."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson

from crawler.api.capabilities import Capabilities
from crawler.api.client import SpotifyClient
from crawler.core.config import Config, load_config
from crawler.core.errors import ConfigError, CrawlerError
from crawler.core.kinds import ENTITIES, ENTITY_STREAMS, Op, State, stream_file
from crawler.core.logs import setup_logging
from crawler.core.stats import Stats
from crawler.crawl.engine import Engine, RunResult
from crawler.crawl.progress import ProgressDisplay
from crawler.store.sqlite import Checkpoint

log = logging.getLogger("crawler")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    crawl = sub.add_parser("crawl", help="crawl the catalog from the seeds in the config")
    crawl.add_argument("-c", "--config", default="crawl.toml", help="config file (crawl.toml)")
    crawl.add_argument(
        "--sim", action="store_true", help="start the built-in simulator and crawl it"
    )
    crawl.add_argument(
        "--fresh", action="store_true", help="delete the checkpoint and outputs, start afresh"
    )
    crawl.add_argument("--progress", choices=("auto", "bar", "log", "off"), default=None)
    crawl.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    crawl.add_argument(
        "--log-format",
        choices=("human", "json"),
        default="human",
        help="json: one JSON object per line on stderr, for log shippers (progress as log lines)",
    )
    crawl.set_defaults(func=crawl_command)

    status = sub.add_parser("status", help="summarise the checkpoint of a crawl")
    status.add_argument("-c", "--config", default="crawl.toml", help="config file (crawl.toml)")
    status.set_defaults(func=status_command)


def _tune_gc() -> None:
    """A crawl makes millions of short-lived tuples and few reference cycles: collecting the
    young generation every 700 allocations cost ~9 % of the crawler's CPU (1,000-artist crawl)."""
    gc.freeze()  # what is loaded by now lives as long as the process: never scan it again
    gc.set_threshold(20_000, 10, 10)


def _run(coro: Any) -> Any:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        return asyncio.run(coro)
    return uvloop.run(coro)


def fingerprint(config: Config) -> dict[str, Any]:
    """What makes a checkpoint belong to a crawl: seeds and expansion, not tuning knobs."""
    expand = asdict(config.expand)
    expand.pop("max_artists")  # raising the bound continues the same crawl
    return orjson.loads(orjson.dumps({"seeds": asdict(config.seeds), "expand": expand}))


def _one_line_errors(command: Callable[[], int]) -> int:
    """Run a command; an error the user can act on is one line on stderr, never a traceback."""
    try:
        return command()
    except CrawlerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # the machine, not the crawl: still one line
        print(f"error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 1


def crawl_command(args: argparse.Namespace) -> int:
    setup_logging(args.verbose, args.log_format)

    def crawl() -> int:
        config = load_config(args.config, need_credentials=not args.sim)
        return _run(_crawl(config, args))

    return _one_line_errors(crawl)


@contextlib.asynccontextmanager
async def _simulated(config: Config) -> AsyncIterator[Config]:
    """Serve the config's credentials from an in-process simulator and point the config at it."""
    from crawler.sim.catalog import Catalog
    from crawler.sim.config import DEFAULT_CLIENT, SimClient, SimConfig
    from crawler.sim.server import start_sim

    credentials = config.credentials or (DEFAULT_CLIENT,)
    clients = tuple(
        SimClient(c.client_id, c.client_secret, c.account, config.sim.rate or None)
        for c in credentials
    )
    sim_config = SimConfig(
        mode=config.sim.mode,
        clients=clients,
        rate=config.sim.rate,
        latency_ms=config.sim.latency_ms,
    )
    catalog = Catalog(config.sim.artists, seed=config.sim.seed, playlists=config.sim.playlists)
    sim = await start_sim(sim_config, catalog)
    log.info("simulator (%s mode, %d artists) at %s", config.sim.mode, config.sim.artists, sim.url)
    try:
        yield config.with_api(base_url=sim.url, token_url=f"{sim.url}/api/token")
    finally:
        await sim.close()


def _remove_previous(config: Config) -> None:
    path = config.crawl.checkpoint_path
    for stale in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        stale.unlink(missing_ok=True)
    for name in (*(stream_file(s) for s in ENTITY_STREAMS), "stats.json"):
        (config.crawl.out_dir / name).unlink(missing_ok=True)


async def _crawl(config: Config, args: argparse.Namespace) -> int:
    _tune_gc()
    result = await run_crawl(
        config, sim=args.sim, fresh=args.fresh, progress=args.progress, handle_signals=True
    )
    stream = sys.stdout if result.exit_code == 0 else sys.stderr
    print(result.message, file=stream)
    return result.exit_code


async def run_crawl(
    config: Config,
    *,
    sim: bool = False,
    fresh: bool = False,
    progress: str | None = None,
    handle_signals: bool = False,
) -> RunResult:
    """One run of a crawl: resumes its checkpoint, writes stats.json, returns the outcome."""
    if config.seeds.is_empty():
        raise ConfigError(f"{config.path}: seeds: no seeds configured; nothing to crawl")
    async with contextlib.AsyncExitStack() as stack:
        if sim:
            config = await stack.enter_async_context(_simulated(config))
        if fresh:
            _remove_previous(config)
        stats = Stats()
        checkpoint = await Checkpoint.open(
            config.crawl.checkpoint_path, config.crawl.out_dir, fingerprint(config)
        )
        stack.push_async_callback(checkpoint.close)
        learned = checkpoint.meta.get("capabilities")
        client = await stack.enter_async_context(
            SpotifyClient(
                config.api,
                config.credentials,
                concurrency=config.crawl.concurrency,
                stats=stats,
                capabilities=Capabilities.from_dict(learned) if learned else None,
            )
        )
        engine = Engine(config, client, checkpoint, stats)
        if handle_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, engine.interrupt)
        # Leaving the block draws the final counts: the run's last commit is behind it.
        async with ProgressDisplay(progress or config.crawl.progress, engine.snapshot):
            result = await engine.run()
        _write_stats(config, checkpoint, stats, result, engine.commit_wait_s)
    return result


def _write_stats(
    config: Config, checkpoint: Checkpoint, stats: Stats, result: RunResult, commit_wait_s: float
) -> None:
    counts = checkpoint.counts
    summary = {
        "complete": result.complete,
        "exit_code": result.exit_code,
        "message": result.message,
        "elapsed_s": round(stats.elapsed(), 3),
        **stats.as_dict(),
        # Entities are totals over every run of this crawl: they are what the files hold.
        "written": {
            name.removesuffix(".jsonl"): counts[(op, State.DONE)]
            for op, name in ((op, stream_file(k.stream)) for op, k in ENTITIES.items())
        },
        "missing": {
            name.removesuffix(".jsonl"): counts[(op, State.MISSING)]
            for op, name in ((op, stream_file(k.stream)) for op, k in ENTITIES.items())
        },
        "failures": sum(counts[(op, State.FAILED)] for op in Op),
        "pending": checkpoint.pending(),
        "commits": checkpoint.commits,
        "commit_seconds": round(checkpoint.commit_seconds, 3),
        "checkpoint_cpu_s": round(checkpoint.cpu_seconds, 3),
        "checkpoint_cpu_parts": {k: round(v, 3) for k, v in checkpoint.cpu_parts.items()},
        "commit_wait_s": round(commit_wait_s, 3),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    path = config.crawl.out_dir / "stats.json"
    try:
        path.write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    except OSError as exc:  # e.g. the disk that just filled up: the run's outcome still stands
        log.debug("could not write %s: %s", path, exc.strerror or exc)


def status_command(args: argparse.Namespace) -> int:
    return _one_line_errors(lambda: _run(_status(load_config(args.config, need_credentials=False))))


async def _status(config: Config) -> int:
    path = config.crawl.checkpoint_path
    if not path.exists():
        print(f"no checkpoint at {path}: the crawl has not started")
        return 0
    checkpoint = await Checkpoint.open(path, config.crawl.out_dir, None)
    try:
        if checkpoint.meta.get("fingerprint") != fingerprint(config):
            print(
                f"note: {path} was made with other seeds or expansion settings than {config.path}"
            )
        counts = checkpoint.counts
        print(f"checkpoint {path}")
        print(
            f"{'operation':<16}{'done':>10}{'pending':>10}{'missing':>10}{'failed':>10}{'skipped':>10}"
        )
        for op in Op:
            row = [
                counts[(op, s)]
                for s in (State.DONE, State.PENDING, State.MISSING, State.FAILED, State.SKIPPED)
            ]
            if any(row):
                print(f"{op.name.lower():<16}" + "".join(f"{n:>10,}" for n in row))
        caps = checkpoint.meta.get("capabilities")
        print("capabilities: " + (orjson.dumps(caps).decode() if caps else "not probed yet"))
        for op_name, key, reason in await checkpoint.failures():
            print(f"failed {op_name} {key}: {reason}")
        pending = checkpoint.pending()
        print(
            "state: "
            + (
                "complete"
                if pending == 0 and checkpoint.meta.get("seeded")
                else f"{pending:,} tasks pending: rerun `spotify-crawler crawl` to resume"
            )
        )
    finally:
        await checkpoint.close()
    return 0
