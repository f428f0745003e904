"""`spotify-crawler sim`: run the simulator as a standalone server until SIGINT/SIGTERM.

The crawler's CLI imports this module at start-up to register the sub-command, so the server
(aiohttp.web, the catalog) is imported only when the simulator actually runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from typing import TYPE_CHECKING, Any, NoReturn

import orjson

from crawler.sim.cache import DEFAULT_CACHE_MB
from crawler.sim.config import DEFAULT_ARTISTS, DEFAULT_CLIENT, SimClient, SimConfig

if TYPE_CHECKING:
    from crawler.sim.catalog import Catalog

DESCRIPTION = """\
Serve a simulated Spotify Web API on this machine: a synthetic catalog that is
the same for the same --artists and --seed, client-credentials tokens, the real
API's error bodies and, on request, its rate limits, bans and faults. At start
it prints the lines to paste into a crawl.toml."""
EPILOG = """\
example:
  spotify-crawler sim --port 8080 --artists 200 --rate 300 --window-s 30
  spotify-crawler crawl -c crawl.toml  # with the [api], [[credentials]] lines

Ctrl-C (or SIGTERM) stops it."""
BANNER_END = "# Ctrl-C stops the simulator."
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
        "sim",
        help="serve a simulated Spotify Web API",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (%(default)s)")
    p.add_argument("--port", type=int, default=8080, metavar="N", help="%(default)s; 0 = any")
    catalog = p.add_argument_group("catalog")
    catalog.add_argument(
        "--artists", type=int, default=DEFAULT_ARTISTS, metavar="N", help="size (%(default)s)"
    )
    catalog.add_argument("--playlists", type=int, default=20, metavar="N", help="(%(default)s)")
    catalog.add_argument("--seed", type=int, default=1, metavar="N", help="changes every ID")
    catalog.add_argument(
        "--cache-mb",
        type=float,
        default=DEFAULT_CACHE_MB,
        metavar="MB",
        help="memory for rendered objects (%(default)s; 0 = none)",
    )
    api = p.add_argument_group("the app")
    api.add_argument(
        "--mode",
        choices=("extended", "development"),
        default="extended",
        help="%(default)s; development-mode apps get fewer endpoints and fields",
    )
    api.add_argument(
        "--client",
        type=_client,
        action="append",
        metavar="ID:SECRET:ACCOUNT[:RATE]",
        help=f"credentials it accepts; repeatable (default {_client_spec(DEFAULT_CLIENT)})",
    )
    api.add_argument(
        "--token-ttl-s", type=float, default=3600.0, metavar="S", help="(%(default)g s)"
    )
    limits = p.add_argument_group("rate limits and bans (per account)")
    limits.add_argument(
        "--rate", type=int, default=0, metavar="N", help="requests per window (0 = no limit)"
    )
    limits.add_argument("--window-s", type=float, default=30.0, metavar="S", help="(%(default)g s)")
    limits.add_argument("--quota-exceeded", action="store_true", help='429s carry a "reason"')
    limits.add_argument(
        "--bare-429-rate", type=float, default=0.0, metavar="P", help="429s without Retry-After"
    )
    limits.add_argument(
        "--ban-after-429s", type=int, default=0, metavar="N", help="429s in a window that ban"
    )
    limits.add_argument("--ban-scale", type=float, default=1.0, metavar="X", help="ban lengths ×X")
    limits.add_argument("--ban-account", metavar="ACCOUNT", help="ban this account after ...")
    limits.add_argument("--ban-after", type=int, default=0, metavar="N", help="... N requests")
    faults = p.add_argument_group("faults (shares P of responses, replayed by --fault-seed)")
    faults.add_argument("--latency-ms", type=float, default=0.0, metavar="MS", help="mean delay")
    faults.add_argument("--error-rate", type=float, default=0.0, metavar="P", help="500/502/503")
    faults.add_argument("--drop-rate", type=float, default=0.0, metavar="P", help="hang-ups")
    faults.add_argument("--truncate-rate", type=float, default=0.0, metavar="P", help="cut bodies")
    faults.add_argument("--fault-seed", type=int, default=0, metavar="N")
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


def banner(url: str, config: SimConfig) -> str:
    """What `sim` prints at start: its addresses, and crawl.toml lines that point a crawl at it.

    The first line ends with the origin, which scripts read.  The default client's secret is
    printed because it is no secret (it is in the source); a secret given with --client is
    the user's own and is not repeated.
    """
    rates = config.account_rates()
    lines = [
        f"spotify simulator listening on {url}",
        f"API base:  {url}/v1",
        f"token URL: {url}/api/token",
        "",
        "# crawl.toml lines for this simulator:",
        "[api]",
        f"base_url = {_quoted(url)}",
        f"token_url = {_quoted(url + '/api/token')}",
        f"mode = {_quoted(config.mode)}",
    ]
    for client in config.clients:
        secret = (
            client.client_secret if client == DEFAULT_CLIENT else "<the secret given to --client>"
        )
        lines += [
            "",
            "[[credentials]]",
            f"client_id = {_quoted(client.client_id)}",
            f"client_secret = {_quoted(secret)}",
            f"account = {_quoted(client.account)}",
        ]
        if rates[client.account]:
            lines += [f"rate = {rates[client.account]}", f"window_s = {config.window_s:g}"]
    lines += ["", BANNER_END]
    return "\n".join(lines)


def _quoted(text: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's)."""
    return orjson.dumps(text).decode()


async def serve(config: SimConfig, catalog: Catalog, host: str, port: int) -> None:
    from crawler.sim.server import start_sim

    server = await start_sim(config, catalog, host, port)
    print(banner(server.url, config), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def interrupted() -> None:
        server.hang_up()
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, interrupted)
    try:
        await stop.wait()
    finally:
        await server.close()


def run(args: argparse.Namespace) -> NoReturn:
    from crawler.sim.catalog import Catalog

    if args.cache_mb < 0:
        raise SystemExit("--cache-mb must not be negative")
    config = config_from_args(args)
    catalog = Catalog(args.artists, args.seed, args.playlists, args.cache_mb)
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    asyncio.run(serve(config, catalog, args.host, args.port))
    # The server is closed; all that is left are the catalog's caches, ~10^5 objects whose
    # final GC pass and one-by-one deallocation cost 0.3-1.5 CPU-seconds at every Ctrl-C.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
