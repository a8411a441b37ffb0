"""Executors: what an agent runs an attempt with."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .base import AttemptContext, AttemptOutcome, AttemptResult, Executor, ExecutorRegistry
from .http import HttpExecutor
from .noop import NOOP_EXECUTOR, NoopExecutor
from .python_handler import PythonHandlerExecutor, RunContext
from .shell import ShellExecutor
from .threads import DaemonThreadPool

__all__ = [
    "AttemptContext",
    "AttemptOutcome",
    "AttemptResult",
    "Executor",
    "ExecutorRegistry",
    "HttpExecutor",
    "NoopExecutor",
    "PythonHandlerExecutor",
    "RunContext",
    "ShellExecutor",
    "default_registry",
]


def default_registry(
    *,
    kill_grace_s: float = 2.0,
    handlers: Mapping[str, Callable[..., Any]] | None = None,
    max_handler_threads: int = 4,
) -> ExecutorRegistry:
    """Return a registry with the built-in `shell`, `http` and `noop` executors and `handlers`.

    `handlers` maps executor names to Python callables. Handlers that are
    plain functions share one pool of at most `max_handler_threads` threads.
    """
    registry = ExecutorRegistry()
    registry.register("shell", ShellExecutor(kill_grace_s=kill_grace_s))
    registry.register("http", HttpExecutor())
    registry.register(NOOP_EXECUTOR, NoopExecutor())
    if handlers:
        pool = DaemonThreadPool(max_handler_threads)
        for name, function in handlers.items():
            registry.register(name, PythonHandlerExecutor(name, function, pool=pool))
    return registry
