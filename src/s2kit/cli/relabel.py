"""``s2kit relabel``: add S2's trajectory and subtask guidance to an existing LeRobot v3.0 dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

from s2kit.cli._common import (
    JsonOption,
    SetOption,
    check_output,
    command,
    component_section,
    console,
    err_console,
    fail,
    print_json,
)
from s2kit.cli.plan import guidance_table
from s2kit.workflows.relabel import relabel as relabel_dataset
from s2kit.core.registry import get_registry

app = typer.Typer()


@app.command("relabel")
@command
def relabel(
    dataset: Annotated[Path, typer.Argument(help="A LeRobot v3.0 dataset folder (ours or anyone's).")],
    planner: Annotated[str, typer.Option(help="Planner writing the guidance.")] = "retrieval",
    out: Annotated[Path | None, typer.Option(help="Folder for the relabelled copy (videos hard-linked); resumable.")] = None,
    in_place: Annotated[bool, typer.Option("--in-place", help="Rewrite DATASET itself, each file replaced atomically.")] = False,
    camera: Annotated[str | None, typer.Option(help="Camera feature or role shown to the planner (default: the head camera).")] = None,
    segment: Annotated[str, typer.Option(help="Frames to subtasks: auto, annotation, gripper or uniform.")] = "auto",
    set_: SetOption = None,
    json: JsonOption = False,
) -> None:
    """Add trajectory and subtask guidance to every frame of a LeRobot v3.0 dataset.

    The dataset's task string stays the goal. The source is never written unless
    --in-place; an interrupted run picks up where it stopped when run again.
    Planner options with --set, e.g. --set cache_dir=runs/plan-cache.
    """
    if in_place == (out is not None):
        raise fail("give --out DIR for a relabelled copy, or --in-place to rewrite the dataset itself")
    if segment not in ("auto", "annotation", "gripper", "uniform"):
        raise fail(f"--segment must be auto, annotation, gripper or uniform, not {segment!r}")
    check_output(dataset if in_place else out, "--in-place" if in_place else "--out", folder=True)
    section = component_section("planner", planner, set_)
    component = get_registry().create("planner", section)
    planner_id = " ".join(f"{k}={v}" for k, v in sorted(section.items()))
    columns = [TextColumn("relabel"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
    try:
        with Progress(*columns, console=err_console, disable=json or not err_console.is_terminal) as progress:
            task = progress.add_task("relabel", total=None)
            report = relabel_dataset(
                dataset, component, out=out, in_place=in_place, camera=camera, segment=segment,  # type: ignore[arg-type]
                planner_id=planner_id, progress=lambda done, total: progress.update(task, completed=done, total=total),
            )  # fmt: skip
    finally:
        component.close()
    summary = {
        "dataset": str(report.root),
        "episodes_relabelled": report.episodes,
        "frames": report.frames,
        "files_written": report.files_done,
        "files_already_done": report.files_skipped,
        "segmentation": dict(report.segmentation),
    }
    if json:
        print_json({**summary, "example": report.example})
        return
    if report.example is not None:
        console.print(guidance_table(report.example, "first episode's guidance"))
    how = ", ".join(f"{n} by {k}" for k, n in report.segmentation.items()) or "none"
    console.print(
        f"relabelled {report.episodes} episode(s), {report.frames} frames, into {report.root} "
        f"({report.files_skipped} data file(s) were already done; subtask boundaries: {how})"
    )
