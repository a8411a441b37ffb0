"""Rules for client input: job specs, update masks, pages and ids.

Every function is pure and raises InvalidArgumentError at the first
violation. Its `field` is the REST (lowerCamelCase) path of the offending
value, and its message names the value, the rule and the fix.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from taskscheduler.coordinator.codec import JobDraft
from taskscheduler.coordinator.interning import frozen_mapping, shared
from taskscheduler.coordinator.model import (
    DEFAULT_DEPENDENCY_WAIT_S,
    MAX_DEPENDENCY_WAIT_S,
    JobSpec,
    JobType,
    Page,
    Priority,
    RetryPolicy,
)
from taskscheduler.coordinator.scheduling_options import check_scheduling_options
from taskscheduler.coordinator.selector import check_selector
from taskscheduler.errors import InvalidArgumentError
from taskscheduler.schedule import parse_schedule, validate_timezone

MAX_NAME_CHARS = 200
MAX_DESCRIPTION_CHARS = 2000
MAX_PAYLOAD_BYTES = 64 * 1024
MAX_RETRIES = 100
MAX_BACKOFF_MULTIPLIER = 10.0
MAX_RETRY_DELAY_S = 86_400
MAX_TIMEOUT_S = 604_800
DEFAULT_PAGE_LIMIT = 50
MAX_PAGE_LIMIT = 1000
MAX_ID_CHARS = 128
MAX_DEPENDENCIES = 100

EXECUTOR_PATTERN = re.compile(r"[a-z][a-z0-9_.-]{0,63}")
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

# Payload keys the agent's executors read. The agent rejects any other key at
# run time, so creation rejects it first.
SHELL_PAYLOAD_KEYS = ("command", "env", "cwd")
HTTP_PAYLOAD_KEYS = ("method", "url", "headers", "body", "expectStatus")

# Parsed schedules are immutable, and a bulk create repeats a few expressions many times.
_parse_cached = functools.lru_cache(maxsize=4096)(
    lambda schedule, one_time, timezone: parse_schedule(
        schedule, one_time=one_time, timezone=timezone
    )
)

# Maximum length of a client value quoted in an error message.
_MAX_SHOWN_CHARS = 80


# Job specs


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def validate_job_spec(draft: JobDraft) -> JobSpec:
    """Check a draft against every rule and return it as a spec with defaults applied.

    Defaults: type recurring, priority normal, time zone UTC. A one-time
    instant in the past is accepted, and the job then fires at once.
    """
    job_type = JobType.RECURRING if draft.type is None else draft.type
    priority = Priority.NORMAL if draft.priority is None else draft.priority
    timezone = draft.timezone or "UTC"

    _check_name(draft.name)
    _check_description(draft.description)
    validate_timezone(timezone)
    _check_dependencies(draft.dependencies)
    schedule = _check_schedule(draft.schedule, job_type, timezone, draft.dependencies)
    _check_executor(draft.executor)
    _check_payload(draft.executor, draft.payload)
    check_selector(draft.selector)
    _check_retry_policy(draft.retry_policy)
    _check_timeout(draft.timeout_s)
    options = check_scheduling_options(draft)
    dependency_wait_s = _check_dependency_wait(
        draft.dependency_wait_s, draft.dependencies, schedule
    )

    return JobSpec(
        name=draft.name,
        description=draft.description,
        type=job_type,
        schedule=shared(schedule),
        timezone=shared(timezone),
        priority=priority,
        executor=shared(draft.executor),
        payload=frozen_mapping(draft.payload),
        retry_policy=shared(draft.retry_policy),
        timeout_s=draft.timeout_s,
        dependencies=tuple(draft.dependencies),
        misfire_policy=options.misfire_policy,
        catch_up_window_s=options.catch_up_window_s,
        concurrency_policy=options.concurrency_policy,
        jitter_s=options.jitter_s,
        start_at=options.start_at,
        end_at=options.end_at,
        selector=frozen_mapping(draft.selector),
        dependency_wait_s=dependency_wait_s,
    )


def _check_name(name: str) -> None:
    if not name:
        raise InvalidArgumentError(
            "name", f"name is required. Give the job a name of 1 to {MAX_NAME_CHARS} characters"
        )
    if not name.strip():
        raise InvalidArgumentError(
            "name", f"name {_show(name)} is blank. Give the job a name with visible characters"
        )
    if len(name) > MAX_NAME_CHARS:
        raise InvalidArgumentError(
            "name",
            f"name {_show(name)} is {len(name)} characters long. "
            f"Shorten it to at most {MAX_NAME_CHARS} characters",
        )
    _check_no_control_characters(name, "name")


def _check_description(description: str) -> None:
    if len(description) > MAX_DESCRIPTION_CHARS:
        raise InvalidArgumentError(
            "description",
            f"description {_show(description)} is {len(description)} characters long. "
            f"Shorten it to at most {MAX_DESCRIPTION_CHARS} characters",
        )


def _check_schedule(
    schedule: str, job_type: JobType, timezone: str, dependencies: Sequence[str]
) -> str:
    """Return the schedule without surrounding whitespace if it parses.

    A recurring job with dependencies has no schedule: it runs when they complete.
    """
    if not schedule.strip() and dependencies and job_type is JobType.RECURRING:
        return ""
    if not schedule.strip():
        example = (
            "an ISO-8601 instant such as 2030-01-01T09:00:00Z"
            if job_type is JobType.ONE_TIME
            else 'a cron expression such as "0 9 * * *" or a macro such as @hourly or @every 90s'
        )
        raise InvalidArgumentError(
            "schedule", f"schedule is required for a {job_type.value} job. Give {example}"
        )
    parsed = _parse_cached(schedule, job_type is JobType.ONE_TIME, timezone)
    if job_type is JobType.ONE_TIME:
        instant = parsed.next_fire_after(datetime.min.replace(tzinfo=UTC))
        # Stored times are protobuf Timestamps, where the epoch itself means "unset".
        if instant is None or instant <= _EPOCH:
            raise InvalidArgumentError(
                "schedule", f"schedule {schedule.strip()!r} must be after 1970-01-01T00:00:00Z"
            )
    return schedule.strip()


def _check_executor(executor: str) -> None:
    if not executor:
        raise InvalidArgumentError(
            "executor",
            "executor is required. Name what runs the job on an agent: "
            "shell, http or a registered handler",
        )
    if not EXECUTOR_PATTERN.fullmatch(executor):
        raise InvalidArgumentError(
            "executor",
            f"executor {_show(executor)} is not a valid executor name. Use 1 to 64 characters: "
            "a lowercase letter, then lowercase letters, digits, '_', '.' or '-'",
        )


def _check_retry_policy(policy: RetryPolicy) -> None:
    if not 0 <= policy.max_retries <= MAX_RETRIES:
        raise InvalidArgumentError(
            "retryPolicy.maxRetries",
            f"retryPolicy.maxRetries {policy.max_retries} is out of range. "
            f"Use 0 (never retry) to {MAX_RETRIES}",
        )
    if not 0 <= policy.retry_delay_s <= MAX_RETRY_DELAY_S:
        raise InvalidArgumentError(
            "retryPolicy.retryDelay",
            f"retryPolicy.retryDelay {policy.retry_delay_s} is out of range. "
            f"Use 0 to {MAX_RETRY_DELAY_S} seconds (1 day)",
        )
    multiplier = policy.backoff_multiplier
    if not (math.isfinite(multiplier) and 1.0 <= multiplier <= MAX_BACKOFF_MULTIPLIER):
        raise InvalidArgumentError(
            "retryPolicy.backoffMultiplier",
            f"retryPolicy.backoffMultiplier {multiplier} is out of range. "
            f"Use 1 (constant delay) to {MAX_BACKOFF_MULTIPLIER:g}, or leave it out",
        )
    if not 0 <= policy.max_retry_delay_s <= MAX_RETRY_DELAY_S:
        raise InvalidArgumentError(
            "retryPolicy.maxRetryDelay",
            f"retryPolicy.maxRetryDelay {policy.max_retry_delay_s} is out of range. "
            f"Use 0 (no bound) to {MAX_RETRY_DELAY_S} seconds",
        )


def _check_timeout(timeout_s: int) -> None:
    if timeout_s < 0:
        raise InvalidArgumentError(
            "timeout",
            f"timeout {timeout_s} is negative, but timeout must be 0 (no limit) "
            "or a positive number of seconds",
        )
    if timeout_s > MAX_TIMEOUT_S:
        raise InvalidArgumentError(
            "timeout",
            f"timeout {timeout_s} is too long. Use at most {MAX_TIMEOUT_S} seconds (7 days), "
            "or 0 for no limit",
        )


def _check_dependencies(dependencies: Sequence[str]) -> None:
    """Check the list's shape; check_dependency_graph checks the ids against stored jobs."""
    if not dependencies:
        return
    if len(dependencies) > MAX_DEPENDENCIES:
        raise InvalidArgumentError(
            "dependencies",
            f"dependencies has {len(dependencies)} entries. List at most {MAX_DEPENDENCIES} jobs",
        )
    for index, dependency in enumerate(dependencies):
        if not dependency:
            raise InvalidArgumentError(
                "dependencies",
                f"dependencies[{index}] is empty. Give a job id there or remove the entry",
            )
        validate_id(dependency, "dependencies")
    repeated = sorted({item for item in dependencies if dependencies.count(item) > 1})
    if repeated:
        raise InvalidArgumentError(
            "dependencies",
            f"dependencies lists {', '.join(repeated)} more than once. List each job once",
        )


