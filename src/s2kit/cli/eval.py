"""``s2kit eval``: a trained executor on the generalization suites, with 95% CIs."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from s2kit.cli._common import (
    JsonOption,
    SetOption,
    check_output,
    command,
    console,
    err_console,
    fail,
    json_text,
    print_json,
    progress_bars,
    state,
)
from s2kit.cli._tables import suites_table
from s2kit.core.checkpoints import checkpoint_executor
from s2kit.core.config import PipelineConfig, compose_pipeline, parse_override
from s2kit.core.errors import ConfigError
from s2kit.core.registry import get_registry
from s2kit.workflows.evaluate import (
    WorkerError,
    evaluate,
    plan_blocks,
    plot_suites,
    shift_results,
    suites_of,
)
from s2kit.core.metrics import summarize
from s2kit.core.types import EpisodeResult

app = typer.Typer()

SHIFT_MEAN = "shift mean"
#: The row of a robot that declares no suites: its episodes, under its own defaults.
NO_SUITE = "all"


def _default_workers() -> int:
    return min(2, os.cpu_count() or 1)


@app.command("eval")
@command
def eval_(
    robot: Annotated[str, typer.Option(help="Robot plugin, e.g. hsr or txg2.")],
    run: Annotated[
        Path | None,
        typer.Argument(
            metavar="RUN",
            help="A trained checkpoint folder, or a training run (its newest checkpoint).",
        ),
    ] = None,
    suites: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated task suites (default: every suite the robot declares; "
            "its first is in distribution, the rest shifts)."
        ),
    ] = None,
    episodes: Annotated[int, typer.Option(min=1, help="Episodes per suite.")] = 20,
    seed: Annotated[
        int,
        typer.Option(
            min=0, help="Seed of each suite's first episode (kept clear of training seeds)."
        ),
    ] = 100_000,
    planner: Annotated[
        str,
        typer.Option(
            help="Planner plugin giving the guidance. The default, oracle, plans from the robot's own "
            "subtask texts (Robot.task); on a robot that gives none it stops with an error: pick "
            "another (e.g. instruction, retrieval)."
        ),
    ] = "oracle",
    executor: Annotated[
        str | None,
        typer.Option(help="Executor plugin, instead of RUN (e.g. scripted)."),
    ] = None,
    skill: Annotated[
        str | None,
        typer.Option(
            help="Skill plugin (e.g. sof, its options by --set skill.KEY=VALUE): it gives the chunks whose guidance it "
            "accepts; without RUN or --executor it acts alone."
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="Worker processes (default: min(2, CPU count))."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Write eval.json and eval.png (and videos/) into this folder."
        ),
    ] = None,
    video: Annotated[
        bool,
        typer.Option(
            "--video",
            help="One MP4 per episode in OUT/videos/<suite>/, kept patches overlaid.",
        ),
    ] = False,
    set_: SetOption = None,
    json_: JsonOption = False,
) -> None:
    """Evaluate an executor on task suites: per-suite mean subtask and task success with 95% CIs.

    Give a trained RUN (checkpoint or training run folder) or --executor, or a --skill to act alone. Each
    suite runs --episodes episodes from --seed on; episodes are spread over
    --workers processes, with the same results as one. The last row is the
    mean over the shift suites (every suite but the robot's first, its
    in-distribution one). A robot that declares no suites runs one set of
    episodes. Episodes cut short by Ctrl-C are left out of the means (the
    report says how many). Suites and --out are checked before the first
    episode; videos that fail to write end the command with exit code 1.
    """
    if run is not None and executor is not None or (run is None and executor is None and skill is None):
        which = "not both" if run is not None else "one is needed"
        raise ConfigError(
            f"give RUN (a trained checkpoint or run folder) or --executor NAME (or --skill NAME alone): {which}"
        )
    robot_cls = get_registry().get("robot", robot).cls
    declared = robot_cls.suites()  # type: ignore[attr-defined]
    names = suites_of(robot_cls, suites, every=True)  # type: ignore[arg-type]
    if any(parse_override(text)[0] == ["robot", "suite"] for text in set_ or []):
        raise ConfigError("set the suites with --suites, not --set robot.suite")
    if video and out is None:
        raise ConfigError("--video needs --out DIR (videos go to DIR/videos/<suite>/)")
    check_output(out, "--out", folder=True)
    workers = workers or _default_workers()

    overrides = list(set_ or [])
    if run is not None:
        executor = checkpoint_executor(run)
        # JSON quoting keeps the path a string whatever it looks like ("123", "yes").
        overrides.insert(0, f"executor.checkpoint={json.dumps(str(run))}")

    def pipeline(suite: str | None) -> PipelineConfig:
        return compose_pipeline(
            None,
            components={"robot": robot, "planner": planner, "executor": executor, "skill": skill},
            runtime={"episodes": episodes, "seed": seed},
            overrides=overrides
            + ([f"robot.suite={json.dumps(suite)}"] if suite is not None else []),
        )

    base = pipeline(None)
    configs = {name: pipeline(name) for name in names} if names else {NO_SUITE: base}
    blocks = plan_blocks(
        configs, workers, out / "videos" if video and out is not None else None
    )

    progress = progress_bars(not json_ and err_console.is_terminal)
    tasks = {name: progress.add_task(name, total=episodes) for name in configs}
    try:
        with progress:
            evaluation = evaluate(
                blocks, workers, on_episode=lambda suite: progress.advance(tasks[suite])
            )
    except WorkerError as err:
        if state.debug and err.remote_traceback:
            err_console.print(err.remote_traceback, highlight=False, markup=False)
        raise
    per_suite, cut = evaluation.per_suite, evaluation.cut
    left_out = sum(len(v) for v in cut.values())
    in_distribution = declared[0] if declared else None
    shift = [n for n in names if n != in_distribution]
    report: dict[str, Any] = {
        "settings": {
            "run": str(run) if run is not None else None, "robot": robot, "suites": names, "episodes": episodes,
            "seed": seed, "planner": planner, "executor": executor, "skill": skill, "workers": workers,
            "out": str(out) if out is not None else None, "video": video, "set": list(set_ or []),
        },
        "pipeline": base.model_dump(mode="json"),
        "suites": {n: {"episodes": per_suite[n], "interrupted_episodes": cut.get(n, []), "summary": summarize(per_suite[n])} for n in configs},
        "shift_mean": {"suites": shift, "summary": summarize(shift_results(per_suite, in_distribution))} if shift else None,
        "interrupted": evaluation.interrupted,
        "left_out_interrupted": left_out,
        "failures": evaluation.warnings,
    }  # fmt: skip

    written = []
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "eval.json").write_text(json_text(report))
        summaries = {n: s["summary"] for n, s in report["suites"].items()}
        if shift:
            summaries[SHIFT_MEAN] = report["shift_mean"]["summary"]
        plot_suites(out / "eval.png", summaries, _title(base))
        written = [out / "eval.json", out / "eval.png"] + (
            [out / "videos"] if video else []
        )

    if json_:
        print_json(report)
    else:
        totals: dict[str, list[EpisodeResult]] = (
            {SHIFT_MEAN: shift_results(per_suite, in_distribution)} if shift else {}
        )
        console.print(suites_table(per_suite, totals, title=_title(base)))
        for name in configs:
            for r in per_suite[name]:
                if r.message:
                    console.print(
                        f"{name} episode {r.index} (seed {r.seed}): {r.message}",
                        highlight=False,
                    )
        if left_out:
            console.print(f"{left_out} episode(s) cut short by Ctrl-C are left out of the means", highlight=False)
        for path in written:
            console.print(f"wrote {path}", highlight=False)
    if evaluation.warnings:  # an output (videos) stopped during the run: it is incomplete
        raise fail("; ".join(evaluation.warnings), 1)
    if evaluation.interrupted:
        raise typer.Exit(130)


def _title(config: PipelineConfig) -> str:
    """``robot · planner · executor · skill`` (those it has), with the checkpoint's folder name where there is one."""
    actors = []
    for section in (config.executor, config.skill):
        if section:
            name = str(section["name"])
            if section.get("checkpoint"):
                name = f"{name} ({Path(str(section['checkpoint'])).name})"
            actors.append(name)
    return " · ".join([str(config.robot["name"]), str(config.planner["name"]), *actors])
