"""The aiohttp application: routing, auth, rate limiting, fault injection and counters.

One middleware wraps every request (except /__stats) so faults and counters see all of
them; API routes additionally pass through `_api`, which authenticates, applies the
account's rate limit and sends the endpoint's serialized body.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from crawler.sim import endpoints
from crawler.sim.auth import ACCOUNT, TokenStore, token_endpoint
from crawler.sim.catalog import Catalog
from crawler.sim.config import SimConfig
from crawler.sim.endpoints import Call, Endpoint
from crawler.sim.errors import ApiError, error_response, json_response
from crawler.sim.faults import Fault, FaultInjector
from crawler.sim.ratelimit import RateLimiter
from crawler.sim.stats import Stats

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# (stats name, path without trailing slash, endpoint); every path also matches with one.
API_ROUTES: tuple[tuple[str, str, Endpoint], ...] = (
    ("artists", "/v1/artists/{id}", endpoints.artist),
    ("artists.batch", "/v1/artists", endpoints.artists_batch),
    ("related_artists", "/v1/artists/{id}/related-artists", endpoints.related_artists),
    ("artist.albums", "/v1/artists/{id}/albums", endpoints.artist_albums),
    ("top_tracks", "/v1/artists/{id}/top-tracks", endpoints.top_tracks),
    ("album", "/v1/albums/{id}", endpoints.album),
    ("albums.batch", "/v1/albums", endpoints.albums_batch),
    ("album.tracks", "/v1/albums/{id}/tracks", endpoints.album_tracks),
    ("track", "/v1/tracks/{id}", endpoints.track),
    ("tracks.batch", "/v1/tracks", endpoints.tracks_batch),
    ("audio_features", "/v1/audio-features/{id}", endpoints.audio_features),
    ("audio_features.batch", "/v1/audio-features", endpoints.audio_features_batch),
    ("playlist", "/v1/playlists/{id}", endpoints.playlist),
    ("playlist.items", "/v1/playlists/{id}/{route:(?:tracks|items)}", endpoints.playlist_items),
    ("episode", "/v1/episodes/{id}", endpoints.episode),
    ("search", "/v1/search", endpoints.search),
)
_ERROR_MESSAGES = {500: "Server error.", 502: "Bad gateway.", 503: "Service unavailable"}
_FAULT_STATUS = {Fault.ERROR_500: 500, Fault.ERROR_502: 502, Fault.ERROR_503: 503}
STATS_PATH = "/__stats"
DROPPED = web.RequestKey("dropped", bool)


@dataclass
class SimState:
    """Everything a running simulator knows; SimServer reads it directly."""

    config: SimConfig
    catalog: Catalog
    tokens: TokenStore
    limiter: RateLimiter
    faults: FaultInjector
    stats: Stats


STATE = web.AppKey("sim_state", SimState)


def _slashed(path: str) -> str:
    return path + "{slash:/?}"


def make_app(config: SimConfig, catalog: Catalog) -> web.Application:
    state = SimState(
        config=config,
        catalog=catalog,
        tokens=TokenStore(config.clients, config.token_ttl_s),
        limiter=RateLimiter(config),
        faults=FaultInjector(config),
        stats=Stats(),
    )
    app = web.Application(middlewares=[_pipeline_middleware(state)])
    app[STATE] = state
    router = app.router

    async def token(request: web.Request) -> web.StreamResponse:
        return await token_endpoint(request, state.tokens)

    async def stats(_: web.Request) -> web.StreamResponse:
        return json_response(state.stats.snapshot())

    async def stats_reset(_: web.Request) -> web.StreamResponse:
        state.stats.reset()
        return json_response(state.stats.snapshot())

    router.add_post(_slashed("/api/token"), token, name="token")
    router.add_get(_slashed(STATS_PATH), stats)
    router.add_post(_slashed(STATS_PATH + "/reset"), stats_reset)
    for name, path, endpoint in API_ROUTES:
        router.add_get(_slashed(path), _api(state, endpoint), name=name, allow_head=False)
    return app


def _api(state: SimState, endpoint: Endpoint) -> Handler:
    catalog, extended = state.catalog, state.config.extended

    async def serve(request: web.Request) -> web.StreamResponse:
        grant = state.tokens.check(request.headers.get("Authorization"))
        request[ACCOUNT] = grant.account
        wait = state.limiter.admit(grant.account)
        if wait is not None:
            return _throttled(state, wait)
        view = catalog.view(f"{request.scheme}://{request.host}", extended)
        call = Call(request.query, request.match_info, view, catalog, extended)
        return json_response(endpoint(call))

    return serve


def _throttled(state: SimState, wait: float) -> web.Response:
    if state.faults.chance(state.config.bare_429_rate):
        state.stats.faults["bare_429"] += 1
        return web.Response(status=429)
    extra = {"reason": "QUOTA_EXCEEDED"} if state.config.quota_exceeded else {}
    headers = {"Retry-After": str(max(1, math.ceil(wait)))}
    return error_response(429, "API rate limit exceeded", headers, **extra)


def _pipeline_middleware(
    state: SimState,
) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    stats, faults = state.stats, state.faults

    @web.middleware
    async def pipeline(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(STATS_PATH):
            return await handler(request)
        stats.enter()
        status: int | None = None
        try:
            if faults.active:
                response = await _faulty(request, handler, faults, stats)
            else:
                response = await _guarded(request, handler)
            if not request.get(DROPPED):
                status = response.status
            return response
        finally:
            route = request.match_info.route.name or "unknown"
            stats.leave(route, status, request.get(ACCOUNT))

    return pipeline


async def _guarded(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Runs the handler, rendering every failure in Spotify's error format."""
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.message)
    except web.HTTPException as exc:
        message = "Service not found" if exc.status == 404 else exc.reason
        return error_response(exc.status, message)


async def _faulty(
    request: web.Request, handler: Handler, faults: FaultInjector, stats: Stats
) -> web.StreamResponse:
    """Applies latency and at most one fault; the real handler runs unless the fault replaces it."""
    delay = faults.latency_s()
    if delay:
        stats.faults["latency"] += 1
        await asyncio.sleep(delay)
    fault = faults.pick()
    if fault is not None:
        stats.faults[fault.value] += 1
    if fault in _FAULT_STATUS:
        status = _FAULT_STATUS[fault]
        return error_response(status, _ERROR_MESSAGES[status])
    if fault is Fault.DROP:
        return _drop(request)
    response = await _guarded(request, handler)
    if fault is Fault.TRUNCATE_JSON:
        return _cut_json(response)
    if fault is Fault.TRUNCATE_SHORT:
        return await _cut_stream(request, response)
    return response


def _drop(request: web.Request) -> web.StreamResponse:
    """Closes the connection; aiohttp then fails to send the response and gives up quietly."""
    request[DROPPED] = True
    if request.transport is not None:
        request.transport.close()
    return web.Response()


def _body_of(response: web.StreamResponse) -> bytes:
    body = response.body if isinstance(response, web.Response) else None
    return body if isinstance(body, bytes) else b""


def _cut_json(response: web.StreamResponse) -> web.StreamResponse:
    body = _body_of(response)
    return web.Response(
        body=body[: len(body) // 2], status=response.status, headers=response.headers
    )


async def _cut_stream(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
    """Sends the headers with the full Content-Length but only half the body, then hangs up."""
    body = _body_of(response)
    stream = web.StreamResponse(status=response.status, headers=response.headers)
    stream.content_length = len(body)
    await stream.prepare(request)
    await stream.write(body[: len(body) // 2])
    if request.transport is not None:
        request.transport.close()
    return stream
