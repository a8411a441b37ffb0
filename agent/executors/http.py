"""The `http` executor: sends one HTTP request and checks the response status.

Payload: {"method": "GET", "url": "https://...", "headers": {"K": "V"},
"body": "text" or any JSON value, "expectStatus": 204}. `url` is required and
must be http or https. A string body is sent as is; any other value is sent
as JSON. Without `expectStatus`, any 2xx status is success. Redirects are
not followed, so a 3xx fails unless `expectStatus` names it.

The result's output is the last 64 KiB of the response body, and its
exit_code is the HTTP status (0 when no response arrived).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from taskscheduler.errors import InvalidArgumentError

from .base import AttemptContext, AttemptOutcome, AttemptResult
from .output import OutputTail
from .payload import (
    optional_int,
    optional_string,
    optional_string_map,
    payload_field,
    reject_unknown_keys,
)

_PAYLOAD_KEYS = frozenset({"method", "url", "headers", "body", "expectStatus"})
_METHOD = re.compile(r"^[A-Za-z]{1,20}$")


@dataclass(frozen=True, slots=True)
class HttpPayload:
    method: str
    url: str
    headers: Mapping[str, str]
    content: str | None
    json_body: Any
    expect_status: int | None


def parse_http_payload(payload: Mapping[str, Any]) -> HttpPayload:
    """Validate an `http` payload; InvalidArgumentError names the bad field."""
    reject_unknown_keys(payload, _PAYLOAD_KEYS)
    method = optional_string(payload, "method") or "GET"
    if not _METHOD.match(method):
        raise InvalidArgumentError(
            payload_field("method"), f"{method!r} is not an HTTP method such as GET or POST"
        )

    url = optional_string(payload, "url")
    if not url:
        raise InvalidArgumentError(payload_field("url"), "is required: an http or https URL")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidArgumentError(
            payload_field("url"), f"{url!r} is not an absolute http or https URL"
        )

    expect_status = optional_int(payload, "expectStatus")
    if expect_status is not None and not 100 <= expect_status <= 599:
        raise InvalidArgumentError(
            payload_field("expectStatus"), f"{expect_status} is not an HTTP status (100-599)"
        )

    body = payload.get("body")
    return HttpPayload(
        method=method.upper(),
        url=url,
        headers=optional_string_map(payload, "headers"),
        content=body if isinstance(body, str) else None,
        json_body=body if not isinstance(body, str) else None,
        expect_status=expect_status,
    )


@dataclass(slots=True)
class _Received:
    """The response received so far, kept when the request fails or times out midway."""

    status: int = 0
    body: OutputTail = field(default_factory=OutputTail)


class HttpExecutor:
    """Sends requests with one shared httpx.AsyncClient, created on first use."""

    def __init__(self, *, trust_env: bool = True) -> None:
        self._trust_env = trust_env
        self._client: httpx.AsyncClient | None = None

    async def execute(self, attempt: AttemptContext) -> AttemptResult:
        try:
            request = parse_http_payload(attempt.payload)
        except InvalidArgumentError as error:
            return AttemptResult.invalid_payload(error)

        received = _Received()
        try:
            async with asyncio.timeout(attempt.timeout_s):
                await self._send(request, received)
        except TimeoutError:
            return AttemptResult(
                outcome=AttemptOutcome.TIMED_OUT,
                exit_code=received.status,
                output=received.body.text(),
                error=f"timed out after {attempt.timeout_s:g} s",
            )
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as error:
            return AttemptResult.failed(
                f"{request.method} {request.url} failed: {type(error).__name__}: {error}",
                exit_code=received.status,
                output=received.body.text(),
            )
        return _result_of(request, received)

    async def _send(self, request: HttpPayload, received: _Received) -> None:
        # A None json argument means "no JSON body" to httpx, which is what a missing body wants.
        async with self._http_client().stream(
            request.method,
            request.url,
            headers=dict(request.headers),
            content=request.content,
            json=request.json_body,
        ) as response:
            received.status = response.status_code
            async for chunk in response.aiter_bytes():
                received.body.write(chunk)

    def _http_client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=None, follow_redirects=False, trust_env=self._trust_env
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _result_of(request: HttpPayload, received: _Received) -> AttemptResult:
    status, tail = received.status, received.body
    expected = request.expect_status
    ok = status == expected if expected is not None else 200 <= status <= 299
    if ok:
        return AttemptResult(outcome=AttemptOutcome.SUCCEEDED, exit_code=status, output=tail.text())
    reason = httpx.codes.get_reason_phrase(status)
    wanted = str(expected) if expected is not None else "a 2xx status"
    return AttemptResult.failed(
        f"unexpected status {status} {reason}; expected {wanted}",
        exit_code=status,
        output=tail.text(),
    )