def _check_dependency_wait(
    dependency_wait_s: int, dependencies: Sequence[str], schedule: str
) -> int:
    """Return the wait with its default applied; only a scheduled job with dependencies waits."""
    if not 0 <= dependency_wait_s <= MAX_DEPENDENCY_WAIT_S:
        raise InvalidArgumentError(
            "dependencyWait",
            f"dependencyWait {dependency_wait_s} is out of range; give 1 to "
            f"{MAX_DEPENDENCY_WAIT_S} seconds, or 0 for the default of "
            f"{DEFAULT_DEPENDENCY_WAIT_S}",
        )
    waits = bool(dependencies) and bool(schedule)
    if dependency_wait_s not in (0, DEFAULT_DEPENDENCY_WAIT_S) and not waits:
        raise InvalidArgumentError(
            "dependencyWait",
            "dependencyWait applies only to a job with both a schedule and dependencies; "
            "remove it, or give the job both",
        )
    return dependency_wait_s or DEFAULT_DEPENDENCY_WAIT_S


# Payloads


def _check_payload(executor: str, payload: Mapping[str, Any]) -> None:
    _check_payload_size(payload)
    if executor == "shell":
        _check_shell_payload(payload)
    elif executor == "http":
        _check_http_payload(payload)


def _check_payload_size(payload: Mapping[str, Any]) -> None:
    try:
        encoded = json.dumps(
            dict(payload), separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (ValueError, TypeError) as error:
        raise InvalidArgumentError(
            "payload",
            f"payload cannot be encoded as JSON ({error}). Use only finite numbers, strings, "
            "booleans, null, lists and objects",
        ) from error
    size = len(encoded.encode("utf-8"))
    if size > MAX_PAYLOAD_BYTES:
        raise InvalidArgumentError(
            "payload",
            f"payload is {size} bytes as JSON, over the limit of {MAX_PAYLOAD_BYTES} bytes. "
            "Move large data elsewhere and pass a reference to it",
        )


def _check_shell_payload(payload: Mapping[str, Any]) -> None:
    _check_known_keys(payload, "shell", SHELL_PAYLOAD_KEYS)
    if "command" not in payload:
        raise InvalidArgumentError(
            "payload.command",
            "payload.command is required for the shell executor. "
            'Give the program and its arguments as a list, such as ["echo", "hi"]',
        )
    command = payload["command"]
    if not isinstance(command, list) or not command:
        raise InvalidArgumentError(
            "payload.command",
            f"payload.command {_show(command)} is invalid. It must be a non-empty list of "
            'strings, such as ["echo", "hi"]',
        )
    for index, argument in enumerate(command):
        if not isinstance(argument, str) or not argument or "\0" in argument:
            raise InvalidArgumentError(
                "payload.command",
                f"payload.command[{index}] {_show(argument)} is invalid. "
                "Every item must be a non-empty string without NUL characters",
            )
    if payload.get("env") is not None:
        _check_environment(payload["env"])
    if payload.get("cwd") is not None and not isinstance(payload["cwd"], str):
        raise InvalidArgumentError(
            "payload.cwd",
            f"payload.cwd {_show(payload['cwd'])} is invalid. Give a directory path as a string",
        )


def _check_environment(env: Any) -> None:
    if not _is_string_mapping(env):
        raise InvalidArgumentError(
            "payload.env",
            f"payload.env {_show(env)} is invalid. Give an object of string values, "
            'such as {"LANG": "C.UTF-8"}',
        )
    for name, value in env.items():
        if not name or "=" in name or "\0" in name or "\0" in value:
            raise InvalidArgumentError(
                "payload.env",
                f"payload.env entry {_show(name)} is invalid. A variable name must be "
                "non-empty without '=' or NUL, and a value must not contain NUL",
            )


def _check_http_payload(payload: Mapping[str, Any]) -> None:
    _check_known_keys(payload, "http", HTTP_PAYLOAD_KEYS)
    _check_url(payload.get("url"))
    if payload.get("method") is not None and payload["method"] not in HTTP_METHODS:
        raise InvalidArgumentError(
            "payload.method",
            f"payload.method {_show(payload['method'])} is not supported. "
            f"Use one of {', '.join(HTTP_METHODS)} (uppercase)",
        )
    if payload.get("headers") is not None and not _is_string_mapping(payload["headers"]):
        raise InvalidArgumentError(
            "payload.headers",
            f"payload.headers {_show(payload['headers'])} is invalid. "
            'Give an object of string values, such as {"Accept": "application/json"}',
        )
    if payload.get("expectStatus") is not None:
        _check_expected_status(payload["expectStatus"])


def _check_url(url: Any) -> None:
    if url is None:
        raise InvalidArgumentError(
            "payload.url",
            "payload.url is required for the http executor. "
            "Give an http:// or https:// URL, such as https://example.com/hook",
        )
    try:
        parts = urlsplit(url) if isinstance(url, str) else None
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidArgumentError(
            "payload.url",
            f"payload.url {_show(url)} is invalid. "
            "Give an http:// or https:// URL with a host, such as https://example.com/hook",
        )


def _check_expected_status(status: Any) -> None:
    is_integer = isinstance(status, int) and not isinstance(status, bool)
    if not is_integer or not 100 <= status <= 599:
        raise InvalidArgumentError(
            "payload.expectStatus",
            f"payload.expectStatus {_show(status)} is invalid. "
            "Give an HTTP status code, an integer from 100 to 599",
        )


def _check_known_keys(payload: Mapping[str, Any], executor: str, known: Sequence[str]) -> None:
    for key in payload:
        if key not in known:
            raise InvalidArgumentError(
                f"payload.{key}",
                f"payload key {_show(key)} is not read by the {executor} executor. "
                f"Use only: {', '.join(known)}",
            )


def _is_string_mapping(value: Any) -> bool:
    return isinstance(value, Mapping) and all(isinstance(item, str) for item in value.values())


# Update masks

# Snake_case proto paths an update mask may name, and the JobDraft attribute each one sets.
_UPDATABLE_PATHS = {
    "name": "name",
    "description": "description",
    "type": "type",
    "schedule": "schedule",
    "timezone": "timezone",
    "priority": "priority",
    "executor": "executor",
    "payload": "payload",
    "retry_policy": "retry_policy",
    "timeout": "timeout_s",
    "dependencies": "dependencies",
    "misfire_policy": "misfire_policy",
    "catch_up_window": "catch_up_window_s",
    "concurrency_policy": "concurrency_policy",
    "jitter": "jitter_s",
    "start_at": "start_at",
    "end_at": "end_at",
    "selector": "selector",
    "dependency_wait": "dependency_wait_s",
}
_RETRY_POLICY_PATHS = {
    "retry_policy.max_retries": "max_retries",
    "retry_policy.retry_delay": "retry_delay_s",
    "retry_policy.backoff_multiplier": "backoff_multiplier",
    "retry_policy.max_retry_delay": "max_retry_delay_s",
}
_OUTPUT_ONLY_PATHS = frozenset(
    {"id", "status", "next_run", "last_run", "last_scheduled_run", "created_at", "updated_at"}
)


def apply_update(current: JobSpec, draft: JobDraft, paths: Sequence[str]) -> JobDraft:
    """Merge an UpdateJob request into the current spec and return the draft to validate.

    `paths` are the update mask's snake_case proto field names. Each named
    field takes the draft's value, and the rest keep the current one. An empty
    mask replaces every spec field with the draft's, so fields the draft
    leaves unset fall back to their defaults. Output-only fields (id, status,
    times) are ignored, as they are on create, so a client may send back a
    job it read.
    """
    if not paths:
        return draft
    paths = [path for path in paths if path not in _OUTPUT_ONLY_PATHS]
    for path in paths:
        _check_update_path(path)

    merged = _draft_of(current)
    for path in paths:
        if path in _RETRY_POLICY_PATHS:
            attribute = _RETRY_POLICY_PATHS[path]
            retry_policy = dataclasses.replace(
                merged.retry_policy, **{attribute: getattr(draft.retry_policy, attribute)}
            )
            merged = dataclasses.replace(merged, retry_policy=retry_policy)
        else:
            attribute = _UPDATABLE_PATHS[path]
            merged = dataclasses.replace(merged, **{attribute: getattr(draft, attribute)})
    return merged


def _check_update_path(path: str) -> None:
    if path in _UPDATABLE_PATHS or path in _RETRY_POLICY_PATHS:
        return
    known = ", ".join([*_UPDATABLE_PATHS, *_RETRY_POLICY_PATHS])
    raise InvalidArgumentError(
        "updateMask",
        f"updateMask path {_show(path)} is not a job field. "
        f"Use snake_case proto field names: {known}",
    )


def _draft_of(spec: JobSpec) -> JobDraft:
    return JobDraft(
        name=spec.name,
        description=spec.description,
        type=spec.type,
        schedule=spec.schedule,
        timezone=spec.timezone,
        priority=spec.priority,
        executor=spec.executor,
        payload=dict(spec.payload),
        retry_policy=spec.retry_policy,
        timeout_s=spec.timeout_s,
        dependencies=spec.dependencies,
        misfire_policy=spec.misfire_policy,
        catch_up_window_s=spec.catch_up_window_s,
        concurrency_policy=spec.concurrency_policy,
        jitter_s=spec.jitter_s,
        start_at=spec.start_at,
        end_at=spec.end_at,
        selector=dict(spec.selector),
        # The default reads back as unset, so dropping the dependencies keeps the job valid.
        dependency_wait_s=0
        if spec.dependency_wait_s == DEFAULT_DEPENDENCY_WAIT_S
        else spec.dependency_wait_s,
    )


# Pages and ids


def validate_page(limit: int, offset: int) -> Page:
    """Return the page to read. A limit of 0 means the default of 50."""
    if limit == 0:
        limit = DEFAULT_PAGE_LIMIT
    if not 1 <= limit <= MAX_PAGE_LIMIT:
        raise InvalidArgumentError(
            "limit",
            f"limit {limit} is out of range. Use 1 to {MAX_PAGE_LIMIT}, "
            f"or 0 for the default of {DEFAULT_PAGE_LIMIT}",
        )
    if offset < 0:
        raise InvalidArgumentError(
            "offset", f"offset {offset} is negative. Use 0 or a positive number of items to skip"
        )
    return Page(limit=limit, offset=offset)


def validate_id(value: str, field: str) -> str:
    """Return `value` if it can be part of an etcd key.

    An id has 1 to 128 characters and contains no '/' and no control characters.
    """
    if not value:
        raise InvalidArgumentError(field, f"{field} is required. Give the id to act on")
    if len(value) > MAX_ID_CHARS:
        raise InvalidArgumentError(
            field,
            f"{field} {_show(value)} is {len(value)} characters long. "
            f"An id has at most {MAX_ID_CHARS} characters",
        )
    if "/" in value:
        raise InvalidArgumentError(
            field, f"{field} {_show(value)} is invalid. An id must not contain '/'"
        )
    _check_no_control_characters(value, field)
    return value


# Shared helpers


def _check_no_control_characters(value: str, field: str) -> None:
    for index, character in enumerate(value):
        if unicodedata.category(character) == "Cc":
            raise InvalidArgumentError(
                field,
                f"{field} {_show(value)} contains the control character "
                f"U+{ord(character):04X} at position {index}. Remove it",
            )


def _show(value: Any) -> str:
    """Render a client value as JSON for a message, cut to a readable length."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    if len(text) > _MAX_SHOWN_CHARS:
        return text[: _MAX_SHOWN_CHARS - 3] + "..."
    return text
