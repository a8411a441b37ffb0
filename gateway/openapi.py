"""An OpenAPI 3.0 document generated from the same bindings and descriptors as the routes.

Schemas describe the JSON the gateway reads and writes. Properties have
lowerCamelCase names, enums are their REST spellings (null for
unspecified), timestamps are date-time strings and a Struct is a free-form
object. Each response is wrapped in the success envelope, and the error
envelope is the default response.
"""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

from taskscheduler.gateway.enum_values import spelling_of
from taskscheduler.gateway.http_rules import HttpBinding, json_path, resolve_field_path

OPENAPI_VERSION = "3.0.3"
_REF_PREFIX = "#/components/schemas/"
_ERROR_ENVELOPE = "ErrorEnvelope"

_SCALAR_SCHEMAS: dict[int, dict[str, object]] = {
    FieldDescriptor.TYPE_INT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_SINT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_UINT32: {"type": "integer", "format": "int64", "minimum": 0},
    FieldDescriptor.TYPE_FIXED32: {"type": "integer", "format": "int64", "minimum": 0},
    FieldDescriptor.TYPE_INT64: {"type": "integer", "format": "int64"},
    FieldDescriptor.TYPE_SINT64: {"type": "integer", "format": "int64"},
    FieldDescriptor.TYPE_SFIXED64: {"type": "integer", "format": "int64"},
    FieldDescriptor.TYPE_UINT64: {"type": "integer", "minimum": 0},
    FieldDescriptor.TYPE_FIXED64: {"type": "integer", "minimum": 0},
    FieldDescriptor.TYPE_DOUBLE: {"type": "number", "format": "double"},
    FieldDescriptor.TYPE_FLOAT: {"type": "number", "format": "float"},
    FieldDescriptor.TYPE_BOOL: {"type": "boolean"},
    FieldDescriptor.TYPE_STRING: {"type": "string"},
    FieldDescriptor.TYPE_BYTES: {"type": "string", "format": "byte"},
}
_WELL_KNOWN_SCHEMAS: dict[str, dict[str, object]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time", "nullable": True},
    "google.protobuf.Duration": {"type": "string", "example": "1.5s", "nullable": True},
    "google.protobuf.FieldMask": {"type": "string", "example": "priority,timeout"},
    "google.protobuf.Struct": {"type": "object", "additionalProperties": True, "nullable": True},
    "google.protobuf.ListValue": {"type": "array", "items": {}, "nullable": True},
    "google.protobuf.Value": {},
}
_ERROR_SCHEMA: dict[str, object] = {
    "type": "object",
    "required": ["success", "error"],
    "properties": {
        "success": {"type": "boolean", "enum": [False]},
        "error": {
            "type": "object",
            "required": ["code", "message", "field"],
            "properties": {
                "code": {"type": "string", "example": "INVALID_ARGUMENT"},
                "message": {"type": "string"},
                "field": {"type": "string", "nullable": True},
            },
        },
    },
}


def openapi_document(bindings: Sequence[HttpBinding]) -> dict[str, object]:
    """Return the OpenAPI document of the gateway's API routes."""
    builder = _SchemaBuilder()
    paths: dict[str, dict[str, object]] = {}
    for binding in bindings:
        operations = paths.setdefault(binding.openapi_path, {})
        operations[binding.http_method.lower()] = _operation(binding, builder)

    builder.components[_ERROR_ENVELOPE] = _ERROR_SCHEMA
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": "taskscheduler REST gateway", "version": "v1"},
        "paths": paths,
        "components": {"schemas": dict(sorted(builder.components.items()))},
    }


def _operation(binding: HttpBinding, builder: _SchemaBuilder) -> dict[str, object]:
    service = binding.method.containing_service.name
    operation: dict[str, object] = {
        "operationId": f"{service}_{binding.method.name}",
        "tags": [service],
        "parameters": _path_parameters(binding, builder) + _query_parameters(binding, builder),
        "responses": {
            "200": _json_content("Success", _success_schema(binding, builder)),
            "default": _json_content("Error", {"$ref": _REF_PREFIX + _ERROR_ENVELOPE}),
        },
    }
    if binding.body:
        operation["requestBody"] = _request_body(binding, builder)
    return operation


