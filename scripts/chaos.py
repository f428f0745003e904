"""Chaos soak: kill -9 the crawler again and again against a faulty, hostile simulator.

A resumable crawler earns that name only if no instant is a bad instant to die, and if the
API's worst days (5xx, dropped connections, cut bodies, expiring tokens, 429s without a
Retry-After, an account banned for longer and longer) cost time but never data. This script
runs the simulator as its own process with all of those faults on, starts the crawler
(`python -m crawler crawl -c …`), SIGKILLs it at seeded random instants, restarts it every
time (also after exit 3, "all accounts parked", as a user would), and once a run completes
checks the outcome from the outside:

* the output files hold exactly the simulator's ground truth: no ID missing, none unexpected,
  no line twice, no torn line;
* no client secret, no Basic credential and no bearer token appears in any output file, the
  checkpoint, the config (which names the secrets as ${…} of the crawlers' environment) or the
  captured stderr/stdout of any run.

With `--store postgres` three crawler processes share one crawl on a PostgreSQL server of the
soak's own (scripts/postgres.sh on a free port, in a folder of its own): each kill hits a
random one of them, the server is crashed once (`restart immediate`) amid the kills, every
process that stops (exit 1 "lost the database", 3, …) is started again, and once all three
have exited 0 the records are exported (`export --format jsonl`) and checked as above, the
DSN's password added to what no file may hold.

It prints one summary line and exits 1 if anything is off (details go to stderr first).

    python scripts/chaos.py                       # defaults: a few minutes on 2 cores
    python scripts/chaos.py --quick               # a smaller smoke run
    python scripts/chaos.py --store postgres      # 3 processes, 20 kills, 1 database crash
    python scripts/chaos.py --artists 500 --kills 40 --seed 7 --keep /tmp/chaos
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import msgspec

# Importable from the tests too, which put scripts/ on sys.path the same way.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import (
    ROOT,
    OwnPostgres,
    Sim,
    SimSpec,
    Truth,
    crawler_argv,
    crawler_config,
    export_argv,
    ground_truth,
)
from peers.peerlib import KINDS

from crawler.core.config import Credential
from crawler.core.kinds import STREAMS
from crawler.sim.config import SimClient, SimConfig
from crawler.sim.verify import Counts, Verification, verify
from crawler.store.sqlite import committed_records

# The simulator issues "BQ" + secrets.token_urlsafe(60) (crawler/sim/auth.py): 80 URL-safe
# characters. The tokens live in another process, so they are found by their shape.
TOKEN_PATTERN = re.compile(rb"BQ[A-Za-z0-9_-]{80}")
# AllAccountsParked's message: "... rate-limited until 2026-11-22 03:04:05 UTC; rerun then ..."
RESUME_PATTERN = re.compile(r"rate-limited until (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC")
# The crawler's log lines for a 429's pause: a pause longer than the window is a ban.
PAUSE_PATTERN = re.compile(r"rate-limited(?:: pausing it)? for ([0-9.]+) s")
MAX_PARK_WAIT_S = 120.0  # never sleep longer than this for an exit 3, whatever it says
POLL_S = 0.02  # how often a run's progress is looked at, to kill it at its mark
SEED_ARTISTS = 3  # the first artists of a catalog may be deleted ones; three make it certain
SIM_LOG = "sim.log"  # the simulator's stderr: the one file of the work dir not scanned for leaks
DSN_ENV = "CHAOS_DSN"  # the config says dsn = "${CHAOS_DSN}": no file holds the password
PG_DATABASE = "chaos"
RESTART_GRACE_S = 10.0  # an exit 2 "cannot open the store" this soon after the crash is its doing


@dataclass(frozen=True)
class Plan:
    """Everything a soak does, so that a seed and a plan replay the same kill schedule.

    The defaults: 6 % of responses are 5xx, 2 % dropped, 2 % truncated; tokens live 10 s;
    each account may make `rate` requests per `window_s` and a third of its 429s are bare; the
    second account is banned after `ban_after` requests, and every account that piles up more
    than `ban_after_429s` 429s in a window is banned again for twice as long. Bans start at
    3600 s × `ban_scale` (4 s) and double up to 96 s; from the second (8 s) on they exceed
    `max_retry_after_s` and park that account for the run (the rate limit's own Retry-After
    never exceeds `window_s`, which is less); if both are parked the crawler exits 3 and is
    restarted once the announced time has come.

    With `store = "postgres"`, `processes` crawlers share one crawl on a server of the soak's
    own; each kill hits a random one of them, and the server crashes once, between the two
    middle kills (every crawler then stops with exit 1 or 2 and is started again).
    """

    artists: int = 300
    kills: int = 20
    seed: int = 1
    latency_ms: float = 10.0
    rate: int = 36
    window_s: float = 3.0
    error_rate: float = 0.06
    drop_rate: float = 0.02
    truncate_rate: float = 0.02
    token_ttl_s: float = 10.0
    bare_429_rate: float = 0.3
    ban_after: int = 300
    ban_after_429s: int = 3
    ban_scale: float = 4 / 3600
    max_retry_after_s: float = 6.0
    concurrency: int = 16
    timeout_s: float = 900.0  # the whole soak; a hung crawler fails it rather than hangs CI
    store: Literal["sqlite", "postgres"] = "sqlite"
    processes: int = 3  # of a PostgreSQL soak

    @property
    def crawlers(self) -> int:
        """Processes at once: a SQLite crawl is one process."""
        return self.processes if self.store == "postgres" else 1

    @classmethod
    def quick(cls, store: Literal["sqlite", "postgres"] = "sqlite", **changes: object) -> Plan:
        """A soak small enough for the test suite: a smaller catalog, fewer, earlier kills;
        for PostgreSQL smaller still, and shorter bans (an exit 3 of one of three processes
        waits for the ban's end), to stay as quick with the database restart."""
        base = cls(artists=100, kills=6, rate=90, ban_after=150, store=store)
        if store == "postgres":
            base = replace(base, artists=60, ban_scale=2 / 3600)
        return replace(base, **changes)  # type: ignore[arg-type]


@dataclass
class Report:
    plan: Plan
    kills: int = 0
    db_restarts: int = 0
    progress: list[int] = field(default_factory=list)  # entities kept at each kill
    bans: int = 0  # pauses longer than the window the crawler logged: bans, not limits
    exits: collections.Counter[int] = field(default_factory=collections.Counter)
    requests: int = 0
    throttled: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    audit: Verification | None = None  # of the entity files, once the crawl completed
    leaks: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        f = self.faults
        errors = sum(f.get(k, 0) for k in ("error_500", "error_502", "error_503"))
        truncated = f.get("truncate_short", 0) + f.get("truncate_json", 0)
        injected = errors + f.get("drop", 0) + truncated + f.get("bare_429", 0)
        a = self.audit or Counts(0, 0, 0, 0, 0)
        store, restarts, exits_2 = "", "", ""  # a SQLite soak's line is as it always was
        if self.plan.store == "postgres":
            store = f"store postgres, {self.plan.crawlers} processes, "
            restarts = f"db restarts {self.db_restarts}, "
            exits_2 = f"exits 2: {self.exits[2]}, "
        return (
            f"chaos: {store}kills survived {self.kills}, {restarts}exits 3: {self.exits[3]}, "
            f"exits 1: {self.exits[1]}, {exits_2}bans {self.bans}, requests {self.requests:,}, "
            f"429s {self.throttled:,}, "
            f"faults injected {injected:,} (5xx: {errors:,}, drop: {f.get('drop', 0):,}, "
            f"truncated: {truncated:,}, bare 429: {f.get('bare_429', 0):,}), "
            f"entities {a.records:,}, duplicates {a.duplicates}, missing {a.missing}, "
            f"unexpected {a.unexpected}, torn {a.torn}, secrets leaked {len(self.leaks)}, "
            f"{self.seconds:.0f} s — {'OK' if self.ok else 'FAILED'}"
        )


# -- checks --------------------------------------------------------------------------------


def audit_output(out_dir: Path, truth: Truth) -> Verification:
    """The entity files against the ground truth; a line that is not a whole record is torn."""
    return verify(out_dir, truth.expected, KINDS)


def secret_needles(credentials: Iterable[Credential]) -> dict[str, bytes]:
    """Every form in which a credential could leak: the secret, and the Basic header value."""
    needles: dict[str, bytes] = {}
    for c in credentials:
        needles[f"secret of {c.client_id}"] = c.client_secret.encode()
        basic = base64.b64encode(f"{c.client_id}:{c.client_secret}".encode())
        needles[f"Basic credential of {c.client_id}"] = basic
    return needles


def files_under(*roots: Path) -> Iterator[Path]:
    for root in roots:
        if root.is_file():
            yield root
        elif root.is_dir():
            yield from sorted(p for p in root.rglob("*") if p.is_file())


def find_leaks(paths: Iterable[Path], needles: dict[str, bytes]) -> list[str]:
    """`path: what` for every file holding a needle or anything shaped like a bearer token."""
    leaks = []
    for path in paths:
        data = path.read_bytes()
        leaks += [f"{path}: {name}" for name, needle in needles.items() if needle in data]
        if TOKEN_PATTERN.search(data):
            leaks.append(f"{path}: a bearer token")
    return leaks


# -- the soak ------------------------------------------------------------------------------


def _credentials(rng: random.Random) -> tuple[Credential, Credential]:
    """Two apps on two accounts, with secrets no output could contain by chance."""
    return (
        Credential("chaos-app-a", f"chaos-secret-{rng.randbytes(12).hex()}", "acct-a"),
        Credential("chaos-app-b", f"chaos-secret-{rng.randbytes(12).hex()}", "acct-b"),
    )


def _sim_spec(plan: Plan, credentials: Sequence[Credential]) -> SimSpec:
    config = SimConfig(
        clients=tuple(SimClient(c.client_id, c.client_secret, c.account) for c in credentials),
        rate=plan.rate,
        window_s=plan.window_s,
        bare_429_rate=plan.bare_429_rate,
        ban_after_429s=plan.ban_after_429s,
        ban_scale=plan.ban_scale,
        force_ban_account=credentials[-1].account,
        force_ban_after=plan.ban_after,
        token_ttl_s=plan.token_ttl_s,
        latency_ms=plan.latency_ms,
        error_rate=plan.error_rate,
        drop_rate=plan.drop_rate,
        truncate_rate=plan.truncate_rate,
        fault_seed=plan.seed,
    )
    return SimSpec(plan.artists, plan.seed, config)


def _config_text(
    plan: Plan, url: str, truth: Truth, out_dir: Path, creds: Sequence[Credential], dsn: str
) -> str:
    """benchlib's benchmark config with the soak's short parking limit (so escalated bans
    park accounts, and exit 3 happens) and short timeouts. The secrets and the DSN are
    ${…} references to the crawlers' environment (`_env`), so that every file of the soak can
    be scanned for them, the config too."""
    store = {"backend": "postgres", "dsn": f"${{{DSN_ENV}}}", "name": "chaos"} if dsn else None
    return crawler_config(
        url,
        truth.seeds,
        out_dir,
        [
            msgspec.structs.replace(
                c, client_secret=f"${{{_secret_env(i)}}}", window_s=plan.window_s
            )
            for i, c in enumerate(creds)
        ],
        api={
            "max_retry_after_s": plan.max_retry_after_s,
            "max_retries": 6,
            "connect_timeout_s": 2,
            "read_timeout_s": 5,
        },
        crawl={"concurrency": plan.concurrency, "commit_interval_ms": 100},
        store=store,
    )


def _park_wait_s(log_text: str) -> float:
    """Seconds until the resume time an exit 3 announced (0 if none is found)."""
    found = RESUME_PATTERN.search(log_text)
    if found is None:
        return 0.0
    resume = datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    return min(max(0.0, resume.timestamp() - time.time() + 1.0), MAX_PARK_WAIT_S)


def _tail(path: Path, lines: int = 5) -> str:
    return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])


