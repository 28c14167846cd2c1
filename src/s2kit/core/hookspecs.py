"""Every hook a plugin can implement. All names start with ``s2kit_``.

A plugin is a module (found through the ``s2kit`` entry-point group) whose
functions carry ``@s2kit.hookimpl`` and are named after a hook below. Hooks
take keyword arguments and an implementation may accept any subset of them;
hooks evolve by gaining arguments, never by losing them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pluggy

if TYPE_CHECKING:  # typer stays inside cli/; these are only annotations
    import typer

    from s2kit.core.config import PipelineConfig
    from s2kit.core.interfaces import Executor, Planner, Robot, Skill, Subscriber
    from s2kit.core.types import Observation, RobotSpec

PROJECT = "s2kit"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

__all__ = ["PROJECT", "DatasetColumn", "VideoOverlay", "hookimpl", "hookspec"]

#: What ``s2kit_video_overlays`` returns a list of: ``overlay(image, camera, info)``
#: draws on one camera's frame (uint8 H x W x 3, at the camera's own resolution,
#: the one the model saw: the video upscales it afterwards, so pixels and patch
#: grids keep their place) of a step whose executed chunk had ``info``
#: (`Step.info`), and returns the frame to show, or None to leave it.
VideoOverlay = Callable[[np.ndarray, str, Mapping[str, Any]], "np.ndarray | None"]


@dataclass(frozen=True)
class DatasetColumn:
    """One extra per-frame column a plugin wants in recorded datasets (``s2kit_dataset_columns``).

    ``feature`` is the column's LeRobot feature spec (``dtype``, ``shape``,
    optionally ``names``). ``read(observation)`` gives a frame's value from
    the observation its command followed (typically from
    ``observation.privileged``), or with ``after`` from the observation the
    command led to (what the command achieved: the subtasks done after it),
    as an array of that dtype and shape; where the robot cannot say, the
    column's "unknown" value (NaN for floats, -1 for counts).
    """

    feature: dict[str, Any]
    read: Callable[[Observation], np.ndarray]
    after: bool = False


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
    ``{"record": "DIR"}``; the built-in plugin ``subscribers`` answers
    ``record``, ``video`` and ``metrics``). Returns a list of `Subscriber`
    objects, or None to add none. Not first-result: every implementation's
    subscribers are attached. An implementation that raises (an output it
    cannot open) stops the run before it starts, with that error.
    """


# --- what a model needs recorded or drawn ----------------------------------------------


@hookspec
def s2kit_dataset_columns(spec: RobotSpec) -> Mapping[str, DatasetColumn] | None:
    """Extra per-frame columns to record in datasets of ``spec``'s robot (``s2kit collect``).

    A learned model that trains on labels beyond images, state, action and
    guidance (auxiliary targets from a simulator's privileged state, say)
    declares them here, so the dataset writer records them without knowing
    the model. ``spec`` is the robot being recorded (its cameras, for
    per-camera columns). Returns column name -> `DatasetColumn`, or None for
    none. Not first-result: every plugin's columns are recorded; a name
    declared twice, or one the writer already records, is an error.
    """


@hookspec
def s2kit_video_overlays() -> Sequence[VideoOverlay] | None:
    """Drawings to add to episode videos (``s2kit run --video``, ``s2kit eval --video``).

    A model that reports something visual in its chunks' ``info`` (the image
    patches it kept, an attention map) draws it here, so the video writer
    knows no model. Takes no arguments. Returns a list of `VideoOverlay`
    callables, or None. Not first-result: every plugin's overlays are applied,
    each to the frame the previous one returned; an overlay returns None for
    steps whose ``info`` holds nothing of its model.
    """
