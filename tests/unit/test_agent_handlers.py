"""Python handlers and the noop executor: calling, context, results, failures, --handler."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import structlog
from agent_fakes import FakeWorkerService, make_assignment, serve_fake, wait_until
from google.protobuf import json_format

from taskscheduler.agent import main as agent_main
from taskscheduler.agent.agent import Agent, AgentTuning
from taskscheduler.agent.backoff import RetryPolicy
from taskscheduler.agent.cli import build_parser, parse_config
from taskscheduler.agent.config import AgentConfig
from taskscheduler.agent.executors import (
    AttemptContext,
    AttemptOutcome,
    AttemptResult,
    NoopExecutor,
    PythonHandlerExecutor,
    RunContext,
    default_registry,
)
from taskscheduler.agent.executors.handler_result import MAX_RESULT_BYTES, to_json_data
from taskscheduler.agent.executors.handlers import HandlerSpec
from taskscheduler.agent.executors.threads import DaemonThreadPool
from taskscheduler.errors import InvalidArgumentError
from taskscheduler.v1 import types_pb2

REQUIRED = ["--coordinators", "127.0.0.1:7000"]
SCHEDULED_AT = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def attempt_for(
    executor: str, payload: dict[str, Any] | None = None, *, timeout_s: float | None = None
) -> AttemptContext:
    return AttemptContext(
        run_id="run-1",
        job_id="job-1",
        job_name="a job",
        attempt=2,
        fencing_token=77,
        executor=executor,
        payload=payload or {},
        timeout_s=timeout_s,
        scheduled_at=SCHEDULED_AT,
    )


async def run_handler(
    function: Callable[..., Any],
    payload: dict[str, Any] | None = None,
    *,
    timeout_s: float | None = None,
) -> AttemptResult:
    pool = DaemonThreadPool(4)
    executor = PythonHandlerExecutor("handler", function, pool=pool)
    try:
        return await executor.execute(attempt_for("handler", payload, timeout_s=timeout_s))
    finally:
        await executor.aclose()


# Calling


async def test_handler_sync_runs_in_thread() -> None:
    threads: list[str] = []

    def add(a: int, b: int) -> dict[str, Any]:
        threads.append(threading.current_thread().name)
        return {"sum": a + b}

    result = await run_handler(add, {"a": 2, "b": 3})

    assert result == AttemptResult(outcome=AttemptOutcome.SUCCEEDED, result={"sum": 5})
    assert threads == ["handler"]


async def test_handler_coroutine_runs_on_loop() -> None:
    threads: list[str] = []

    async def greet(name: str) -> str:
        threads.append(threading.current_thread().name)
        return f"hello {name}"

    result = await run_handler(greet, {"name": "ada"})

    assert result == AttemptResult(outcome=AttemptOutcome.SUCCEEDED, result="hello ada")
    assert threads == [threading.current_thread().name]


async def test_handler_async_callable_object() -> None:
    class Handler:
        async def __call__(self, value: int) -> int:
            return value * 2

    result = await run_handler(Handler(), {"value": 4})

    assert result.result == 8


async def test_handler_gets_run_context() -> None:
    seen: list[RunContext] = []

    def record(*, context: RunContext, label: str) -> None:
        seen.append(context)

    result = await run_handler(record, {"label": "x"})

    assert result == AttemptResult(outcome=AttemptOutcome.SUCCEEDED)
    (context,) = seen
    assert context == RunContext(
        run_id="run-1", job_id="job-1", attempt=2, fencing_token=77, scheduled_at=SCHEDULED_AT
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        context.run_id = "other"  # type: ignore[misc]


async def test_handler_context_key_in_payload_fails() -> None:
    async def record(context: RunContext) -> None:
        raise AssertionError("must not be called")

    result = await run_handler(record, {"context": {"run_id": "forged"}})

    assert result == AttemptResult.failed(
        "invalid payload.context: handler 'handler' takes a 'context' parameter for the "
        "run's ids, so the payload cannot set it; rename the key"
    )


async def test_handler_without_context_param_gets_payload_key() -> None:
    def echo(**fields: Any) -> Any:
        return fields

    result = await run_handler(echo, {"context": "plain value"})

    assert result.result == {"context": "plain value"}


async def test_handler_sync_returning_coroutine_is_awaited() -> None:
    async def inner() -> int:
        return 5

    def outer() -> Any:
        return inner()

    result = await run_handler(outer)

    assert result.result == 5


# Failures


async def test_handler_exception_fails_attempt() -> None:
    def explode(item: str) -> None:
        raise ValueError(f"cannot process {item}")

    result = await run_handler(explode, {"item": "x1"})

    assert result.outcome is AttemptOutcome.FAILED
    assert result.error == "ValueError: cannot process x1"
    assert result.result is None
    lines = result.output.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert "in explode" in lines[1]
    assert lines[-1] == "ValueError: cannot process x1"
    assert "python_handler.py" not in result.output


async def test_handler_async_exception_fails_attempt() -> None:
    async def explode() -> None:
        raise KeyError("missing")

    result = await run_handler(explode)

    assert result.outcome is AttemptOutcome.FAILED
    assert result.error == "KeyError: 'missing'"
    assert result.output.splitlines()[-1] == "KeyError: 'missing'"


SIGNATURE_MISMATCHES = [
    ({"unknown": 1}, "TypeError: needs_a() got an unexpected keyword argument 'unknown'"),
    ({}, "TypeError: needs_a() missing 1 required positional argument: 'a'"),
]


def needs_a(a: int) -> int:
    return a


@pytest.mark.parametrize(("payload", "error"), SIGNATURE_MISMATCHES)
async def test_handler_signature_mismatch(payload: dict[str, Any], error: str) -> None:
    result = await run_handler(needs_a, payload)

    assert result.outcome is AttemptOutcome.FAILED
    assert result.error == error
    assert result.output.splitlines()[-1] == error


async def test_handler_sys_exit_fails_attempt() -> None:
    def leave() -> None:
        sys.exit(3)

    result = await run_handler(leave)

    assert result.outcome is AttemptOutcome.FAILED
    assert result.error == "SystemExit: 3"


async def test_handler_error_with_surrogate() -> None:
    def explode() -> None:
        raise ValueError("bad \udcff byte")

    result = await run_handler(explode)

    assert result.error == "ValueError: bad ? byte"
    assert result.output.splitlines()[-1] == "ValueError: bad ? byte"


async def test_handler_long_error_is_cut() -> None:
    def shout() -> None:
        raise RuntimeError("x" * 10_000)

    result = await run_handler(shout)

    assert len(result.error) == 4096
    assert result.error.startswith("RuntimeError: xxx")
    assert result.error.endswith("x...")


async def test_handler_traceback_keeps_the_end() -> None:
    def recurse(depth: int) -> None:
        if depth == 0:
            raise ValueError("bottom " + "y" * 200)
        recurse(depth - 1)

    result = await run_handler(recurse, {"depth": 400})

    assert len(result.output.encode()) <= 64 * 1024
    assert result.output.endswith("ValueError: bottom " + "y" * 200 + "\n")


# Results


def deep_list(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


RESULT_CASES = [
    (None, None, ""),
    ({"rows": 3, "ok": True}, {"rows": 3, "ok": True}, ""),
    ([1, "two", None, 2.5], [1, "two", None, 2.5], ""),
    ((1, (2, 3)), [1, [2, 3]], ""),
    ({1: "one"}, {"1": "one"}, ""),
    ("text", "text", ""),
    (0, 0, ""),
    (False, False, ""),
    (deep_list(30), deep_list(30), ""),
    (object(), None, "result is not JSON-serialisable: object"),
    ({"at": datetime(2026, 1, 1)}, None, "result is not JSON-serialisable: datetime"),
    ({1, 2}, None, "result is not JSON-serialisable: set"),
    (
        10**400,
        None,
        "result is not JSON-serialisable: int contains an integer beyond the "
        "range of a JSON number (a double)",
    ),
    (
        deep_list(31),
        None,
        "result is not JSON-serialisable: list is nested deeper than 30 levels",
    ),
    ("é" * 30_000, "é" * 30_000, ""),
    (
        {"name": "bad \ud800"},
        None,
        "result is not JSON-serialisable: dict contains a lone surrogate, "
        "which UTF-8 cannot encode",
    ),
    (
        "é" * 40_000,
        None,
        f"result is too large: 80002 bytes as JSON, the limit is {MAX_RESULT_BYTES}; "
        "store large data elsewhere and return a reference to it",
    ),
    (
        "z" * MAX_RESULT_BYTES,
        None,
        f"result is too large: {MAX_RESULT_BYTES + 2} bytes as JSON, the limit is "
        f"{MAX_RESULT_BYTES}; store large data elsewhere and return a reference to it",
    ),
]


@pytest.mark.parametrize(("value", "expected", "output"), RESULT_CASES)
async def test_handler_result(value: Any, expected: Any, output: str) -> None:
    def give() -> Any:
        return value

    result = await run_handler(give)

    assert result.outcome is AttemptOutcome.SUCCEEDED
    assert result.result == expected
    assert result.output == output
    assert result.error == ""


def test_result_nan_is_not_serialisable() -> None:
    with pytest.raises(ValueError) as raised:
        to_json_data({"ratio": float("nan")})

    assert str(raised.value).startswith(
        "result is not JSON-serialisable: dict (Out of range float values"
    )


def test_result_circular_is_not_serialisable() -> None:
    loop: list[Any] = []
    loop.append(loop)

    with pytest.raises(ValueError) as raised:
        to_json_data(loop)

    assert (
        str(raised.value) == "result is not JSON-serialisable: list (Circular reference detected)"
    )


# Timeout and cancellation


async def test_handler_coroutine_timeout_cancels_it() -> None:
    cancelled: list[bool] = []

    async def hang() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    result = await run_handler(hang, timeout_s=0.05)

    assert result == AttemptResult(
        outcome=AttemptOutcome.TIMED_OUT, error="handler 'handler' timed out after 0.05 s"
    )
    assert cancelled == [True]


async def test_handler_own_timeout_error_is_failure() -> None:
    async def give_up() -> None:
        raise TimeoutError("upstream too slow")

    result = await run_handler(give_up, timeout_s=10)

    assert result.outcome is AttemptOutcome.FAILED
    assert result.error == "TimeoutError: upstream too slow"


async def test_handler_thread_timeout_returns_at_once() -> None:
    release = threading.Event()
    finished = threading.Event()

    def block() -> None:
        release.wait(timeout=10)
        finished.set()

    pool = DaemonThreadPool(2)
    executor = PythonHandlerExecutor("blocking", block, pool=pool)
    with structlog.testing.capture_logs() as logged:
        result = await executor.execute(attempt_for("blocking", timeout_s=0.05))

    assert result == AttemptResult(
        outcome=AttemptOutcome.TIMED_OUT,
        error="handler 'blocking' timed out after 0.05 s; a call already running in a "
        "thread goes on",
    )
    assert not finished.is_set()
    warnings = [entry for entry in logged if entry["log_level"] == "warning"]
    assert warnings == [
        {
            "event": "attempt stopped, but its handler keeps running in a thread until it returns",
            "log_level": "warning",
            "run_id": "run-1",
            "attempt": 2,
            "job_id": "job-1",
            "executor": "blocking",
        }
    ]
    release.set()
    await wait_until(finished.is_set, what="the abandoned thread to return")
    await executor.aclose()


async def test_handler_coroutine_cancel_propagates() -> None:
    started = asyncio.Event()
    cancelled: list[bool] = []

    async def hang() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    executor = PythonHandlerExecutor("hang", hang, pool=DaemonThreadPool(1))
    running = asyncio.create_task(executor.execute(attempt_for("hang")))
    await started.wait()
    running.cancel()

    with pytest.raises(asyncio.CancelledError):
        await running
    assert cancelled == [True]


async def test_handler_thread_cancel_logs_warning() -> None:
    entered = threading.Event()
    release = threading.Event()

    def block() -> None:
        entered.set()
        release.wait(timeout=10)

    pool = DaemonThreadPool(1)
    executor = PythonHandlerExecutor("blocking", block, pool=pool)
    with structlog.testing.capture_logs() as logged:
        running = asyncio.create_task(executor.execute(attempt_for("blocking")))
        await wait_until(entered.is_set, what="the handler thread to start")
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running

    assert [entry["event"] for entry in logged] == [
        "attempt stopped, but its handler keeps running in a thread until it returns"
    ]
    release.set()
    await executor.aclose()


# noop


@pytest.mark.parametrize("payload", [{}, {"anything": [1, {"nested": True}]}, {"command": "x"}])
async def test_noop_succeeds_without_result(payload: dict[str, Any]) -> None:
    threads_before = threading.active_count()

    result = await NoopExecutor().execute(attempt_for("noop", payload))

    assert result == AttemptResult(outcome=AttemptOutcome.SUCCEEDED)
    assert threading.active_count() == threads_before


async def test_noop_is_always_registered() -> None:
    registry = default_registry()

    assert registry.names() == ("http", "noop", "shell")
    assert isinstance(registry.get("noop"), NoopExecutor)
    await registry.aclose()


# The thread pool


async def test_thread_pool_bounds_threads() -> None:
    release = threading.Event()
    pool = DaemonThreadPool(2, idle_timeout_s=0.05)
    futures = [pool.submit(lambda: release.wait(timeout=10)) for _ in range(3)]

    await wait_until(lambda: futures[0].running() and futures[1].running(), what="two calls")
    assert pool.threads == 2
    assert not futures[2].running()

    release.set()
    results = [await asyncio.wrap_future(future) for future in futures]
    assert results == [True, True, True]
    await wait_until(lambda: pool.threads == 0, what="idle threads to end")
    pool.shutdown()


def test_thread_pool_threads_are_daemons() -> None:
    pool = DaemonThreadPool(1)

    future = pool.submit(lambda: threading.current_thread().daemon)

    assert future.result(timeout=5) is True
    pool.shutdown()
    with pytest.raises(RuntimeError):
        pool.submit(lambda: None)


# --handler


def test_handler_flag_parses_specs() -> None:
    config = parse_config(
        [*REQUIRED, "--handler", "resize=myapp.images:resize", "--handler", "b.c=pkg:Obj.run"],
        {},
    )

    assert config.handlers == (
        HandlerSpec("resize", "myapp.images", "resize"),
        HandlerSpec("b.c", "pkg", "Obj.run"),
    )
    assert config.capabilities == ("shell", "http", "noop", "resize", "b.c")


def test_handler_environment_variable() -> None:
    config = parse_config(REQUIRED, {"TASKSCHEDULER_HANDLERS": "a=m:f, b=m:g"})

    assert config.handlers == (HandlerSpec("a", "m", "f"), HandlerSpec("b", "m", "g"))


def test_handler_flag_wins_over_environment() -> None:
    config = parse_config([*REQUIRED, "--handler", "a=m:f"], {"TASKSCHEDULER_HANDLERS": "b=m:g"})

    assert config.handlers == (HandlerSpec("a", "m", "f"),)


def test_handler_names_join_given_capabilities() -> None:
    config = parse_config([*REQUIRED, "--capabilities", "shell,a", "--handler", "a=m:f"], {})

    assert config.capabilities == ("shell", "a", "noop")


def test_help_documents_handler_flag() -> None:
    text = " ".join(build_parser().format_help().split())

    assert "--handler NAME=MODULE:FUNCTION" in text
    assert "TASKSCHEDULER_HANDLERS" in text


BAD_SPECS = [
    (
        ["--handler", "resize"],
        {},
        "invalid --handler: 'resize' is not NAME=module:function, "
        "such as resize=myapp.images:resize",
    ),
    (
        ["--handler", "resize=myapp.images"],
        {},
        "invalid --handler: 'resize=myapp.images' is not NAME=module:function, "
        "such as resize=myapp.images:resize",
    ),
    (
        ["--handler", "Resize=m:f"],
        {},
        "invalid --handler: handler name 'Resize' is invalid; use 1-64 lowercase letters, "
        "digits, '_', '.' or '-', starting with a letter",
    ),
    (
        ["--handler", "shell=m:f"],
        {},
        "invalid --handler: handler name 'shell' is taken by a built-in executor "
        "(shell, http, noop); choose another name",
    ),
    (
        ["--handler", "noop=m:f"],
        {},
        "invalid --handler: handler name 'noop' is taken by a built-in executor "
        "(shell, http, noop); choose another name",
    ),
    (
        ["--handler", "a=my-app:f"],
        {},
        "invalid --handler: 'my-app' in a=my-app:f is not a module path such as myapp.images",
    ),
    (
        ["--handler", "a=m:"],
        {},
        "invalid --handler: '' in a=m: is not a function name such as resize",
    ),
    (
        ["--handler", "a=m:f", "--handler", "a=m:g"],
        {},
        "invalid --handler: 'a' is registered twice; give each handler its own name",
    ),
    (
        [],
        {"TASKSCHEDULER_HANDLERS": "a=m:f,a=n:g"},
        "invalid --handler: 'a' is registered twice; give each handler its own name "
        "(from TASKSCHEDULER_HANDLERS)",
    ),
    (
        [],
        {"TASKSCHEDULER_HANDLERS": "x"},
        "invalid --handler (from TASKSCHEDULER_HANDLERS): 'x' is not NAME=module:function, "
        "such as resize=myapp.images:resize",
    ),
]


@pytest.mark.parametrize(("argv", "environ", "message"), BAD_SPECS)
def test_handler_flag_rejects_bad_spec(
    argv: list[str], environ: dict[str, str], message: str
) -> None:
    with pytest.raises(InvalidArgumentError) as raised:
        parse_config([*REQUIRED, *argv], environ)

    assert raised.value.field == "--handler"
    assert raised.value.message == message


def test_handler_name_checked_by_config() -> None:
    with pytest.raises(InvalidArgumentError) as raised:
        AgentConfig(
            coordinators=("h:1",), handlers=(HandlerSpec("a", "m", "f"), HandlerSpec("a", "m", "g"))
        )

    assert raised.value.field == "--handler"


@pytest.fixture
def handler_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], str]:
    """Write a module with the given source on a fresh sys.path entry; return its name."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(source: str) -> str:
        name = f"handlers_{uuid.uuid4().hex[:12]}"
        (tmp_path / f"{name}.py").write_text(source)
        return name

    return write


