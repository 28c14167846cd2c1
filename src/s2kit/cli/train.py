"""``s2kit train`` and ``s2kit export``: fit an executor to datasets, export its inference graph."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from s2kit.cli._common import JsonOption, check_output, command, console, err_console, print_json
from s2kit.core.config import comma_list
from s2kit.core.checkpoints import checkpoint_executor, find_checkpoint
from s2kit.core.registry import get_registry

app = typer.Typer()

TrainSetOption = Annotated[
    list[str] | None,
    typer.Option("--set", metavar="KEY=VALUE", help="A training option, e.g. --set batch_size=32 --set model.dim=64 (repeatable)."),
]


@app.command("train")
@command
def train(
    executor: Annotated[str, typer.Option(help="Executor to train, e.g. s2 or baseline.")],
    data: Annotated[str, typer.Option(help="LeRobot dataset folder(s), comma-separated.")],
    out: Annotated[Path, typer.Option(help="Run folder: checkpoints, metrics.jsonl, train.json.")],
    steps: Annotated[int | None, typer.Option(min=1, help="Training steps (same as --set steps=N).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out from its newest checkpoint.")] = False,
    set_: TrainSetOption = None,
) -> None:
    """Train an executor on LeRobot v3.0 datasets and write checkpoints to a run folder.

    Under torchrun (torchrun --nproc-per-node 2 -m s2kit.cli.main train ...) the
    processes share each batch and average gradients (gloo on CPU).
    """
    cls = get_registry().get("executor", executor).cls
    roots = [Path(p) for p in comma_list(data, "--data")]
    check_output(out, "--out", folder=True)
    overrides = list(set_ or []) + ([f"steps={steps}"] if steps is not None else [])
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[losses]}"),
               TimeElapsedColumn(), TimeRemainingColumn()]  # fmt: skip
    with Progress(*columns, console=err_console, disable=not err_console.is_terminal) as progress:
        task = progress.add_task(f"train {executor}", total=None, losses="")

        def report(step: int, total: int, losses: dict[str, float]) -> None:
            shown = " ".join(f"{k} {v:.4f}" for k, v in losses.items() if k != "loss")
            progress.update(task, completed=step, total=total, losses=shown)

        last = cls.train(roots, out, overrides=overrides, resume=resume, progress=report, log=lambda m: err_console.print(m, highlight=False))
    console.print(f"checkpoint: {last}")


@app.command("export")
@command
def export(
    run: Annotated[Path, typer.Argument(help="A checkpoint or training run folder (its newest checkpoint).")],
    out: Annotated[Path, typer.Option(help="The file to write, e.g. model.onnx.")],
    format: Annotated[str, typer.Option(help="Export format.")] = "onnx",
    set_: TrainSetOption = None,
    json: JsonOption = False,
) -> None:
    """Export a trained executor's inference graph and check it against the original."""
    check_output(out, "--out", folder=False)  # before the export and its parity check, which take a while
    checkpoint = find_checkpoint(run)
    cls = get_registry().get("executor", checkpoint_executor(checkpoint)).cls
    report = cls.export(checkpoint, out, format=format, overrides=list(set_ or []))
    if json:
        print_json(report)
        return
    table = Table(title=f"export {checkpoint} -> {out}")
    table.add_column("what")
    table.add_column("value")
    for key, value in report.items():
        table.add_row(key, str(value))
    console.print(table)
