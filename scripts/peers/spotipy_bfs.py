"""The crawl as a typical spotipy script does it: synchronous, one request at a time.

It uses spotipy as its documentation shows (client-credentials auth manager, the batch
methods at their maximum sizes, paging by offset) and keeps spotipy's default session, retries
and timeouts.  The only departures from a stock script are the addresses (the simulator
instead of api.spotify.com) and an in-memory token cache instead of the default `.cache` file,
which would otherwise be re-read from disk before every request.

    python scripts/peers/spotipy_bfs.py --api http://127.0.0.1:8080 --out out/spotipy \
        --artist 6heDoAZLJST4P7Pm3He94s
"""

from __future__ import annotations

import time
import warnings

import spotipy
from peerlib import (
    INCLUDE_GROUPS,
    PAGE,
    Call,
    Result,
    Sink,
    api_prefix,
    crawl,
    page_of,
    parse_args,
    report,
    run_sync,
    token_url,
)
from spotipy.cache_handler import MemoryCacheHandler
from spotipy.oauth2 import SpotifyClientCredentials

GROUPS = ",".join(INCLUDE_GROUPS)


def connect(origin: str, client_id: str, client_secret: str) -> spotipy.Spotify:
    auth = SpotifyClientCredentials(client_id, client_secret, cache_handler=MemoryCacheHandler())
    # spotipy reads both addresses from attributes: the token URL from a class attribute of
    # the auth manager, the API base from `Spotify.prefix`.  Instance attributes override them.
    auth.OAUTH_TOKEN_URL = token_url(origin)
    sp = spotipy.Spotify(auth_manager=auth)
    sp.prefix = api_prefix(origin)
    return sp


def execute(sp: spotipy.Spotify, call: Call) -> Result:
    arg = call.arg
    match call.op:
        case "artists":
            return sp.artists(arg)["artists"]
        case "related_artists":
            return [a["id"] for a in sp.artist_related_artists(arg)["artists"]]
        case "artist_albums":
            return page_of(
                sp.artist_albums(arg, include_groups=GROUPS, limit=PAGE, offset=call.offset)
            )
        case "albums":
            return sp.albums(arg)["albums"]
        case "album_tracks":
            return page_of(sp.album_tracks(arg, limit=PAGE, offset=call.offset))
        case "tracks":
            return sp.tracks(arg)["tracks"]
        case "audio_features":
            return sp.audio_features(arg)
    raise ValueError(call.op)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    started = time.monotonic()
    # Spotify deprecated related artists and audio features; spotipy warns on every call.
    warnings.simplefilter("ignore", DeprecationWarning)
    sp = connect(args.api, args.client_id, args.client_secret)
    with Sink(args.out) as sink:
        calls = run_sync(crawl(args.artist, sink), lambda call: execute(sp, call))
    report(sink, calls, started)


if __name__ == "__main__":
    main()
