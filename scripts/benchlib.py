"""Machinery of scripts/bench.py: the simulator process, measured crawls, ground-truth checks.

Every measurement here is taken from outside the process being measured, so the crawler and
the peer scripts are judged alike: wall time from spawn to exit, CPU time from the kernel's
accounting of that one child (`os.wait4`), peak RSS from its /proc status, API calls and
their timing from the simulator's own counters (GET /__stats), and correctness by comparing
the output files with the simulator's ground truth.  The machine has two cores and may be
shared, so the CPU that the simulator and everything else used during a run is measured too.
"""

from __future__ import annotations

import compileall
import contextlib
import dataclasses
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import msgspec
import orjson
from peers.peerlib import KINDS

from crawler.core.config import SIM_CREDENTIAL, Credential
from crawler.sim.catalog import Catalog
from crawler.sim.cli import config_argv
from crawler.sim.config import SimConfig
from crawler.sim.groundtruth import Expansion, GroundTruth, Seeds
from crawler.sim.groundtruth import ground_truth as compute
from crawler.sim.verify import verify as verify_output

ROOT = Path(__file__).resolve().parents[1]
PEERS = Path(__file__).resolve().parent / "peers"
TOKEN_ENDPOINT = "token"  # the simulator's stats name for POST /api/token
EXPANSION = dataclasses.asdict(Expansion.full())


def compile_bytecode() -> None:
    """Compile the crawler and the peer scripts to bytecode before any timed run.

    ``pip install`` does this for installed packages (spotipy, tekore, aiohttp …), but this
    checkout is an editable install, and where PYTHONDONTWRITEBYTECODE is set (it is on this
    project's machines) every crawl would compile the crawler from source again: a start-up
    cost that no installed crawler pays.
    """
    for package in (ROOT / "crawler", PEERS):
        compileall.compile_dir(package, quiet=1)


# -- small HTTP client for the simulator's control endpoints -------------------------------


def _http(method: str, url: str) -> Any:
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def api_calls(stats: dict[str, Any]) -> int:
    """Requests other than token requests: what a crawl spends of the API quota."""
    return int(stats["total"]) - int(stats["by_endpoint"].get(TOKEN_ENDPOINT, 0))


def throttled(stats: dict[str, Any]) -> int:
    return int(stats["by_status"].get("429", 0))


# -- the simulator -------------------------------------------------------------------------


@dataclass(frozen=True)
class SimSpec:
    """A simulator process: its catalog (`ground_truth` needs the same two numbers) and how
    it behaves; the behaviour is a SimConfig, so the `sim` options are written in one place."""

    artists: int
    seed: int = 1
    config: SimConfig = field(default_factory=SimConfig)
    # Larger than the simulator's default, as when the README's figures were measured: the
    # 150-artist latency catalog (~100 MB rendered) then stays warm from one crawl to the next.
    cache_mb: int = 256

    def argv(self) -> list[str]:
        catalog = ["--artists", str(self.artists), "--seed", str(self.seed)]
        return [*catalog, "--cache-mb", str(self.cache_mb), *config_argv(self.config)]


