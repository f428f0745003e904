"""`spotify-crawler sim`: options become a SimConfig; it tells a user how to crawl it; it stops
cleanly on a signal."""

from __future__ import annotations

import asyncio
import contextlib
import io
import signal
import sys
import tomllib
from collections.abc import AsyncIterator
from dataclasses import fields
from pathlib import Path

import aiohttp
import orjson
import pytest

from crawler.cli import build_parser
from crawler.sim import cli as sim_cli
from crawler.sim.catalog import Catalog
from crawler.sim.cli import BANNER_END, banner, config_argv, config_from_args
from crawler.sim.config import DEFAULT_CLIENT, SimClient, SimConfig


def test_options_become_the_config() -> None:
    args = build_parser().parse_args(
        ["sim", "--mode", "development", "--rate", "30", "--window-s", "5",
         "--client", "a:b:acct", "--client", "c:d:acct2:7", "--quota-exceeded",
         "--bare-429-rate", "0.2", "--ban-after-429s", "3", "--ban-scale", "0.001",
         "--ban-account", "acct2", "--ban-after", "9", "--token-ttl-s", "60",
         "--latency-ms", "4", "--error-rate", "0.1", "--drop-rate", "0.05",
         "--truncate-rate", "0.02", "--fault-seed", "8"]
    )  # fmt: skip
    config = config_from_args(args)
    assert config.clients == (SimClient("a", "b", "acct"), SimClient("c", "d", "acct2", 7))
    assert config.account_rates() == {"acct": 30, "acct2": 7}
    assert (config.mode, config.window_s, config.quota_exceeded) == ("development", 5.0, True)
    assert (config.ban_after_429s, config.ban_scale) == (3, 0.001)
    assert (config.force_ban_account, config.force_ban_after) == ("acct2", 9)
    assert (config.latency_ms, config.error_rate, config.drop_rate, config.truncate_rate) == (
        4.0,
        0.1,
        0.05,
        0.02,
    )
    assert (config.bare_429_rate, config.token_ttl_s, config.fault_seed) == (0.2, 60.0, 8)


# Every field differs from the default (tested), so a new field without an option fails.
EVERY_FIELD_SET = SimConfig(
    mode="development",
    clients=(SimClient("a", "b", "acct"), SimClient("c", "d", "acct2", 7),
             SimClient("e", "f", "acct", 0)),
    rate=36, window_s=3.0, quota_exceeded=True, bare_429_rate=0.3, ban_after_429s=3,
    ban_scale=4 / 3600, force_ban_account="acct2", force_ban_after=300, token_ttl_s=10.0,
    latency_ms=12.5, error_rate=0.06, drop_rate=0.02, truncate_rate=0.02, fault_seed=7,
)  # fmt: skip


@pytest.mark.parametrize("config", [SimConfig(), SimConfig(latency_ms=50), EVERY_FIELD_SET])
def test_config_argv_parses_back_to_the_config(config: SimConfig) -> None:
    """Scripts start the simulator from a SimConfig: its options must give that config back."""
    assert config_from_args(build_parser().parse_args(["sim", *config_argv(config)])) == config


def test_the_round_trip_sets_every_field() -> None:
    default = SimConfig()
    same = [
        f.name
        for f in fields(SimConfig)
        if getattr(EVERY_FIELD_SET, f.name) == getattr(default, f.name)
    ]
    assert same == []


@pytest.mark.parametrize("spec", ["a:b", "a::c", "a:b:c:x", "a:b:c:1:2"])
def test_bad_client_specs_are_rejected(spec: str) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["sim", "--client", spec])


def test_help_is_written_for_users() -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["sim", "--help"])
    text = out.getvalue()
    assert exited.value.code == 0
    assert sim_cli.DESCRIPTION.splitlines()[0] in text and "Ctrl-C" in text
    assert sim_cli.__doc__ is not None
    assert sim_cli.__doc__.splitlines()[2] not in text  # the module's notes for developers


def _toml_part(text: str) -> dict:
    """The banner from its `[api]` line on: what a user pastes into crawl.toml."""
    return tomllib.loads(text[text.index("[api]") :])


def test_the_banner_is_paste_ready_and_keeps_given_secrets() -> None:
    config = SimConfig(
        mode="development",
        rate=30,
        window_s=5,
        clients=(DEFAULT_CLIENT, SimClient("app", "s3cret-of-theirs", "acct2", 7)),
    )
    text = banner("http://127.0.0.1:8123", config)
    lines = text.splitlines()
    assert lines[0] == "spotify simulator listening on http://127.0.0.1:8123"
    assert "API base:  http://127.0.0.1:8123/v1" in lines
    assert "token URL: http://127.0.0.1:8123/api/token" in lines
    assert lines[-1] == BANNER_END
    assert "s3cret-of-theirs" not in text
    assert _toml_part(text) == {
        "api": {
            "base_url": "http://127.0.0.1:8123",
            "token_url": "http://127.0.0.1:8123/api/token",
            "mode": "development",
        },
        "credentials": [
            {
                "client_id": "sim-client",
                "client_secret": "sim-secret",
                "account": "sim-account",
                "rate": 30,
                "window_s": 5,
            },
            {
                "client_id": "app",
                "client_secret": "<the secret given to --client>",
                "account": "acct2",
                "rate": 7,
                "window_s": 5,
            },
        ],
    }
    assert "rate" not in _toml_part(banner("http://h:1", SimConfig()))["credentials"][0]


@contextlib.asynccontextmanager
async def sim_process(*args: str) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """`spotify-crawler sim` as its own process, and its banner; killed if a test fails."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "crawler", "sim", "--port", "0", *args,
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        lines: list[str] = []
        while not lines or lines[-1] != BANNER_END:
            line = await asyncio.wait_for(proc.stdout.readline(), 30)
            assert line, f"the simulator ended before its banner: {lines}"
            lines.append(line.decode().rstrip("\n"))
        yield proc, "\n".join(lines)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_a_crawl_configured_from_the_banner_crawls_the_server(tmp_path: Path) -> None:
    catalog = Catalog(30)
    seed = catalog.first_artist_ids()[0]
    async with sim_process("--artists", "30") as (proc, text):
        config = tmp_path / "crawl.toml"
        config.write_text(
            text[text.index("[api]") :]
            + f'\n[seeds]\nartists = ["{seed}"]\n'
            + "[expand]\nrelated_artists = false\nartist_albums = []\n"
            + '[crawl]\nout_dir = "out"\nprogress = "off"\n'
        )
        crawl = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "crawler", "crawl", "-c", str(config),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, stderr = await asyncio.wait_for(crawl.communicate(), 120)
        assert crawl.returncode == 0, stderr.decode()
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    written = (tmp_path / "out" / "artists.jsonl").read_bytes().splitlines()
    assert [orjson.loads(line)["id"] for line in written] == [seed]


async def test_it_stops_on_sigterm_and_on_sigint_with_connections_open() -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        async with sim_process("--artists", "100") as (proc, text):
            url = text.splitlines()[0].split()[-1]
            assert url.startswith("http://127.0.0.1:")
            # The session's keep-alive connection stays open while the server stops.
            async with aiohttp.ClientSession() as session:
                async with session.get(f"{url}/__stats") as resp:
                    assert resp.status == 200 and (await resp.json())["total"] == 0
                proc.send_signal(sig)
                assert await asyncio.wait_for(proc.wait(), 30) == 0
