"""Every hook a plugin can implement. All names start with ``s2kit_``.

A plugin is a module (found through the ``s2kit`` entry-point group) whose
functions carry ``@s2kit.hookimpl`` and are named after a hook below. Hooks
take keyword arguments and an implementation may accept any subset of them;
hooks evolve by gaining arguments, never by losing them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:  # typer stays inside cli/; these are only annotations
    import typer

    from s2kit.core.config import PipelineConfig
    from s2kit.core.interfaces import Executor, Planner, Robot, Skill, Subscriber

PROJECT = "s2kit"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

__all__ = ["PROJECT", "hookimpl", "hookspec"]


# --- components --------------------------------------------------------------


@hookspec
def s2kit_robots() -> Sequence[type[Robot]]:
    """Robot classes this plugin provides.

    Each class sets ``name`` (unique among robots) and ``Config``. All
    implementations are collected; a name registered twice is an error that
    names both plugins.
    """


@hookspec
def s2kit_planners() -> Sequence[type[Planner]]:
    """Planner classes this plugin provides (collected from every plugin, names unique)."""


@hookspec
def s2kit_executors() -> Sequence[type[Executor]]:
    """Executor classes this plugin provides (collected from every plugin, names unique)."""


@hookspec
def s2kit_skills() -> Sequence[type[Skill]]:
    """Skill classes this plugin provides (collected from every plugin, names unique)."""


# --- command line --------------------------------------------------------------


@hookspec
def s2kit_register_commands(cli: typer.Typer) -> None:
    """Add command groups or commands to the ``s2kit`` CLI.

    ``cli`` is the root ``typer.Typer``; call ``cli.add_typer(app, name=...)``
    or ``cli.command()(fn)``. Every implementation is called; one that raises
    is reported by ``s2kit plugins list`` and the rest of the CLI keeps working.
    Returns nothing.
    """


# --- runtime ---------------------------------------------------------------------


@hookspec
def s2kit_subscribers(pipeline: PipelineConfig, options: dict[str, Any]) -> Sequence[Subscriber] | None:
    """Subscribers to attach to a run of ``pipeline``.

    ``options`` carries what the caller asked for on the command line (for
    example ``{"record": "DIR"}``). Every implementation's subscribers are
    attached; return None or an empty list to add none.
    """
