"""Helpers for integration tests: waiting with deadlines, real processes, a REST client.

The fixtures that use them live in tests/conftest.py.
"""

from .api import DEFAULT_JOB_FIELDS, ApiClient
from .components import (
    FAST_AGENT_FLAGS,
    FAST_COORDINATOR_FLAGS,
    Components,
    Stack,
    flags_to_argv,
)
from .processes import AgentHandle, ProcessHandle, ProcessStartError
from .waiting import wait_until, wait_until_async

__all__ = [
    "DEFAULT_JOB_FIELDS",
    "FAST_AGENT_FLAGS",
    "FAST_COORDINATOR_FLAGS",
    "AgentHandle",
    "ApiClient",
    "Components",
    "ProcessHandle",
    "ProcessStartError",
    "Stack",
    "flags_to_argv",
    "wait_until",
    "wait_until_async",
]
