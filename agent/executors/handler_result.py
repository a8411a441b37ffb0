"""Attempt results from a Python handler's call: its return value as JSON data, or its exception.

A return value becomes the attempt's `result` when json.dumps accepts it
and it fits the limits below. Otherwise the attempt still succeeds, without
a result, and its output explains why. An exception becomes a FAILED result
whose error is "ExceptionType: message" and whose output is the end of the
traceback.
"""

from __future__ import annotations

import json
import traceback
from types import TracebackType
from typing import Any

from .base import AttemptOutcome, AttemptResult
from .output import OutputTail

# The coordinator's limit on a result's compact JSON encoding, in UTF-8 bytes.
MAX_RESULT_BYTES = 64 * 1024
# protobuf refuses to decode messages nested deeper than 100 levels, and each
# JSON level of a google.protobuf.Value takes three (Value, Struct, map entry).
MAX_RESULT_DEPTH = 30
# The coordinator keeps the first 4096 characters of an error.
MAX_ERROR_CHARS = 4096

_SUCCEEDED = AttemptResult(outcome=AttemptOutcome.SUCCEEDED)


class NotJsonSerialisableError(ValueError):
    """A handler's return value that cannot be the attempt's result; the message explains why."""


class _UnsupportedType(TypeError):
    def __init__(self, value: Any) -> None:
        super().__init__(type(value).__name__)
        self.type_name = type(value).__name__


def succeeded_with(value: Any) -> AttemptResult:
    """Build the SUCCEEDED result for a handler that returned `value` (None: no result)."""
    if value is None:
        return _SUCCEEDED
    try:
        data = to_json_data(value)
    except NotJsonSerialisableError as error:
        return AttemptResult(outcome=AttemptOutcome.SUCCEEDED, output=str(error))
    return AttemptResult(outcome=AttemptOutcome.SUCCEEDED, result=data)


def to_json_data(value: Any) -> Any:
    """Return `value` as the dicts, lists, strings, numbers, booleans and None of JSON.

    Tuples become lists and non-string keys become strings, as json.dumps
    writes them. Raises NotJsonSerialisableError when json.dumps rejects the
    value, NaN and infinity included. It also raises it for a value whose
    compact JSON encoding is larger than MAX_RESULT_BYTES, that contains a
    string UTF-8 cannot encode (a lone surrogate), that is nested deeper than
    MAX_RESULT_DEPTH, or that contains an integer beyond the range of a double.
    """
    type_name = type(value).__name__
    try:
        text = json.dumps(
            value, allow_nan=False, default=_reject, ensure_ascii=False, separators=(",", ":")
        )
    except _UnsupportedType as error:
        raise NotJsonSerialisableError(
            f"result is not JSON-serialisable: {error.type_name}"
        ) from None
    except (TypeError, ValueError, RecursionError) as error:
        raise NotJsonSerialisableError(
            f"result is not JSON-serialisable: {type_name} ({error})"
        ) from None

    try:
        size_bytes = len(text.encode())
    except UnicodeEncodeError:
        raise NotJsonSerialisableError(
            f"result is not JSON-serialisable: {type_name} contains a lone surrogate, "
            "which UTF-8 cannot encode"
        ) from None
    if size_bytes > MAX_RESULT_BYTES:
        raise NotJsonSerialisableError(
            f"result is too large: {size_bytes} bytes as JSON, the limit is {MAX_RESULT_BYTES}; "
            "store large data elsewhere and return a reference to it"
        )
    try:
        data = json.loads(text, parse_int=_double_range_int)
    except OverflowError:
        raise NotJsonSerialisableError(
            f"result is not JSON-serialisable: {type_name} contains an integer beyond the "
            "range of a JSON number (a double)"
        ) from None
    except RecursionError:
        too_deep = True
    else:
        too_deep = _deeper_than(data, MAX_RESULT_DEPTH)
    if too_deep:
        raise NotJsonSerialisableError(
            f"result is not JSON-serialisable: {type_name} is nested deeper than "
            f"{MAX_RESULT_DEPTH} levels"
        )
    return data


def failed_by(error: BaseException, *, skip_modules: frozenset[str]) -> AttemptResult:
    """Build the FAILED result for a handler that raised `error`.

    Leading traceback frames from `skip_modules` (the agent's own calling
    code) are left out, unless no other frame remains.
    """
    message = str(error)
    text = f"{type(error).__name__}: {message}" if message else type(error).__name__
    if len(text) > MAX_ERROR_CHARS:
        text = text[: MAX_ERROR_CHARS - 3] + "..."
    # protobuf rejects strings that UTF-8 cannot encode, such as lone surrogates.
    text = text.encode("utf-8", errors="replace").decode("utf-8")
    lines = traceback.format_exception(
        type(error), error, _handler_frames(error.__traceback__, skip_modules)
    )
    tail = OutputTail()
    tail.write("".join(lines).encode("utf-8", errors="replace"))
    return AttemptResult.failed(text, output=tail.text())


def _reject(value: Any) -> Any:
    raise _UnsupportedType(value)


def _double_range_int(text: str) -> int:
    number = int(text)
    # Raises OverflowError past the largest double, which is what a JSON number is.
    float(number)
    return number


def _deeper_than(data: Any, levels: int) -> bool:
    if isinstance(data, dict):
        children: Any = data.values()
    elif isinstance(data, list):
        children = data
    else:
        return False
    if levels == 0:
        return True
    return any(_deeper_than(child, levels - 1) for child in children)


def _handler_frames(
    frames: TracebackType | None, skip_modules: frozenset[str]
) -> TracebackType | None:
    first = frames
    while frames is not None and frames.tb_frame.f_globals.get("__name__") in skip_modules:
        frames = frames.tb_next
    return frames if frames is not None else first
