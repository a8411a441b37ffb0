"""JSON to protobuf for request messages, driven by the message descriptors.

Field names are protobuf's lowerCamelCase JSON names, and the snake_case
field names are accepted too. Enums are read in their REST spelling
(gateway.enum_values). Well-known types (Timestamp, Struct, FieldMask, ...)
go through google.protobuf.json_format. Every rejection raises
InvalidArgumentError whose `field` is the lowerCamelCase path of the bad
value, relative to the message being decoded ("" for the whole body).
"""

from __future__ import annotations

import base64
import binascii
import json
import math

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from taskscheduler.errors import InvalidArgumentError
from taskscheduler.gateway.enum_values import spelling_of

_INTEGER_RANGES: dict[int, tuple[int, int]] = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}
_FLOAT_TYPES = frozenset({FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE})

# Well-known types whose JSON form json_format reads, with the JSON type each
# one requires (None: any JSON value) and how an error message describes it.
_WELL_KNOWN_TYPES: dict[str, tuple[type | None, str]] = {
    "google.protobuf.Timestamp": (str, "an RFC 3339 timestamp such as 2026-12-04T10:00:00Z"),
    "google.protobuf.Duration": (str, "a duration in seconds such as 1.5s"),
    "google.protobuf.FieldMask": (str, "comma-separated field names such as priority,timeout"),
    "google.protobuf.Struct": (dict, "a JSON object"),
    "google.protobuf.ListValue": (list, "a JSON array"),
    "google.protobuf.Value": (None, "a JSON value"),
}
_WRAPPER_NAMES = frozenset(
    {
        "google.protobuf.DoubleValue",
        "google.protobuf.FloatValue",
        "google.protobuf.Int64Value",
        "google.protobuf.UInt64Value",
        "google.protobuf.Int32Value",
        "google.protobuf.UInt32Value",
        "google.protobuf.BoolValue",
        "google.protobuf.StringValue",
        "google.protobuf.BytesValue",
    }
)


class _NonStandardConstantError(ValueError):
    pass


def _reject_constant(name: str) -> object:
    raise _NonStandardConstantError(name)


def parse_json_body(raw: bytes) -> object:
    """Parse a request body, treating an empty body as {}.

    Raises InvalidArgumentError with field "" and the position of the first JSON error.
    """
    if not raw.strip():
        return {}
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InvalidArgumentError(
            "", f"request body is not valid JSON: invalid UTF-8 at byte {err.start}"
        ) from err
    try:
        document = json.loads(text, parse_constant=_reject_constant)
        # A \ud800-style escape decodes to a lone surrogate, which protobuf cannot store.
        json.dumps(document, ensure_ascii=False).encode("utf-8")
        return document
    except UnicodeEncodeError as err:
        raise InvalidArgumentError(
            "", "request body is not valid JSON text: it contains an unpaired UTF-16 surrogate"
        ) from err
    except json.JSONDecodeError as err:
        raise InvalidArgumentError(
            "",
            f"request body is not valid JSON: {err.msg} at line {err.lineno}, column {err.colno}",
        ) from err
    except _NonStandardConstantError as err:
        raise InvalidArgumentError(
            "", f"request body is not valid JSON: {err} is not a JSON number"
        ) from err
    except RecursionError as err:
        raise InvalidArgumentError("", "request body is not valid JSON: nested too deeply") from err


def join_path(path: str, key: str) -> str:
    """Append a field name to a dotted lowerCamelCase path."""
    return f"{path}.{key}" if path else key