@contextlib.contextmanager
def _stderr_to(path: Path) -> Iterator[None]:
    """Points this process's fd 2 at ``path`` meanwhile, so that children started meanwhile
    inherit it: aiohttp in the simulator logs a traceback for every request the kills cut off,
    which belongs in a log, not amid the soak's output."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with path.open("ab") as log:
            os.dup2(log.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@dataclass
class _Crawler:
    """One of the soak's crawler processes, or the wait before it is started (again)."""

    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    start_at: float = 0.0  # monotonic: when to start it while proc is None
    done: bool = False  # it exited 0: the crawl is complete, it is not started again


class _PgCommitted:
    """Entity records committed so far, from the record table: a count, not the store's own
    tallies, so the kill schedule does not rest on what it tests. One connection, opened
    again after the database restart; None while the server cannot be reached."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._loop = asyncio.new_event_loop()
        self._conn: Any = None
        self._streams = [STREAMS.index(kind) for kind in KINDS]

    async def _count(self) -> int:
        import asyncpg

        if self._conn is None:
            self._conn = await asyncpg.connect(self._dsn, timeout=5)
        try:
            sql = "SELECT coalesce(sum(lines), 0) FROM chunk WHERE stream = ANY($1::smallint[])"
            return int(await self._conn.fetchval(sql, self._streams))
        except asyncpg.UndefinedTableError:  # before the first crawler made the schema
            return 0

    def __call__(self) -> int | None:
        import asyncpg

        try:
            return self._loop.run_until_complete(self._count())
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            self._drop()
            return None

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.terminate()
            self._conn = None

    def __enter__(self) -> _PgCommitted:
        return self

    def __exit__(self, *exc: object) -> None:
        self._drop()
        self._loop.close()


def _pg_database(server: OwnPostgres) -> str:
    """A fresh database on the soak's server, and its DSN."""
    import asyncpg

    async def create() -> None:
        conn = await asyncpg.connect(server.dsn)
        try:
            await conn.execute(f'CREATE DATABASE "{PG_DATABASE}"')
        finally:
            await conn.close()

    asyncio.run(create())
    return urlunsplit(urlsplit(server.dsn)._replace(path=f"/{PG_DATABASE}"))


