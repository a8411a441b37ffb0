"""The http executor against a small HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from taskscheduler.agent.executors import AttemptContext, AttemptOutcome, HttpExecutor
from taskscheduler.agent.executors.output import MAX_OUTPUT_BYTES

BIG_BODY = b"a" * 100_000 + b"b" * MAX_OUTPUT_BYTES


class _Handler(BaseHTTPRequestHandler):
    release_slow: threading.Event

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _route(self) -> None:
        if self.path == "/ok":
            self._reply(200, b"hello")
        elif self.path.startswith("/status/"):
            self._reply(int(self.path.removeprefix("/status/")), b"status body")
        elif self.path == "/big":
            self._reply(200, BIG_BODY)
        elif self.path == "/slow":
            self.release_slow.wait(timeout=10)
            self._reply(200, b"late")
        elif self.path == "/echo":
            length = int(self.headers.get("Content-Length", "0"))
            echoed = {
                "method": self.command,
                "contentType": self.headers.get("Content-Type"),
                "xTest": self.headers.get("X-Test"),
                "body": self.rfile.read(length).decode(),
            }
            self._reply(200, json.dumps(echoed).encode())
        else:
            self._reply(404, b"no route")

    do_GET = do_POST = do_PUT = _route


@pytest.fixture
def server_url() -> Iterator[str]:
    release = threading.Event()
    handler = type("Handler", (_Handler,), {"release_slow": release})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    # A short poll interval keeps shutdown() quick.
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
async def executor() -> AsyncIterator[HttpExecutor]:
    executor = HttpExecutor(trust_env=False)
    yield executor
    await executor.aclose()


def attempt_for(payload: dict[str, Any], *, timeout_s: float | None = None) -> AttemptContext:
    return AttemptContext(
        run_id="run-1",
        job_id="job-1",
        job_name="ping",
        attempt=1,
        fencing_token=9,
        executor="http",
        payload=payload,
        timeout_s=timeout_s,
    )


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_http_get_succeeds(executor: HttpExecutor, server_url: str) -> None:
    result = await executor.execute(attempt_for({"url": f"{server_url}/ok"}))

    assert result.outcome is AttemptOutcome.SUCCEEDED
    assert result.exit_code == 200
    assert result.output == "hello"
    assert result.error == ""


async def test_http_json_body(executor: HttpExecutor, server_url: str) -> None:
    payload = {"method": "post", "url": f"{server_url}/echo", "body": {"a": 1}}

    result = await executor.execute(attempt_for(payload))

    echoed = json.loads(result.output)
    assert result.outcome is AttemptOutcome.SUCCEEDED
    assert echoed["method"] == "POST"
    assert echoed["contentType"] == "application/json"
    assert json.loads(echoed["body"]) == {"a": 1}


async def test_http_string_body_and_headers(executor: HttpExecutor, server_url: str) -> None:
    payload = {
        "method": "PUT",
        "url": f"{server_url}/echo",
        "headers": {"X-Test": "v1"},
        "body": "plain text",
    }

    result = await executor.execute(attempt_for(payload))

    echoed = json.loads(result.output)
    assert result.outcome is AttemptOutcome.SUCCEEDED
    assert echoed["method"] == "PUT"
    assert echoed["xTest"] == "v1"
    assert echoed["body"] == "plain text"


STATUS_CASES = [
    # path, expectStatus, outcome, error
    ("/status/204", None, AttemptOutcome.SUCCEEDED, ""),
    (
        "/status/500",
        None,
        AttemptOutcome.FAILED,
        "unexpected status 500 Internal Server Error; expected a 2xx status",
    ),
    ("/status/404", 404, AttemptOutcome.SUCCEEDED, ""),
    # Struct numbers arrive as doubles.
    ("/status/404", 404.0, AttemptOutcome.SUCCEEDED, ""),
    ("/status/201", 200, AttemptOutcome.FAILED, "unexpected status 201 Created; expected 200"),
    (
        "/status/302",
        None,
        AttemptOutcome.FAILED,
        "unexpected status 302 Found; expected a 2xx status",
    ),
]


@pytest.mark.parametrize(("path", "expect_status", "outcome", "error"), STATUS_CASES)
async def test_http_status_checks(
    executor: HttpExecutor,
    server_url: str,
    path: str,
    expect_status: float | None,
    outcome: AttemptOutcome,
    error: str,
) -> None:
    payload: dict[str, Any] = {"url": f"{server_url}{path}"}
    if expect_status is not None:
        payload["expectStatus"] = expect_status

    result = await executor.execute(attempt_for(payload))

    assert result.outcome is outcome
    assert result.exit_code == int(path.removeprefix("/status/"))
    assert result.error == error


async def test_http_keeps_last_64_kib(executor: HttpExecutor, server_url: str) -> None:
    result = await executor.execute(attempt_for({"url": f"{server_url}/big"}))

    assert result.outcome is AttemptOutcome.SUCCEEDED
    assert result.output == "b" * MAX_OUTPUT_BYTES


async def test_http_timeout(executor: HttpExecutor, server_url: str) -> None:
    result = await executor.execute(attempt_for({"url": f"{server_url}/slow"}, timeout_s=0.3))

    assert result.outcome is AttemptOutcome.TIMED_OUT
    assert result.exit_code == 0
    assert result.error == "timed out after 0.3 s"


async def test_http_connection_refused(executor: HttpExecutor) -> None:
    url = f"http://127.0.0.1:{closed_port()}/"

    result = await executor.execute(attempt_for({"url": url}))

    assert result.outcome is AttemptOutcome.FAILED
    assert result.exit_code == 0
    assert result.error.startswith(f"GET {url} failed: ConnectError")


BAD_PAYLOADS = [
    ({}, "invalid payload.url: is required: an http or https URL"),
    ({"url": 5}, "invalid payload.url: must be a string, got int"),
    (
        {"url": "ftp://127.0.0.1/file"},
        "invalid payload.url: 'ftp://127.0.0.1/file' is not an absolute http or https URL",
    ),
    (
        {"url": "/relative"},
        "invalid payload.url: '/relative' is not an absolute http or https URL",
    ),
    (
        {"url": "http://127.0.0.1/", "method": "GE T"},
        "invalid payload.method: 'GE T' is not an HTTP method such as GET or POST",
    ),
    (
        {"url": "http://127.0.0.1/", "headers": {"X": 1}},
        "invalid payload.headers.X: must be a string, got int; quote numbers and booleans",
    ),
    (
        {"url": "http://127.0.0.1/", "expectStatus": 99},
        "invalid payload.expectStatus: 99 is not an HTTP status (100-599)",
    ),
    (
        {"url": "http://127.0.0.1/", "expectStatus": 200.5},
        "invalid payload.expectStatus: must be an integer, got 200.5",
    ),
    (
        {"url": "http://127.0.0.1/", "expectStatus": "200"},
        "invalid payload.expectStatus: must be an integer, got str",
    ),
    (
        {"url": "http://127.0.0.1/", "expectedStatus": 200},
        "invalid payload.expectedStatus: unknown key 'expectedStatus'; "
        "expected keys: body, expectStatus, headers, method, url",
    ),
]


@pytest.mark.parametrize(("payload", "error"), BAD_PAYLOADS)
async def test_http_bad_payload_fails(
    executor: HttpExecutor, payload: dict[str, Any], error: str
) -> None:
    result = await executor.execute(attempt_for(payload))

    assert result.outcome is AttemptOutcome.FAILED
    assert result.exit_code == 0
    assert result.error == error
