"""The crawl as a typical tekore script does it: asynchronous, level by level, 32 requests at once.

It uses tekore as its documentation shows: an asynchronous `tk.Spotify` with
`max_limits_on`, a client token from `tk.Credentials`, a `tk.RetryingSender` (which honours
Retry-After on 429s and retries 5xx) over the default httpx-based `tk.AsyncSender`, and
tekore's response models, which are dumped back to JSON for the output files.  Each BFS step
is one `asyncio.gather` under a semaphore.  The httpx pool keeps as many idle connections as
requests in flight (its default keeps 20), so no request waits for a reconnect.

    python scripts/peers/tekore_bfs.py --api http://127.0.0.1:8080 --out out/tekore \
        --artist 6heDoAZLJST4P7Pm3He94s
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import tekore as tk
import tekore._auth.expiring.client as tekore_auth
import tekore._client.base as tekore_base
from peerlib import (
    INCLUDE_GROUPS,
    PAGE,
    Call,
    Json,
    Page,
    Result,
    Sink,
    api_prefix,
    crawl,
    parse_args,
    report,
    run_async,
    token_url,
)

CONCURRENCY = 32


def aim_at(origin: str) -> None:
    """Points tekore at the simulator.

    tekore hard-codes both addresses as module constants (`prefix` in tekore._client.base,
    OAUTH_TOKEN_URL in tekore._auth.expiring.client) and reads them at call time, so
    rebinding them is the least intrusive way to use another host.
    """
    tekore_base.prefix = api_prefix(origin)
    tekore_auth.OAUTH_TOKEN_URL = token_url(origin)


def _dump(model: Any) -> Json | None:
    """The model as the API sent it (fields tekore filled in with defaults are left out)."""
    return None if model is None else model.model_dump(mode="json", exclude_unset=True)


def _page(paging: Any) -> Page:
    return Page([item.id for item in paging.items], paging.offset, paging.limit, paging.total)


async def execute(sp: tk.Spotify, call: Call) -> Result:
    arg = call.arg
    match call.op:
        case "artists":
            return [_dump(a) for a in await sp.artists(list(arg))]
        case "related_artists":
            return [a.id for a in await sp.artist_related_artists(arg)]
        case "artist_albums":
            return _page(
                await sp.artist_albums(
                    arg, include_groups=list(INCLUDE_GROUPS), limit=PAGE, offset=call.offset
                )
            )
        case "albums":
            return [_dump(a) for a in await sp.albums(list(arg))]
        case "album_tracks":
            return _page(await sp.album_tracks(arg, limit=PAGE, offset=call.offset))
        case "tracks":
            return [_dump(t) for t in await sp.tracks(list(arg))]
        case "audio_features":
            return [_dump(f) for f in await sp.tracks_audio_features(list(arg))]
    raise ValueError(call.op)


async def amain() -> None:
    args = parse_args(__doc__.splitlines()[0], concurrency=CONCURRENCY)
    started = time.monotonic()
    aim_at(args.api)
    n = args.concurrency
    pool = httpx.AsyncClient(limits=httpx.Limits(max_connections=n, max_keepalive_connections=n))
    sender = tk.RetryingSender(retries=3, sender=tk.AsyncSender(pool))
    credentials = tk.Credentials(args.client_id, args.client_secret, sender=sender)
    token = await credentials.request_client_token()
    sp = tk.Spotify(token, sender=sender, max_limits_on=True)
    try:
        with Sink(args.out) as sink:
            calls = await run_async(crawl(args.artist, sink), lambda c: execute(sp, c), n)
    finally:
        await pool.aclose()
    report(sink, calls, started)


if __name__ == "__main__":
    asyncio.run(amain())
