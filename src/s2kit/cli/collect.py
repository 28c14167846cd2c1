"""``s2kit collect``: record episodes (the scripted expert by default) as a LeRobot v3.0 dataset."""

from __future__ import annotations

import json as jsonlib  # the command has a --json flag named json
import time
from pathlib import Path
from typing import Annotated, Literal

import typer

from s2kit import hookimpl
from s2kit.cli._common import (
    JsonOption,
    SetOption,
    check_output,
    command,
    console,
    err_console,
    print_json,
)
from s2kit.cli._tables import results_table
from s2kit.cli.run import run_with_progress
from s2kit.core.checkpoints import checkpoint_executor
from s2kit.core.config import compose_pipeline
from s2kit.workflows.collect import LeRobotRecorder, PerturbedRobot
from s2kit.workflows.dagger import DaggerRecorder, attach_learner, check_beta
from s2kit.workflows.evaluate import suites_of
from s2kit.core.errors import ConfigError, DataError
from s2kit.core.metrics import summarize
from s2kit.core.registry import get_registry
from s2kit.core.runtime import build_runtime


@command
def collect(
    robot: Annotated[str, typer.Option(help="Robot plugin, e.g. hsr or txg2.")],
    out: Annotated[Path, typer.Option(help="Dataset folder: created, or appended to if it holds a dataset with the same features.")],
    suite: Annotated[
        str | None,
        typer.Option(help="Task suite (sets robot.suite); default: the robot's first (in-distribution) one, if it declares any."),
    ] = None,
    episodes: Annotated[int, typer.Option(min=1, help="Episodes to run.")] = 10,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the first episode; episode i uses seed + i.")] = 0,
    planner: Annotated[
        str,
        typer.Option(help="Planner writing the guidance annotations; oracle takes the robot's own subtask texts (Robot.task)."),
    ] = "oracle",
    executor: Annotated[
        str, typer.Option(help="Executor producing the actions; with --dagger, the expert that labels every state.")
    ] = "scripted",
    keep: Annotated[
        Literal["success", "all"] | None,
        typer.Option(help="Keep only successful episodes, or all. Default: success; with --dagger, all (the learner's failures are what DAgger is for)."),
    ] = None,
    noise: Annotated[
        float,
        typer.Option(min=0.0, help="DART: std (metres per step) of noise added to the executed translation; the dataset keeps the clean command."),
    ] = 0.0,
    dagger: Annotated[
        Path | None,
        typer.Option(
            metavar="RUN",
            help="DAgger: this trained checkpoint (or run) drives, mixed with the expert by --beta, and the expert "
            "labels every state: the dataset's action is the expert's command, with dagger.executed_action and dagger.driver beside it.",
        ),
    ] = None,
    beta: Annotated[
        float,
        typer.Option(help="With --dagger: the probability that the expert drives a segment (execute_horizon steps); 0: the learner alone."),
    ] = 0.0,
    set_: SetOption = None,
    json: JsonOption = False,
) -> None:
    """Record episodes as a LeRobot v3.0 dataset, with S2 guidance annotations per frame.

    With --dagger RUN the trained executor drives and the expert labels (see
    docs/simulation.md, DAgger). An episode cut short by Ctrl-C is never saved
    (it is counted as dropped).
    """
    if dagger is not None:
        check_beta(beta)
        if noise:
            raise ConfigError("--noise and --dagger do not combine: DAgger's executed commands are the learner's")
        checkpoint_executor(dagger)  # RUN must be a checkpoint, before anything starts
    elif beta:
        raise ConfigError("--beta is DAgger's: give --dagger RUN too")
    check_output(out, "--out", folder=True)
    suites = suites_of(get_registry().get("robot", robot).cls, suite)  # type: ignore[arg-type]
    if len(suites) > 1:
        raise ConfigError(f"collect records one suite at a time, not {', '.join(suites)}")
    config = compose_pipeline(
        None,
        components={"robot": robot, "planner": planner, "executor": executor},
        runtime={"episodes": episodes, "seed": seed},
        overrides=[*(f"robot.suite={jsonlib.dumps(s)}" for s in suites), *(set_ or [])],
    )
    runtime = build_runtime(config, get_registry())
    if noise:
        runtime.robot = PerturbedRobot(runtime.robot, runtime.space, noise)  # type: ignore[assignment]
    try:
        if dagger is not None:
            attach_learner(runtime, dagger, beta=beta, registry=get_registry(), seed=seed)
            recorder: LeRobotRecorder = DaggerRecorder(out, runtime.spec, runtime.space.name, keep=keep or "all")
        else:
            recorder = LeRobotRecorder(out, runtime.spec, runtime.space.name, keep=keep or "success")
    except BaseException:
        for component in reversed(runtime.components):  # skill, executor, planner, robot
            component.close()
        raise
    runtime.subscribers.append(recorder)
    start = time.perf_counter()
    results = run_with_progress(runtime, show=not json and err_console.is_terminal)
    elapsed = time.perf_counter() - start
    for sub, why in runtime.detached:
        if sub is recorder:  # the episodes already saved stay valid; say what stopped the rest
            raise DataError(f"recording into {out} failed after {recorder.saved} saved episode(s): {why}")
    report = {
        "dataset": str(out),
        "saved": recorder.saved,
        "dropped": recorder.dropped,
        "interrupted": recorder.interrupted,
        "seconds": elapsed,
        "episodes_per_minute": 60 * len(results) / elapsed if elapsed else None,
        "summary": summarize(results),
    }
    if isinstance(recorder, DaggerRecorder):
        report["dagger"] = {"run": str(dagger), "beta": beta, "steps_driven": dict(recorder.driven)}
    if json:
        print_json({**report, "episodes": results})
    else:
        actor = executor if dagger is None else f"dagger {dagger.name} beta {beta}"
        console.print(results_table(results, " · ".join(["collect", robot, *suites, planner, actor])))
        cut = f" ({recorder.interrupted} cut short by Ctrl-C)" if recorder.interrupted else ""
        console.print(f"saved {recorder.saved} episode(s), dropped {recorder.dropped}{cut}, into {out} ({elapsed:.1f} s)")
        if isinstance(recorder, DaggerRecorder):
            driven = recorder.driven
            console.print(f"the expert drove {driven['expert']} step(s), the learner {driven['learner']}", highlight=False)
    if runtime.interrupted:
        raise typer.Exit(130)


@hookimpl
def s2kit_register_commands(cli: typer.Typer) -> None:
    cli.command("collect")(collect)
