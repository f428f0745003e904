"""No client secret and no access token ever reaches a log, a progress line, an output file,
the checkpoint or an error message, whatever the crawl goes through.

The simulator runs in-process so that every token it issues is known exactly (recorded as it
issues them); the crawler runs as a real child process whose stdout and stderr are captured.
The scan is the chaos soak's (scripts/chaos.py), extended by those exact tokens. That the
token is never sent to another origin is tests/test_client_security.py's job.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from crawler.sim.catalog import Catalog
from crawler.sim.config import SimClient, SimConfig
from crawler.sim.server import SimServer, start_sim
from tests.crawlkit import record_tokens, start_crawl, write_config

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import chaos
from benchlib import Credential

CATALOG = Catalog(40, seed=13)
SEED = CATALOG.first_artist_ids()[0]
APPS = (
    Credential("leak-app-a", "s3cret-a-7f3c9e1d2b4a", "acct-a", window_s=2.0),
    Credential("leak-app-b", "s3cret-b-0e8d6c4b2a19", "acct-b", window_s=2.0),
)
SIM_CLIENTS = tuple(SimClient(a.client_id, a.client_secret, a.account) for a in APPS)


async def crawl_and_scan(
    tmp_path: Path, sim: SimServer, tokens: list[str], *args: str, **config: Any
) -> tuple[int, str]:
    """Crawls, then scans its output streams and every file it wrote; returns (code, output)."""
    apps = config.pop("apps", APPS)
    path = write_config(tmp_path, sim.url, seeds={"artists": [SEED]}, credentials=apps, **config)
    proc = await start_crawl(path, *args)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode is not None
    (tmp_path / "streams.log").write_bytes(out + err)
    # Keyed by client ID, so the configured apps (which may hold a wrong secret) go apart.
    needles = chaos.secret_needles(APPS)
    needles |= {f"configured {k}": v for k, v in chaos.secret_needles(apps).items()}
    needles |= {f"issued token {i}": t.encode() for i, t in enumerate(tokens)}
    files = [tmp_path / "streams.log", *chaos.files_under(tmp_path / "out")]
    assert chaos.find_leaks(files, needles) == []
    # The scan is not blind: the config holds the secrets it was given.
    assert chaos.find_leaks([path], needles) != []
    return proc.returncode, (out + err).decode()


async def test_verbose_crawl_leaks_nothing(tmp_path: Path) -> None:
    async with await start_sim(SimConfig(clients=SIM_CLIENTS), CATALOG) as sim:
        tokens = record_tokens(sim)
        code, output = await crawl_and_scan(tmp_path, sim, tokens, "-v")
    assert code == 0, output
    assert len(tokens) == 2  # one per app
    assert " DEBUG crawler." in output  # debug logging was on


async def test_crawl_through_faults_401s_and_progress_lines_leaks_nothing(tmp_path: Path) -> None:
    # Tokens live 1.5 s but are announced as 2 s (expires_in is whole seconds), so requests
    # keep meeting expired tokens: 401s, refreshes, retries, all logged at debug level. The
    # rate limit stretches the crawl past the first 10 s progress line.
    sim_config = SimConfig(
        clients=SIM_CLIENTS,
        rate=24,
        window_s=2.0,
        token_ttl_s=1.5,
        bare_429_rate=0.5,
        error_rate=0.05,
        drop_rate=0.03,
        truncate_rate=0.03,
        fault_seed=5,
    )
    async with await start_sim(sim_config, CATALOG) as sim:
        tokens = record_tokens(sim)
        code, output = await crawl_and_scan(tmp_path, sim, tokens, "-v", "--progress", "log")
        stats = await sim.stats()
    assert code == 0, output
    assert stats["by_status"]["401"] > 0 and stats["by_status"]["429"] > 0
    assert len(tokens) > 4
    assert " INFO crawler.crawl.progress: artists " in output


async def test_refused_credential_leaks_nothing(tmp_path: Path) -> None:
    wrong = Credential("leak-app-b", "s3cret-b-WRONG-5a5a5a5a", "acct-b", window_s=2.0)
    async with await start_sim(SimConfig(clients=SIM_CLIENTS), CATALOG) as sim:
        tokens = record_tokens(sim)
        code, output = await crawl_and_scan(
            tmp_path, sim, tokens, "-v", apps=(APPS[0], wrong), api={"max_retries": 1}
        )
    assert code == 1, output
    assert "refused credential leak-app" in output and "invalid_client" in output
    assert tokens  # the good app got its token, which must not leak either
