"""structlog setup shared by every process.

Console lines in development, one JSON object per line otherwise. Ids are
bound once per unit of work (`log.bind(job_id=..., run_id=...)`).
"""

from __future__ import annotations

import logging
import os
import sys

import structlog

_SECRET_KEYS = frozenset({"password", "token", "secret", "authorization", "api_key"})


def _redact_secrets(
    _logger: object, _method: str, event: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    for key in event:
        if key.lower() in _SECRET_KEYS:
            event[key] = "[redacted]"
    return event


def configure(process: str, *, json_output: bool | None = None, level: str | None = None) -> None:
    """Configure structlog and stdlib logging for one process.

    `json_output` defaults to true unless TASKSCHEDULER_LOG_FORMAT=console;
    `level` defaults to TASKSCHEDULER_LOG_LEVEL or "info".
    """
    if json_output is None:
        json_output = os.environ.get("TASKSCHEDULER_LOG_FORMAT", "json") != "console"
    level_name = (level or os.environ.get("TASKSCHEDULER_LOG_LEVEL", "info")).upper()
    numeric_level = logging.getLevelNamesMapping().get(level_name, logging.INFO)

    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if json_output
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact_secrets,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(process=process)
    logging.basicConfig(level=max(numeric_level, logging.WARNING), stream=sys.stderr)


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    return structlog.get_logger(name)
