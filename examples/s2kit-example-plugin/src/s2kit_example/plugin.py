"""The plugin module the entry point names: it only answers s2kit's hooks.

Component modules are imported here, so keep them light (a heavy library,
such as torch, belongs inside the component's methods).
"""

from __future__ import annotations

from s2kit import hookimpl
from s2kit_example.mlp.executor import ColourMlpExecutor
from s2kit_example.planner import ThenSplitterPlanner
from s2kit_example.robot import PlanarRobot
from s2kit_example.skill import ColourSeekerExecutor, ReachColourSkill


@hookimpl
def s2kit_robots():
    return [PlanarRobot]


@hookimpl
def s2kit_planners():
    return [ThenSplitterPlanner]


@hookimpl
def s2kit_executors():
    return [ColourSeekerExecutor, ColourMlpExecutor]


@hookimpl
def s2kit_skills():
    return [ReachColourSkill]


@hookimpl
def s2kit_register_commands(cli):
    # Imported here so that typer is only loaded when the CLI is built.
    from s2kit_example.cli import app

    cli.add_typer(app, name="planar")