class Sim:
    """`python -m crawler sim` on a free loopback port, in its own process (its own core)."""

    def __init__(self, spec: SimSpec) -> None:
        self.spec = spec
        cmd = [sys.executable, "-m", "crawler", "sim", "--host", "127.0.0.1", "--port", "0"]
        self._proc = subprocess.Popen(
            [*cmd, *spec.argv()], cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        found = re.search(r"http://\S+", line)
        if found is None:
            self.close()
            raise RuntimeError(f"the simulator did not start: {line!r}")
        self.url = found.group(0).rstrip("/")

    def stats(self) -> dict[str, Any]:
        return _http("GET", f"{self.url}/__stats")

    def cpu_s(self) -> float:
        """CPU seconds the simulator has used: when its deltas near a crawl's wall time, the
        simulator, not the crawler, sets the pace."""
        fields = Path(f"/proc/{self._proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def reset(self) -> None:
        _http("POST", f"{self.url}/__stats/reset")

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGINT)
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def __enter__(self) -> Sim:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class StatsPoller:
    """Samples the simulator's counters from a thread, to time the first and last API request.

    /__stats has counters but no timestamps, so a request's time is known to within one
    polling interval (plus one loopback round trip); `on_sample` may stop a crawl early.
    """

    def __init__(
        self,
        sim: Sim,
        interval_s: float,
        on_sample: Callable[[float, dict[str, Any]], None] | None = None,
    ) -> None:
        self._sim = sim
        self._interval_s = interval_s
        self._on_sample = on_sample
        self._stop = threading.Event()
        self.first_at: float | None = None  # monotonic time the first API call was seen
        self.last_at: float | None = None  # ... and the time the final count was first seen
        self._last_count = 0
        self._in_flight: list[int] = []  # requests in flight at each sample once crawling
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> StatsPoller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()  # the final count, so a crawl's last requests are never missed

    def _sample(self) -> None:
        stats = self._sim.stats()
        now = time.monotonic()
        count = api_calls(stats)
        if count and self.first_at is None:
            self.first_at = now
        if count != self._last_count:
            self.last_at, self._last_count = now, count
        if count:
            self._in_flight.append(int(stats.get("in_flight", 0)))
        if self._on_sample is not None:
            self._on_sample(now, stats)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self._sample()

    def mean_in_flight(self) -> float:
        """How much of its concurrency a crawl used on average, from its first request on."""
        return sum(self._in_flight) / len(self._in_flight) if self._in_flight else float("nan")


# -- measured child processes --------------------------------------------------------------


@dataclass
class Proc:
    """A finished child: wall seconds from spawn to exit, and the kernel's usage of it."""

    argv: list[str]
    returncode: int
    started: float  # monotonic
    wall_s: float
    user_s: float
    sys_s: float
    max_rss_mb: float
    stderr_tail: str

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.sys_s


def _peak_rss_mb(pid: int) -> float | None:
    """VmHWM, the process's own RSS high-water mark, or None once it has exited."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return None


def run_measured(
    argv: Sequence[str],
    log_path: Path,
    timeout_s: float,
    on_start: Callable[[subprocess.Popen[bytes]], None] | None = None,
) -> Proc:
    """Runs argv to completion; stdout and stderr go to `log_path`.

    CPU time comes from `os.wait4`, the kernel's account of exactly this child (unlike
    RUSAGE_CHILDREN deltas, which would also count a simulator that exits meanwhile).  Peak
    RSS comes from /proc/PID/status VmHWM, polled every 0.2 s: wait4's ru_maxrss is no use
    here, as it keeps the high-water mark of the forked copy of this (large) harness process
    from before exec.  VmHWM only grows, so polling misses at most the last 0.2 s of growth.
    A watchdog kills the child after `timeout_s`.
    """
    with log_path.open("wb") as log:
        started = time.monotonic()
        proc = subprocess.Popen(list(argv), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        peak = [0.0]
        done = threading.Event()

        def watch_rss() -> None:
            while True:
                rss = _peak_rss_mb(proc.pid)
                if rss is not None:
                    peak[0] = max(peak[0], rss)
                if done.wait(0.2):
                    return

        watcher = threading.Thread(target=watch_rss, daemon=True)
        watcher.start()
        watchdog = threading.Timer(timeout_s, proc.kill)
        watchdog.start()
        try:
            if on_start is not None:
                on_start(proc)
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            wall = time.monotonic() - started
            watchdog.cancel()
            done.set()
            watcher.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    tail = log_path.read_bytes()[-2000:].decode(errors="replace")
    return Proc(
        argv=list(argv),
        returncode=proc.returncode,
        started=started,
        wall_s=wall,
        user_s=usage.ru_utime,
        sys_s=usage.ru_stime,
        max_rss_mb=peak[0],
        stderr_tail=tail,
    )


# -- a PostgreSQL server of one's own -------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OwnPostgres:
    """A server of scripts/postgres.sh on a free port, in a folder of its own, for a caller
    that crashes and restarts it: never the server others (the lead, a test session) share.

    The folder is in /var/tmp, which the server's OS user (`postgres`, when run as root) can
    enter wherever the caller's checkout is. `close` stops the server and deletes the folder
    unless `keep` is set (a failed soak's database, to look into).
    """

    def __init__(self, keep: bool = False) -> None:
        self.keep = keep
        self.root = Path(tempfile.mkdtemp(prefix="spotify-crawler-pg-", dir="/var/tmp"))
        self.root.chmod(0o755)
        self.env = {
            **os.environ,
            "SPOTIFY_CRAWLER_PG_PORT": str(free_port()),
            "SPOTIFY_CRAWLER_PG_DIR": str(self.root),
        }
        started = self.script("start")
        if started.returncode != 0:
            self.close()
            raise RuntimeError(f"cannot start a PostgreSQL server of its own: {started.stderr}")
        self.dsn = self.script("dsn").stdout.strip()  # of a role that may create databases

    @property
    def log(self) -> Path:
        return self.root / "data" / "server.log"

    def script(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "scripts/postgres.sh", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )

    def crash_and_restart(self) -> None:
        """`restart immediate`: the server dies as in a crash (no checkpoint, every session
        cut) and recovers from its WAL."""
        done = self.script("restart", "immediate")
        if done.returncode != 0:
            raise RuntimeError(f"postgres.sh restart immediate failed: {done.stderr}")

    def close(self) -> None:
        self.script("stop")
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> OwnPostgres:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- ground truth and output checks --------------------------------------------------------


@dataclass(frozen=True)
class Truth:
    """A benchmark crawl's seeds and what it must write (`expected`)."""

    seeds: tuple[str, ...]
    expected: GroundTruth

    @property
    def ids(self) -> dict[str, frozenset[str]]:
        return {stream: getattr(self.expected, stream) for stream in KINDS}

    @property
    def min_calls(self) -> int:
        return self.expected.min_calls


def ground_truth(artists: int, seed: int, seed_artists: int = 1) -> Truth:
    """What an exhaustive crawl from the first `seed_artists` artists of the catalog writes."""
    catalog = Catalog(artists, seed=seed)
    seeds = tuple(catalog.artist_id(i) for i in range(seed_artists))
    truth = compute(catalog, Seeds(artists=seeds), Expansion.full(), mode="extended")
    return Truth(seeds, truth)


@dataclass
class Verdict:
    ok: bool
    written: dict[str, int]
    problems: list[str] = field(default_factory=list)

    @property
    def entities(self) -> int:
        return sum(self.written.values())


def verify(out_dir: Path, truth: Truth) -> Verdict:
    """Exact ID sets and no duplicate or torn line in each output file, or the crawl does
    not count (a missing file is a problem even where nothing was expected)."""
    checked = verify_output(out_dir, truth.expected, KINDS)
    written = {check.stream: check.records for check in checked.checks if check.present}
    problems = checked.problems()
    return Verdict(not problems, written, problems)


# -- crawler configuration -----------------------------------------------------------------


def crawler_config(
    url: str,
    seeds: Iterable[str],
    out_dir: Path,
    credentials: Sequence[Credential] = (SIM_CREDENTIAL,),
    *,
    max_artists: int = 0,
    api: dict[str, Any] | None = None,
    crawl: dict[str, Any] | None = None,
    output: dict[str, bool] | None = None,
    store: dict[str, str] | None = None,
) -> str:
    """A crawl.toml for one benchmark run: the simulator's addresses, the peers' expansion."""
    document = {
        "credentials": list(credentials),
        "api": {
            "base_url": url,
            "token_url": f"{url}/api/token",
            "mode": "extended",
            **(api or {}),
        },
        "seeds": {"artists": list(seeds)},
        "expand": {**EXPANSION, "max_artists": max_artists},
        "crawl": {"out_dir": str(out_dir), "progress": "off", **(crawl or {})},
        "output": output or {},
        "store": store or {},
    }
    return msgspec.toml.encode(document).decode()


def crawler_argv(config: Path) -> list[str]:
    return [sys.executable, "-m", "crawler", "crawl", "-c", str(config)]


def export_argv(config: Path, to: Path) -> list[str]:
    """The records a crawl has committed, as JSON-lines files in ``to`` (replacing any there):
    how a PostgreSQL crawl's output is read back."""
    cmd = [sys.executable, "-m", "crawler", "export", "-c", str(config)]
    return [*cmd, "--format", "jsonl", "--to", str(to), "--force"]


def peer_argv(script: str, url: str, out_dir: Path, seeds: Iterable[str]) -> list[str]:
    argv = [sys.executable, str(PEERS / script), "--api", url, "--out", str(out_dir)]
    for seed in seeds:
        argv += ["--artist", seed]
    return argv


def read_stats_json(out_dir: Path) -> dict[str, Any]:
    path = out_dir / "stats.json"
    return orjson.loads(path.read_bytes()) if path.exists() else {}


# -- reporting -----------------------------------------------------------------------------


def median(values: Iterable[float]) -> float:
    vals = list(values)
    return statistics.median(vals) if vals else float("nan")


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A Markdown table, column-aligned so it also reads well in a terminal."""
    cells = [list(headers)] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def busy_cpu_s() -> tuple[float, float]:
    """CPU seconds the whole machine has spent busy since boot (all cores, from /proc/stat),
    and of those the steal time: what the hypervisor gave other guests of a shared host.

    The machine is shared: a run's busy delta minus the crawler's and the simulator's CPU is
    what other processes (steal included) took from the two cores meanwhile, reported so that
    a disturbed measurement can be recognised.
    """
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    tick = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq + steal) / tick, steal / tick


def machine() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
