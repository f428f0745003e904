"""Errors and JSON responses in the Web API's exact wire format."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

JSON_TYPE = "application/json; charset=utf-8"


class ApiError(Exception):
    """Raised anywhere while serving; becomes `{"error": {"status", "message"}}`.

    `message=None` reproduces the bare `{"error": {"status": 403}}` that development-mode apps
    get from audio-features.
    """

    def __init__(self, status: int, message: str | None) -> None:
        super().__init__(status, message)
        self.status = status
        self.message = message


def json_response(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """`payload` is a JSON-compatible value, or bytes that are already serialized JSON."""
    all_headers = {"Content-Type": JSON_TYPE}
    if headers:
        all_headers.update(headers)
    body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    return web.Response(body=body, status=status, headers=all_headers)


def error_response(
    status: int, message: str | None, headers: dict[str, str] | None = None, **extra: str
) -> web.Response:
    error: dict[str, Any] = {"status": status}
    if message is not None:
        error["message"] = message
    error.update(extra)
    return json_response({"error": error}, status, headers)
