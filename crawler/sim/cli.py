"""`spotify-crawler sim`: run the simulator as a standalone server until SIGINT/SIGTERM.

The crawler's CLI imports this module at start-up to register the sub-command, so the server
(aiohttp.web, the catalog) is imported only when the simulator actually runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from typing import TYPE_CHECKING, Any

from crawler.sim.cache import DEFAULT_CACHE_MB
from crawler.sim.config import DEFAULT_ARTISTS, DEFAULT_CLIENT, SimClient, SimConfig

if TYPE_CHECKING:
    from crawler.sim.catalog import Catalog

# SimConfig field → the `sim` option that sets it, for every field but `clients` (repeated
# --client): the one place both directions, options → config and config → options, read.
_OPTIONS = {
    "mode": "--mode",
    "rate": "--rate",
    "window_s": "--window-s",
    "quota_exceeded": "--quota-exceeded",
    "bare_429_rate": "--bare-429-rate",
    "ban_after_429s": "--ban-after-429s",
    "ban_scale": "--ban-scale",
    "force_ban_account": "--ban-account",
    "force_ban_after": "--ban-after",
    "token_ttl_s": "--token-ttl-s",
    "latency_ms": "--latency-ms",
    "error_rate": "--error-rate",
    "drop_rate": "--drop-rate",
    "truncate_rate": "--truncate-rate",
    "fault_seed": "--fault-seed",
}


def _client(spec: str) -> SimClient:
    """ID:SECRET:ACCOUNT[:RATE] → SimClient."""
    parts = spec.split(":")
    if len(parts) not in (3, 4) or not all(parts[:3]):
        raise argparse.ArgumentTypeError(f"expected ID:SECRET:ACCOUNT[:RATE], got {spec!r}")
    try:
        rate = int(parts[3]) if len(parts) == 4 else None
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"RATE must be an integer in {spec!r}") from exc
    return SimClient(parts[0], parts[1], parts[2], rate)


def _client_spec(client: SimClient) -> str:
    """SimClient → ID:SECRET:ACCOUNT[:RATE], the inverse of `_client`."""
    rate = () if client.rate is None else (str(client.rate),)
    return ":".join((client.client_id, client.client_secret, client.account, *rate))


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "sim", help="serve a simulated Spotify Web API", description=__doc__
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--artists", type=int, default=DEFAULT_ARTISTS, help="catalog size")
    p.add_argument("--seed", type=int, default=1, help="catalog seed (changes every ID)")
    p.add_argument("--playlists", type=int, default=20)
    p.add_argument(
        "--cache-mb",
        type=float,
        default=DEFAULT_CACHE_MB,
        help="memory for serialized objects (0 = no cache)",
    )
    p.add_argument("--mode", choices=("extended", "development"), default="extended")
    p.add_argument(
        "--client",
        type=_client,
        action="append",
        metavar="ID:SECRET:ACCOUNT[:RATE]",
        help=f"repeatable; default {_client_spec(DEFAULT_CLIENT)}",
    )
    p.add_argument("--rate", type=int, default=0, help="requests per window per account (0 = ∞)")
    p.add_argument("--window-s", type=float, default=30.0)
    p.add_argument("--quota-exceeded", action="store_true", help='429 bodies carry "reason"')
    p.add_argument("--bare-429-rate", type=float, default=0.0, help="share of 429s w/o header")
    p.add_argument("--ban-after-429s", type=int, default=0, help="0 = never ban")
    p.add_argument("--ban-scale", type=float, default=1.0, help="multiplies ban durations")
    p.add_argument("--ban-account", default=None, help="force a ban on this account ...")
    p.add_argument("--ban-after", type=int, default=0, help="... after this many requests")
    p.add_argument("--token-ttl-s", type=float, default=3600.0)
    p.add_argument("--latency-ms", type=float, default=0.0, help="mean added latency")
    p.add_argument("--error-rate", type=float, default=0.0, help="share of 500/502/503")
    p.add_argument("--drop-rate", type=float, default=0.0, help="share of dropped connections")
    p.add_argument("--truncate-rate", type=float, default=0.0, help="share of truncated bodies")
    p.add_argument("--fault-seed", type=int, default=0)
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> SimConfig:
    """The parsed `sim` options as a SimConfig; an option's dest is argparse's: --a-b → a_b."""
    fields = {f: getattr(args, o[2:].replace("-", "_")) for f, o in _OPTIONS.items()}
    return SimConfig(clients=tuple(args.client or (DEFAULT_CLIENT,)), **fields)


def config_argv(config: SimConfig) -> list[str]:
    """The `sim` options that `config_from_args` turns back into `config`.

    Scripts that start the simulator as a process build a SimConfig, a checked value, rather
    than a command line of their own.  Defaults are left out, so the command line shows what a
    run changes; the only boolean option is a store_true flag, so a non-default one is "on".
    """
    default = SimConfig()
    argv: list[str] = []
    if config.clients != default.clients:
        for client in config.clients:
            argv += ["--client", _client_spec(client)]
    for field, option in _OPTIONS.items():
        value = getattr(config, field)
        if value == getattr(default, field):
            continue
        argv += [option] if isinstance(value, bool) else [option, str(value)]
    return argv


async def serve(config: SimConfig, catalog: Catalog, host: str, port: int) -> None:
    from crawler.sim.server import start_sim

    server = await start_sim(config, catalog, host, port)
    print(f"spotify simulator listening on {server.url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.close()


def run(args: argparse.Namespace) -> int:
    from crawler.sim.catalog import Catalog

    if args.cache_mb < 0:
        raise SystemExit("--cache-mb must not be negative")
    config = config_from_args(args)
    catalog = Catalog(args.artists, args.seed, args.playlists, args.cache_mb)
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    asyncio.run(serve(config, catalog, args.host, args.port))
    return 0
