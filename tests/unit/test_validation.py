"""Rules for client input: job specs, update masks, pages and ids."""

from __future__ import annotations

import dataclasses
import json
from types import MappingProxyType
from typing import Any

import pytest

from taskscheduler.coordinator.codec import JobDraft
from taskscheduler.coordinator.model import JobSpec, JobType, Page, Priority, RetryPolicy
from taskscheduler.coordinator.validation import (
    MAX_PAYLOAD_BYTES,
    apply_update,
    validate_id,
    validate_job_spec,
    validate_page,
)
from taskscheduler.errors import InvalidArgumentError

SHELL_PAYLOAD = {"command": ["python3", "report.py", "--kind", "sales"]}
HTTP_PAYLOAD = {"url": "https://example.com/hook"}


def make_draft(**overrides: Any) -> JobDraft:
    fields: dict[str, Any] = {
        "name": "daily-report",
        "schedule": "0 9 * * *",
        "executor": "shell",
        "payload": SHELL_PAYLOAD,
    }
    fields.update(overrides)
    return JobDraft(**fields)


def http_draft(**payload_changes: Any) -> JobDraft:
    return make_draft(executor="http", payload={**HTTP_PAYLOAD, **payload_changes})


def shell_draft(**payload_changes: Any) -> JobDraft:
    return make_draft(payload={**SHELL_PAYLOAD, **payload_changes})


def padded_payload(size: int) -> dict[str, Any]:
    """Return a shell payload whose compact JSON form is exactly `size` bytes."""
    base = len(json.dumps({**SHELL_PAYLOAD, "env": {"PAD": ""}}, separators=(",", ":")))
    return {**SHELL_PAYLOAD, "env": {"PAD": "x" * (size - base)}}


# Job specs: accepted drafts


def test_job_spec_defaults_applied() -> None:
    spec = validate_job_spec(make_draft())

    assert spec == JobSpec(
        name="daily-report",
        type=JobType.RECURRING,
        schedule="0 9 * * *",
        timezone="UTC",
        priority=Priority.NORMAL,
        executor="shell",
        payload=MappingProxyType(SHELL_PAYLOAD),
    )


def test_job_spec_keeps_given_values() -> None:
    draft = make_draft(
        description="Generate daily sales report",
        type=JobType.RECURRING,
        timezone="Europe/Berlin",
        priority=Priority.CRITICAL,
        retry_policy=RetryPolicy(max_retries=3, retry_delay_s=300),
        timeout_s=3600,
    )

    spec = validate_job_spec(draft)

    assert spec.description == "Generate daily sales report"
    assert spec.timezone == "Europe/Berlin"
    assert spec.priority is Priority.CRITICAL
    assert spec.retry_policy == RetryPolicy(max_retries=3, retry_delay_s=300)
    assert spec.timeout_s == 3600


def test_job_spec_schedule_stripped() -> None:
    spec = validate_job_spec(make_draft(schedule="  0 9 * * *\n"))

    assert spec.schedule == "0 9 * * *"


def test_job_spec_payload_copied() -> None:
    payload = {"command": ["true"]}

    spec = validate_job_spec(make_draft(payload=payload))
    payload["command"] = ["false"]

    assert spec.payload["command"] == ["true"]


@pytest.mark.parametrize(
    "draft",
    [
        make_draft(name="x"),
        make_draft(name="n" * 200),
        make_draft(name="Täglicher Bericht für Köln"),
        make_draft(description="d" * 2000),
        make_draft(type=JobType.ONE_TIME, schedule="2020-01-01T00:00:00Z"),
        make_draft(type=JobType.ONE_TIME, schedule="2099-06-01T09:00:00+02:00"),
        make_draft(schedule="@hourly"),
        make_draft(schedule="@every 90s"),
        make_draft(schedule="30 2 * * *", timezone="America/New_York"),
        make_draft(executor="report.build-v2_x", payload={"anything": [1, {"a": None}]}),
        make_draft(executor="a" * 64, payload={}),
        shell_draft(env={"LANG": "C.UTF-8"}, cwd="/srv/reports"),
        shell_draft(env={}),
        http_draft(),
        http_draft(url="http://127.0.0.1:8080/x?y=1"),
        http_draft(method="DELETE", headers={"Accept": "text/plain"}, expectStatus=204),
        http_draft(expectStatus=100),
        http_draft(expectStatus=599),
        http_draft(method="POST", body={"report": "sales", "days": [1, 2]}),
        http_draft(method=None, headers=None, expectStatus=None, body=None),
        shell_draft(env=None, cwd=None),
        make_draft(retry_policy=RetryPolicy(max_retries=100, retry_delay_s=86_400)),
        make_draft(retry_policy=RetryPolicy(max_retries=0, retry_delay_s=0)),
        make_draft(timeout_s=604_800),
        make_draft(payload=padded_payload(MAX_PAYLOAD_BYTES)),
    ],
    ids=lambda draft: f"{draft.executor}:{draft.name[:12]}:{draft.schedule[:12]}",
)
def test_job_spec_accepted(draft: JobDraft) -> None:
    spec = validate_job_spec(draft)

    assert spec.name == draft.name
    assert spec.schedule == draft.schedule
    assert dict(spec.payload) == dict(draft.payload)


