"""Injected faults: 5xx, dropped connections, both kinds of truncation, latency; reproducible."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson
import pytest

from crawler.sim.catalog import Catalog
from crawler.sim.config import SimConfig

CATALOG = Catalog(50, seed=11)
PATH = f"/v1/artists/{CATALOG.first_artist_ids()[0]}"


async def outcome(api: Any) -> str:
    """What a client sees: a status, or how the exchange broke."""
    try:
        reply = await api.get(PATH)
    except aiohttp.ClientPayloadError:
        return "short body"
    except aiohttp.ClientConnectionError:
        return "dropped"
    try:
        orjson.loads(reply.body)
    except orjson.JSONDecodeError:
        return f"{reply.status} cut json"
    return str(reply.status)


async def test_server_errors(sim_api: Any) -> None:
    api = await sim_api(CATALOG, error_rate=1.0)
    api.server.reset_stats()
    seen = {await outcome(api) for _ in range(30)}
    assert seen == {"500", "502", "503"}
    reply = await api.get(PATH)
    assert reply.json()["error"]["status"] == reply.status
    stats = await api.server.stats()
    assert sum(stats["faults"].values()) == 31 == stats["total"]


async def test_dropped_connections(sim_api: Any) -> None:
    api = await sim_api(CATALOG, drop_rate=1.0)
    api.server.reset_stats()
    assert [await outcome(api) for _ in range(5)] == ["dropped"] * 5
    stats = await api.server.stats()
    # aiohttp silently retries a GET once when a reused connection drops.
    assert stats["faults"] == {"drop": stats["total"]} and stats["total"] >= 5
    assert stats["by_status"] == {}


async def test_truncated_bodies_of_both_kinds(sim_api: Any) -> None:
    api = await sim_api(CATALOG, truncate_rate=0.7, fault_seed=5)
    api.server.reset_stats()
    seen = [await outcome(api) for _ in range(30)]
    assert {"short body", "200 cut json"} <= set(seen) <= {"short body", "200 cut json", "200"}
    faults = (await api.server.stats())["faults"]
    assert faults == {
        "truncate_short": seen.count("short body"),
        "truncate_json": seen.count("200 cut json"),
    }


async def test_faults_are_reproducible_from_the_seed(sim_api: Any) -> None:
    options = {"error_rate": 0.3, "drop_rate": 0.2, "truncate_rate": 0.2, "fault_seed": 42}
    runs = []
    for _ in range(2):
        api = await sim_api(CATALOG, **options)
        runs.append([await outcome(api) for _ in range(40)])
    assert runs[0] == runs[1]
    assert {"200", "dropped", "short body", "200 cut json"} <= set(runs[0])


async def test_stats_are_never_faulted(sim_api: Any) -> None:
    api = await sim_api(CATALOG, error_rate=0.5, drop_rate=0.5)
    for _ in range(10):
        reply = await api.request("GET", "/__stats", auth=False)
        assert reply.status == 200


async def test_latency_has_the_configured_mean(sim_api: Any) -> None:
    api = await sim_api(CATALOG, latency_ms=20, fault_seed=1)
    loop_time = asyncio.get_running_loop().time
    start = loop_time()
    for _ in range(40):
        assert (await api.get(PATH)).status == 200
    mean_ms = (loop_time() - start) / 40 * 1000
    assert 10 <= mean_ms <= 45
    assert (await api.server.stats())["faults"]["latency"] == 41


@pytest.mark.parametrize("rates", [{"error_rate": 0.6, "drop_rate": 0.6}, {"truncate_rate": 1.5}])
def test_fault_rates_are_validated(rates: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        SimConfig(**rates)
