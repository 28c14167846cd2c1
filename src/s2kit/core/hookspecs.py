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

    Each class subclasses `Robot` and sets ``name`` (unique among robots) and
    ``Config`` (a `PluginConfig`). Takes no arguments. Returns a list of
    classes. Not first-result: every plugin's classes are collected, and a
    name registered twice is an error that names both plugins.
    """


@hookspec
def s2kit_planners() -> Sequence[type[Planner]]:
    """Planner classes this plugin provides.

    Takes no arguments; returns a list of `Planner` subclasses. Not
    first-result: every plugin's classes are collected, names must be unique.
    """


@hookspec
def s2kit_executors() -> Sequence[type[Executor]]:
    """Executor classes this plugin provides.

    Takes no arguments; returns a list of `Executor` subclasses. Not
    first-result: every plugin's classes are collected, names must be unique.
    """


@hookspec
def s2kit_skills() -> Sequence[type[Skill]]:
    """Skill classes this plugin provides.

    Takes no arguments; returns a list of `Skill` subclasses. Not
    first-result: every plugin's classes are collected, names must be unique.
    """


# --- command line --------------------------------------------------------------


@hookspec
def s2kit_register_commands(cli: typer.Typer) -> None:
    """Add command groups or commands to the ``s2kit`` CLI.

    ``cli`` is the root ``typer.Typer``; call ``cli.add_typer(app, name=...)``
    or ``cli.command()(fn)``. Returns nothing. Not first-result: every
    implementation is called; one that raises is reported by ``s2kit plugins
    list`` and the rest of the CLI keeps working.
    """


# --- runtime ---------------------------------------------------------------------


@hookspec
def s2kit_subscribers(pipeline: PipelineConfig, options: dict[str, Any]) -> Sequence[Subscriber] | None:
    """Subscribers to attach to a run of ``pipeline``.

    ``pipeline`` is the validated pipeline about to run; ``options`` carries
    what the caller asked for on the command line (for example
    ``{"record": "DIR"}``). Returns a list of `Subscriber` objects, or None to
    add none. Not first-result: every implementation's subscribers are
    attached.
    """
