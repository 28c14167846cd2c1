"""A command group, ``s2kit planar``, added through s2kit_register_commands."""

from __future__ import annotations

from typing import Annotated

import typer

from s2kit_example.robot import PlanarRobot

app = typer.Typer(help="The example planar robot.", no_args_is_help=True)


@app.command("scene")
def scene(seed: Annotated[int, typer.Option(help="Episode seed.")] = 0) -> None:
    """Print the scene and instruction the planar robot draws for SEED."""
    robot = PlanarRobot()
    robot.reset(seed=seed)
    typer.echo(robot.instruction)
    typer.echo(robot.scene())
