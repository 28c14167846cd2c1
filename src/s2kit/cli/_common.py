"""What every command shares: options, consoles, and turning errors into one line."""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from s2kit.core.errors import ConfigError, S2kitError

# Piped output (logs, CI, `| less`) is not wrapped at rich's default 80
# columns: tables of plugins and results need more to stay readable.
console = Console(width=None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 160)
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])

JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.")]
SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="SECTION.KEY=VALUE",
        help="Override any pipeline option, e.g. --set runtime.max_steps=100 (repeatable).",
    ),
]


class _State:
    debug: bool = os.environ.get("S2KIT_DEBUG", "").strip() not in ("", "0", "false", "no")


state = _State()


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``Error: message`` on stderr and return the Exit to raise."""
    err_console.print(f"[bold red]Error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def progress_bars(show: bool) -> Progress:
    """Transient progress bars on stderr (add tasks to it; ``show`` False: a no-op)."""
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=err_console, transient=True, disable=not show,
    )  # fmt: skip


def warn(message: str) -> None:
    """Print ``Warning: message`` on stderr, one line."""
    err_console.print(f"[bold yellow]Warning:[/] {message}", highlight=False, soft_wrap=True)


def command(fn: F) -> F:
    """Wrap a command so that a user's error ends in one line and an exit code.

    `S2kitError` prints its message and exits with its code; anything else is
    a bug: one line too, naming it, unless ``--debug`` asks for the traceback.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except KeyboardInterrupt:
            raise fail("interrupted", 130) from None
        except S2kitError as err:
            if state.debug:
                traceback.print_exc()
            raise fail(str(err), err.exit_code) from None
        except Exception as err:
            if state.debug:
                traceback.print_exc()
                raise fail(f"{type(err).__name__}: {err}", 1) from None
            raise fail(f"{type(err).__name__}: {err} (run with --debug for the traceback)", 1) from None

    return wrapper  # type: ignore[return-value]


def check_output(path: Path | None, option: str, *, folder: bool) -> None:
    """Refuse, before any work, an output path that cannot be written (`ConfigError`, one line).

    ``folder``: the output is a folder (``--record``, ``--out DIR``), else a
    file (``--metrics``, ``export --out``). Nothing is created: a folder
    where a file is wanted (or the reverse), a file in the way of the
    folders above it, and a place that does not take a file (tried with a
    temporary file in the nearest folder that exists) are errors naming
    ``option``. Nothing given (None) is nothing to check.
    """
    if path is None:
        return
    where = f"{option} {path}"
    if folder and path.exists() and not path.is_dir():
        raise ConfigError(f"{where}: is a file, not a folder")
    if not folder and path.is_dir():
        raise ConfigError(f"{where}: is a folder; give a file path")
    if not folder and path.exists() and not os.access(path, os.W_OK):
        raise ConfigError(f"{where}: the file is not writable")
    parent = path if folder else path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(f"{where}: {parent} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as err:
        raise ConfigError(f"{where}: cannot write in {parent} ({err.strerror or err})") from None


def to_jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return value


def json_text(value: Any) -> str:
    """``value`` (pydantic models included) as indented JSON, with a final newline."""
    return json.dumps(to_jsonable(value), indent=2, default=str) + "\n"


def print_json(value: Any) -> None:
    """Write ``value`` as JSON to stdout (plain, no markup, so machines can parse it)."""
    sys.stdout.write(json_text(value))
    sys.stdout.flush()


def component_section(kind: str, name: str, overrides: list[str] | None) -> dict[str, Any]:
    """``{name: ..., <options>}`` for one component from ``--set`` values.

    Both ``key=value`` and ``kind.key=value`` are accepted, so a command that
    builds one component reads the same overrides as a whole pipeline.
    """
    from s2kit.core.config import apply_overrides

    texts = [text if text.startswith(f"{kind}.") else f"{kind}.{text}" for text in overrides or []]
    return apply_overrides({kind: {"name": name}}, texts)[kind]


class WarningHandler(logging.Handler):
    """Warnings from s2kit's loggers (a planner's server failing, say) as one line on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            warn(record.getMessage())
        except Exception:  # noqa: BLE001 - logging must never take the command down
            self.handleError(record)


def setup_logging() -> None:
    """Route s2kit's warnings to the console once (idempotent)."""
    logger = logging.getLogger("s2kit")
    if not any(isinstance(h, WarningHandler) for h in logger.handlers):
        logger.addHandler(WarningHandler(logging.WARNING))
