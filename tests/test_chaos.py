"""The chaos soak of scripts/chaos.py, small enough for the suite (well under 60 s).

SIGKILLs at seeded random instants against a simulator serving 5xx, dropped connections,
truncated bodies, 10 s tokens, bare 429s and an escalating ban: the end result must still be
the exact ground truth, with no duplicate or torn line and no secret or token on disk or in
a log. The soak's own checkers are tested first, since a checker that waves a wrong crawl
through would make the soak worthless.
"""

from __future__ import annotations

import sys
from pathlib import Path

import orjson

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
sys.path.insert(0, str(SCRIPTS))

import chaos  # noqa: E402
from benchlib import Credential, ground_truth  # noqa: E402
from peers.peerlib import OUTPUT_FILES  # noqa: E402

from tests.pg import installed, unavailable  # noqa: E402

TRUTH = ground_truth(20, 3, chaos.SEED_ARTISTS)


def _write_outputs(out: Path, extra: bytes = b"", drop: int = 0) -> None:
    """The ground truth as output files, ``drop`` artists left out, ``extra`` appended."""
    out.mkdir()
    for kind in chaos.KINDS:
        ids = sorted(TRUTH.ids[kind])[drop if kind == "artists" else 0 :]
        lines = b"".join(orjson.dumps({"id": i}) + b"\n" for i in ids)
        (out / OUTPUT_FILES[kind]).write_bytes(lines + (extra if kind == "albums" else b""))


def test_audit_counts_duplicates_missing_and_torn_lines(tmp_path: Path) -> None:
    a_album = next(iter(TRUTH.ids["albums"])).encode()
    _write_outputs(tmp_path / "out", b'{"id": "' + a_album + b'"}\n{"id": "x', drop=2)
    entities = sum(len(ids) for ids in TRUTH.ids.values()) - 2 + 1
    audit = chaos.audit_output(tmp_path / "out", TRUTH)
    assert (audit.records, audit.duplicates, audit.missing, audit.unexpected, audit.torn) == (
        entities,
        1,
        2,
        0,
        2,
    )


def test_leak_scan_finds_secrets_basic_credentials_and_token_shapes(tmp_path: Path) -> None:
    cred = Credential("app", "s3cret-value", "acct")
    needles = chaos.secret_needles([cred])
    (tmp_path / "a.log").write_bytes(b"x s3cret-value y")
    (tmp_path / "b.log").write_bytes(b"Authorization: Basic YXBwOnMzY3JldC12YWx1ZQ==")
    (tmp_path / "c.db").write_bytes(b"\x00BQ" + b"a_-9" * 20 + b"\x00")
    (tmp_path / "d.log").write_bytes(b"BQ too short, and app / acct are no secrets")
    assert chaos.find_leaks(chaos.files_under(tmp_path), needles) == [
        f"{tmp_path / 'a.log'}: secret of app",
        f"{tmp_path / 'b.log'}: Basic credential of app",
        f"{tmp_path / 'c.db'}: a bearer token",
    ]


def test_quick_chaos_soak_survives_every_kill_and_ends_exact(tmp_path: Path) -> None:
    plan = chaos.Plan.quick()
    report = chaos.run_soak(plan, tmp_path)
    assert report.problems == [], report.summary()
    assert report.kills == plan.kills == 6
    truth = ground_truth(plan.artists, plan.seed, chaos.SEED_ARTISTS)
    assert report.audit is not None and report.audit.exact
    assert report.audit.records == sum(len(ids) for ids in truth.ids.values())
    assert report.leaks == []
    assert report.exits[0] == 1 and set(report.exits) <= {0, 1, 3}
    # The faults really happened, and the kills landed mid-crawl with work already kept.
    for fault in ("error_500", "drop", "truncate_json", "bare_429"):
        assert report.faults.get(fault, 0) > 0, report.faults
    assert report.throttled > 0
    assert 0 < max(report.progress) < report.audit.records
    assert "— OK" in report.summary()


def test_quick_postgres_soak_of_three_processes_survives_kills_and_a_database_crash(
    tmp_path: Path,
) -> None:
    """Three processes on one crawl, random ones SIGKILLed, the server crashed once: the
    export is the ground truth, and neither a secret nor the DSN's password is in any file."""
    if not installed():
        unavailable("PostgreSQL is not installed: run `bash scripts/postgres.sh start` once")
    plan = chaos.Plan.quick("postgres")
    try:
        report = chaos.run_soak(plan, tmp_path)
    except RuntimeError as exc:  # its own server would not start
        unavailable(str(exc))
    assert report.problems == [], report.summary()
    assert (report.kills, report.db_restarts) == (plan.kills, 1) == (6, 1)
    assert report.audit is not None and report.audit.exact and report.audit.records
    assert report.leaks == []
    assert report.exits[0] == plan.processes == 3 and set(report.exits) <= {0, 1, 2, 3}
    assert report.exits[1] + report.exits[2] >= 1  # the crash stopped whoever was running
    for fault in ("error_500", "drop", "bare_429"):
        assert report.faults.get(fault, 0) > 0, report.faults
    assert "— OK" in report.summary()
