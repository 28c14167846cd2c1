"""The ``s2kit`` command: composes the command groups, nothing else."""

from __future__ import annotations

from typing import Annotated

import typer

from s2kit import __version__
from s2kit.cli import eval, plan, plugins, relabel, run, train
from s2kit.cli._common import setup_logging, state
from s2kit.core.registry import get_registry


def _version(value: bool) -> None:
    if value:
        typer.echo(f"s2kit {__version__}")
        raise typer.Exit()


def build_app() -> typer.Typer:
    """The root app: built-in groups, then every plugin's via ``s2kit_register_commands``."""
    app = typer.Typer(
        name="s2kit",
        help="Plug planners, executors, skills and robots together and run them.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
    )

    @app.callback()
    def root(
        version: Annotated[
            bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
        ] = False,
        debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks (also S2KIT_DEBUG=1).")] = False,
    ) -> None:
        """s2kit: a plugin framework for vision-language-action robots."""
        if debug:
            state.debug = True
        setup_logging()

    app.add_typer(plugins.app, name="plugins")
    for group in (run, eval, plan, relabel, train):  # single commands, not groups
        app.registered_commands.extend(group.app.registered_commands)
    get_registry().call_each("s2kit_register_commands", cli=app)
    return app


def main() -> None:
    """Console-script entry point."""
    build_app()()


if __name__ == "__main__":  # torchrun -m s2kit.cli.main train ...
    main()
