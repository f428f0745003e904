"""The Spotify Web API as the engine sees it: IDs in, raw objects and msgspec views out.

Each method knows its endpoint's meaning of the final answers (see transport.py): a 404 on a
single ID is a missing entity, a 403 on a batch endpoint means this app must fetch one ID at a
time, and so on. What is learned that way lives in ``capabilities``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Self

import aiohttp
import msgspec
from msgspec import Raw

from crawler.api.auth import TokenSource
from crawler.api.capabilities import DEVELOPMENT_PAGE_LIMIT, Capabilities, Learnable, PageLimit
from crawler.api.clock import SYSTEM_CLOCK, Clock
from crawler.api.http import ApiHttp, checked_origin, open_session
from crawler.api.ledger import Ledger
from crawler.api.pool import AccountPool, PoolStatus
from crawler.api.retry import Backoff
from crawler.api.schema import (
    NULL,
    AlbumsBatch,
    ArtistAlbumsPage,
    ArtistsBatch,
    FeaturesBatch,
    Page,
    Playlist,
    RelatedArtists,
    SearchItems,
    SearchResults,
    TracksBatch,
    decode_entity,
    decode_page,
    decode_playlist,
    decoder,
)
from crawler.api.transport import Decode, Reply, Transport
from crawler.core.config import ApiConfig, Credential
from crawler.core.errors import ConfigError, EdgeUnavailable, RequestFailed
from crawler.core.ids import is_spotify_id
from crawler.core.kinds import ENTITIES, EntityKind, Flag, Op
from crawler.core.stats import Stats

log = logging.getLogger(__name__)

PAGE_LIMIT = 50
SEARCH_LIMIT = 10  # results per plain-string (artist) seed query: its first page

SearchKind = Literal["artist", "album", "track", "playlist"]


@dataclass(frozen=True, slots=True)
class SearchPage:
    """One page of search results: the IDs found, in order, and how to page on."""

    ids: list[str]  # without the nulls the API returns for results it hides
    total: int
    limit: int  # the page size the API used, which may be less than asked for
    offset: int
    credits: list[str]  # artists credited on the tracks found (a search of tracks)


def batch_decoder(kind: EntityKind, count: int) -> Decode:
    """Decode a batch response into its raw objects (None for null): one per ID asked."""
    decode = _ENVELOPES[kind.op].decode

    def objects(body: bytes) -> list[Raw | None]:
        items: list[Raw] = msgspec.structs.astuple(decode(body))[0]
        if len(items) != count:
            raise msgspec.ValidationError(f"{len(items)} objects for {count} IDs")
        return [None if raw == NULL else raw for raw in items]

    return objects


# Batch responses: one list of raw objects under the kind's stream name.
_ENVELOPES = {
    Op.ARTIST: decoder(ArtistsBatch),
    Op.ALBUM: decoder(AlbumsBatch),
    Op.TRACK: decoder(TracksBatch),
    Op.FEATURES: decoder(FeaturesBatch),
}
_decode_related = decoder(RelatedArtists).decode
_decode_artist_albums = decoder(ArtistAlbumsPage).decode
_decode_search_results = decoder(SearchResults).decode


def _search_decoder(kind: SearchKind) -> Decode:
    """The one result type asked for; a body without it is of the wrong shape (retried)."""
    key = f"{kind}s"

    def page(body: bytes) -> SearchItems:
        items: SearchItems | None = getattr(_decode_search_results(body), key)
        if items is None:
            raise msgspec.ValidationError(f"search response without {key!r}")
        return items

    return page


_SEARCH_DECODERS: dict[SearchKind, Decode] = {
    kind: _search_decoder(kind) for kind in ("artist", "album", "track", "playlist")
}


def _raw_playlist(body: bytes) -> tuple[Raw, Playlist]:
    return Raw(body), decode_playlist(body)


def _raw_entity(body: bytes) -> Raw:
    """A single object, checked to be one, kept as the API's own bytes."""
    decode_entity(body)
    return Raw(body)


