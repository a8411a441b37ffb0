"""The Starlette application: one route per annotated RPC, the OpenAPI document and the dashboard.

Routes that share a path template share one Starlette route, so a wrong
method gets 405 with an Allow header listing every method of that path.
Every response is JSON in the envelope of gateway.envelope, except the
dashboard page at /.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from importlib import resources
from typing import Protocol

import grpc.aio
from google.protobuf.message import Message
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from taskscheduler.errors import InvalidArgumentError
from taskscheduler.gateway.coordinator_client import CoordinatorUnreachableError
from taskscheduler.gateway.envelope import (
    ApiError,
    error_from_http_status,
    error_from_invalid_argument,
    error_from_rpc,
    success_body,
)
from taskscheduler.gateway.http_rules import HttpBinding, bindings_from_files
from taskscheduler.gateway.openapi import openapi_document
from taskscheduler.gateway.request_log import RequestLogMiddleware, record_error
from taskscheduler.gateway.request_mapping import build_request
from taskscheduler.logs import get_logger

log = get_logger(__name__)

# gRPC servers reject messages over 4 MiB by default, so a larger body could never succeed.
MAX_BODY_BYTES = 4 * 1024 * 1024


class Caller(Protocol):
    """The coordinator client interface the app calls (see CoordinatorClient.call)."""

    async def call(self, binding: HttpBinding, request: Message) -> Message: ...


def create_app(client: Caller, bindings: Sequence[HttpBinding] | None = None) -> Starlette:
    """Build the gateway app; `bindings` default to every annotated RPC of the v1 API."""
    if bindings is None:
        bindings = bindings_from_files()
    openapi = openapi_document(bindings)
    dashboard = _read_dashboard()

    async def serve_openapi(_request: Request) -> Response:
        return JSONResponse(openapi)

    async def serve_dashboard(_request: Request) -> Response:
        return HTMLResponse(dashboard)

    routes = [
        Route("/", serve_dashboard, methods=["GET"]),
        Route("/openapi.json", serve_openapi, methods=["GET"]),
        *api_routes(bindings, client),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(RequestLogMiddleware)],
        exception_handlers={HTTPException: _http_error, Exception: _unexpected_error},
    )
    # /api/jobs/ is not /api/jobs: an unknown path gets a 404 envelope, not a redirect.
    app.router.redirect_slashes = False
    return app


def api_routes(bindings: Sequence[HttpBinding], client: Caller) -> list[Route]:
    """Return one route per path template, literal segments ahead of variables.

    Raises ValueError when two bindings claim the same method and path.
    """
    by_path: dict[str, dict[str, HttpBinding]] = {}
    for binding in bindings:
        methods = by_path.setdefault(binding.starlette_path, {})
        if binding.http_method in methods:
            other = methods[binding.http_method].full_method
            raise ValueError(
                f"{binding.full_method} and {other} both bind "
                f"{binding.http_method} {binding.path_template}"
            )
        methods[binding.http_method] = binding

    # /api/workers/register must be tried before /api/workers/{worker_id}.
    ordered = sorted(by_path, key=_literal_segments_first)
    return [
        Route(path, _endpoint(by_path[path], client), methods=list(by_path[path]))
        for path in ordered
    ]


def _literal_segments_first(path: str) -> list[tuple[bool, str]]:
    return [(segment.startswith("{"), segment) for segment in path.split("/")]


def _endpoint(
    bindings_by_method: dict[str, HttpBinding], client: Caller
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        binding = bindings_by_method[method]
        try:
            return await _call(binding, request, client)
        except InvalidArgumentError as err:
            api_error = error_from_invalid_argument(err)
        except grpc.aio.AioRpcError as err:
            api_error = error_from_rpc(err)
        except CoordinatorUnreachableError as err:
            api_error = ApiError(503, grpc.StatusCode.UNAVAILABLE.name, str(err))
        except HTTPException:
            # Starlette's HTTP errors, such as 413 for an oversized body, go to _http_error.
            raise
        except Exception:
            # A gateway bug: the client gets an envelope, a person gets the traceback.
            log.exception("gateway failed to serve a request", rpc=binding.full_method)
            api_error = ApiError(500, grpc.StatusCode.INTERNAL.name, "internal gateway error")
        return _error_response(request, api_error)

    return endpoint


async def _call(binding: HttpBinding, request: Request, client: Caller) -> Response:
    body = await _read_body(request) if binding.body else b""
    message = build_request(
        binding,
        path_params=request.path_params,
        query=request.query_params.multi_items(),
        body=body,
    )
    response = await client.call(binding, message)
    return JSONResponse(success_body(binding, response))


async def _read_body(request: Request) -> bytes:
    """Read the request body; raise HTTPException 413 past MAX_BODY_BYTES."""
    # Starlette's own limit responds in plain text, so the gateway enforces its own.
    too_large = HTTPException(
        413, f"request body is larger than {MAX_BODY_BYTES} bytes; send a smaller payload"
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise too_large
            chunks.append(chunk)
    except ClientDisconnect as err:
        raise HTTPException(400, "client disconnected before sending the whole body") from err
    return b"".join(chunks)


def _error_response(
    request: Request, api_error: ApiError, headers: Mapping[str, str] | None = None
) -> Response:
    record_error(request.scope, api_error.code, api_error.message)
    return api_error.to_response(headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = f"no route for {request.url.path}; the API is described at /openapi.json"
    elif exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        message = f"method {request.method} is not allowed on {request.url.path}; use {allowed}"
    else:
        message = exc.detail
    return _error_response(request, error_from_http_status(exc.status_code, message), exc.headers)


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    # Reached only for failures outside the API endpoints, which handle their own.
    log.error("gateway failed outside an endpoint", exc_info=exc, path=request.url.path)
    api_error = ApiError(500, grpc.StatusCode.INTERNAL.name, "internal gateway error")
    return _error_response(request, api_error)


def _read_dashboard() -> str:
    page = resources.files("taskscheduler.gateway").joinpath("static", "index.html")
    return page.read_text(encoding="utf-8")
