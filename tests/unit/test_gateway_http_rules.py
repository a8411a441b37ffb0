"""Routes read from the google.api.http annotations, and the OpenAPI document built from them."""

from __future__ import annotations

import pytest
from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2, descriptor_pool
from starlette.routing import Match

from taskscheduler.gateway.http_rules import bindings_from_files
from taskscheduler.gateway.openapi import openapi_document
from taskscheduler.v1 import workers_pb2

EXPECTED_ROUTES = {
    ("JobService", "CreateJob"): ("POST", "/api/jobs"),
    ("JobService", "ListJobs"): ("GET", "/api/jobs"),
    ("JobService", "GetJob"): ("GET", "/api/jobs/{job_id}"),
    ("JobService", "UpdateJob"): ("PUT", "/api/jobs/{job_id}"),
    ("JobService", "DeleteJob"): ("DELETE", "/api/jobs/{job_id}"),
    ("JobService", "ExecuteJob"): ("POST", "/api/jobs/{job_id}/execute"),
    ("JobService", "PauseJob"): ("POST", "/api/jobs/{job_id}/pause"),
    ("JobService", "ResumeJob"): ("POST", "/api/jobs/{job_id}/resume"),
    ("JobService", "GetJobStatus"): ("GET", "/api/jobs/{job_id}/status"),
    ("JobService", "ListJobHistory"): ("GET", "/api/jobs/{job_id}/history"),
    ("JobService", "BatchCreateJobs"): ("POST", "/api/jobs/batch"),
    ("JobService", "BatchDeleteJobs"): ("POST", "/api/jobs/batch/delete"),
    ("JobService", "BatchPauseJobs"): ("POST", "/api/jobs/batch/pause"),
    ("JobService", "BatchResumeJobs"): ("POST", "/api/jobs/batch/resume"),
    ("WorkerService", "ListWorkers"): ("GET", "/api/workers"),
    ("WorkerService", "GetWorker"): ("GET", "/api/workers/{worker_id}"),
    ("WorkerService", "RegisterWorker"): ("POST", "/api/workers/register"),
    ("WorkerService", "DeregisterWorker"): ("DELETE", "/api/workers/{worker_id}"),
    ("WorkerService", "Heartbeat"): ("POST", "/api/workers/{worker_id}/heartbeat"),
    ("MonitoringService", "GetDashboard"): ("GET", "/api/monitoring/dashboard"),
    ("MonitoringService", "GetMetrics"): ("GET", "/api/monitoring/metrics"),
    ("JobService", "CancelRun"): ("POST", "/api/jobs/{job_id}/runs/{run_id}/cancel"),
    ("ScheduleService", "PreviewSchedule"): ("GET", "/api/schedule/preview"),
    ("MonitoringService", "GetHealth"): ("GET", "/health"),
}


def test_every_annotated_rpc_gets_exactly_its_route() -> None:
    routes = {
        (b.method.containing_service.name, b.method.name): (b.http_method, b.path_template)
        for b in bindings_from_files()
    }

    assert routes == EXPECTED_ROUTES
    assert len(bindings_from_files()) == len(EXPECTED_ROUTES)


@pytest.mark.parametrize("method_name", ["PollWork", "CompleteAttempt", "CompleteAttempts"])
def test_unannotated_rpc_gets_no_route(method_name: str) -> None:
    service = workers_pb2.DESCRIPTOR.services_by_name["WorkerService"]

    assert service.methods_by_name[method_name] is not None
    assert all(b.method.name != method_name for b in bindings_from_files())


@pytest.mark.parametrize(
    ("method_name", "body", "response_body", "full_method"),
    [
        ("CreateJob", "job", "job", "/taskscheduler.v1.JobService/CreateJob"),
        ("UpdateJob", "job", "job", "/taskscheduler.v1.JobService/UpdateJob"),
        ("ExecuteJob", "*", "run", "/taskscheduler.v1.JobService/ExecuteJob"),
        ("ListJobs", "", "jobs", "/taskscheduler.v1.JobService/ListJobs"),
        ("GetHealth", "", "", "/taskscheduler.v1.MonitoringService/GetHealth"),
        ("Heartbeat", "*", "", "/taskscheduler.v1.WorkerService/Heartbeat"),
    ],
)
def test_binding_body_and_response_body(
    method_name: str, body: str, response_body: str, full_method: str
) -> None:
    binding = next(b for b in bindings_from_files() if b.method.name == method_name)

    assert binding.body == body
    assert binding.response_body == response_body
    assert binding.full_method == full_method


