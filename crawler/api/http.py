"""The one place a bearer token goes on the wire, and the URL rules that keep it there.

Every API request passes through ``ApiHttp.get``, which refuses any URL outside the configured
API origin: a ``next`` link or a redirect pointing elsewhere can never receive the token.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

from crawler.core.config import ApiConfig
from crawler.core.errors import ConfigError

_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class Origin:
    scheme: str
    host: str
    port: int

    @classmethod
    def of(cls, url: str) -> Origin:
        """The origin of an absolute http(s) URL; ValueError for anything else."""
        parts = urlsplit(url)
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise ValueError(f"not an absolute http(s) URL: {url!r}")
        return cls(parts.scheme, parts.hostname, parts.port or _DEFAULT_PORTS[parts.scheme])

    @property
    def authority(self) -> str:
        """How errors name the host: ``host``, or ``host:port`` for a port not the default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == _DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


def checked_origin(url: str, what: str) -> Origin:
    """The origin of a configured URL; ConfigError unless it is https or loopback http.

    Plain http would expose client secrets and tokens to the network, so it is only for a
    simulator on this machine.
    """
    try:
        origin = Origin.of(url)
    except ValueError as exc:
        raise ConfigError(f"api.{what}: {exc}") from None
    if origin.scheme == "http" and not origin.is_loopback:
        raise ConfigError(
            f"api.{what}: plain http is only allowed for loopback hosts; use https for {url!r}"
        )
    return origin


def open_session(api: ApiConfig, concurrency: int) -> aiohttp.ClientSession:
    """One session for the whole run: a connection per worker, separate connect/read timeouts.

    No total timeout: a slow but progressing response is fine, a silent socket is not.
    """
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=concurrency),
        timeout=aiohttp.ClientTimeout(
            total=None, sock_connect=api.connect_timeout_s, sock_read=api.read_timeout_s
        ),
    )


@dataclass(frozen=True, slots=True)
class RawResponse:
    status: int
    retry_after: str | None
    body: bytes


class ApiHttp:
    """Authenticated GETs to the API origin; everything else is refused before connecting."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self._session = session
        self.origin = Origin.of(base_url)

    async def get(self, url: str, params: Mapping[str, str] | None, token: str) -> RawResponse:
        """Send one request and read the whole body (ClientPayloadError if it is cut short).

        Redirects are not followed: the API does not redirect, and following one would send
        the token to wherever it points.
        """
        if Origin.of(url) != self.origin:
            raise ValueError("refusing to send the access token outside the API origin")
        async with self._session.get(
            url,
            params=params,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            allow_redirects=False,
        ) as response:
            body = await response.read()
            return RawResponse(response.status, response.headers.get("Retry-After"), body)