def describe_json(value: object) -> str:
    """Name a JSON value's type and show a short excerpt, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {'true' if value else 'false'}"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    kind = "string" if isinstance(value, str) else "number"
    return f"{kind} {text}"


def type_error(path: str, expected: str, value: object) -> InvalidArgumentError:
    """Build the error for a JSON value of the wrong type at `path`."""
    where = path or "request body"
    return InvalidArgumentError(path, f"{where} must be {expected}, got {describe_json(value)}")


def find_field(descriptor: Descriptor, key: str) -> FieldDescriptor | None:
    """Look a field up by its JSON name, or by its protobuf name."""
    for field in descriptor.fields:
        if key in (field.json_name, field.name):
            return field
    return None


def is_well_known(descriptor: Descriptor) -> bool:
    return descriptor.full_name in _WELL_KNOWN_TYPES or descriptor.full_name in _WRAPPER_NAMES


def decode_into(data: object, message: Message, path: str = "") -> None:
    """Merge the JSON object `data` into `message`.

    `path` is the lowerCamelCase path of `message` itself, used in errors.
    JSON null leaves a field at its default. Unknown keys, wrong JSON types,
    out-of-range numbers and unknown enum values raise InvalidArgumentError.
    """
    descriptor = message.DESCRIPTOR
    if is_well_known(descriptor):
        _decode_well_known(data, message, path)
        return
    if not isinstance(data, dict):
        raise type_error(path, "a JSON object", data)

    message.SetInParent()
    seen: dict[str, str] = {}
    for key, value in data.items():
        field = _known_field(descriptor, key, path)
        if field.name in seen:
            raise InvalidArgumentError(
                join_path(path, key),
                f"{join_path(path, key)} is given twice, also as {seen[field.name]!r}; keep one",
            )
        seen[field.name] = key
        if value is not None:
            _decode_field(field, value, message, join_path(path, field.json_name))


def _known_field(descriptor: Descriptor, key: str, path: str) -> FieldDescriptor:
    field = find_field(descriptor, key)
    if field is not None:
        return field
    where = path or "the request body"
    known = ", ".join(field.json_name for field in descriptor.fields)
    raise InvalidArgumentError(
        join_path(path, key), f"unknown field {key!r} in {where}; known fields: {known}"
    )


def _decode_field(field: FieldDescriptor, value: object, message: Message, path: str) -> None:
    if _is_map(field):
        _decode_map(field, value, getattr(message, field.name), path)
    elif field.is_repeated:
        _decode_repeated(field, value, getattr(message, field.name), path)
    elif field.type == FieldDescriptor.TYPE_MESSAGE:
        decode_into(value, getattr(message, field.name), path)
    else:
        setattr(message, field.name, decode_scalar(field, value, path))


def _is_map(field: FieldDescriptor) -> bool:
    return (
        field.type == FieldDescriptor.TYPE_MESSAGE
        and field.message_type.GetOptions().map_entry
        and field.is_repeated
    )


def _decode_repeated(field: FieldDescriptor, value: object, container: object, path: str) -> None:
    if not isinstance(value, list):
        raise type_error(path, "a JSON array", value)
    for index, item in enumerate(value):
        item_path = f"{path}[{index}]"
        if item is None:
            raise InvalidArgumentError(item_path, f"{item_path} must not be null")
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            decode_into(item, container.add(), item_path)  # type: ignore[attr-defined]
        else:
            container.append(decode_scalar(field, item, item_path))  # type: ignore[attr-defined]


def _decode_map(field: FieldDescriptor, value: object, container: object, path: str) -> None:
    if not isinstance(value, dict):
        raise type_error(path, "a JSON object", value)
    key_field = field.message_type.fields_by_name["key"]
    value_field = field.message_type.fields_by_name["value"]
    for raw_key, item in value.items():
        item_path = join_path(path, raw_key)
        key = _decode_map_key(key_field, raw_key, item_path)
        if item is None:
            raise InvalidArgumentError(item_path, f"{item_path} must not be null")
        if value_field.type == FieldDescriptor.TYPE_MESSAGE:
            decode_into(item, container[key], item_path)  # type: ignore[index]
        else:
            container[key] = decode_scalar(value_field, item, item_path)  # type: ignore[index]


def _decode_map_key(key_field: FieldDescriptor, raw_key: str, path: str) -> object:
    if key_field.type == FieldDescriptor.TYPE_STRING:
        return raw_key
    if key_field.type == FieldDescriptor.TYPE_BOOL and raw_key in ("true", "false"):
        return raw_key == "true"
    if key_field.type in _INTEGER_RANGES:
        try:
            return decode_scalar(key_field, int(raw_key), path)
        except ValueError:
            pass
    raise InvalidArgumentError(path, f"map key {raw_key!r} at {path} is not a valid key")


def decode_scalar(field: FieldDescriptor, value: object, path: str) -> object:
    """Check one JSON scalar against a field's type and return the protobuf value."""
    kind = field.type
    if kind in _INTEGER_RANGES:
        return _decode_integer(kind, value, path)
    if kind in _FLOAT_TYPES:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise type_error(path, "a number", value)
        return float(value)
    if kind == FieldDescriptor.TYPE_BOOL:
        if not isinstance(value, bool):
            raise type_error(path, "true or false", value)
        return value
    if kind == FieldDescriptor.TYPE_ENUM:
        return decode_enum(field, value, path)
    if not isinstance(value, str):
        raise type_error(path, "a string", value)
    if kind == FieldDescriptor.TYPE_BYTES:
        return _decode_bytes(value, path)
    return value


def _decode_integer(kind: int, value: object, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise type_error(path, "an integer", value)
    low, high = _INTEGER_RANGES[kind]
    if not low <= value <= high:
        raise InvalidArgumentError(
            path, f"{path} must be an integer from {low} to {high}, got {value}"
        )
    return value


def decode_enum(field: FieldDescriptor, value: object, path: str) -> int:
    """Return the enum number for a REST spelling such as "high"."""
    spelling = spelling_of(field.enum_type)
    number = spelling.number_by_value.get(value) if isinstance(value, str) else None
    if number is None:
        allowed = ", ".join(spelling.allowed)
        raise InvalidArgumentError(
            path, f"{path} must be one of {allowed}; got {describe_json(value)}"
        )
    return number


def _decode_bytes(value: str, path: str) -> bytes:
    try:
        standard = value.replace("-", "+").replace("_", "/")
        return base64.b64decode(standard + "=" * (-len(standard) % 4), validate=True)
    except (binascii.Error, ValueError) as err:
        raise type_error(path, "base64", value) from err


def _decode_well_known(data: object, message: Message, path: str) -> None:
    required_type, description = _WELL_KNOWN_TYPES.get(
        message.DESCRIPTOR.full_name, (None, "a JSON value")
    )
    where = path or "request body"
    if required_type is not None and not isinstance(data, required_type):
        raise type_error(path, description, data)
    if isinstance(data, float) and not math.isfinite(data):
        raise InvalidArgumentError(path, f"{where} must be a finite number")
    try:
        json_format.ParseDict(data, message)
    except (json_format.ParseError, ValueError, TypeError) as err:
        raise type_error(path, description, data) from err