def test_build_registry_imports_handlers(handler_module: Callable[[str], str]) -> None:
    module = handler_module("def resize(width):\n    return width * 2\n")
    config = parse_config([*REQUIRED, "--handler", f"resize={module}:resize"], {})

    registry = agent_main.build_registry(config)

    assert registry.names() == ("http", "noop", "resize", "shell")
    assert isinstance(registry.get("resize"), PythonHandlerExecutor)


def test_handler_found_in_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"cwd_handlers_{uuid.uuid4().hex[:12]}"
    (tmp_path / f"{name}.py").write_text("def run():\n    return 1\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(
        sys, "path", [entry for entry in sys.path if entry not in ("", os.getcwd())]
    )
    config = parse_config([*REQUIRED, "--handler", f"run={name}:run"], {})

    registry = agent_main.build_registry(config)

    assert registry.get("run") is not None


IMPORT_ERRORS = [
    (
        None,
        "f",
        "invalid --handler h=no_such_module_xyz:f: module 'no_such_module_xyz' not found; "
        "install it in the agent's Python environment, or add its folder to PYTHONPATH",
    ),
    (
        "raise ValueError('broken\\nsetup')\n",
        "f",
        "invalid --handler h={module}:f: importing module '{module}' failed with "
        "ValueError: broken setup; fix the module so that it imports",
    ),
    (
        "import no_such_dependency_xyz\n",
        "f",
        "invalid --handler h={module}:f: importing module '{module}' failed with "
        "ModuleNotFoundError: No module named 'no_such_dependency_xyz'; "
        "fix the module so that it imports",
    ),
    (
        "def g():\n    pass\n",
        "f",
        "invalid --handler h={module}:f: module '{module}' has no attribute 'f'; "
        "name a function defined in it",
    ),
    (
        "f = 5\n",
        "f",
        "invalid --handler h={module}:f: {module}:f is of type int, not a callable; "
        "name a function",
    ),
]