# Job specs: rejected drafts

REJECTED = [
    # name and description
    (make_draft(name=""), "name", "name is required"),
    (make_draft(name="   "), "name", "is blank"),
    (make_draft(name="n" * 201), "name", "201 characters long"),
    (make_draft(name="a\nb"), "name", "control character U+000A at position 1"),
    (make_draft(name="tab\there"), "name", "U+0009"),
    (make_draft(description="d" * 2001), "description", "at most 2000 characters"),
    # schedule and time zone
    (make_draft(schedule=""), "schedule", "schedule is required for a recurring job"),
    (make_draft(schedule="  "), "schedule", "schedule is required for a recurring job"),
    (
        make_draft(type=JobType.ONE_TIME, schedule=""),
        "schedule",
        "schedule is required for a one-time job",
    ),
    (make_draft(schedule="61 * * * *"), "schedule", "61 * * * *"),
    (make_draft(schedule="every day"), "schedule", "every day"),
    (make_draft(type=JobType.ONE_TIME, schedule="0 9 * * *"), "schedule", "0 9 * * *"),
    (make_draft(timezone="Mars/Olympus"), "timezone", "Mars/Olympus"),
    (make_draft(timezone="Mars/Olympus", schedule="bad"), "timezone", "not a known IANA"),
    # executor
    (make_draft(executor=""), "executor", "executor is required"),
    (make_draft(executor="Shell"), "executor", 'executor "Shell" is not a valid'),
    (make_draft(executor="1shell"), "executor", "not a valid executor name"),
    (make_draft(executor="a" * 65), "executor", "1 to 64 characters"),
    (make_draft(executor="sh ell"), "executor", "not a valid executor name"),
    # shell payload
    (make_draft(payload={}), "payload.command", "payload.command is required"),
    (shell_draft(command=[]), "payload.command", "[] is invalid"),
    (shell_draft(command="echo hi"), "payload.command", "non-empty list of strings"),
    (shell_draft(command=None), "payload.command", "null is invalid"),
    (shell_draft(command=["echo", ""]), "payload.command", 'payload.command[1] "" is invalid'),
    (shell_draft(command=["echo", 3]), "payload.command", "payload.command[1] 3 is invalid"),
    (shell_draft(command=["a\0b"]), "payload.command", "without NUL"),
    (shell_draft(env={"A": 1}), "payload.env", "object of string values"),
    (shell_draft(env=["A=1"]), "payload.env", '["A=1"] is invalid'),
    (shell_draft(env={"A=B": "1"}), "payload.env", 'entry "A=B" is invalid'),
    (shell_draft(env={"": "1"}), "payload.env", "must be non-empty"),
    (shell_draft(cwd=5), "payload.cwd", "payload.cwd 5 is invalid"),
    (shell_draft(comand=["x"]), "payload.comand", 'payload key "comand" is not read by the shell'),
    (shell_draft(url="https://x"), "payload.url", "Use only: command, env, cwd"),
    # http payload
    (make_draft(executor="http", payload={}), "payload.url", "payload.url is required"),
    (http_draft(url="ftp://example.com/x"), "payload.url", "ftp://example.com/x"),
    (http_draft(url="https://"), "payload.url", "with a host"),
    (http_draft(url="example.com"), "payload.url", "http:// or https://"),
    (http_draft(url=42), "payload.url", "payload.url 42 is invalid"),
    (http_draft(url="http://[::1"), "payload.url", "is invalid"),
    (http_draft(method="get"), "payload.method", 'payload.method "get" is not supported'),
    (http_draft(method="TRACE"), "payload.method", "GET, HEAD, POST, PUT, PATCH, DELETE"),
    (http_draft(headers={"X": 1}), "payload.headers", "object of string values"),
    (http_draft(headers="X: 1"), "payload.headers", "is invalid"),
    (http_draft(expectStatus=99), "payload.expectStatus", "from 100 to 599"),
    (http_draft(expectStatus=600), "payload.expectStatus", "600 is invalid"),
    (http_draft(expectStatus=200.5), "payload.expectStatus", "200.5 is invalid"),
    (http_draft(expectStatus="200"), "payload.expectStatus", '"200" is invalid'),
    (http_draft(expectStatus=True), "payload.expectStatus", "true is invalid"),
    (http_draft(timeout=5), "payload.timeout", "method, url, headers, body, expectStatus"),
    # payload size and content
    (
        make_draft(payload=padded_payload(MAX_PAYLOAD_BYTES + 1)),
        "payload",
        f"{MAX_PAYLOAD_BYTES + 1} bytes as JSON, over the limit of 65536 bytes",
    ),
    (make_draft(executor="custom", payload={"x": float("nan")}), "payload", "finite numbers"),
    # retry policy, timeout, dependencies
    (
        make_draft(retry_policy=RetryPolicy(max_retries=-1)),
        "retryPolicy.maxRetries",
        "retryPolicy.maxRetries -1 is out of range",
    ),
    (make_draft(retry_policy=RetryPolicy(max_retries=101)), "retryPolicy.maxRetries", "to 100"),
    (
        make_draft(retry_policy=RetryPolicy(retry_delay_s=-1)),
        "retryPolicy.retryDelay",
        "retryPolicy.retryDelay -1 is out of range",
    ),
    (
        make_draft(retry_policy=RetryPolicy(retry_delay_s=86_401)),
        "retryPolicy.retryDelay",
        "0 to 86400 seconds",
    ),
    (
        make_draft(timeout_s=-5),
        "timeout",
        "timeout must be 0 (no limit) or a positive number of seconds",
    ),
    (make_draft(timeout_s=604_801), "timeout", "at most 604800 seconds"),
    (
        make_draft(type=JobType.ONE_TIME, schedule="", dependencies=("job-1",)),
        "schedule",
        "schedule is required for a one-time job",
    ),
    (
        make_draft(dependencies=("job-1",), dependency_wait_s=-1),
        "dependencyWait",
        "give 1 to 86400 seconds, or 0 for the default of 3600",
    ),
    (
        make_draft(dependencies=("job-1",), dependency_wait_s=86_401),
        "dependencyWait",
        "give 1 to 86400 seconds",
    ),
    (make_draft(dependency_wait_s=60), "dependencyWait", "applies only to a job with both"),
    (
        make_draft(schedule="", dependencies=("job-1",), dependency_wait_s=60),
        "dependencyWait",
        "applies only to a job with both",
    ),
    (make_draft(schedule="", dependencies=("job-1", "job-1")), "dependencies", "job-1 more than"),
    (make_draft(schedule="", dependencies=("job/1",)), "dependencies", "must not contain '/'"),
    (
        make_draft(schedule="", dependencies=("job-1", "")),
        "dependencies",
        "dependencies[1] is empty. Give a job id there or remove the entry",
    ),
    (
        make_draft(schedule="", dependencies=tuple(f"job-{n}" for n in range(101))),
        "dependencies",
        "at most 100",
    ),
    (make_draft(schedule="", dependencies=()), "schedule", "schedule is required"),
    # the first violation in field order wins
    (make_draft(name="", executor=""), "name", "name is required"),
]


