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
  checkpoint, or the captured stderr/stdout of any run.

It prints one summary line and exits 1 if anything is off (details go to stderr first).

    python scripts/chaos.py                       # defaults: a few minutes on 2 cores
    python scripts/chaos.py --quick               # a smaller smoke run
    python scripts/chaos.py --artists 500 --kills 40 --seed 7 --keep /tmp/chaos
"""

from __future__ import annotations

import argparse
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
from pathlib import Path

import msgspec

# Importable from the tests too, which put scripts/ on sys.path the same way.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import (
    ROOT,
    Sim,
    SimSpec,
    Truth,
    crawler_argv,
    crawler_config,
    ground_truth,
)
from peers.peerlib import KINDS

from crawler.core.config import Credential
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

    @classmethod
    def quick(cls, **changes: object) -> Plan:
        """A soak small enough for the test suite: a smaller catalog, fewer, earlier kills."""
        base = cls(artists=100, kills=6, rate=90, ban_after=150)
        return replace(base, **changes)  # type: ignore[arg-type]


@dataclass
class Report:
    plan: Plan
    kills: int = 0
    progress: list[int] = field(default_factory=list)  # entities on disk after each kill
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
        return (
            f"chaos: kills survived {self.kills}, exits 3: {self.exits[3]}, "
            f"exits 1: {self.exits[1]}, bans {self.bans}, requests {self.requests:,}, "
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
    plan: Plan, url: str, truth: Truth, out_dir: Path, creds: Sequence[Credential]
) -> str:
    """benchlib's benchmark config with the soak's short parking limit (so escalated bans
    park accounts, and exit 3 happens) and short timeouts."""
    return crawler_config(
        url,
        truth.seeds,
        out_dir,
        [msgspec.structs.replace(c, window_s=plan.window_s) for c in creds],
        api={
            "max_retry_after_s": plan.max_retry_after_s,
            "max_retries": 6,
            "connect_timeout_s": 2,
            "read_timeout_s": 5,
        },
        crawl={"concurrency": plan.concurrency, "commit_interval_ms": 100},
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


def run_soak(plan: Plan, work_dir: Path) -> Report:
    """Runs the soak in ``work_dir`` (config, out/, logs/) and returns what it found."""
    started = time.monotonic()
    deadline = started + plan.timeout_s
    rng = random.Random(plan.seed)
    report = Report(plan)
    creds = _credentials(rng)
    out_dir, logs = work_dir / "out", work_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    truth = ground_truth(plan.artists, plan.seed, SEED_ARTISTS)
    config = work_dir / "crawl.toml"
    with _stderr_to(work_dir / "sim.log"):  # not scanned: the simulator knows the secrets
        sim = Sim(_sim_spec(plan, creds))
    with sim:
        config.write_text(_config_text(plan, sim.url, truth, out_dir, creds))
        marks = _kill_marks(rng, sum(map(len, truth.ids.values())), plan.kills)
        run = 0
        while time.monotonic() < deadline:
            run += 1
            log_path = logs / f"run-{run:03d}.log"
            mark = marks[report.kills] if report.kills < len(marks) else None
            code = _one_run(config, out_dir / "checkpoint.db", log_path, deadline, report, mark)
            text = log_path.read_text(errors="replace")
            report.bans += sum(float(s) > plan.window_s for s in PAUSE_PATTERN.findall(text))
            if code is None:  # killed; even the state right after a kill holds no line twice
                after_kill = audit_output(out_dir, truth)
                report.progress.append(after_kill.records)
                if after_kill.duplicates:
                    report.problems.append(
                        f"run {run}: {after_kill.duplicates} duplicate lines after SIGKILL"
                    )
                continue
            report.exits[code] += 1
            if "Traceback" in text:
                report.problems.append(f"run {run}: a traceback in {log_path}")
            if code == 0:
                break
            if code == 3:
                time.sleep(_park_wait_s(text))
            elif code != 1:  # 1 = some tasks failed, "rerun to retry them"
                report.problems.append(f"run {run} exited {code}: {_tail(log_path)}")
                break
        else:
            report.problems.append(f"the crawl did not complete within {plan.timeout_s:.0f} s")
        stats = sim.stats()
    report.requests = int(stats["total"])
    report.throttled = int(stats["by_status"].get("429", 0))
    report.faults = dict(stats["faults"])
    if report.kills < plan.kills:
        report.problems.append(
            f"the crawl completed after {report.kills} of {plan.kills} kills: use more --artists"
        )
    report.audit = audit_output(out_dir, truth)
    if not report.audit.exact:
        problems = "; ".join(report.audit.problems())
        report.problems.append(f"output is not the ground truth: {problems}")
    report.leaks = find_leaks(files_under(out_dir, logs), secret_needles(creds))
    report.problems += [f"leak: {leak}" for leak in report.leaks]
    report.seconds = time.monotonic() - started
    return report


def _kill_marks(rng: random.Random, records: int, kills: int) -> list[int]:
    """When to kill: once the checkpoint has passed each of these numbers of committed
    records (random, between 5 % and 95 % of the crawl), so every kill lands mid-crawl on a
    machine of any speed; a restart that finds its mark already passed dies at start-up."""
    return sorted(rng.sample(range(records * 5 // 100, records * 95 // 100), kills))


def _one_run(
    config: Path,
    checkpoint: Path,
    log_path: Path,
    deadline: float,
    report: Report,
    mark: int | None,
) -> int | None:
    """One crawler process; its exit code, or None if the soak killed it at ``mark``."""
    with log_path.open("wb") as log:
        proc = subprocess.Popen(crawler_argv(config), cwd=ROOT, stdout=log, stderr=log)
        while (code := proc.poll()) is None:
            if time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                return -int(signal.SIGKILL)  # the deadline, not the schedule: a hung crawl
            if mark is not None and committed_records(checkpoint) >= mark:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                report.kills += 1
                return None
            time.sleep(POLL_S)
        return code


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--artists", type=int, help="catalog size (default 300; quick 60)")
    parser.add_argument("--kills", type=int, help="SIGKILLs before the final run (default 20)")
    parser.add_argument("--seed", type=int, default=1, help="catalog, faults and kill schedule")
    parser.add_argument("--quick", action="store_true", help="a smaller, shorter soak")
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it")
    args = parser.parse_args(argv)
    plan = Plan.quick() if args.quick else Plan()
    changes = {"artists": args.artists, "kills": args.kills, "seed": args.seed}
    plan = replace(plan, **{k: v for k, v in changes.items() if v is not None})
    with tempfile.TemporaryDirectory(prefix="chaos-") as tmp:
        work_dir = args.keep or Path(tmp)
        report = run_soak(plan, work_dir)
        for problem in report.problems:
            print(f"chaos: {problem}", file=sys.stderr)
        if report.problems and args.keep is None:
            print("chaos: rerun with --keep DIR to keep the logs and outputs", file=sys.stderr)
    print(report.summary())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