@pytest.mark.parametrize(
    ("method", "path", "rpc", "params"),
    [
        ("GET", "/api/workers/register", "GetWorker", {"worker_id": "register"}),
        ("POST", "/api/workers/register", "RegisterWorker", {}),
        ("DELETE", "/api/workers/w-1", "DeregisterWorker", {"worker_id": "w-1"}),
        ("GET", "/api/jobs/abc/history", "ListJobHistory", {"job_id": "abc"}),
        ("PUT", "/api/jobs/abc", "UpdateJob", {"job_id": "abc"}),
    ],
)
def test_starlette_routes_match(method: str, path: str, rpc: str, params: dict) -> None:
    from taskscheduler.gateway.app import api_routes

    routes = api_routes(bindings_from_files(), client=None)  # type: ignore[arg-type]
    scope = {"type": "http", "method": method, "path": path, "root_path": ""}

    matches = [(route, route.matches(scope)) for route in routes]
    full = [(route, child) for route, (match, child) in matches if match == Match.FULL]

    assert len(full) >= 1
    route, child = full[0]
    assert child["path_params"] == params
    assert method in route.methods  # type: ignore[operator]
    assert rpc in {b.method.name for b in bindings_from_files() if b.starlette_path == route.path}


def _bad_file(name: str, rule: http_pb2.HttpRule) -> descriptor_pb2.FileDescriptorProto:
    """A one-method service in a throwaway proto file, annotated with `rule`."""
    file = descriptor_pb2.FileDescriptorProto(name=f"gateway_test/{name}.proto", package=name)
    message = file.message_type.add(name="Request")
    message.field.add(
        name="item_id",
        number=1,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
        label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
    )
    method = file.service.add(name="Service").method.add(
        name="Call", input_type=f".{name}.Request", output_type=f".{name}.Request"
    )
    method.options.Extensions[annotations_pb2.http].CopyFrom(rule)
    return file


@pytest.mark.parametrize(
    ("name", "rule", "message_part"),
    [
        ("badvar", http_pb2.HttpRule(get="/items/{item_id=items/*}"), "unsupported path variable"),
        ("nofield", http_pb2.HttpRule(get="/items/{missing}"), "has no field 'missing'"),
        (
            "badbody",
            http_pb2.HttpRule(post="/items", body="item_id"),
            "must name a singular message",
        ),
        (
            "badresponse",
            http_pb2.HttpRule(get="/items", response_body="x"),
            "response has no field",
        ),
        ("verb", http_pb2.HttpRule(post="/items/{item_id}:run"), "custom verbs"),
    ],
)
def test_unsupported_annotation_is_rejected(
    name: str, rule: http_pb2.HttpRule, message_part: str
) -> None:
    # Only the default pool has the google.api.http extension registered for parsing options.
    pool = descriptor_pool.Default()
    file_proto = _bad_file(name, rule)
    try:
        file_descriptor = pool.FindFileByName(file_proto.name)
    except KeyError:
        pool.Add(file_proto)
        file_descriptor = pool.FindFileByName(file_proto.name)

    with pytest.raises(ValueError) as caught:
        bindings_from_files([file_descriptor])

    assert message_part in str(caught.value)


def test_openapi_lists_every_route() -> None:
    document = openapi_document(bindings_from_files())

    operations = {
        (method.upper(), path)
        for path, methods in document["paths"].items()  # type: ignore[union-attr]
        for method in methods
    }
    expected = {
        (
            method,
            path.replace("{job_id}", "{jobId}")
            .replace("{worker_id}", "{workerId}")
            .replace("{run_id}", "{runId}"),
        )
        for method, path in EXPECTED_ROUTES.values()
    }
    assert document["openapi"] == "3.0.3"
    assert operations == expected


def test_openapi_parameters_and_schemas() -> None:
    document = openapi_document(bindings_from_files())
    paths = document["paths"]
    schemas = document["components"]["schemas"]  # type: ignore[index]

    list_jobs = paths["/api/jobs"]["get"]  # type: ignore[index]
    get_job = paths["/api/jobs/{jobId}"]["get"]  # type: ignore[index]
    create_job = paths["/api/jobs"]["post"]  # type: ignore[index]

    assert [p["name"] for p in list_jobs["parameters"]] == ["status", "priority", "limit", "offset"]
    assert list_jobs["parameters"][1]["schema"] == {
        "$ref": "#/components/schemas/taskscheduler.v1.Priority"
    }
    assert get_job["parameters"] == [
        {"name": "jobId", "in": "path", "required": True, "schema": {"type": "string"}}
    ]
    body_schema = create_job["requestBody"]["content"]["application/json"]["schema"]
    assert body_schema == {"$ref": "#/components/schemas/taskscheduler.v1.Job"}
    list_schema = list_jobs["responses"]["200"]["content"]["application/json"]["schema"]
    assert list_schema["required"] == ["success", "data", "pagination"]
    assert schemas["taskscheduler.v1.JobType"]["enum"] == ["one-time", "recurring", None]
    assert schemas["taskscheduler.v1.Job"]["properties"]["payload"]["type"] == "object"
    assert schemas["taskscheduler.v1.Job"]["properties"]["nextRun"]["format"] == "date-time"


def test_openapi_refs_all_resolve() -> None:
    document = openapi_document(bindings_from_files())
    schemas = document["components"]["schemas"]  # type: ignore[index]
    refs: list[str] = []

    def collect(node: object) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                refs.append(node["$ref"])
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    collect(document)

    assert refs
    for ref in refs:
        assert ref.startswith("#/components/schemas/")
        assert ref.removeprefix("#/components/schemas/") in schemas
