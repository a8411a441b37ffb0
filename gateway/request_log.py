"""One log line per HTTP request: debug when it succeeded, warning or error when not.

Handlers that respond with an error envelope record its code and message
with `record_error`, and the line carries them.
"""

from __future__ import annotations

import time
from collections.abc import MutableMapping
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from taskscheduler.logs import get_logger

log = get_logger(__name__)

_ERROR_KEY = "gateway_error"


def record_error(scope: MutableMapping[str, Any], code: str, message: str) -> None:
    """Attach an error envelope's code and message to the request's log line."""
    scope.setdefault("state", {})[_ERROR_KEY] = (code, message)


class RequestLogMiddleware:
    """ASGI middleware that logs method, path, status and duration of each HTTP request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        started = time.perf_counter()
        status = 500

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            duration_ms = round((time.perf_counter() - started) * 1000, 1)
            _log_request(scope, status, duration_ms)


def _log_request(scope: Scope, status: int, duration_ms: float) -> None:
    fields: dict[str, object] = {
        "method": scope["method"],
        "path": scope["path"],
        "status": status,
        "duration_ms": duration_ms,
    }
    error = scope.get("state", {}).get(_ERROR_KEY)
    if error is not None:
        fields["code"], fields["error"] = error

    if status >= 500:
        log.error("request failed", **fields)
    elif status >= 400:
        log.warning("request rejected", **fields)
    else:
        log.debug("request served", **fields)
