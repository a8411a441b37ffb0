"""Protobuf to JSON for response messages, driven by the message descriptors.

Every field is written, defaults included (`"exitCode": 0`), under its
lowerCamelCase JSON name. Unset message fields and timestamps are null,
timestamps are RFC 3339 UTC strings with fractional seconds only when they
are non-zero, a Struct is plain JSON, maps are objects, and 64-bit integers
are JSON numbers. Enums use their REST spelling (gateway.enum_values).
"""

from __future__ import annotations

import base64
import math

from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from taskscheduler.gateway.enum_values import spelling_of
from taskscheduler.gateway.json_decode import is_well_known

# JSON numbers are doubles for most clients; an integral float in a Struct
# is written as an integer when it is exact in a double.
_MAX_EXACT_INTEGER = 2**53


def encode_message(message: Message) -> dict[str, object]:
    """Return the JSON object for a message that is not a well-known type."""
    return {field.json_name: encode_field(message, field) for field in message.DESCRIPTOR.fields}


def encode_field(message: Message, field: FieldDescriptor) -> object:
    """Return the JSON value of one field of `message`."""
    value = getattr(message, field.name)
    if _is_map(field):
        value_field = field.message_type.fields_by_name["value"]
        return {str(key): _encode_single(value_field, item) for key, item in value.items()}
    if field.is_repeated:
        return [_encode_single(field, item) for item in value]
    if field.type == FieldDescriptor.TYPE_MESSAGE and not message.HasField(field.name):
        return None
    return _encode_single(field, value)


def _is_map(field: FieldDescriptor) -> bool:
    return (
        field.type == FieldDescriptor.TYPE_MESSAGE
        and field.is_repeated
        and field.message_type.GetOptions().map_entry
    )


def _encode_single(field: FieldDescriptor, value: object) -> object:
    kind = field.type
    if kind == FieldDescriptor.TYPE_MESSAGE:
        return encode_any_message(value)  # type: ignore[arg-type]
    if kind == FieldDescriptor.TYPE_ENUM:
        spelling = spelling_of(field.enum_type)
        return spelling.value_by_number.get(value, value)  # type: ignore[call-overload]
    if kind == FieldDescriptor.TYPE_BYTES:
        return base64.b64encode(value).decode("ascii")  # type: ignore[arg-type]
    if isinstance(value, float):
        return _encode_float(value)
    return value


def _encode_float(value: float) -> object:
    # JSON has no NaN or infinity; protobuf's JSON mapping spells them as strings.
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def encode_any_message(message: Message) -> object:
    """Return the JSON value of a message, well-known types included."""
    full_name = message.DESCRIPTOR.full_name
    if full_name == "google.protobuf.Timestamp":
        return message.ToJsonString()  # type: ignore[attr-defined]
    if is_well_known(message.DESCRIPTOR):
        return _integral_floats_as_ints(json_format.MessageToDict(message))
    return encode_message(message)


def _integral_floats_as_ints(value: object) -> object:
    # Struct stores every number as a double, so {"retries": 3} comes back as 3.0.
    if isinstance(value, float) and value.is_integer() and abs(value) <= _MAX_EXACT_INTEGER:
        return int(value)
    if isinstance(value, dict):
        return {key: _integral_floats_as_ints(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_integral_floats_as_ints(item) for item in value]
    return value
