"""The Typer application and helpers shared by the CLI modules (console, error handling)."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

from fusionrec.errors import FusionRecError

app = typer.Typer(
    name="fusionrec",
    help="Multimodal recommendation: ingest, features, train, evaluate, recommend, serve.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
# Tables are wide: when output is not a terminal (CI logs, files), do not squeeze them into 80 columns.
console = Console() if sys.stdout.isatty() else Console(width=160)
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])


def friendly_errors(func: F) -> F:
    """Turn fusionrec's own errors into a one-line message and exit code 2 (never a bare traceback)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        try:
            return func(*args, **kwargs)
        except FusionRecError as exc:
            err_console.print(f"[bold red]error:[/] {exc}")
            raise typer.Exit(code=2) from None
        except FileNotFoundError as exc:
            err_console.print(f"[bold red]error:[/] file not found: {exc.filename or exc}")
            raise typer.Exit(code=2) from None

    return wrapper  # type: ignore[return-value]
