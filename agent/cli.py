"""Command-line flags and environment variables for `taskscheduler-agent`.

Each flag has an environment variable; a flag given on the command line
wins over its variable, and the variable wins over the default.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from taskscheduler.errors import InvalidArgumentError

from .config import LOG_FORMATS, LOG_LEVELS, AgentConfig
from .executors.handlers import HandlerSpec, parse_handler_spec

PROG = "taskscheduler-agent"

_DESCRIPTION = """\
Pulls runs from the coordinators' leader, executes them with its executors
(shell, http, noop and the Python handlers given with --handler) and reports
the results. Stops polling on SIGTERM or SIGINT, lets running attempts finish
within --shutdown-grace-s, then exits 0.
"""


def _split_list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _parse_labels(text: str) -> dict[str, str]:
    labels: dict[str, str] = {}
    for item in _split_list(text):
        key, separator, value = item.partition("=")
        if not separator or not key.strip():
            raise ValueError(f"{item!r} is not KEY=VALUE")
        if key.strip() in labels:
            raise ValueError(f"label {key.strip()!r} is given twice; give each key once")
        labels[key.strip()] = value.strip()
    return labels


def _parse_handlers(text: str) -> tuple[HandlerSpec, ...]:
    return tuple(parse_handler_spec(item) for item in _split_list(text))


def _parse_int(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a whole number") from None


def _parse_seconds(text: str) -> float:
    try:
        return float(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a number of seconds") from None


@dataclass(frozen=True, slots=True)
class _Flag:
    name: str
    parse: Callable[[str], Any]
    metavar: str
    help: str
    # A repeatable flag's values are joined with commas before `parse`.
    repeatable: bool = False
    # The AgentConfig field and the variable, when not derived from `name`.
    config_field: str = ""
    env_variable: str = ""

    @property
    def attribute(self) -> str:
        return self.name.removeprefix("--").replace("-", "_")

    @property
    def field(self) -> str:
        return self.config_field or self.attribute

    @property
    def env(self) -> str:
        return self.env_variable or "TASKSCHEDULER_" + self.attribute.upper()


_FLAGS = (
    _Flag(
        "--coordinators",
        _split_list,
        "HOST:PORT[,HOST:PORT...]",
        "coordinator replicas to connect to (required); the agent finds the leader among them",
    ),
    _Flag(
        "--capabilities",
        _split_list,
        "NAME[,NAME...]",
        "executors this agent runs (default: shell,http,noop); noop and every --handler "
        "name are added even when not listed",
    ),
    _Flag(
        "--handler",
        _parse_handlers,
        "NAME=MODULE:FUNCTION",
        "register a Python function as executor NAME, for jobs with executor NAME; the "
        "module is imported at start from the working directory or PYTHONPATH; repeat the "
        "flag for more handlers, or separate them with commas (default: none)",
        repeatable=True,
        config_field="handlers",
        env_variable="TASKSCHEDULER_HANDLERS",
    ),
    _Flag(
        "--max-concurrent",
        _parse_int,
        "N",
        "maximum number of attempts held at once, running or waiting for the coordinator "
        "to accept their reports (default: 4)",
    ),
    _Flag(
        "--worker-id",
        str.strip,
        "ID",
        "stable id of this agent (default: <hostname>-<pid>)",
    ),
    _Flag(
        "--labels",
        _parse_labels,
        "KEY=VALUE[,KEY=VALUE...]",
        "labels sent with the registration (default: none)",
    ),
    _Flag(
        "--poll-wait-s",
        _parse_seconds,
        "SECONDS",
        "how long one poll for work waits on the coordinator, in seconds (default: 10)",
    ),
    _Flag(
        "--shutdown-grace-s",
        _parse_seconds,
        "SECONDS",
        "on SIGTERM/SIGINT, seconds running attempts get to finish before they are "
        "killed (default: 30)",
    ),
    _Flag(
        "--log-format",
        str.strip,
        "|".join(LOG_FORMATS),
        "log lines as JSON objects or for a console (default: json)",
    ),
    _Flag(
        "--log-level",
        str.strip,
        "|".join(LOG_LEVELS),
        "lowest level logged (default: info)",
    ),
)


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # type: ignore[override]
        # One line instead of argparse's usage block, so the cause is easy to see.
        raise _UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for flag in _FLAGS:
        parser.add_argument(
            flag.name,
            metavar=flag.metavar,
            default=None,
            action="append" if flag.repeatable else "store",
            help=f"{flag.help}; env {flag.env}",
        )
    return parser


def _parse_flag(flag: _Flag, raw: str, from_env: Mapping[str, str]) -> Any:
    try:
        return flag.parse(raw)
    except ValueError as error:
        source = f" (from {flag.env})" if flag.name in from_env else ""
        raise InvalidArgumentError(flag.name, f"invalid {flag.name}{source}: {error}") from None


def parse_config(argv: Sequence[str], environ: Mapping[str, str]) -> AgentConfig:
    """Build the AgentConfig from flags, then environment variables, then defaults.

    Raises InvalidArgumentError whose `field` is the flag and whose message is
    one line naming the flag, the value and what is allowed.
    """
    try:
        given = vars(build_parser().parse_args(list(argv)))
    except _UsageError as error:
        raise InvalidArgumentError("", f"{error}; see {PROG} --help") from None

    values: dict[str, Any] = {}
    from_env: dict[str, str] = {}
    for flag in _FLAGS:
        raw = given[flag.attribute]
        if isinstance(raw, list):
            raw = ",".join(raw)
        if raw is None and flag.env in environ:
            raw = environ[flag.env]
            from_env[flag.name] = flag.env
        if raw is not None:
            values[flag.field] = _parse_flag(flag, raw, from_env)

    if "coordinators" not in values:
        raise InvalidArgumentError(
            "--coordinators",
            "--coordinators is required: HOST:PORT[,HOST:PORT...]; "
            "or set TASKSCHEDULER_COORDINATORS",
        )
    # An empty id means "not given", so the default applies.
    if not values.get("worker_id", "x"):
        del values["worker_id"]
    try:
        return AgentConfig(**values)
    except InvalidArgumentError as error:
        if error.field in from_env:
            message = f"{error.message} (from {from_env[error.field]})"
            raise InvalidArgumentError(error.field, message) from None
        raise
