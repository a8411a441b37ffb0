"""The JSON envelopes of gateway responses, and the gRPC status to HTTP status table.

Success: {"success": true, "data": ...}, plus a top-level "pagination"
object when the response message has a `pagination` field. Failure:
{"success": false, "error": {"code", "message", "field"}} where `code` is
the gRPC status name and `field` the lowerCamelCase field the error is
about, or null.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from types import MappingProxyType

import grpc
from google.protobuf.message import Message
from starlette.responses import JSONResponse

from taskscheduler.errors import InvalidArgumentError
from taskscheduler.gateway.http_rules import HttpBinding
from taskscheduler.gateway.json_encode import encode_field, encode_message
from taskscheduler.grpc_status import field_of

HTTP_STATUS_BY_GRPC_CODE: Mapping[grpc.StatusCode, int] = MappingProxyType(
    {
        grpc.StatusCode.INVALID_ARGUMENT: 400,
        grpc.StatusCode.OUT_OF_RANGE: 400,
        grpc.StatusCode.NOT_FOUND: 404,
        grpc.StatusCode.ALREADY_EXISTS: 409,
        grpc.StatusCode.FAILED_PRECONDITION: 409,
        grpc.StatusCode.ABORTED: 409,
        grpc.StatusCode.UNAVAILABLE: 503,
        grpc.StatusCode.DEADLINE_EXCEEDED: 504,
        grpc.StatusCode.UNIMPLEMENTED: 501,
        grpc.StatusCode.UNAUTHENTICATED: 401,
        grpc.StatusCode.PERMISSION_DENIED: 403,
        grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    }
)
_PAGINATION_FIELD = "pagination"


def http_status_for(code: grpc.StatusCode) -> int:
    """Return the HTTP status for a gRPC status code; codes without an entry are 500."""
    return HTTP_STATUS_BY_GRPC_CODE.get(code, 500)


@dataclass(frozen=True)
class ApiError:
    """One error response: HTTP status, status name, message and the field it is about."""

    status: int
    code: str
    message: str
    field: str = ""

    def to_json(self) -> dict[str, object]:
        error = {"code": self.code, "message": self.message, "field": self.field or None}
        return {"success": False, "error": error}

    def to_response(self, headers: Mapping[str, str] | None = None) -> JSONResponse:
        return JSONResponse(self.to_json(), status_code=self.status, headers=headers)


def error_from_rpc(error: grpc.RpcError) -> ApiError:
    """Translate a failed coordinator call, keeping its message and field."""
    code: grpc.StatusCode = error.code()  # type: ignore[attr-defined]
    message = error.details() or code.name  # type: ignore[attr-defined]
    return ApiError(http_status_for(code), code.name, message, field_of(error))


def error_from_invalid_argument(error: InvalidArgumentError) -> ApiError:
    """Translate input the gateway rejected before calling a coordinator."""
    return ApiError(400, grpc.StatusCode.INVALID_ARGUMENT.name, error.message, error.field)


def error_from_http_status(status: int, message: str) -> ApiError:
    """Build the error for a status the router decides, such as 404 or 405."""
    return ApiError(status, HTTPStatus(status).name, message)


def success_body(binding: HttpBinding, response: Message) -> dict[str, object]:
    """Return the success envelope of one coordinator response."""
    fields = response.DESCRIPTOR.fields_by_name
    pagination = fields.get(_PAGINATION_FIELD)
    if binding.response_body:
        data = encode_field(response, fields[binding.response_body])
    else:
        data = encode_message(response)
        if pagination is not None:
            del data[pagination.json_name]

    body: dict[str, object] = {"success": True, "data": data}
    if pagination is not None:
        body["pagination"] = encode_field(response, pagination)
    return body
