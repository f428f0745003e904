"""`spotify-crawler sim`: options become a SimConfig; the server starts fast, stops cleanly."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from dataclasses import fields

import aiohttp
import pytest

from crawler.cli import build_parser
from crawler.sim.cli import config_argv, config_from_args
from crawler.sim.config import SimClient, SimConfig


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


async def test_the_server_process_starts_fast_serves_and_stops_on_sigterm() -> None:
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "crawler", "sim", "--port", "0", "--artists", "100",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode()
    assert time.monotonic() - started < 5
    url = line.split()[-1]
    assert url.startswith("http://127.0.0.1:")
    async with aiohttp.ClientSession() as session, session.get(f"{url}/__stats") as resp:
        assert resp.status == 200 and (await resp.json())["total"] == 0
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), 10) == 0
