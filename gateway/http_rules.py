"""HTTP bindings read from the `google.api.http` annotations of the API services.

Each annotated RPC (and each of its `additional_bindings`) becomes one
HttpBinding: an HTTP method, a path template whose `{field}` variables bind
request fields, the request field the body fills ("*" for the whole
request) and the response field returned to the client. RPCs without an
annotation, such as PollWork and CompleteAttempt, get no binding.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property

from google.api import annotations_pb2, http_pb2
from google.protobuf import message_factory
from google.protobuf.descriptor import (
    Descriptor,
    FieldDescriptor,
    FileDescriptor,
    MethodDescriptor,
)
from google.protobuf.message import Message

from taskscheduler.v1 import jobs_pb2, monitoring_pb2, schedules_pb2, workers_pb2

API_FILES: tuple[FileDescriptor, ...] = (
    jobs_pb2.DESCRIPTOR,
    workers_pb2.DESCRIPTOR,
    monitoring_pb2.DESCRIPTOR,
    schedules_pb2.DESCRIPTOR,
)

_VARIABLE = re.compile(r"\{([^{}]+)\}")
_FIELD_PATH = re.compile(r"[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)*")
_VERB_NAMES = ("get", "put", "post", "delete", "patch")


@dataclass(frozen=True)
class HttpBinding:
    """One REST route of one RPC."""

    method: MethodDescriptor
    http_method: str
    # As written in the annotation, such as "/api/jobs/{job_id}".
    path_template: str
    # Request field paths bound by the template, in template order.
    path_fields: tuple[str, ...]
    # "" (no body), "*" (the whole request) or a top-level request field name.
    body: str
    # The response field sent as `data`, or "" for the whole response.
    response_body: str

    @property
    def full_method(self) -> str:
        """The gRPC method path, such as /taskscheduler.v1.JobService/GetJob."""
        return f"/{self.method.containing_service.full_name}/{self.method.name}"

    @property
    def is_read(self) -> bool:
        return self.http_method == "GET"

    @property
    def starlette_path(self) -> str:
        """The template with each variable named as a Python identifier."""
        return _VARIABLE.sub(
            lambda match: "{" + param_name(match.group(1)) + "}", self.path_template
        )

    @property
    def openapi_path(self) -> str:
        """The template with each variable in its lowerCamelCase JSON spelling."""
        return _VARIABLE.sub(
            lambda match: "{" + json_path(self.request_descriptor, match.group(1)) + "}",
            self.path_template,
        )

    @property
    def request_descriptor(self) -> Descriptor:
        return self.method.input_type

    @cached_property
    def request_class(self) -> type[Message]:
        return message_factory.GetMessageClass(self.method.input_type)

    @cached_property
    def response_class(self) -> type[Message]:
        return message_factory.GetMessageClass(self.method.output_type)


def param_name(field_path: str) -> str:
    """Return the Starlette path parameter name of a request field path."""
    return field_path.replace(".", "__")


def resolve_field_path(descriptor: Descriptor, field_path: str) -> list[FieldDescriptor]:
    """Return the fields along a dotted snake_case path; raise KeyError when one is missing."""
    fields: list[FieldDescriptor] = []
    current: Descriptor | None = descriptor
    for name in field_path.split("."):
        if current is None or name not in current.fields_by_name:
            raise KeyError(f"{descriptor.full_name} has no field {field_path!r}")
        field = current.fields_by_name[name]
        fields.append(field)
        current = field.message_type if field.type == FieldDescriptor.TYPE_MESSAGE else None
    return fields


def json_path(descriptor: Descriptor, field_path: str) -> str:
    """Return the lowerCamelCase spelling of a dotted snake_case field path."""
    return ".".join(field.json_name for field in resolve_field_path(descriptor, field_path))


def bindings_from_files(files: Iterable[FileDescriptor] = API_FILES) -> list[HttpBinding]:
    """Read every service's annotated methods into bindings, in declaration order.

    Raises ValueError for an annotation this gateway cannot serve, such as a
    path variable with a sub-pattern, a field that does not exist or a body
    that is not a message field.
    """
    bindings: list[HttpBinding] = []
    for file in files:
        for service in file.services_by_name.values():
            for method in service.methods:
                bindings.extend(_bindings_of_method(method))
    return bindings


def _bindings_of_method(method: MethodDescriptor) -> Iterator[HttpBinding]:
    options = method.GetOptions()
    if not options.HasExtension(annotations_pb2.http):
        return
    rule = options.Extensions[annotations_pb2.http]
    yield _binding_from_rule(method, rule)
    for extra in rule.additional_bindings:
        yield _binding_from_rule(method, extra)


def _binding_from_rule(method: MethodDescriptor, rule: http_pb2.HttpRule) -> HttpBinding:
    pattern = rule.WhichOneof("pattern")
    if pattern in _VERB_NAMES:
        http_method, template = pattern.upper(), getattr(rule, pattern)
    elif pattern == "custom":
        http_method, template = rule.custom.kind.upper(), rule.custom.path
    else:
        raise ValueError(f"{method.full_name}: google.api.http rule has no HTTP method")

    where = f"{method.full_name} {http_method} {template}"
    path_fields = tuple(_VARIABLE.findall(template))
    for field_path in path_fields:
        if not _FIELD_PATH.fullmatch(field_path):
            raise ValueError(f"{where}: unsupported path variable {{{field_path}}}")
        _check_scalar_path(method.input_type, field_path, where)
    if ":" in template.rsplit("/", 1)[-1]:
        raise ValueError(f"{where}: custom verbs in path templates are not supported")

    _check_body(method.input_type, rule.body, where)
    if rule.response_body and rule.response_body not in method.output_type.fields_by_name:
        raise ValueError(f"{where}: response has no field {rule.response_body!r}")

    return HttpBinding(
        method=method,
        http_method=http_method,
        path_template=template,
        path_fields=path_fields,
        body=rule.body,
        response_body=rule.response_body,
    )


def _check_scalar_path(descriptor: Descriptor, field_path: str, where: str) -> None:
    try:
        fields = resolve_field_path(descriptor, field_path)
    except KeyError as err:
        raise ValueError(f"{where}: {err.args[0]}") from err
    last = fields[-1]
    if last.is_repeated or last.type == FieldDescriptor.TYPE_MESSAGE:
        raise ValueError(f"{where}: path variable {field_path!r} must be a singular scalar field")


def _check_body(descriptor: Descriptor, body: str, where: str) -> None:
    if body in ("", "*"):
        return
    field = descriptor.fields_by_name.get(body)
    if field is None or field.type != FieldDescriptor.TYPE_MESSAGE or field.is_repeated:
        raise ValueError(f"{where}: body {body!r} must name a singular message field")
