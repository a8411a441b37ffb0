"""Build a gRPC request message from an HTTP request, as its binding specifies.

Path variables fill the fields named in the template. The JSON body fills
the whole request (body "*") or one request field (body "job"), and any
other field may come from a query parameter unless the body is "*".
Query parameters and path variables are typed by their field: integers,
floats, booleans (true/false/1/0), enums in their REST spelling, strings,
and Timestamp, Duration or FieldMask in their JSON string forms. An empty
query value leaves a non-string field unset, so `?status=` means "any".

For a request with an `update_mask` FieldMask and a body bound to one
field, a client that sends no updateMask gets the mask derived from the
top-level keys of the body, so PUT {"priority": "low"} changes only the
priority.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from taskscheduler.errors import InvalidArgumentError
from taskscheduler.gateway.http_rules import HttpBinding, param_name
from taskscheduler.gateway.json_decode import (
    decode_enum,
    decode_into,
    decode_scalar,
    find_field,
    parse_json_body,
    type_error,
)

_INTEGER = re.compile(r"[+-]?[0-9]+")
_BOOLEANS = {"true": True, "false": False, "1": True, "0": False}
_TEXT_MESSAGE_TYPES = {
    "google.protobuf.Timestamp": "an RFC 3339 timestamp such as 2026-12-04T10:00:00Z",
    "google.protobuf.Duration": "a duration in seconds such as 1.5s",
    "google.protobuf.FieldMask": "comma-separated field names such as priority,timeout",
}
_FIELD_MASK = "google.protobuf.FieldMask"
_UPDATE_MASK_FIELD = "update_mask"


def build_request(
    binding: HttpBinding,
    *,
    path_params: Mapping[str, str],
    query: Sequence[tuple[str, str]],
    body: bytes,
) -> Message:
    """Return the request message; raise InvalidArgumentError naming the bad field."""
    request = binding.request_class()
    body_keys = _apply_body(binding, request, body)

    for field_path in binding.path_fields:
        fields = _resolve(request.DESCRIPTOR, field_path.split("."))
        text = path_params[param_name(field_path)]
        _set_from_text(request, fields, text)

    _apply_query(binding, request, query)
    _derive_update_mask(binding, request, body_keys)
    return request


def _apply_body(binding: HttpBinding, request: Message, body: bytes) -> list[str]:
    """Decode the body into its target and return its top-level field names (snake_case)."""
    if not binding.body:
        return []
    data = parse_json_body(body)
    if binding.body == "*":
        decode_into(data, request)
        return []

    # Errors name fields relative to the body, as the client wrote them.
    target = getattr(request, binding.body)
    decode_into(data, target)
    assert isinstance(data, dict)
    names: list[str] = []
    for key in data:
        field = find_field(target.DESCRIPTOR, key)
        assert field is not None
        names.append(field.name)
    return names


def _apply_query(binding: HttpBinding, request: Message, query: Sequence[tuple[str, str]]) -> None:
    seen: set[str] = set()
    for key, text in query:
        fields = _query_fields(binding, request.DESCRIPTOR, key)
        name = _json_path(fields)
        if name in seen and not fields[-1].is_repeated:
            raise InvalidArgumentError(name, f"query parameter {name} is given more than once")
        seen.add(name)
        _set_from_text(request, fields, text)


def _query_fields(binding: HttpBinding, descriptor: Descriptor, key: str) -> list[FieldDescriptor]:
    fields = _resolve(descriptor, key.split("."))
    top = fields[0].name
    if any(field_path.split(".")[0] == top for field_path in binding.path_fields):
        raise InvalidArgumentError(key, f"unknown query parameter {key!r}; it is part of the path")
    if binding.body == "*" or top == binding.body:
        raise InvalidArgumentError(key, f"unknown query parameter {key!r}; send it in the body")
    return fields


def _resolve(descriptor: Descriptor, names: list[str]) -> list[FieldDescriptor]:
    """Return the fields along a dotted path of JSON or protobuf names."""
    fields: list[FieldDescriptor] = []
    current: Descriptor | None = descriptor
    for index, name in enumerate(names):
        field = find_field(current, name) if current is not None else None
        if field is None:
            key = ".".join(names)
            known = ", ".join(field.json_name for field in descriptor.fields)
            raise InvalidArgumentError(
                key, f"unknown query parameter {key!r}; known parameters: {known}"
            )
        fields.append(field)
        is_last = index == len(names) - 1
        singular_message = field.type == FieldDescriptor.TYPE_MESSAGE and not field.is_repeated
        current = field.message_type if singular_message and not is_last else None
    return fields


def _json_path(fields: list[FieldDescriptor]) -> str:
    return ".".join(field.json_name for field in fields)


def _set_from_text(request: Message, fields: list[FieldDescriptor], text: str) -> None:
    parent = request
    for field in fields[:-1]:
        parent = getattr(parent, field.name)
    field = fields[-1]
    name = _json_path(fields)

    if field.type == FieldDescriptor.TYPE_MESSAGE:
        _set_message_from_text(parent, field, text, name)
        return
    value = parse_text(field, text, name)
    if value is None:
        return
    if field.is_repeated:
        getattr(parent, field.name).append(value)
    else:
        setattr(parent, field.name, value)


def _set_message_from_text(parent: Message, field: FieldDescriptor, text: str, name: str) -> None:
    description = _TEXT_MESSAGE_TYPES.get(field.message_type.full_name)
    if description is None or field.is_repeated:
        raise InvalidArgumentError(name, f"{name} cannot be set by a query parameter or path")
    if not text:
        return
    try:
        json_format.ParseDict(text, getattr(parent, field.name))
    except (json_format.ParseError, ValueError) as err:
        raise type_error(name, description, text) from err


def parse_text(field: FieldDescriptor, text: str, name: str) -> object:
    """Convert one query or path value to the field's type; None leaves the field unset."""
    kind = field.type
    if kind == FieldDescriptor.TYPE_STRING:
        return text
    if not text:
        return None
    if kind == FieldDescriptor.TYPE_ENUM:
        return decode_enum(field, text, name)
    if kind == FieldDescriptor.TYPE_BOOL:
        if text.lower() not in _BOOLEANS:
            raise type_error(name, "true or false", text)
        return _BOOLEANS[text.lower()]
    if kind in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
        return _parse_float(text, name)
    if kind == FieldDescriptor.TYPE_BYTES:
        return decode_scalar(field, text, name)
    if not _INTEGER.fullmatch(text):
        raise type_error(name, "an integer", text)
    return decode_scalar(field, int(text), name)


def _parse_float(text: str, name: str) -> float:
    try:
        value = float(text)
    except ValueError as err:
        raise type_error(name, "a number", text) from err
    if not math.isfinite(value):
        raise type_error(name, "a finite number", text)
    return value


def _derive_update_mask(binding: HttpBinding, request: Message, body_keys: list[str]) -> None:
    mask_field = request.DESCRIPTOR.fields_by_name.get(_UPDATE_MASK_FIELD)
    if mask_field is None or mask_field.type != FieldDescriptor.TYPE_MESSAGE:
        return
    if mask_field.message_type.full_name != _FIELD_MASK or binding.body in ("", "*"):
        return
    if request.HasField(_UPDATE_MASK_FIELD):
        return
    if not body_keys:
        # An empty mask means "replace every field", which an empty body never intends.
        raise InvalidArgumentError(
            "",
            "request body names no field to update; "
            'send the fields to change, such as {"priority": "low"}',
        )
    request.update_mask.paths.extend(body_keys)
