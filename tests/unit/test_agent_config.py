"""Agent configuration from flags and environment variables."""

from __future__ import annotations

import os
from typing import Any

import pytest

from taskscheduler.agent import main as agent_main
from taskscheduler.agent.cli import build_parser, parse_config
from taskscheduler.agent.config import AgentConfig, default_worker_id
from taskscheduler.errors import InvalidArgumentError

REQUIRED = ["--coordinators", "127.0.0.1:7000"]


def test_config_defaults() -> None:
    config = parse_config(REQUIRED, {})

    assert config.coordinators == ("127.0.0.1:7000",)
    assert config.capabilities == ("shell", "http", "noop")
    assert config.handlers == ()
    assert config.max_concurrent == 4
    assert config.worker_id == default_worker_id()
    assert dict(config.labels) == {}
    assert config.poll_wait_s == 10.0
    assert config.shutdown_grace_s == 30.0
    assert config.log_format == "json"
    assert config.log_level == "info"


def test_default_worker_id_has_pid() -> None:
    assert default_worker_id().endswith(f"-{os.getpid()}")


FLAG_CASES = [
    (
        ["--coordinators", "10.0.0.1:7000, 10.0.0.2:7000,[::1]:7001"],
        "coordinators",
        ("10.0.0.1:7000", "10.0.0.2:7000", "[::1]:7001"),
    ),
    (["--capabilities", "shell"], "capabilities", ("shell", "noop")),
    (["--max-concurrent", "16"], "max_concurrent", 16),
    (["--worker-id", "host-a.1"], "worker_id", "host-a.1"),
    (["--labels", "zone=eu-1, gpu=true"], "labels", {"zone": "eu-1", "gpu": "true"}),
    (["--poll-wait-s", "2.5"], "poll_wait_s", 2.5),
    (["--shutdown-grace-s", "0"], "shutdown_grace_s", 0.0),
    (["--log-format", "console"], "log_format", "console"),
    (["--log-level", "debug"], "log_level", "debug"),
]


@pytest.mark.parametrize(("flags", "attribute", "expected"), FLAG_CASES)
def test_config_from_flags(flags: list[str], attribute: str, expected: Any) -> None:
    config = parse_config([*REQUIRED, *flags], {})

    value = getattr(config, attribute)
    assert (dict(value) if attribute == "labels" else value) == expected


ENV_CASES = [
    ("TASKSCHEDULER_COORDINATORS", "a:1,b:2", "coordinators", ("a:1", "b:2")),
    ("TASKSCHEDULER_CAPABILITIES", "http", "capabilities", ("http", "noop")),
    ("TASKSCHEDULER_MAX_CONCURRENT", "8", "max_concurrent", 8),
    ("TASKSCHEDULER_WORKER_ID", "env-worker", "worker_id", "env-worker"),
    ("TASKSCHEDULER_LABELS", "rack=r7", "labels", {"rack": "r7"}),
    ("TASKSCHEDULER_POLL_WAIT_S", "1", "poll_wait_s", 1.0),
    ("TASKSCHEDULER_SHUTDOWN_GRACE_S", "12", "shutdown_grace_s", 12.0),
    ("TASKSCHEDULER_LOG_FORMAT", "console", "log_format", "console"),
    ("TASKSCHEDULER_LOG_LEVEL", "warning", "log_level", "warning"),
]


@pytest.mark.parametrize(("variable", "raw", "attribute", "expected"), ENV_CASES)
def test_config_from_environment(variable: str, raw: str, attribute: str, expected: Any) -> None:
    environ = {"TASKSCHEDULER_COORDINATORS": "127.0.0.1:7000", variable: raw}

    config = parse_config([], environ)

    value = getattr(config, attribute)
    assert (dict(value) if attribute == "labels" else value) == expected


def test_flag_wins_over_environment() -> None:
    config = parse_config(
        [*REQUIRED, "--max-concurrent", "2"], {"TASKSCHEDULER_MAX_CONCURRENT": "9"}
    )

    assert config.max_concurrent == 2


def test_empty_worker_id_uses_default() -> None:
    config = parse_config(REQUIRED, {"TASKSCHEDULER_WORKER_ID": ""})

    assert config.worker_id == default_worker_id()