def _env(creds: Sequence[Credential], dsn: str) -> dict[str, str]:
    """The crawlers' environment: the secrets the config names as ${…}, and the DSN."""
    env = {**os.environ, **{_secret_env(i): c.client_secret for i, c in enumerate(creds)}}
    return {**env, DSN_ENV: dsn} if dsn else env


def _secret_env(index: int) -> str:
    return f"CHAOS_CLIENT_SECRET_{index}"


def run_soak(plan: Plan, work_dir: Path, keep: bool = False) -> Report:
    """Runs the soak in ``work_dir`` (config, out/, logs/, export/) and returns what it found;
    a PostgreSQL soak runs its own server (kept, stopped, with ``keep``)."""
    with contextlib.ExitStack() as stack:
        if plan.store == "sqlite":
            return _soak(plan, work_dir, None, "")
        server = stack.enter_context(OwnPostgres(keep=keep))
        if keep:
            print(f"chaos: the database server's folder is {server.root}", file=sys.stderr)
        return _soak(plan, work_dir, server, _pg_database(server))


def _soak(plan: Plan, work_dir: Path, server: OwnPostgres | None, dsn: str) -> Report:
    started = time.monotonic()
    deadline = started + plan.timeout_s
    rng = random.Random(plan.seed)
    report = Report(plan)
    creds = _credentials(rng)
    env = _env(creds, dsn)
    out_dir, logs = work_dir / "out", work_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    truth = ground_truth(plan.artists, plan.seed, SEED_ARTISTS)
    config = work_dir / "crawl.toml"
    with _stderr_to(work_dir / SIM_LOG):  # not scanned: the simulator knows the secrets
        sim = Sim(_sim_spec(plan, creds))
    counter = (
        _PgCommitted(dsn)
        if dsn
        else contextlib.nullcontext(partial(committed_records, out_dir / "checkpoint.db"))
    )
    with sim, counter as committed:
        config.write_text(_config_text(plan, sim.url, truth, out_dir, creds, dsn))
        entities = sum(map(len, truth.ids.values()))
        marks = _kill_marks(rng, entities, plan.kills)
        restart_mark = _restart_mark(rng, entities, marks) if server else None
        crawlers = [_Crawler() for _ in range(plan.crawlers)]
        restarted_at: float | None = None
        runs = 0
        try:
            while not all(c.done for c in crawlers):
                if time.monotonic() > deadline:
                    report.problems.append(
                        f"the crawl did not complete within {plan.timeout_s:.0f} s"
                    )
                    break
                for c in crawlers:
                    if c.proc is None and not c.done and time.monotonic() >= c.start_at:
                        runs += 1
                        c.log = logs / f"run-{runs:03d}.log"
                        c.proc = _start(config, c.log, env)
                    elif c.proc is not None and (code := c.proc.poll()) is not None:
                        problem = _ended(c, code, plan, report, restarted_at)
                        report.problems += [problem] if problem else []
                if report.problems:
                    break
                live = [c for c in crawlers if c.proc is not None and c.proc.poll() is None]
                kill_due = report.kills < len(marks)
                crash_due = restart_mark is not None and restarted_at is None
                count = committed() if live and (kill_due or crash_due) else None
                if count is not None and kill_due and count >= marks[report.kills]:
                    victim = rng.choice(live)
                    _kill(victim, plan, report)
                    # A PostgreSQL crawl's files are written by the export at the end, and need
                    # no check after each kill: its records are rows that only committed
                    # transactions insert and nothing deletes, so a duplicate that appeared at
                    # any instant is still there for the final audit.
                    report.progress.append(
                        count if dsn else _audit_after_kill(out_dir, truth, victim, report)
                    )
                if crash_due and count is not None and count >= (restart_mark or 0):
                    assert server is not None
                    server.crash_and_restart()
                    restarted_at = time.monotonic()
                    report.db_restarts += 1
                time.sleep(POLL_S)
        finally:  # whatever went wrong, no crawler outlives the soak
            for c in crawlers:
                if c.proc is not None:
                    _kill(c, plan, report, counted=False)
        stats = sim.stats()
    report.requests = int(stats["total"])
    report.throttled = int(stats["by_status"].get("429", 0))
    report.faults = dict(stats["faults"])
    if report.kills < plan.kills:
        report.problems.append(
            f"the crawl completed after {report.kills} of {plan.kills} kills: use more --artists"
        )
    if server and not report.db_restarts:
        report.problems.append("the crawl completed before the database restart")
    records = out_dir
    if dsn:
        records = work_dir / "export"
        exported = _export(config, records, logs / "export.log", env)
        if exported:
            report.problems.append(exported)
    report.audit = audit_output(records, truth)
    if not report.audit.exact:
        problems = "; ".join(report.audit.problems())
        report.problems.append(f"output is not the ground truth: {problems}")
    needles = secret_needles(creds)
    if password := urlsplit(dsn).password:
        needles["the database password"] = password.encode()
    scanned = [p for p in files_under(work_dir) if p.name != SIM_LOG]
    report.leaks = find_leaks([*scanned, *([server.log] if server else [])], needles)
    report.problems += [f"leak: {leak}" for leak in report.leaks]
    report.seconds = time.monotonic() - started
    return report


