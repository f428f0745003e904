"""Throughput of the simulator on one core, for small requests or for a crawl's big batches.

The simulator runs as its own process (`spotify-crawler sim`) pinned to one CPU; this
process, pinned to the other CPUs, drives it over keep-alive connections.  The crawler needs
the simulator never to be its bottleneck, so besides wall-clock rates every workload reports
rates per CPU-second of the simulator process: its one-core capacity, which holds even when
other processes compete for the machine.

`--workload artists` (default) sends `GET /v1/artists/{id}` for a fixed time and prints
requests/s (target: ≥ 3,000 req/s per simulator CPU-second).  `--workload crawl` replays
what an exhaustive crawl asks for — artist batches of 50, every artist's album pages, album
batches of 20, full track batches of 50, audio-features batches of 100 — twice over the
whole catalog: the first pass measures cold rendering, the second the warm (cached) path, in
MB/s and req/s, then a third pass is interrupted by SIGINT.  Both report the simulator's RSS
(its caches are bounded, so it must not grow with the catalog) and how long it takes to stop
on SIGINT, in wall and in its own CPU seconds (which a loaded machine does not inflate).

    python scripts/bench_sim.py --duration 10 --concurrency 64
    python scripts/bench_sim.py --workload crawl --artists 150 --concurrency 16
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import aiohttp
import psutil

from crawler.sim.catalog import Catalog
from crawler.sim.config import DEFAULT_CLIENT
from crawler.sim.model import GROUPS

ARTIST_BATCH, ALBUM_BATCH, TRACK_BATCH, FEATURES_BATCH, ALBUMS_PAGE = 50, 20, 50, 100, 50
STOP_AFTER_S = 2.0  # into the interrupted pass of the crawl workload


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pin(pid: int, cpus: set[int]) -> str:
    """Pins a process where the OS allows it; returns a note for the report."""
    if not hasattr(os, "sched_setaffinity") or not cpus:
        return "unpinned"
    os.sched_setaffinity(pid, cpus)
    return f"cpus {sorted(cpus)}"


def start_simulator(port: int, args: argparse.Namespace) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "crawler", "sim", "--port", str(port)]
    cmd += ["--artists", str(args.artists), "--seed", str(args.seed), *args.sim_arg]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening" not in line:
        proc.kill()
        raise RuntimeError(f"simulator did not start: {line!r}")
    return proc


def _rss_mb(proc: psutil.Process) -> float:
    return float(proc.memory_info().rss) / (1 << 20)


def stop_simulator(proc: subprocess.Popen[str], sim: psutil.Process) -> tuple[float, float]:
    """Sends SIGINT, as a user's Ctrl-C would: (seconds until the process ended, CPU seconds
    it spent meanwhile).  The CPU figure is the one a loaded machine does not inflate.

    The load generator keeps its connections open meanwhile (busy in the crawl workload,
    idle keep-alive in the other), as a crawler would: the simulator must not wait for them.
    """
    cpu_before = _cpu_seconds(sim)
    started = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped: Popen must not wait again
    return wall, usage.ru_utime + usage.ru_stime - cpu_before


def _stopped(wall: float, cpu: float) -> str:
    return f"simulator stopped {wall:.2f} s after SIGINT, using {cpu:.2f} s of CPU meanwhile"


def _cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


@dataclass
class Tally:
    ok: int = 0
    failed: int = 0
    received: int = 0


async def _fetch(session: aiohttp.ClientSession, url: str, tally: Tally) -> None:
    async with session.get(url) as resp:
        tally.received += len(await resp.read())
        if resp.status == 200:
            tally.ok += 1
        else:
            tally.failed += 1


async def _authenticate(session: aiohttp.ClientSession, base: str) -> None:
    form = {
        "grant_type": "client_credentials",
        "client_id": DEFAULT_CLIENT.client_id,
        "client_secret": DEFAULT_CLIENT.client_secret,
    }
    async with session.post(f"{base}/api/token", data=form) as resp:
        token = (await resp.json())["access_token"]
    session.headers["Authorization"] = f"Bearer {token}"


# -- small requests for a fixed time -------------------------------------------------------


async def _timed_worker(
    session: aiohttp.ClientSession, urls: list[str], start: int, deadline: float, tally: Tally
) -> None:
    n = start
    while time.perf_counter() < deadline:
        await _fetch(session, urls[n % len(urls)], tally)
        n += 1


async def drive_artists(
    session: aiohttp.ClientSession,
    base: str,
    args: argparse.Namespace,
    proc: subprocess.Popen[str],
    sim: psutil.Process,
) -> None:
    catalog = Catalog(args.artists, args.seed)
    existing = [i for i in range(args.artists) if catalog.model.artist(i).exists]
    urls = [f"{base}/v1/artists/{catalog.artist_id(i)}" for i in existing]
    # Warm-up fills the simulator's caches and opens the connections.
    warm_up = time.perf_counter() + 1.0
    await asyncio.gather(
        *(_timed_worker(session, urls, k, warm_up, Tally()) for k in range(args.concurrency))
    )
    tally = Tally()
    started, cpu_before = time.perf_counter(), _cpu_seconds(sim)
    await asyncio.gather(
        *(
            _timed_worker(session, urls, k * 7, started + args.duration, tally)
            for k in range(args.concurrency)
        )
    )
    elapsed, sim_cpu = time.perf_counter() - started, _cpu_seconds(sim) - cpu_before
    async with session.get(f"{base}/__stats") as resp:
        stats = await resp.json()
    print(f"requests: {tally.ok} ok, {tally.failed} failed in {elapsed:.1f} s")
    print(f"peak concurrency seen by the simulator: {stats['peak_concurrency']}")
    print(f"simulator CPU use: {sim_cpu / elapsed:.0%} of one core")
    print(f"throughput: {tally.ok / elapsed:,.0f} req/s wall clock")
    print(f"capacity: {tally.ok / sim_cpu:,.0f} req/s per CPU-second of the simulator")
    print(f"simulator RSS: {_rss_mb(sim):,.0f} MB")
    # The connections stay open (idle keep-alive) while the simulator stops.
    print(f"idle: {_stopped(*stop_simulator(proc, sim))}")


# -- a crawl's request mix, cold then warm -------------------------------------------------


def _batches(base: str, path: str, ids: list[str], size: int) -> Iterator[str]:
    for k in range(0, len(ids), size):
        yield f"{base}{path}?ids={','.join(ids[k : k + size])}"


def crawl_urls(catalog: Catalog, base: str) -> list[str]:
    """Every request of one exhaustive crawl, in the order a breadth-first crawler makes them."""
    m = catalog.model
    artists = [i for i in range(catalog.artists) if m.artist(i).exists]
    albums = [(i, a) for i in artists for a in range(m.artist(i).albums)]
    artist_ids = [catalog.artist_id(i) for i in artists]
    track_ids = [t for i, a in albums for t in catalog.track_ids_of(i, a)]
    groups = ",".join(GROUPS)
    pages = [
        f"{base}/v1/artists/{catalog.artist_id(i)}/albums"
        f"?include_groups={groups}&limit={ALBUMS_PAGE}&offset={offset}"
        for i in artists
        for offset in range(0, max(1, len(m.discography(i, GROUPS))), ALBUMS_PAGE)
    ]
    return [
        *_batches(base, "/v1/artists", artist_ids, ARTIST_BATCH),
        *pages,
        *_batches(base, "/v1/albums", [catalog.album_id(*k) for k in albums], ALBUM_BATCH),
        *_batches(base, "/v1/tracks", track_ids, TRACK_BATCH),
        *_batches(base, "/v1/audio-features", track_ids, FEATURES_BATCH),
    ]


async def _drain(session: aiohttp.ClientSession, urls: Iterator[str], tally: Tally) -> None:
    for url in urls:
        await _fetch(session, url, tally)


async def drive_crawl(
    session: aiohttp.ClientSession,
    base: str,
    args: argparse.Namespace,
    proc: subprocess.Popen[str],
    sim: psutil.Process,
) -> None:
    urls = crawl_urls(Catalog(args.artists, args.seed), base)
    print(f"one pass: {len(urls)} requests over {args.artists} artists (seed {args.seed})")
    for name in ("cold", "warm"):
        tally, queue = Tally(), iter(urls)  # workers share one iterator: each URL once
        started, cpu_before = time.perf_counter(), _cpu_seconds(sim)
        await asyncio.gather(*(_drain(session, queue, tally) for _ in range(args.concurrency)))
        elapsed, sim_cpu = time.perf_counter() - started, _cpu_seconds(sim) - cpu_before
        mb = tally.received / 1e6
        print(
            f"{name}: {tally.ok} ok, {tally.failed} failed, {mb:.1f} MB in {elapsed:.2f} s"
            f" wall, {sim_cpu:.2f} s simulator CPU | wall {mb / elapsed:,.1f} MB/s"
            f" {tally.ok / elapsed:,.0f} req/s | per sim CPU-s {mb / sim_cpu:,.1f} MB/s"
            f" {tally.ok / sim_cpu:,.0f} req/s | sim RSS {_rss_mb(sim):,.0f} MB"
        )
    # A third pass, interrupted as a user would interrupt a simulator that a crawler is using.
    queue = iter(urls)
    workers = [
        asyncio.create_task(_drain(session, queue, Tally())) for _ in range(args.concurrency)
    ]
    await asyncio.sleep(STOP_AFTER_S)
    wall, cpu = stop_simulator(proc, sim)
    await asyncio.gather(*workers, return_exceptions=True)  # cut off by the stop
    print(f"mid-crawl: {_stopped(wall, cpu)}")


async def drive(
    base: str, args: argparse.Namespace, proc: subprocess.Popen[str], sim: psutil.Process
) -> None:
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await _authenticate(session, base)
        workload = drive_crawl if args.workload == "crawl" else drive_artists
        await workload(session, base, args, proc, sim)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=("artists", "crawl"), default="artists")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds (artists only)")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight")
    parser.add_argument("--artists", type=int, default=1000, help="catalog size")
    parser.add_argument("--seed", type=int, default=1, help="catalog seed")
    parser.add_argument("--sim-cpu", type=int, default=0, help="CPU the simulator is pinned to")
    parser.add_argument(
        "--sim-arg", action="append", default=[], help="extra `sim` option, e.g. --sim-arg=..."
    )
    args = parser.parse_args()

    port = _free_port()
    proc = start_simulator(port, args)
    try:
        cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
        print(f"simulator pid {proc.pid} on {_pin(proc.pid, {args.sim_cpu})}")
        print(f"load generator on {_pin(0, set(cpus) - {args.sim_cpu})}")
        with contextlib.suppress(ImportError):
            import uvloop

            uvloop.install()
        asyncio.run(drive(f"http://127.0.0.1:{port}", args, proc, psutil.Process(proc.pid)))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
