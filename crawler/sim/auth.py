"""Client-credentials tokens: issued by POST /api/token, checked on every API call."""

from __future__ import annotations

import base64
import binascii
import math
import secrets
import time
from collections.abc import Callable, Iterable
from typing import NamedTuple

from aiohttp import web

from crawler.sim.config import SimClient
from crawler.sim.errors import ApiError, json_response

_PRUNE_AT = 4096
# The account a request is charged to, for the per-account counters.
ACCOUNT = web.RequestKey("account", str)


class Grant(NamedTuple):
    client_id: str
    account: str
    expires_at: float


class TokenStore:
    """Opaque bearer tokens with a lifetime; expired ones are told apart from unknown ones."""

    def __init__(
        self,
        clients: Iterable[SimClient],
        ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clients = {c.client_id: c for c in clients}
        self._ttl_s = ttl_s
        self._clock = clock
        self._grants: dict[str, Grant] = {}

    def issue(self, client_id: str, client_secret: str) -> tuple[str, int]:
        """A new token and its announced lifetime; raises KeyError for bad credentials."""
        client = self._clients.get(client_id)
        if client is None or not secrets.compare_digest(client.client_secret, client_secret):
            raise KeyError(client_id)
        now = self._clock()
        if len(self._grants) >= _PRUNE_AT:
            self._grants = {t: g for t, g in self._grants.items() if g.expires_at > now}
        token = "BQ" + secrets.token_urlsafe(60)
        self._grants[token] = Grant(client_id, client.account, now + self._ttl_s)
        return token, max(1, math.ceil(self._ttl_s))

    def account_of(self, client_id: str) -> str:
        return self._clients[client_id].account

    def check(self, authorization: str | None) -> Grant:
        """The grant behind an `Authorization: Bearer …` header, or a 401 ApiError."""
        scheme, _, token = (authorization or "").partition(" ")
        grant = self._grants.get(token.strip()) if scheme.lower() == "bearer" else None
        if grant is None:
            raise ApiError(401, "Invalid access token")
        if grant.expires_at <= self._clock():
            raise ApiError(401, "The access token expired")
        return grant


def _oauth_error(error: str, description: str) -> web.Response:
    return json_response({"error": error, "error_description": description}, 400)


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    scheme, _, encoded = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        client_id, sep, secret = (
            base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
        )
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (client_id, secret) if sep else None


async def token_endpoint(request: web.Request, store: TokenStore) -> web.Response:
    """POST /api/token with grant_type=client_credentials, credentials by Basic auth or form."""
    form = await request.post()
    grant_type = form.get("grant_type")
    if grant_type is None:
        return _oauth_error("unsupported_grant_type", "grant_type parameter is missing")
    if grant_type != "client_credentials":
        return _oauth_error(
            "unsupported_grant_type",
            "grant_type must be client_credentials, authorization_code or refresh_token",
        )
    credentials = _basic_credentials(request.headers.get("Authorization"))
    if credentials is None:
        credentials = (str(form.get("client_id", "")), str(form.get("client_secret", "")))
    try:
        token, expires_in = store.issue(*credentials)
    except KeyError:
        return _oauth_error("invalid_client", "Invalid client")
    request[ACCOUNT] = store.account_of(credentials[0])
    return json_response({"access_token": token, "token_type": "Bearer", "expires_in": expires_in})
