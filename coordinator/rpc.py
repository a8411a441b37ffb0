"""The gRPC edge's error handling: project exceptions become statuses, once.

Every servicer method is wrapped with `translate_errors`: a SchedulerError
becomes its status from taskscheduler.grpc_status (with the field and the
leader address in trailers); anything else is logged with its traceback
and answered INTERNAL, never crashing the server.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from taskscheduler.errors import SchedulerError
from taskscheduler.grpc_status import status_code_for, trailers_for
from taskscheduler.logs import get_logger

log = get_logger(__name__)

Response = TypeVar("Response")
Handler = Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[Response]]


def translate_errors(handler: Handler[Response]) -> Handler[Response]:
    @functools.wraps(handler)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Response:
        try:
            return await handler(self, request, context)
        except SchedulerError as error:
            code = status_code_for(error)
            failure: Exception = error
        except Exception as error:
            log.exception("unexpected error in RPC handler", method=handler.__name__)
            code = grpc.StatusCode.INTERNAL
            failure = RuntimeError("internal error; the coordinator log has the details")
            del error
        if code is grpc.StatusCode.INTERNAL or code is grpc.StatusCode.DATA_LOSS:
            log.error("RPC failed", method=handler.__name__, code=code.name, error=str(failure))
        else:
            log.debug("RPC rejected", method=handler.__name__, code=code.name, error=str(failure))
        context.set_trailing_metadata(trailers_for(failure, code))
        await context.abort(code, shorten_message(str(failure)))
        raise AssertionError("unreachable: abort raises")

    return wrapper


def shorten_message(message: str) -> str:
    """Cut a status message to MAX_MESSAGE_CHARS, saying how much was left out.

    gRPC sends the message in a trailer, and a client refuses trailers over
    8 KiB with RESOURCE_EXHAUSTED, which would hide the real error.
    """
    if len(message) <= MAX_MESSAGE_CHARS:
        return message
    kept = message[: MAX_MESSAGE_CHARS - 60].rstrip()
    return f"{kept} ... ({len(message) - len(kept)} more characters left out)"


MAX_MESSAGE_CHARS = 2000
