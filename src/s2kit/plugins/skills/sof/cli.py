"""``s2kit sof``: SOF's commands. ``s2kit sof flow`` shows a video's optical flow; ``s2kit sof train-tokenizer`` learns
skill tokens from action-free video; ``s2kit sof train-planner`` learns to plan them from video and language. (The
translator trains as the executor ``sof-translator``: ``s2kit train sof-translator``.)"""

from __future__ import annotations

import json as _json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.table import Table
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from s2kit import hookimpl
from s2kit.cli._common import JsonOption, check_output, command, console, err_console, print_json
from s2kit.core.errors import ConfigError, DataError

app = typer.Typer(help="SOF, skills from optical flow (docs/skills.md).", no_args_is_help=True)

#: ``--resume`` and ``--set`` of the training commands.
ResumeOption = Annotated[bool, typer.Option("--resume", help="Continue the run in --out from its newest checkpoint.")]
TrainSetOption = Annotated[
    list[str] | None,
    typer.Option("--set", metavar="KEY=VALUE", help="A training option (the kit's, e.g. batch_size=64, threads=1) or model.* (repeatable)."),
]
_BAR = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[losses]}"), TimeElapsedColumn(), TimeRemainingColumn())


@app.command("flow")
@command
def flow(
    source: Annotated[
        Path, typer.Argument(metavar="SOURCE", help="A LeRobot v3 dataset, a video file, or a folder of images (name order).")
    ],
    out: Annotated[Path, typer.Option(help="The MP4 to write: each frame beside its flow's colours.")],
    episode: Annotated[int | None, typer.Option(min=0, help="The dataset's episode (default 0).")] = None,
    camera: Annotated[str | None, typer.Option(help="The dataset's camera: a role (head, wrist, ...) or a feature key (default head).")] = None,
    fps: Annotated[float | None, typer.Option(min=0.1, help="Frames per second of the video (default: the source's; 10 for images).")] = None,
    max_magnitude: Annotated[
        float | None, typer.Option(min=1e-6, help="Speed in pixels per frame shown at full colour (default: the video's 99th percentile, at least 1).")
    ] = None,
    min_height: Annotated[int, typer.Option(min=0, help="Upscale (nearest) to at least this many pixels tall; 0: native size.")] = 384,
    json: JsonOption = False,
) -> None:
    """Compute the optical flow between consecutive frames and write it as a colour-wheel video beside the frames.

    Hue is the direction of motion and saturation its speed (white: still);
    the wheel in the corner is the key. Prints how fast the frames move.
    """
    check_output(out, "--out", folder=False)
    from s2kit.plugins.skills.sof.flow import optical_flow, write_flow_video
    from s2kit.plugins.skills.sof.frames import read_frames

    clip = read_frames(source, episode=episode, camera=camera)
    if len(clip.frames) < 2:
        raise DataError(f"{clip.name} has {len(clip.frames)} frame; flow needs two or more")
    flows = optical_flow(clip.frames)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_flow_video(out, clip.frames, flows, fps=fps or clip.fps, max_magnitude=max_magnitude, min_height=min_height)
    speed = np.hypot(flows[..., 0], flows[..., 1])
    summary = {
        "source": clip.name,
        "out": str(out),
        "pairs": len(flows),
        "size": list(clip.frames.shape[1:3]),
        "mean_px": round(float(speed.mean()), 3),
        "p99_px": round(float(np.percentile(speed, 99)), 3),
    }
    if json:
        print_json(summary)
        return
    console.print(
        f"{summary['source']}: {summary['pairs']} flows of {summary['size'][1]}x{summary['size'][0]} pixels, "
        f"mean speed {summary['mean_px']:.2f} px/frame (99th percentile {summary['p99_px']:.2f}) -> {out}",
        highlight=False,
        soft_wrap=True,
    )


@app.command("train-tokenizer")
@command
def train_tokenizer(
    sources: Annotated[
        list[Path], typer.Argument(metavar="SOURCES...", help="LeRobot v3 datasets (their videos; actions are not read) and folders of video files.")
    ],
    out: Annotated[Path, typer.Option(help="Run folder: checkpoints, metrics.jsonl, train.json, report.json.")],
    camera: Annotated[str | None, typer.Option(help="A dataset's camera role (default head; same as --set model.cameras=[ROLE]).")] = None,
    window: Annotated[int | None, typer.Option(min=1, help="Flow fields per window, H (default 8; --set model.window=H).")] = None,
    tokens: Annotated[int | None, typer.Option(min=1, help="Skill tokens per window; divides the window (default 2).")] = None,
    levels: Annotated[str | None, typer.Option(help="FSQ levels per code dimension, comma-separated (default 5,5,5).")] = None,
    steps: Annotated[int | None, typer.Option(min=1, help="Training steps (default 2000; --set steps=N).")] = None,
    resume: ResumeOption = False,
    set_: TrainSetOption = None,
    json: JsonOption = False,
) -> None:
    """Train SOF's skill tokenizer on the optical flow of action-free video and report how well it reconstructs.

    Windows of flow are encoded into FSQ skill tokens and decoded back from
    them and the window's first frame. The report (also RUN/report.json):
    held-out endpoint error in pixels against zero flow and the mean flow,
    and how much of the codebook the tokens use (docs/skills.md).
    """
    from s2kit.core.config import validate_overrides
    from s2kit.plugins.skills.sof.training import REPORT, TokenizerTrainConfig
    from s2kit.plugins.skills.sof.training import train_tokenizer as train

    check_output(out, "--out", folder=True)
    overrides = list(set_ or [])
    if camera is not None:
        overrides.append(f"model.cameras=[{camera}]")
    for name, value in (("window", window), ("tokens", tokens)):
        if value is not None:
            overrides.append(f"model.{name}={value}")
    if levels is not None:
        overrides.append(f"model.levels={_levels(levels)}")
    if steps is not None:
        overrides.append(f"steps={steps}")
    config: TokenizerTrainConfig = validate_overrides(TokenizerTrainConfig, overrides, "train-tokenizer")  # type: ignore[assignment]
    last = _with_bar(
        "train-tokenizer", config.steps, lambda losses: f"epe {losses['epe_px']:.3f} px",
        lambda progress, log: train(sources, out, config, resume=resume, progress=progress, log=log),
    )  # fmt: skip
    summary = _json.loads((out / REPORT).read_text())
    if json:
        print_json(summary)
        return
    where = f"{summary['episodes']} held-out episodes" if summary["held_out"] else f"{summary['episodes']} training episodes (none held out)"
    table = Table(title=f"skill tokenizer on {where}, {summary['windows']} windows")
    for column in ("endpoint error, px", "reconstruction", "zero flow", "mean flow"):
        table.add_column(column, justify="right" if column != "endpoint error, px" else "left")
    table.add_row("all pixels", *(f"{summary[k]:.3f}" for k in ("epe_px", "epe_zero_px", "epe_mean_px")))
    table.add_row(f"moving pixels ({summary['moving_fraction']:.0%})", *(f"{summary[k]:.3f}" for k in ("moving_epe_px", "moving_epe_zero_px", "moving_epe_mean_px")))
    console.print(table)
    console.print(
        f"codes used: {summary['codes_used']:.0f} of {summary['codebook']} ({summary['code_usage']:.0%}), perplexity {summary['perplexity']:.1f}\n"
        f"checkpoint: {last}",
        highlight=False, soft_wrap=True,
    )  # fmt: skip


