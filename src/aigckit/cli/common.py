"""What every command shares: turning user errors into one line and exit code 2."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

from ..errors import AigcError

__all__ = ["user_errors", "err_console"]

F = TypeVar("F", bound=Callable[..., Any])
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def user_errors(command: F) -> F:
    """Print an AigcError as one 'error: ...' line on stderr and exit with its code (2)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except AigcError as error:
            err_console.print(f"[bold red]error:[/] {error}", markup=True)
            raise typer.Exit(error.exit_code) from None

    return wrapper  # type: ignore[return-value]