def _start(config: Path, log_path: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        return subprocess.Popen(crawler_argv(config), cwd=ROOT, stdout=log, stderr=log, env=env)


def _kill(crawler: _Crawler, plan: Plan, report: Report, counted: bool = True) -> None:
    """SIGKILL, then start it again at once (a restart may find its mark passed and die at
    start-up)."""
    assert crawler.proc is not None and crawler.log is not None
    crawler.proc.send_signal(signal.SIGKILL)
    crawler.proc.wait()
    crawler.proc, crawler.start_at = None, time.monotonic()
    report.kills += counted
    _count_bans(crawler.log, plan, report)


def _count_bans(log_path: Path, plan: Plan, report: Report) -> str:
    text = log_path.read_text(errors="replace")
    report.bans += sum(float(s) > plan.window_s for s in PAUSE_PATTERN.findall(text))
    return text


def _ended(
    crawler: _Crawler, code: int, plan: Plan, report: Report, restarted_at: float | None
) -> str:
    """Books a crawler's exit and when to start it again; a problem, or "" if none."""
    assert crawler.log is not None
    text = _count_bans(crawler.log, plan, report)
    report.exits[code] += 1
    crawler.proc, now = None, time.monotonic()
    if "Traceback" in text:
        return f"a traceback in {crawler.log}"
    # 1: tasks failed ("rerun to retry them"), the database was lost or the leases taken over
    # ("rerun to resume"); 2 from a store that could not be opened while the server was down.
    lost_store = restarted_at is not None and now - restarted_at < RESTART_GRACE_S
    if code == 1 or (code == 2 and lost_store and "cannot open the store" in text):
        crawler.start_at = now
    elif code == 3:
        crawler.start_at = now + _park_wait_s(text)
    elif code == 0:
        crawler.done = True
    else:
        return f"{crawler.log.name} exited {code}: {_tail(crawler.log)}"
    return ""


def _audit_after_kill(out_dir: Path, truth: Truth, victim: _Crawler, report: Report) -> int:
    """Even the output files right after a kill hold no line twice; returns their entities."""
    after_kill = audit_output(out_dir, truth)
    if after_kill.duplicates:
        assert victim.log is not None
        report.problems.append(
            f"{victim.log.name}: {after_kill.duplicates} duplicate lines after SIGKILL"
        )
    return after_kill.records


def _export(config: Path, to: Path, log_path: Path, env: dict[str, str]) -> str:
    """Writes the committed records out as JSON-lines files; a problem, or "" if none."""
    with log_path.open("wb") as log:
        done = subprocess.run(
            export_argv(config, to), cwd=ROOT, stdout=log, stderr=log, env=env, check=False
        )
    return f"the export exited {done.returncode}: {_tail(log_path)}" if done.returncode else ""


def _kill_marks(rng: random.Random, records: int, kills: int) -> list[int]:
    """When to kill: once the checkpoint has passed each of these numbers of committed
    records (random, between 5 % and 95 % of the crawl), so every kill lands mid-crawl on a
    machine of any speed; a restart that finds its mark already passed dies at start-up."""
    return sorted(rng.sample(range(records * 5 // 100, records * 95 // 100), kills))


def _restart_mark(rng: random.Random, records: int, marks: Sequence[int]) -> int:
    """When to crash the database: at a random count between the two middle kills (or in the
    kills' range when there are fewer than two)."""
    bounds = [records * 5 // 100, *marks, records * 95 // 100]
    middle = len(bounds) // 2
    return rng.randint(bounds[middle - 1], bounds[middle])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--artists", type=int, help="catalog size (default 300; quick 60)")
    parser.add_argument("--kills", type=int, help="SIGKILLs before the final run (default 20)")
    parser.add_argument("--seed", type=int, default=1, help="catalog, faults and kill schedule")
    parser.add_argument("--quick", action="store_true", help="a smaller, shorter soak")
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it")
    parser.add_argument(
        "--store",
        choices=("sqlite", "postgres"),
        default="sqlite",
        help="postgres: 3 processes on a server of the soak's own, which it crashes once",
    )
    args = parser.parse_args(argv)
    plan = Plan.quick(args.store) if args.quick else Plan(store=args.store)
    changes = {"artists": args.artists, "kills": args.kills, "seed": args.seed}
    plan = replace(plan, **{k: v for k, v in changes.items() if v is not None})
    with tempfile.TemporaryDirectory(prefix="chaos-") as tmp:
        work_dir = args.keep or Path(tmp)
        report = run_soak(plan, work_dir, keep=args.keep is not None)
        for problem in report.problems:
            print(f"chaos: {problem}", file=sys.stderr)
        if report.problems and args.keep is None:
            print("chaos: rerun with --keep DIR to keep the logs and outputs", file=sys.stderr)
    print(report.summary())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
