"""Executors: what an agent runs an attempt with."""

from __future__ import annotations

from .base import AttemptContext, AttemptOutcome, AttemptResult, Executor, ExecutorRegistry
from .http import HttpExecutor
from .shell import ShellExecutor

__all__ = [
    "AttemptContext",
    "AttemptOutcome",
    "AttemptResult",
    "Executor",
    "ExecutorRegistry",
    "HttpExecutor",
    "ShellExecutor",
    "default_registry",
]


def default_registry(*, kill_grace_s: float = 2.0) -> ExecutorRegistry:
    """Return a registry with the built-in `shell` and `http` executors."""
    registry = ExecutorRegistry()
    registry.register("shell", ShellExecutor(kill_grace_s=kill_grace_s))
    registry.register("http", HttpExecutor())
    return registry
