"""Python handlers named on the command line as `NAME=module:function`.

`parse_handler_spec` checks the text when the configuration is built.
`import_handler` imports the module once, at agent start, and returns the
callable, so a typo stops the agent before it registers instead of failing
every run.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from taskscheduler.errors import InvalidArgumentError

from .base import EXECUTOR_NAME

FLAG = "--handler"
# Executors every agent has; a handler cannot take their names.
BUILT_IN_EXECUTORS = ("shell", "http", "noop")
_EXAMPLE = "resize=myapp.images:resize"


@dataclass(frozen=True, slots=True)
class HandlerSpec:
    """A handler's executor name and where its callable lives.

    `attribute` is a dotted path inside the module, such as `resize` or
    `Images.resize`. Construction raises ValueError naming the bad part.
    """

    name: str
    module: str
    attribute: str

    def __post_init__(self) -> None:
        check_handler_name(self.name)
        if not _is_dotted_identifier(self.module):
            raise ValueError(f"{self.module!r} in {self} is not a module path such as myapp.images")
        if not _is_dotted_identifier(self.attribute):
            raise ValueError(f"{self.attribute!r} in {self} is not a function name such as resize")

    def __str__(self) -> str:
        return f"{self.name}={self.module}:{self.attribute}"


def parse_handler_spec(text: str) -> HandlerSpec:
    """Parse `NAME=module:function`; raises ValueError saying what is wrong."""
    name, equals, target = text.strip().partition("=")
    module, colon, attribute = target.partition(":")
    if not equals or not colon:
        raise ValueError(f"{text.strip()!r} is not NAME=module:function, such as {_EXAMPLE}")
    return HandlerSpec(name.strip(), module.strip(), attribute.strip())


def check_handler_name(name: str) -> None:
    """Raise ValueError unless `name` can be a job's `executor` and is not a built-in one."""
    if not EXECUTOR_NAME.match(name):
        raise ValueError(
            f"handler name {name!r} is invalid; use 1-64 lowercase letters, digits, "
            "'_', '.' or '-', starting with a letter"
        )
    if name in BUILT_IN_EXECUTORS:
        raise ValueError(
            f"handler name {name!r} is taken by a built-in executor "
            f"({', '.join(BUILT_IN_EXECUTORS)}); choose another name"
        )


def import_handler(spec: HandlerSpec) -> Callable[..., Any]:
    """Import the handler's module and return its callable.

    The working directory is searched too, as for `python -m`. Raises
    InvalidArgumentError for --handler, in one line, when the module cannot
    be imported or the name is missing or not callable.
    """
    _search_working_directory()
    try:
        target: Any = importlib.import_module(spec.module)
    except ModuleNotFoundError as error:
        if error.name is not None and _is_module_or_parent(error.name, spec.module):
            raise _invalid(
                spec,
                f"module {spec.module!r} not found; install it in the agent's Python "
                "environment, or add its folder to PYTHONPATH",
            ) from None
        raise _import_failed(spec, error) from None
    except (Exception, SystemExit) as error:
        raise _import_failed(spec, error) from None

    for part in spec.attribute.split("."):
        if not hasattr(target, part):
            raise _invalid(
                spec,
                f"module {spec.module!r} has no attribute {spec.attribute!r}; "
                "name a function defined in it",
            )
        target = getattr(target, part)
    if not callable(target):
        raise _invalid(
            spec,
            f"{spec.module}:{spec.attribute} is of type {type(target).__name__}, not a callable; "
            "name a function",
        )
    return target


def _search_working_directory() -> None:
    working_directory = os.getcwd()
    if working_directory not in sys.path and "" not in sys.path:
        sys.path.insert(0, working_directory)


def _is_dotted_identifier(text: str) -> bool:
    return all(part.isidentifier() for part in text.split("."))


def _is_module_or_parent(missing: str, module: str) -> bool:
    return module == missing or module.startswith(missing + ".")


def _import_failed(spec: HandlerSpec, error: BaseException) -> InvalidArgumentError:
    detail = " ".join(str(error).split())
    return _invalid(
        spec,
        f"importing module {spec.module!r} failed with {type(error).__name__}: {detail}; "
        "fix the module so that it imports",
    )


def _invalid(spec: HandlerSpec, reason: str) -> InvalidArgumentError:
    return InvalidArgumentError(FLAG, f"invalid {FLAG} {spec}: {reason}")
