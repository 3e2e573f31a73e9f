"""The CLI operator: one identity, the admin capability, and confirmation of destructive
commands.

Every ``kb`` command that administers runs as :func:`server.usecases.admin.cli_operator`
(``user:cli:<os user>`` with ``role:admin``) and calls the same use cases as the admin
REST API, so its audit rows read the same. Heavy modules (the runtime, the database
engine) are imported when a command runs, never when the CLI starts.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import typer

from server.cli.common import EXIT_CONFIG, State, fail, run_async

if TYPE_CHECKING:
    from policies.capability import AdminCaller
    from server.runtime import Runtime

T = TypeVar("T")


def run_admin(action: Callable[[Runtime, AdminCaller], Awaitable[T]]) -> T:
    """Open a runtime without the model, mint the operator's capability, run ``action``."""
    from policies.capability import mint_admin
    from server.runtime import open_runtime
    from server.usecases.admin import cli_operator

    async def go() -> T:
        async with open_runtime(State.settings(), load_model=False, watch_policies=False) as rt:
            return await action(rt, mint_admin(cli_operator(), rt.policies))

    return run_async(go())


def offline_admin() -> AdminCaller:
    """The operator's capability where no runtime opens (``kb db``, ``kb token``): the
    operator's own ``role:admin`` is what makes it an administrator, no stored rule."""
    from policies.capability import mint_admin
    from policies.engine import PolicyEngine
    from server.usecases.admin import cli_operator

    return mint_admin(cli_operator(), PolicyEngine.empty())


def confirm_destructive(yes: bool, question: str) -> None:
    """Go on with ``--yes``; otherwise ask on a terminal, and refuse when there is none."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise fail(
            f"{question.rstrip('?')}: refused without --yes (stdin is not a terminal, "
            "so nobody can confirm)",
            EXIT_CONFIG,
        )
    if not typer.confirm(question):
        raise typer.Exit(1)


__all__ = ["confirm_destructive", "offline_admin", "run_admin"]