def _json_content(description: str, schema: dict[str, object]) -> dict[str, object]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _path_parameters(binding: HttpBinding, builder: _SchemaBuilder) -> list[dict[str, object]]:
    parameters = []
    for field_path in binding.path_fields:
        field = resolve_field_path(binding.request_descriptor, field_path)[-1]
        parameters.append(
            {
                "name": json_path(binding.request_descriptor, field_path),
                "in": "path",
                "required": True,
                "schema": builder.field_schema(field),
            }
        )
    return parameters


def _query_parameters(binding: HttpBinding, builder: _SchemaBuilder) -> list[dict[str, object]]:
    if binding.body == "*":
        return []
    bound = {field_path.split(".")[0] for field_path in binding.path_fields} | {binding.body}
    parameters = []
    for field in binding.request_descriptor.fields:
        if field.name in bound or not _fits_query(field):
            continue
        parameters.append(
            {"name": field.json_name, "in": "query", "schema": builder.field_schema(field)}
        )
    return parameters


def _fits_query(field: FieldDescriptor) -> bool:
    if field.type != FieldDescriptor.TYPE_MESSAGE:
        return True
    full_name = field.message_type.full_name
    return not field.is_repeated and _WELL_KNOWN_SCHEMAS.get(full_name, {}).get("type") == "string"


def _request_body(binding: HttpBinding, builder: _SchemaBuilder) -> dict[str, object]:
    descriptor = binding.request_descriptor
    if binding.body == "*":
        path_roots = {field_path.split(".")[0] for field_path in binding.path_fields}
        schema = builder.object_schema(descriptor, exclude=path_roots)
        # An empty body is read as {}.
        return {"required": False, **_json_content("The request", schema)}
    field = descriptor.fields_by_name[binding.body]
    return {
        "required": True,
        **_json_content(field.json_name, builder.message_ref(field.message_type)),
    }


def _success_schema(binding: HttpBinding, builder: _SchemaBuilder) -> dict[str, object]:
    descriptor = binding.method.output_type
    pagination = descriptor.fields_by_name.get("pagination")
    if binding.response_body:
        data = builder.field_schema(descriptor.fields_by_name[binding.response_body])
    elif pagination is not None:
        data = builder.object_schema(descriptor, exclude={pagination.name})
    else:
        data = builder.message_ref(descriptor)

    properties: dict[str, object] = {"success": {"type": "boolean", "enum": [True]}, "data": data}
    if pagination is not None:
        properties["pagination"] = builder.field_schema(pagination)
    return {"type": "object", "required": list(properties), "properties": properties}


class _SchemaBuilder:
    """Collects a component schema for every message and enum a route refers to."""

    def __init__(self) -> None:
        self.components: dict[str, object] = {}

    def message_ref(self, descriptor: Descriptor) -> dict[str, object]:
        well_known = _WELL_KNOWN_SCHEMAS.get(descriptor.full_name)
        if well_known is not None:
            return dict(well_known)
        name = descriptor.full_name
        if name not in self.components:
            # Registered before its fields so a recursive message refers to itself.
            self.components[name] = {}
            self.components[name] = self.object_schema(descriptor, exclude=set())
        return {"$ref": _REF_PREFIX + name}

    def object_schema(self, descriptor: Descriptor, exclude: set[str]) -> dict[str, object]:
        properties = {
            field.json_name: self.field_schema(field)
            for field in descriptor.fields
            if field.name not in exclude
        }
        return {"type": "object", "properties": properties, "additionalProperties": False}

    def field_schema(self, field: FieldDescriptor) -> dict[str, object]:
        if field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            return {"type": "object", "additionalProperties": self._single_schema(value_field)}
        if field.is_repeated:
            return {"type": "array", "items": self._single_schema(field)}
        schema = self._single_schema(field)
        if field.type == FieldDescriptor.TYPE_MESSAGE and "$ref" in schema:
            # An unset message field is null; OpenAPI 3.0 ignores siblings of $ref.
            return {"allOf": [schema], "nullable": True}
        return schema

    def _single_schema(self, field: FieldDescriptor) -> dict[str, object]:
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            return self.message_ref(field.message_type)
        if field.type == FieldDescriptor.TYPE_ENUM:
            return self._enum_ref(field.enum_type)
        return dict(_SCALAR_SCHEMAS[field.type])

    def _enum_ref(self, enum: EnumDescriptor) -> dict[str, object]:
        name = enum.full_name
        if name not in self.components:
            values: list[str | None] = [*spelling_of(enum).allowed, None]
            self.components[name] = {"type": "string", "enum": values, "nullable": True}
        return {"$ref": _REF_PREFIX + name}
