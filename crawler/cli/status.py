"""``spotify-crawler status``: what a crawl's store holds, read without disturbing a run."""

from __future__ import annotations

import argparse
import time

import orjson

from crawler.cli.common import command, one_line_errors, run_async
from crawler.core.config import Config, load_config
from crawler.core.kinds import STREAMS, Op, State
from crawler.store import crawl_fingerprint, open_store_readonly
from crawler.store.base import failed, pending
from crawler.store.lock import running_holder
from crawler.store.postgres import PostgresStore

_COLUMNS = (State.DONE, State.PENDING, State.MISSING, State.FAILED, State.SKIPPED)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    status = command(sub, "status", help="summarise the checkpoint of a crawl")
    status.set_defaults(func=status_command)


def status_command(args: argparse.Namespace) -> int:
    return one_line_errors(lambda: run_async(_status(load_config(args.config, credentials=False))))


async def _status(config: Config) -> int:
    path = config.crawl.checkpoint_path
    postgres = config.store.backend == "postgres"
    if not postgres and not path.exists():
        print(f"no checkpoint at {path}: the crawl has not started")
        return 0
    store = await open_store_readonly(config)
    try:
        if not postgres and store.meta.get("fingerprint") != crawl_fingerprint(config):
            print(
                f"note: {path} was made with other seeds or expansion settings than {config.path}"
            )
        counts = store.counts()
        if isinstance(store, PostgresStore):
            print(f"crawl {config.store.name!r} in {config.store.redacted_dsn}")
            live = [w for w in await store.workers() if w["live"]]
            for w in live:
                started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(w["started_at"]))
                print(
                    f"worker {w['id']}: {w['host']} pid {w['pid']}, started {started}, "
                    f"{w['units_done']:,} units done"
                )
            holder = f"{len(live)} worker(s)" if live else None
        else:
            print(f"checkpoint {path}")
            holder = running_holder(path)
        if holder is not None:
            print(f"running: {holder}")
        print(f"{'operation':<16}" + "".join(f"{s.name.lower():>10}" for s in _COLUMNS))
        for op in Op:
            row = [counts[(op, s)] for s in _COLUMNS]
            if any(row):
                print(f"{op.name.lower():<16}" + "".join(f"{n:>10,}" for n in row))
        written = store.written()
        print("written: " + ", ".join(f"{s} {written[s]:,}" for s in STREAMS if written[s]))
        caps = store.meta.get("capabilities")
        print("capabilities: " + (orjson.dumps(caps).decode() if caps else "not probed yet"))
        for op, key, reason in await store.failures():
            print(f"failed {op.name.lower()} {key}: {reason}")
        print("state: " + _state(store.meta, counts, running=holder is not None))
    finally:
        await store.close()
    return 0


def _state(meta: dict, counts, *, running: bool) -> str:
    """One verdict that agrees with how the last run ended (its exit code)."""
    todo, bad = pending(counts), failed(counts)
    last = meta.get("last_run") or {}
    if running:
        return f"running, {todo:,} tasks pending"
    if bad:
        return f"incomplete: {bad:,} tasks failed; rerun `spotify-crawler crawl` to retry them"
    if todo:
        return f"incomplete: {todo:,} tasks pending; rerun `spotify-crawler crawl` to resume"
    if not meta.get("seeded") or last.get("exit_code", 0) != 0:
        message = last.get("message", "the crawl has not finished a run")
        return f"incomplete: the last run ended with exit code {last.get('exit_code')}: {message}"
    return "complete"