BAD_CASES = [
    (
        [],
        {},
        "--coordinators",
        "--coordinators is required: HOST:PORT[,HOST:PORT...]; or set TASKSCHEDULER_COORDINATORS",
    ),
    (
        ["--coordinators", ","],
        {},
        "--coordinators",
        "--coordinators is required: HOST:PORT[,HOST:PORT...]",
    ),
    (
        ["--coordinators", "localhost"],
        {},
        "--coordinators",
        "invalid --coordinators: 'localhost' is not HOST:PORT",
    ),
    (
        ["--coordinators", "h:0"],
        {},
        "--coordinators",
        "invalid --coordinators: 'h:0' has no port between 1 and 65535",
    ),
    (
        ["--coordinators", "::1:7000"],
        {},
        "--coordinators",
        "invalid --coordinators: '::1:7000' is not HOST:PORT; write IPv6 hosts as [::1]:PORT",
    ),
    (
        [*REQUIRED, "--max-concurrent", "0"],
        {},
        "--max-concurrent",
        "invalid --max-concurrent 0: must be between 1 and 1024",
    ),
    (
        [*REQUIRED, "--max-concurrent", "many"],
        {},
        "--max-concurrent",
        "invalid --max-concurrent: 'many' is not a whole number",
    ),
    (
        REQUIRED,
        {"TASKSCHEDULER_MAX_CONCURRENT": "-3"},
        "--max-concurrent",
        "invalid --max-concurrent -3: must be between 1 and 1024 "
        "(from TASKSCHEDULER_MAX_CONCURRENT)",
    ),
    (
        REQUIRED,
        {"TASKSCHEDULER_POLL_WAIT_S": "soon"},
        "--poll-wait-s",
        "invalid --poll-wait-s (from TASKSCHEDULER_POLL_WAIT_S): 'soon' is not a number of seconds",
    ),
    (
        [*REQUIRED, "--poll-wait-s", "0"],
        {},
        "--poll-wait-s",
        "invalid --poll-wait-s 0: must be above 0 and at most 300 seconds",
    ),
    (
        [*REQUIRED, "--shutdown-grace-s", "-1"],
        {},
        "--shutdown-grace-s",
        "invalid --shutdown-grace-s -1: must be 0 or more seconds",
    ),
    (
        [*REQUIRED, "--capabilities", ""],
        {},
        "--capabilities",
        "--capabilities must name at least one executor, such as shell",
    ),
    (
        [*REQUIRED, "--capabilities", "shell,Shell"],
        {},
        "--capabilities",
        "invalid --capabilities entry 'Shell': use lowercase letters, digits, '_', '.' or '-', "
        "starting with a letter",
    ),
    (
        [*REQUIRED, "--capabilities", "shell,shell"],
        {},
        "--capabilities",
        "--capabilities lists an executor twice",
    ),
    (
        [*REQUIRED, "--worker-id", "a/b"],
        {},
        "--worker-id",
        "invalid --worker-id 'a/b': use 1-128 letters, digits, '.', '_', ':' or '-', "
        "starting with a letter or digit",
    ),
    (
        [*REQUIRED, "--labels", "zone"],
        {},
        "--labels",
        "invalid --labels: 'zone' is not KEY=VALUE",
    ),
    (
        [*REQUIRED, "--labels", "zone=a,zone=b"],
        {},
        "--labels",
        "invalid --labels: label 'zone' is given twice; give each key once",
    ),
    (
        [*REQUIRED, "--labels", "zone="],
        {},
        "--labels",
        "invalid --labels value for 'zone': use 1 to 255 printable characters without commas",
    ),
    (
        [*REQUIRED, "--log-format", "xml"],
        {},
        "--log-format",
        "invalid --log-format 'xml': choose one of json, console",
    ),
    (
        [*REQUIRED, "--verbose"],
        {},
        "",
        "unrecognized arguments: --verbose; see taskscheduler-agent --help",
    ),
]


@pytest.mark.parametrize(("argv", "environ", "field", "message"), BAD_CASES)
def test_config_rejects_bad_value(
    argv: list[str], environ: dict[str, str], field: str, message: str
) -> None:
    with pytest.raises(InvalidArgumentError) as raised:
        parse_config(argv, environ)

    assert raised.value.field == field
    assert raised.value.message == message


def test_config_dataclass_is_frozen_and_keyword_only() -> None:
    config = AgentConfig(coordinators=("h:1",), worker_id="w")

    with pytest.raises(AttributeError):
        config.max_concurrent = 5  # type: ignore[misc]
    with pytest.raises(TypeError):
        AgentConfig(("h:1",))  # type: ignore[misc]


def test_help_documents_environment_variables() -> None:
    text = build_parser().format_help()

    for variable in (
        "TASKSCHEDULER_COORDINATORS",
        "TASKSCHEDULER_CAPABILITIES",
        "TASKSCHEDULER_MAX_CONCURRENT",
        "TASKSCHEDULER_WORKER_ID",
        "TASKSCHEDULER_LABELS",
        "TASKSCHEDULER_POLL_WAIT_S",
        "TASKSCHEDULER_SHUTDOWN_GRACE_S",
        "TASKSCHEDULER_LOG_FORMAT",
    ):
        assert variable in text


MAIN_ERRORS = [
    (
        ["--coordinators", "127.0.0.1:7000", "--max-concurrent", "0"],
        "taskscheduler-agent: error: invalid --max-concurrent 0: must be between 1 and 1024\n",
    ),
    (
        ["--coordinators", "127.0.0.1:7000", "--capabilities", "shell,python"],
        "taskscheduler-agent: error: invalid --capabilities: no executor named 'python'; "
        "this agent has http, noop, shell\n",
    ),
    (
        ["--max-concurrent"],
        "taskscheduler-agent: error: argument --max-concurrent: expected one argument; "
        "see taskscheduler-agent --help\n",
    ),
]


@pytest.mark.parametrize(("argv", "stderr"), MAIN_ERRORS)
def test_main_bad_flag_exits_with_one_line(
    argv: list[str],
    stderr: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for variable in [name for name in os.environ if name.startswith("TASKSCHEDULER_")]:
        monkeypatch.delenv(variable)

    exit_code = agent_main.main(argv)

    captured = capsys.readouterr()
    assert exit_code == 2
    assert captured.err == stderr
    assert captured.out == ""
