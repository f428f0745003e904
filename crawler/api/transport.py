"""One API request from the caller's point of view: retried until it has a final answer.

Final answers are 2xx with a body of the expected shape, and 4xx other than 401/429 (the
caller decides what a 403 or 404 means for its endpoint). Everything else is retried:

* 429: park the account (pool.AccountPool), then retry at once on whichever account is
  free; not counted against ``max_retries``, since waiting is the cure;
* 401: the token was refused (expired); invalidate exactly that token and retry at once;
* 5xx, connection errors, timeouts, truncated or unparsable bodies, bodies of the wrong
  shape: retry after a jittered exponential backoff.

Once ``max_retries`` retries have failed, RequestFailed carries the last reason. A host that
cannot be reached at all (DNS, refused, TLS, connect timeout: see retry.network_failure) is
no failure of one request: Unreachable ends the crawl after one retry cycle (DNS and TLS
after at most one retry), and every request after it fails the same way at once.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import orjson

from crawler.api.account import Ticket
from crawler.api.auth import TokenSource
from crawler.api.clock import SYSTEM_CLOCK, Clock
from crawler.api.http import ApiHttp, RawResponse
from crawler.api.pool import AccountPool
from crawler.api.retry import TRANSIENT_ERRORS, Backoff, describe, fault_kind, network_failure
from crawler.core.errors import RequestFailed, Unreachable
from crawler.core.stats import Stats

log = logging.getLogger(__name__)

# Decodes a 2xx body into what the caller needs; raises msgspec.DecodeError if it cannot.
Decode = Callable[[bytes], Any]


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    data: Any  # 2xx: the decoded body; otherwise the parsed error body (or None)

    def describe(self) -> str:
        """``HTTP 400: invalid id``: the status and the API's own error message, if any."""
        error = self.data.get("error") if isinstance(self.data, dict) else None
        message = error.get("message") if isinstance(error, dict) else None
        return (
            f"HTTP {self.status}: {message}" if isinstance(message, str) else f"HTTP {self.status}"
        )


class Transport:
    def __init__(
        self,
        http: ApiHttp,
        base_url: str,
        pool: AccountPool,
        tokens: Mapping[str, Sequence[TokenSource]],
        stats: Stats,
        *,
        backoff: Backoff,
        max_retries: int,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        """``tokens`` maps each account name to the token sources of its credentials."""
        self._http = http
        self._base_url = base_url
        self._pool = pool
        self._tokens: dict[str, Iterator[TokenSource]] = {
            name: itertools.cycle(sources) for name, sources in tokens.items()
        }
        self._stats = stats
        self._backoff = backoff
        self._max_retries = max_retries
        self._clock = clock
        self._unreachable: Unreachable | None = None
        self._warned = False  # about a network failure, since the last success

    async def get(
        self,
        endpoint: str,
        path: str,
        params: Mapping[str, str] | None = None,
        *,
        decode: Decode,
    ) -> Reply:
        """GET ``path``; ``decode`` reads a 2xx body, ``endpoint`` names it in stats and errors."""
        url = self._base_url + path
        failures = 0
        while True:
            if self._unreachable is not None:
                raise self._unreachable
            ticket = await self._pool.acquire()
            try:
                source = next(self._tokens[ticket.account.name])
                token = await source.token()
                self._stats.sent[ticket.account.name] += 1
                try:
                    raw = await self._http.get(url, params, token)
                except TRANSIENT_ERRORS as exc:
                    self._unreached(exc, failures)
                    reason, pause = describe(exc), True
                    self._stats.faults[fault_kind(exc)] += 1
                    if isinstance(exc, TimeoutError):  # one slow answer: this request's failure
                        reason += f" waiting for {self._http.origin.authority}"
                else:
                    self._stats.record_response(endpoint, raw.status)
                    if raw.status == 429:
                        self._rate_limited(ticket, raw)
                        self._stats.retries += 1
                        continue
                    if raw.status == 401:
                        source.invalidate(token)  # a fresh token needs no backoff
                        reason, pause = "HTTP 401 (access token refused)", False
                        self._stats.faults["token_refused"] += 1
                    else:
                        self._pool.accepted(ticket)
                        self._warned = False
                        reply, reason = _reply(raw, decode)
                        pause = True
                        if reason is None:
                            return reply
                        self._stats.faults["5xx" if raw.status >= 500 else "bad_body"] += 1
            finally:
                self._pool.released(ticket)  # a no-op for a ticket settled above
            if failures >= self._max_retries:
                raise RequestFailed(endpoint, reason)
            self._stats.retries += 1
            log.debug("%s: %s; retrying", endpoint, reason)
            if pause:
                await self._clock.sleep(self._backoff.delay(failures))
            failures += 1

    def _unreached(self, exc: BaseException, failures: int) -> None:
        """Raise Unreachable once a failure to reach the API has had its retries."""
        failure = network_failure(exc, read_timeouts=False)
        if failure is None:
            return
        host = self._http.origin.authority
        if not failure.allows(failures, self._max_retries):
            self._unreachable = Unreachable("the API", host, failure.cause)
            raise self._unreachable from None
        if not self._warned:  # a wait follows: say why, once
            self._warned = True
            log.warning("API %s: %s; retrying", host, failure.cause)

    def _rate_limited(self, ticket: Ticket, raw: RawResponse) -> None:
        retry_after, quota = _retry_after(raw.retry_after), _quota_exceeded(raw.body)
        reason = "quota" if quota else "bare" if retry_after is None else "window"
        self._stats.record_429(ticket.account.name, reason)
        self._pool.rate_limited(ticket, retry_after, quota_exceeded=quota)


def _reply(raw: RawResponse, decode: Decode) -> tuple[Reply, str | None]:
    """The reply to a (non-401, non-429) response, and why it is worth retrying, if it is."""
    if 200 <= raw.status < 300:
        body = raw.body
        if b"\n" in body:
            # Output lines are slices of the body: a pretty-printed one is compacted first
            # (JSON strings cannot hold a raw newline, so every newline is whitespace).
            body = msgspec.json.format(body, indent=0)
        try:
            return Reply(raw.status, decode(body)), None
        except msgspec.ValidationError as exc:
            return Reply(raw.status, None), f"response body of an unexpected shape ({exc})"
        except msgspec.DecodeError:
            return Reply(raw.status, None), "truncated or invalid JSON body"
    reply = Reply(raw.status, _loads(raw.body))
    return reply, reply.describe() if raw.status >= 500 else None


def _loads(body: bytes) -> Any:
    try:
        return orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds; None if missing, empty or not a number (e.g. an HTTP date)."""
    try:
        seconds = float(value) if value else math.nan
    except ValueError:
        return None
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _quota_exceeded(body: bytes) -> bool:
    data = _loads(body)
    if not isinstance(data, dict):
        return False
    error = data.get("error")
    reasons = (data.get("reason"), error.get("reason") if isinstance(error, dict) else None)
    return "QUOTA_EXCEEDED" in reasons