def _refused_batch(kind: EntityKind) -> str:
    name = kind.stream.replace("_", " ")
    if kind.single is None:
        return f"{name} are refused to this app (403): skipping them"
    return (
        f"the {name} batch endpoint is refused to this app (403, development mode?): "
        f"fetching {name} one ID at a time"
    )


def _unexpected(endpoint: str, reply: Reply) -> RequestFailed:
    return RequestFailed(endpoint, reply.describe())


def _accounts(credentials: Sequence[Credential]) -> dict[str, tuple[int, float]]:
    """(rate, window) per account; its credentials must agree, as they describe one quota."""
    if not credentials:
        raise ConfigError("no credentials configured")
    limits: dict[str, tuple[int, float]] = {}
    for c in credentials:
        if limits.setdefault(c.account, (c.rate, c.window_s)) != (c.rate, c.window_s):
            raise ConfigError(
                f"credentials of account {c.account!r} disagree on rate or window_s; "
                "they share one quota, so give them the same values"
            )
    return limits


async def _gather(aws: Iterable[Awaitable[Any]]) -> list[Any]:
    """asyncio.gather that cancels the siblings of the first failure instead of orphaning them."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        raise


class SpotifyClient:
    """Async context manager owning the HTTP session; share one instance among all workers."""

    def __init__(
        self,
        api: ApiConfig,
        credentials: Sequence[Credential],
        *,
        concurrency: int,
        stats: Stats,
        capabilities: Capabilities | None = None,
        backoff: Backoff | None = None,
        clock: Clock = SYSTEM_CLOCK,
        ledger: Ledger | None = None,
    ) -> None:
        """``capabilities`` from an earlier run's checkpoint replace those of ``api.mode``;
        ``clock`` times rate limits, token lifetimes and backoff (tests pass virtual time);
        ``ledger``: where the accounts' budgets live, if other processes share them."""
        checked_origin(api.base_url, "base_url")
        checked_origin(api.token_url, "token_url")
        self.api = api
        self.capabilities = capabilities or Capabilities.for_mode(api.mode)
        self._credentials = tuple(credentials)
        self._concurrency = concurrency
        self._stats = stats
        self._backoff = backoff or Backoff()
        self._clock = clock
        self._pool = AccountPool(
            _accounts(self._credentials),
            max_retry_after_s=api.max_retry_after_s,
            backoff=self._backoff,
            clock=clock,
            max_in_flight=concurrency,
            measured=self.capabilities.budgets,
            on_measured=self.capabilities.measured,
            ledger=ledger,
        )
        self._session: aiohttp.ClientSession | None = None
        self._transport: Transport | None = None
        self._probes: defaultdict[Flag, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def __aenter__(self) -> Self:
        self._session = session = open_session(self.api, self._concurrency)
        tokens: dict[str, list[TokenSource]] = {}
        for credential in self._credentials:
            tokens.setdefault(credential.account, []).append(
                TokenSource(
                    credential,
                    self.api.token_url,
                    session,
                    self._stats,
                    backoff=self._backoff,
                    max_retries=self.api.max_retries,
                    clock=self._clock,
                )
            )
        self._transport = Transport(
            ApiHttp(session, self.api.base_url),
            self.api.base_url,
            self._pool,
            tokens,
            self._stats,
            backoff=self._backoff,
            max_retries=self.api.max_retries,
            clock=self._clock,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()
        self._session = self._transport = None

    def status(self) -> PoolStatus:
        """Per-account snapshot for progress displays (rate, parked until, quota exceeded)."""
        return self._pool.status()

    async def _get(
        self, endpoint: str, path: str, params: dict[str, str] | None = None, *, decode: Decode
    ) -> Reply:
        if self._transport is None:
            raise RuntimeError("use SpotifyClient as `async with SpotifyClient(...) as client`")
        return await self._transport.get(endpoint, path, params, decode=decode)

    def _learn(self, name: Learnable, value: bool | int, warning: str) -> None:
        if self.capabilities.learn(name, value):
            log.warning("%s", warning)

    @asynccontextmanager
    async def _first_to_learn(self, flag: Flag) -> AsyncIterator[None]:
        """While ``flag`` is unknown, one call at a time finds it out; the rest await its verdict.

        Otherwise every worker's first call would probe at once, and a development-mode app
        would collect one refusal per worker instead of one. Once the verdict is in, the
        calls that waited for it go on together, not one by one through the lock.
        """
        if getattr(self.capabilities, flag) is None:
            lock = self._probes[flag]
            await lock.acquire()
            try:
                if getattr(self.capabilities, flag) is None:
                    yield  # this call probes, holding the lock
                    return
            finally:
                lock.release()
        yield

    # -------------------------------------------------------------- entities by ID

    async def artists(self, ids: Sequence[str]) -> list[Raw | None]:
        return await self._entities(ENTITIES[Op.ARTIST], ids)

    async def albums(self, ids: Sequence[str]) -> list[Raw | None]:
        return await self._entities(ENTITIES[Op.ALBUM], ids)

    async def tracks(self, ids: Sequence[str]) -> list[Raw | None]:
        return await self._entities(ENTITIES[Op.TRACK], ids)

    async def audio_features(self, ids: Sequence[str]) -> list[Raw | None]:
        """Features aligned with ``ids``; EdgeUnavailable when this app may not read them."""
        return await self._entities(ENTITIES[Op.FEATURES], ids)

    async def _entities(self, kind: EntityKind, ids: Sequence[str]) -> list[Raw | None]:
        """The objects (raw bytes) aligned with ``ids``; None where the API knows none."""
        if len(ids) > kind.batch_size:
            raise ValueError(f"at most {kind.batch_size} {kind.stream} per call")
        if not ids:
            return []
        flag = kind.flag
        async with self._first_to_learn(flag):
            if getattr(self.capabilities, flag) is not False:
                reply = await self._get(
                    kind.endpoint,
                    kind.path,
                    {"ids": ",".join(ids)},
                    decode=batch_decoder(kind, len(ids)),
                )
                if reply.status == 200:
                    self.capabilities.learn(flag, True)
                    return reply.data
                if reply.status != 403:
                    raise _unexpected(kind.endpoint, reply)
                self._learn(flag, False, _refused_batch(kind))
        return await self._singles(kind, ids)

    async def _singles(self, kind: EntityKind, ids: Sequence[str]) -> list[Raw | None]:
        if kind.single is None:
            raise EdgeUnavailable(kind.endpoint)
        return await _gather(
            self._single(kind.single, f"{kind.path}/{i}", _raw_entity) for i in ids
        )

    async def _single(self, endpoint: str, path: str, decode: Decode) -> Any:
        reply = await self._get(endpoint, path, decode=decode)
        if reply.status == 200:
            return reply.data
        if reply.status == 404:
            return None
        raise _unexpected(endpoint, reply)

    async def playlist(self, playlist_id: str) -> tuple[Raw, Playlist] | None:
        """The playlist as the API's own bytes (its output line), and the view the crawl reads."""
        return await self._single("playlist", f"/v1/playlists/{playlist_id}", _raw_playlist)

    # -------------------------------------------------------------- edges and pages

    async def related_artists(self, artist_id: str) -> list[str]:
        """EdgeUnavailable once the endpoint is known to be refused (404/403 for new apps).

        The engine only asks about artists that exist, so while the endpoint is not known to
        work, a 404 means the endpoint is gone rather than the artist.
        """
        endpoint = "related_artists"
        async with self._first_to_learn("related_artists"):
            if self.capabilities.related_artists is False:
                raise EdgeUnavailable(endpoint)
            reply = await self._get(
                endpoint, f"/v1/artists/{artist_id}/related-artists", decode=_decode_related
            )
            if reply.status == 200:
                self.capabilities.learn("related_artists", True)
                return [artist.id for artist in reply.data.artists]
            if reply.status == 403 or (
                reply.status == 404 and self.capabilities.related_artists is not True
            ):
                self._learn(
                    "related_artists",
                    False,
                    f"related artists are not available to this app ({reply.status}): "
                    "skipping that edge",
                )
                raise EdgeUnavailable(endpoint)
        if reply.status == 404:
            return []
        raise _unexpected(endpoint, reply)

    async def artist_albums(
        self, artist_id: str, include_groups: Sequence[str], offset: int = 0
    ) -> ArtistAlbumsPage:
        """One page; its size is the largest this app may ask for (50, or 10 in development)."""
        params = {"offset": str(offset)}
        if include_groups:
            params["include_groups"] = ",".join(include_groups)
        return await self._limited_page(
            "artist.albums",
            f"/v1/artists/{artist_id}/albums",
            params,
            "artist_albums_limit",
            decode=_decode_artist_albums,
        )

    async def album_tracks(self, album_id: str, offset: int) -> Page:
        endpoint, params = "album.tracks", {"limit": str(PAGE_LIMIT), "offset": str(offset)}
        reply = await self._get(
            endpoint, f"/v1/albums/{album_id}/tracks", params, decode=decode_page
        )
        return self._page(endpoint, reply)

    async def playlist_items(self, playlist_id: str, offset: int) -> Page:
        """One page of items, raw; 50 a page, or less where the app is refused 50."""
        return await self._limited_page(
            "playlist.items",
            f"/v1/playlists/{playlist_id}/items",
            {"offset": str(offset)},
            "playlist_items_limit",
            decode=decode_page,
        )

    async def _limited_page(
        self,
        endpoint: str,
        path: str,
        params: dict[str, str],
        name: PageLimit,
        *,
        decode: Decode,
        wanted: int | None = None,
    ) -> Any:
        """A page of at most ``wanted`` items, asked for with the largest ``limit`` the app is
        known to get; a 400 on a limit above development mode's is answered by asking again
        with that one, and learned if that is accepted (a 400 may be about the query)."""
        known: int = getattr(self.capabilities, name)
        limit = min(known, wanted or known)
        reply = await self._get(endpoint, path, {**params, "limit": str(limit)}, decode=decode)
        if reply.status == 400 and limit > DEVELOPMENT_PAGE_LIMIT:
            small = {**params, "limit": str(DEVELOPMENT_PAGE_LIMIT)}
            retry = await self._get(endpoint, path, small, decode=decode)
            if retry.status == 200:
                what = endpoint.replace(".", " ")
                self._learn(
                    name,
                    DEVELOPMENT_PAGE_LIMIT,
                    f"{what} refused limit={limit} (400, development mode?): "
                    f"using pages of {DEVELOPMENT_PAGE_LIMIT}",
                )
                reply = retry
        return self._page(endpoint, reply)

    @staticmethod
    def _page(endpoint: str, reply: Reply) -> Any:
        """A page's owner is known to exist, so anything but 200 (even 404) is a failure."""
        if reply.status != 200:
            raise _unexpected(endpoint, reply)
        return reply.data

    async def search(self, kind: SearchKind, query: str, offset: int, limit: int) -> SearchPage:
        """One page of ``kind`` results for ``query``, of at most ``limit`` (and at most what
        the app may ask for: 10 a page in development mode, learned from a 400)."""
        params = {"q": query, "type": kind, "offset": str(offset)}
        items: SearchItems = await self._limited_page(
            "search",
            "/v1/search",
            params,
            "search_limit",
            decode=_SEARCH_DECODERS[kind],
            wanted=limit,
        )
        found = [item for item in items.items if item is not None]
        credits = [a.id for item in found for a in item.artists if is_spotify_id(a.id)]
        return SearchPage([item.id for item in found], items.total, items.limit, offset, credits)

    async def search_artists(self, query: str) -> list[str]:
        """The IDs of the first page of artists matching ``query``."""
        return (await self.search("artist", query, 0, SEARCH_LIMIT)).ids