@pytest.mark.parametrize(("draft", "field", "message_part"), REJECTED)
def test_job_spec_rejected(draft: JobDraft, field: str, message_part: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        validate_job_spec(draft)

    assert caught.value.field == field
    assert message_part in caught.value.message


def test_rejected_value_shown_cut_short() -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        validate_job_spec(make_draft(name="n" * 500))

    assert caught.value.message.startswith('name "nnnn')
    assert "..." in caught.value.message
    assert len(caught.value.message) < 200


# Update masks

CURRENT = JobSpec(
    name="daily-report",
    description="old",
    type=JobType.RECURRING,
    schedule="0 9 * * *",
    timezone="Europe/Berlin",
    priority=Priority.HIGH,
    executor="shell",
    payload=MappingProxyType({"command": ["old"]}),
    retry_policy=RetryPolicy(max_retries=3, retry_delay_s=300),
    timeout_s=60,
)
UPDATE = JobDraft(
    name="renamed",
    description="new",
    type=None,
    schedule="@hourly",
    timezone="",
    priority=Priority.LOW,
    executor="http",
    payload={"url": "https://example.com"},
    retry_policy=RetryPolicy(max_retries=7, retry_delay_s=9),
    timeout_s=120,
)
CURRENT_AS_DRAFT = JobDraft(
    name="daily-report",
    description="old",
    type=JobType.RECURRING,
    schedule="0 9 * * *",
    timezone="Europe/Berlin",
    priority=Priority.HIGH,
    executor="shell",
    payload={"command": ["old"]},
    retry_policy=RetryPolicy(max_retries=3, retry_delay_s=300),
    timeout_s=60,
    misfire_policy=CURRENT.misfire_policy,
    catch_up_window_s=CURRENT.catch_up_window_s,
    concurrency_policy=CURRENT.concurrency_policy,
)


@pytest.mark.parametrize(
    ("paths", "changes"),
    [
        ([], None),
        (["priority"], {"priority": Priority.LOW}),
        (["name", "description"], {"name": "renamed", "description": "new"}),
        (["type"], {"type": None}),
        (["timezone"], {"timezone": ""}),
        (["timeout"], {"timeout_s": 120}),
        (
            ["executor", "payload"],
            {"executor": "http", "payload": {"url": "https://example.com"}},
        ),
        (["retry_policy"], {"retry_policy": RetryPolicy(max_retries=7, retry_delay_s=9)}),
        (
            ["retry_policy.max_retries"],
            {"retry_policy": RetryPolicy(max_retries=7, retry_delay_s=300)},
        ),
        (
            ["retry_policy.retry_delay"],
            {"retry_policy": RetryPolicy(max_retries=3, retry_delay_s=9)},
        ),
        (
            ["retry_policy", "retry_policy.max_retries"],
            {"retry_policy": RetryPolicy(max_retries=7, retry_delay_s=9)},
        ),
        (["dependencies"], {"dependencies": ()}),
        (["schedule", "schedule"], {"schedule": "@hourly"}),
    ],
)
def test_apply_update_merges(paths: list[str], changes: dict[str, Any] | None) -> None:
    expected = UPDATE if changes is None else dataclasses.replace(CURRENT_AS_DRAFT, **changes)

    assert apply_update(CURRENT, UPDATE, paths) == expected


def test_apply_update_result_validates() -> None:
    merged = apply_update(CURRENT, UPDATE, ["type", "executor", "payload"])

    spec = validate_job_spec(merged)

    assert spec.type is JobType.RECURRING
    assert spec.executor == "http"
    assert spec.timezone == "Europe/Berlin"


@pytest.mark.parametrize(
    "paths",
    [["id"], ["status", "next_run", "last_run"], ["created_at", "updated_at"]],
)
def test_apply_update_ignores_output_only(paths: list[str]) -> None:
    merged = apply_update(CURRENT, UPDATE, paths)

    assert validate_job_spec(merged) == CURRENT


def test_apply_update_output_only_beside_field() -> None:
    merged = apply_update(CURRENT, UPDATE, ["id", "priority", "status"])

    assert merged.priority is UPDATE.priority
    assert merged.name == CURRENT.name


@pytest.mark.parametrize(
    ("paths", "message_part"),
    [
        (["retryPolicy"], 'updateMask path "retryPolicy" is not a job field'),
        (["payload.command"], '"payload.command" is not a job field'),
        ([""], 'updateMask path "" is not a job field'),
        (["priority", "owner"], '"owner" is not a job field'),
        (["retry_policy.attempts"], "snake_case proto field names"),
    ],
)
def test_apply_update_rejects_path(paths: list[str], message_part: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        apply_update(CURRENT, UPDATE, paths)

    assert caught.value.field == "updateMask"
    assert message_part in caught.value.message


# Pages and ids


@pytest.mark.parametrize(
    ("limit", "offset", "expected"),
    [
        (0, 0, Page(limit=50, offset=0)),
        (1, 0, Page(limit=1, offset=0)),
        (1000, 5, Page(limit=1000, offset=5)),
        (20, 1_000_000, Page(limit=20, offset=1_000_000)),
    ],
)
def test_validate_page_accepted(limit: int, offset: int, expected: Page) -> None:
    assert validate_page(limit, offset) == expected


@pytest.mark.parametrize(
    ("limit", "offset", "field", "message_part"),
    [
        (-1, 0, "limit", "limit -1 is out of range"),
        (1001, 0, "limit", "Use 1 to 1000"),
        (10, -1, "offset", "offset -1 is negative"),
    ],
)
def test_validate_page_rejected(limit: int, offset: int, field: str, message_part: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        validate_page(limit, offset)

    assert caught.value.field == field
    assert message_part in caught.value.message


@pytest.mark.parametrize("value", ["job-0123456789abcdef", "a", "x" * 128, "job.1-m_ab:c"])
def test_validate_id_accepted(value: str) -> None:
    assert validate_id(value, "jobId") == value


@pytest.mark.parametrize(
    ("value", "message_part"),
    [
        ("", "workerId is required"),
        ("x" * 129, "129 characters long"),
        ("a/b", "must not contain '/'"),
        ("a\x00b", "U+0000"),
        ("a\x7fb", "U+007F"),
        ("line\nbreak", "control character U+000A"),
    ],
)
def test_validate_id_rejected(value: str, message_part: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        validate_id(value, "workerId")

    assert caught.value.field == "workerId"
    assert message_part in caught.value.message
