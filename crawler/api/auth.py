"""Client-credentials access tokens, one per credential, fetched by a single flight.

However many workers need a token at once, each credential has at most one token request in
flight: the others wait for its result, failure included (a token endpoint that cannot be
reached is reported once, not once per waiting worker). A refused credential or an unreachable
endpoint stays that way for the rest of the run: later calls fail at once. A request that got
a 401 invalidates exactly the token it used, so a burst of 401s caused by one expired token
leads to one refresh.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from crawler.api.clock import SYSTEM_CLOCK, Clock
from crawler.api.http import Origin
from crawler.api.retry import TRANSIENT_ERRORS, Backoff, describe, network_failure
from crawler.core.config import Credential
from crawler.core.errors import AuthError, CrawlerError, RequestFailed, Unreachable
from crawler.core.stats import Stats

log = logging.getLogger(__name__)

ENDPOINT = "token"
# Refresh this long before expiry (at most a tenth of the lifetime, for short-lived test
# tokens), so a token does not expire between being handed out and reaching the API.
REFRESH_MARGIN_S = 60.0


@dataclass(frozen=True, slots=True)
class _Token:
    value: str
    refresh_at: float  # clock.monotonic()


class TokenSource:
    def __init__(
        self,
        credential: Credential,
        token_url: str,
        session: aiohttp.ClientSession,
        stats: Stats,
        *,
        backoff: Backoff,
        max_retries: int,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.credential = credential
        self._token_url = token_url
        self._host = Origin.of(token_url).authority
        self._session = session
        self._stats = stats
        self._backoff = backoff
        self._max_retries = max_retries
        self._clock = clock
        self._token: _Token | None = None
        self._lock = asyncio.Lock()
        self._flights = 0  # token requests finished, successful or not
        self._failure: CrawlerError | None = None  # how the last one failed
        self._fatal: AuthError | Unreachable | None = None  # no later call can succeed

    def _current(self) -> str | None:
        token = self._token
        now = self._clock.monotonic()
        return token.value if token is not None and now < token.refresh_at else None

    async def token(self) -> str:
        """A valid access token; AuthError if the credential is refused, Unreachable if the
        token endpoint cannot be reached, RequestFailed if it keeps failing otherwise."""
        value = self._current()
        if value is not None:
            return value
        if self._fatal is not None:
            raise self._fatal
        flights = self._flights
        async with self._lock:
            if self._flights != flights and self._failure is not None:
                raise self._failure  # the flight this caller waited for failed
            value = self._current()  # whoever held the lock may have refreshed it
            if value is None:
                try:
                    self._token = await self._fetch()
                except CrawlerError as exc:
                    self._failure = exc
                    if isinstance(exc, AuthError | Unreachable):
                        self._fatal = exc
                    raise
                else:
                    self._failure = None
                finally:
                    self._flights += 1
                value = self._token.value
            return value

    def invalidate(self, value: str) -> None:
        """Forget ``value`` if it is still the current token (the API refused it)."""
        if self._token is not None and self._token.value == value:
            self._token = None

    async def _fetch(self) -> _Token:
        reason = ""
        for attempt in range(self._max_retries + 1):
            if attempt:
                self._stats.retries += 1
                await self._clock.sleep(self._backoff.delay(attempt - 1))
            started = self._clock.monotonic()
            try:
                status, body = await self._post()
            except TRANSIENT_ERRORS as exc:
                failure = network_failure(exc, read_timeouts=True)
                if failure is not None and not failure.allows(attempt, self._max_retries):
                    raise Unreachable("the token endpoint", self._host, failure.cause) from None
                reason = describe(exc)
                if failure is not None and attempt == 0:  # a wait follows: say why
                    log.warning("token endpoint %s: %s; retrying", self._host, failure.cause)
                log.debug("token request for %s failed: %s", self.credential.label, reason)
                continue
            self._stats.record_response(ENDPOINT, status)
            if status in (400, 401):
                raise AuthError(
                    f"the token endpoint refused credential {self.credential.label}: "
                    f"{_oauth_error(body)}"
                )
            token = _parse_token(body, started) if status == 200 else None
            if token is not None:
                log.debug("new access token for %s", self.credential.label)
                return token
            reason = f"HTTP {status}" if status != 200 else "malformed token response"
            log.debug("token request for %s failed: %s", self.credential.label, reason)
        raise RequestFailed(ENDPOINT, f"{reason} (credential {self.credential.label})")

    async def _post(self) -> tuple[int, bytes]:
        pair = f"{self.credential.client_id}:{self.credential.client_secret}".encode()
        async with self._session.post(
            self._token_url,
            data={"grant_type": "client_credentials"},
            headers={"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")},
            allow_redirects=False,
        ) as response:
            return response.status, await response.read()


def _loads(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def _oauth_error(body: bytes) -> str:
    """The OAuth ``error`` code (``invalid_client``…); never echoes anything else back."""
    data = _loads(body)
    error = data.get("error") if isinstance(data, dict) else None
    return error if isinstance(error, str) else "refused"


def _parse_token(body: bytes, requested_at: float) -> _Token | None:
    data = _loads(body)
    if not isinstance(data, dict):
        return None
    value, expires_in = data.get("access_token"), data.get("expires_in")
    if not isinstance(value, str) or not value or not isinstance(expires_in, int | float):
        return None
    margin = min(REFRESH_MARGIN_S, expires_in / 10)
    return _Token(value, requested_at + expires_in - margin)