@pytest.mark.parametrize(("source", "attribute", "message"), IMPORT_ERRORS)
def test_main_bad_handler_exits_with_one_line(
    source: str | None,
    attribute: str,
    message: str,
    handler_module: Callable[[str], str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for variable in [name for name in os.environ if name.startswith("TASKSCHEDULER_")]:
        monkeypatch.delenv(variable)
    module = "no_such_module_xyz" if source is None else handler_module(source)

    exit_code = agent_main.main([*REQUIRED, "--handler", f"h={module}:{attribute}"])

    captured = capsys.readouterr()
    assert exit_code == 2
    assert captured.err == f"taskscheduler-agent: error: {message.format(module=module)}\n"
    assert captured.out == ""


# The agent with handlers, against a fake coordinator


async def test_agent_reports_handler_result() -> None:
    async def double(value: int, context: RunContext) -> dict[str, Any]:
        return {"value": value * 2, "token": context.fencing_token, "run": context.run_id}

    def crash() -> None:
        raise RuntimeError("no luck")

    service = FakeWorkerService()
    service.batch_completions = True
    service.add_assignment(
        make_assignment("run-h", fencing_token=9, executor="double", payload={"value": 21})
    )
    service.add_assignment(
        make_assignment("run-n", fencing_token=10, executor="noop", payload={"x": 1})
    )
    service.add_assignment(make_assignment("run-c", fencing_token=11, executor="crash", payload={}))
    registry = default_registry(handlers={"double": double, "crash": crash})
    tuning = AgentTuning(retry=RetryPolicy(initial_s=0.01, max_s=0.05), outbox_flush_s=1.0)

    async with serve_fake(service) as address:
        config = AgentConfig(
            coordinators=(address,),
            worker_id="agent-h",
            capabilities=("shell",),
            handlers=(HandlerSpec("double", "m", "f"), HandlerSpec("crash", "m", "g")),
            poll_wait_s=0.2,
        )
        agent = Agent(config, registry=registry, tuning=tuning)
        task = asyncio.create_task(agent.run())
        await wait_until(lambda: len(service.completions) == 3, what="three reports")
        agent.stop()
        await asyncio.wait_for(task, timeout=10)

    assert list(service.registrations[0].capabilities) == ["shell", "noop", "double", "crash"]
    (handled,) = service.accepted_for("run-h")
    assert handled.outcome == types_pb2.ATTEMPT_OUTCOME_SUCCEEDED
    assert json_format.MessageToDict(handled.result) == {
        "value": 42,
        "token": 9,
        "run": "run-h",
    }
    (noop,) = service.accepted_for("run-n")
    assert noop.outcome == types_pb2.ATTEMPT_OUTCOME_SUCCEEDED
    assert not noop.HasField("result")
    (crashed,) = service.accepted_for("run-c")
    assert crashed.outcome == types_pb2.ATTEMPT_OUTCOME_FAILED
    assert crashed.error == "RuntimeError: no luck"
    assert not crashed.HasField("result")
    assert sum(len(batch.reports) for batch in service.batch_calls) == 3
