"""``s2kit plan``: ask a planner for guidance by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.table import Table

from s2kit.cli._common import (
    JsonOption,
    SetOption,
    command,
    component_section,
    console,
    print_json,
)
from s2kit.core.registry import get_registry
from s2kit.core.types import Guidance, Observation

app = typer.Typer()


def guidance_table(guidance: Guidance, title: str) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("goal", guidance.goal)
    table.add_row("trajectory", guidance.trajectory or "-")
    for i, text in enumerate(guidance.subtasks):
        table.add_row(f"{'▶ ' if i == guidance.current else ''}subtask {i + 1}", text)
    return table


@app.command("plan")
@command
def plan(
    instruction: Annotated[str, typer.Argument(help="The coarse instruction, e.g. 'put the red cube in the bowl'.")],
    planner: Annotated[str, typer.Option(help="Planner plugin.")] = "retrieval",
    image: Annotated[Path | None, typer.Option(help="Camera image (PNG, JPEG, ...) shown to the planner.")] = None,
    camera: Annotated[str, typer.Option(help="Camera role the image stands for.")] = "head",
    scene: Annotated[str | None, typer.Option(help="Scene description, as a robot gives it: 'on the table: red cube at the front left, bowl'.")] = None,
    set_: SetOption = None,
    json: JsonOption = False,
) -> None:
    """Print the guidance a planner gives for an instruction (and an image), to try a planner by hand.

    Options of the planner are set with --set, e.g. --set base_url=http://127.0.0.1:8080/v1.
    """
    images = {}
    if image is not None:
        from s2kit.datasets.images import read_image

        images[camera] = read_image(image)
    component = get_registry().create("planner", component_section("planner", planner, set_))
    try:
        observation = Observation(images=images, state=np.zeros(0, np.float32), timestamp=0.0, scene=scene)
        guidance = component.plan(instruction, observation, event="start")
    finally:
        component.close()
    if json:
        print_json(guidance)
    else:
        console.print(guidance_table(guidance, f"planner {planner}"))
