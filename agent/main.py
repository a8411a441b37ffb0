"""Entry point of `taskscheduler-agent`."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Sequence

from taskscheduler import logs
from taskscheduler.errors import InvalidArgumentError

from .agent import Agent, AgentCrashedError
from .cli import PROG, parse_config
from .config import AgentConfig
from .executors import ExecutorRegistry, default_registry
from .executors.handlers import import_handler

EXIT_OK = 0
EXIT_CRASHED = 1
EXIT_USAGE = 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the agent; return 0 after a clean stop, 1 after a crash, 2 for bad flags."""
    try:
        config = parse_config(sys.argv[1:] if argv is None else argv, os.environ)
        registry = build_registry(config)
        check_capabilities(config, registry)
    except InvalidArgumentError as error:
        print(f"{PROG}: error: {error.message}", file=sys.stderr)
        return EXIT_USAGE

    logs.configure("agent", json_output=config.log_format == "json", level=config.log_level)
    try:
        asyncio.run(_run(config, registry))
    except AgentCrashedError as error:
        logs.get_logger(__name__).error("agent exited after a failure", error=str(error))
        return EXIT_CRASHED
    return EXIT_OK


def build_registry(config: AgentConfig) -> ExecutorRegistry:
    """Import every --handler and return the registry of all executors.

    Raises InvalidArgumentError for --handler when a handler cannot be imported.
    """
    handlers = {spec.name: import_handler(spec) for spec in config.handlers}
    return default_registry(handlers=handlers, max_handler_threads=config.max_concurrent)


def check_capabilities(config: AgentConfig, registry: ExecutorRegistry) -> None:
    """Raise InvalidArgumentError when --capabilities names an executor the agent lacks."""
    missing = [name for name in config.capabilities if registry.get(name) is None]
    if missing:
        raise InvalidArgumentError(
            "--capabilities",
            f"invalid --capabilities: no executor named {missing[0]!r}; "
            f"this agent has {', '.join(registry.names())}",
        )


async def _run(config: AgentConfig, registry: ExecutorRegistry) -> None:
    agent = Agent(config, registry=registry)
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signal_number, agent.stop)
    try:
        await agent.run()
    finally:
        for signal_number in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signal_number)


if __name__ == "__main__":
    sys.exit(main())
