"""What every `kb` command shares: settings loading, error reporting, the console."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from functools import wraps
from pathlib import Path
from typing import Any, Literal, ParamSpec, TypeVar

import typer
from rich.console import Console

from core.errors import ConfigError, DatabaseError, KBError
from server.observability.logs import LogFormat, setup_logging
from server.settings import Settings, load_settings

console = Console()
err_console = Console(stderr=True)

P = ParamSpec("P")
R = TypeVar("R")

# Exit codes: 1 runtime failure, 2 bad configuration or usage.
EXIT_FAILURE = 1
EXIT_CONFIG = 2


class State:
    """Per-invocation state set by the top-level callback."""

    config_file: Path | None = None
    _settings: Settings | None = None

    @classmethod
    def settings(cls) -> Settings:
        if cls._settings is None:
            cls._settings = load_settings(cls.config_file)
        return cls._settings

    @classmethod
    def reset(cls) -> None:
        cls.config_file = None
        cls._settings = None


def configure_logging(level: str, fmt: LogFormat = "auto") -> Literal["text", "json"]:
    """Root logging for a command (``logging.format``); returns the format chosen."""
    return setup_logging(level, fmt)


def fail(message: str, code: int = EXIT_FAILURE) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn project errors into one clear line and a non-zero exit."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except ConfigError as exc:
            raise fail(str(exc), EXIT_CONFIG) from None
        except DatabaseError as exc:
            raise fail(str(exc)) from None
        except KBError as exc:
            raise fail(str(exc)) from None

    return wrapper


def run_async(coro: Coroutine[Any, Any, R]) -> R:
    return asyncio.run(coro)


__all__ = [
    "EXIT_CONFIG",
    "EXIT_FAILURE",
    "State",
    "configure_logging",
    "console",
    "err_console",
    "fail",
    "handle_errors",
    "run_async",
]