@app.command("train-planner")
@command
def train_planner(
    datasets: Annotated[list[Path], typer.Argument(metavar="DATASETS...", help="LeRobot v3 datasets with language annotations (actions are not read).")],
    tokenizer: Annotated[Path, typer.Option(help="The skill tokenizer's run or checkpoint (s2kit sof train-tokenizer): the tokens it plans in.")],
    out: Annotated[Path, typer.Option(help="Run folder: checkpoints, metrics.jsonl, train.json.")],
    horizon: Annotated[int | None, typer.Option(min=1, help="Windows planned ahead (default 2; --set model.horizon=N).")] = None,
    steps: Annotated[int | None, typer.Option(min=1, help="Training steps (default 3000; --set steps=N).")] = None,
    resume: ResumeOption = False,
    set_: TrainSetOption = None,
    json: JsonOption = False,
) -> None:
    """Train SOF's skill planner: from a frame and the guidance (goal, current subtask), the next windows' skill tokens
    and whether the subtask is done; its targets are the tokenizer's tokens of the video, no actions.

    Prints the held-out figures of the last validation: per-token accuracy of
    greedy plans, the share of first windows planned exactly, and the done
    signal's accuracy (docs/skills.md).
    """
    from s2kit.core.config import validate_overrides
    from s2kit.plugins.skills.sof.training import PlannerTrainConfig
    from s2kit.plugins.skills.sof.training import train_planner as train

    check_output(out, "--out", folder=True)
    overrides = [*(set_ or []), f"model.tokenizer={tokenizer}"]
    if horizon is not None:
        overrides.append(f"model.horizon={horizon}")
    if steps is not None:
        overrides.append(f"steps={steps}")
    config: PlannerTrainConfig = validate_overrides(PlannerTrainConfig, overrides, "train-planner")  # type: ignore[assignment]
    last = _with_bar(
        "train-planner", config.steps, lambda losses: f"tokens {losses['tokens']:.3f} done {losses['done']:.3f}",
        lambda progress, log: train(datasets, out, config, resume=resume, progress=progress, log=log),
    )  # fmt: skip
    figures = _last_validation(out)
    summary = {"checkpoint": str(last), **figures}
    if json:
        print_json(summary)
        return
    shown = ", ".join(f"{k.removeprefix('val_')} {v:.3f}" for k, v in figures.items() if k != "step") or "no episodes held out"
    console.print(f"skill planner, held out: {shown}\ncheckpoint: {last}", highlight=False, soft_wrap=True)


def _with_bar(name: str, steps: int, shown: Callable[[dict[str, float]], str], run: Callable[[Callable[..., None], Callable[[str], None]], Path]) -> Path:
    """``run(progress, log)``: a training, with a progress bar of ``steps`` on a terminal (the losses as ``shown`` says)
    and its log on stderr; what it returns."""
    with Progress(*_BAR, console=err_console, disable=not err_console.is_terminal) as bar:
        task = bar.add_task(name, total=steps, losses="")

        def report(step: int, losses: dict[str, float]) -> None:
            bar.update(task, completed=step, losses=shown(losses))

        return run(report, lambda m: err_console.print(m, highlight=False, soft_wrap=True))


def _last_validation(run: Path) -> dict[str, float]:
    """The last validation line of a run's metrics.jsonl (empty where nothing was held out)."""
    last: dict[str, float] = {}
    path = run / "metrics.jsonl"
    if path.is_file():
        for line in path.read_text().splitlines():
            row = _json.loads(line)
            if any(k.startswith("val_") for k in row):
                last = row
    return last


def _levels(text: str) -> list[int]:
    """``--levels 8,5,5,5`` as integers (repeats are levels, not duplicates); their values are checked by the config."""
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise ConfigError(f"--levels {text!r}: give integers separated by commas, e.g. 8,5,5,5") from None


@hookimpl
def s2kit_register_commands(cli: typer.Typer) -> None:
    cli.add_typer(app, name="sof")
