"""The REST spelling of protobuf enum values.

A value is written as its `(taskscheduler.v1.json_value)` option when set
(JOB_TYPE_ONE_TIME is "one-time"), else as its name lowercased after the
enum's prefix is dropped (PRIORITY_HIGH is "high"). The zero value,
*_UNSPECIFIED, is written as JSON null.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from google.protobuf.descriptor import EnumDescriptor, EnumValueDescriptor

from taskscheduler.v1 import options_pb2

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


@dataclass(frozen=True)
class EnumSpelling:
    """Both directions of one enum's REST spelling."""

    number_by_value: dict[str, int]
    value_by_number: dict[int, str | None]

    @property
    def allowed(self) -> list[str]:
        """JSON values a client may send, in declaration order."""
        return list(self.number_by_value)


def json_value_of(value: EnumValueDescriptor) -> str | None:
    """Return the REST spelling of one enum value, or None for the unspecified zero value."""
    if value.number == 0 and value.name.endswith("_UNSPECIFIED"):
        return None
    custom = value.GetOptions().Extensions[options_pb2.json_value]
    if custom:
        return custom
    prefix = _CAMEL_BOUNDARY.sub("_", value.type.name).upper() + "_"
    name = value.name.removeprefix(prefix)
    return name.lower()


@functools.cache
def spelling_of(enum: EnumDescriptor) -> EnumSpelling:
    """Return the REST spelling table of an enum, built once per enum type."""
    number_by_value: dict[str, int] = {}
    value_by_number: dict[int, str | None] = {}
    for value in enum.values:
        json_value = json_value_of(value)
        value_by_number.setdefault(value.number, json_value)
        if json_value is not None:
            number_by_value.setdefault(json_value, value.number)
    return EnumSpelling(number_by_value=number_by_value, value_by_number=value_by_number)
