"""``s2kit run``: run a pipeline's episodes and report subtask success."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import Progress

from s2kit.cli._common import (
    JsonOption,
    SetOption,
    check_output,
    command,
    console,
    err_console,
    fail,
    print_json,
    progress_bars,
)
from s2kit.cli._tables import results_table, suites_table
from s2kit.core.config import compose_pipeline
from s2kit.core.data.recorder import Recorder, check_recording
from s2kit.workflows.evaluate import run_to_end, suites_of
from s2kit.core.interfaces import Subscriber
from s2kit.core.metrics import summarize
from s2kit.core.registry import get_registry
from s2kit.core.runtime import Runtime, build_runtime
from s2kit.core.types import EpisodeInfo, EpisodeResult, Step

app = typer.Typer()


class ProgressSubscriber(Subscriber):
    """Rich progress bars: episodes, and steps within the current episode."""

    def __init__(self, progress: Progress, episodes: int, max_steps: int) -> None:
        self.progress = progress
        self.max_steps = max_steps
        self.episodes = progress.add_task("episodes", total=episodes)
        self.steps = progress.add_task("steps", total=max_steps)

    def on_episode_start(self, info: EpisodeInfo) -> None:
        self.progress.reset(self.steps, total=self.max_steps, description=f"episode {info.index} (seed {info.seed})")

    def on_step(self, step: Step) -> None:
        self.progress.advance(self.steps)

    def on_episode_end(self, result: EpisodeResult) -> None:
        self.progress.advance(self.episodes)


@app.command("run")
@command
def run(
    pipeline: Annotated[
        Path | None, typer.Argument(help="Pipeline YAML; default: the embedded simulated-robot pipeline.")
    ] = None,
    robot: Annotated[str | None, typer.Option(help="Robot plugin (replaces the pipeline's robot section).")] = None,
    planner: Annotated[str | None, typer.Option(help="Planner plugin (replaces the planner section).")] = None,
    executor: Annotated[str | None, typer.Option(help="Executor plugin (replaces the executor section).")] = None,
    skill: Annotated[
        str | None,
        typer.Option(
            help="Skill plugin (replaces the skill section): it gives the chunks whose guidance it accepts, "
            "the executor the rest; without --executor or a file's executor it acts alone."
        ),
    ] = None,
    suite: Annotated[
        str | None,
        typer.Option(help="Task suite(s), comma-separated, of those the robot declares (sets robot.suite); default: the robot's own."),
    ] = None,
    episodes: Annotated[int | None, typer.Option(min=1, help="Episodes to run.")] = None,
    seed: Annotated[int | None, typer.Option(min=0, help="Seed of the first episode; episode i uses seed + i.")] = None,
    record: Annotated[Path | None, typer.Option(help="Record every episode into this folder.")] = None,
    video: Annotated[Path | None, typer.Option(help="Write one MP4 per episode (all cameras) into this folder.")] = None,
    metrics: Annotated[
        Path | None, typer.Option(help="Append each episode's result and timings to this JSONL file.")
    ] = None,
    set_: SetOption = None,
    json: JsonOption = False,
) -> None:
    """Run a pipeline: robot, planner, executor (and a skill), for some episodes, and report subtask success.

    With several suites (--suite id,distractor) each runs in turn and a last
    table gives every suite's mean subtask and task success with 95% CIs.
    Every suite's pipeline and every output path are checked before the first
    episode; an output that fails during the run (a full disk) ends it with
    exit code 1, naming the episodes that were kept.
    """
    suites: list[str | None] = [None]  # None: the pipeline's or the robot's own default
    if suite is not None:
        robot_name = compose_pipeline(pipeline, components={"robot": robot}, overrides=set_ or []).robot["name"]
        suites = [*suites_of(get_registry().get("robot", robot_name).cls, suite)]  # type: ignore[arg-type]
    many = len(suites) > 1

    def where(path: Path | None, name: str | None) -> Path | None:
        # one folder (or metrics file) per suite when there are several
        if path is None or not many:
            return path
        return path / name if path.suffix == "" else path.with_name(f"{path.stem}.{name}{path.suffix}")

    planned = []  # every suite's pipeline and outputs, checked before the first episode
    for name in suites:
        config = compose_pipeline(
            pipeline,
            components={"robot": robot, "planner": planner, "executor": executor, "skill": skill},
            runtime={"episodes": episodes, "seed": seed},
            overrides=([f"robot.suite={name}"] if name is not None else []) + list(set_ or []),
        )
        outputs = {"record": where(record, name), "video": where(video, name), "metrics": where(metrics, name)}
        for what, path in outputs.items():
            check_output(path, f"--{what}", folder=what != "metrics")
        planned.append((name, config, outputs))

    per_suite: dict[str, list[EpisodeResult]] = {}
    interrupted = False
    failures: list[str] = []
    for name, config, outputs in planned:
        results, interrupted, failures = _run_pipeline(config, outputs, show_progress=not json and err_console.is_terminal)
        label = name or config.robot.get("suite")
        per_suite[str(label)] = results
        if not json:
            parts = [config.robot["name"], label, config.planner["name"], *(c["name"] for c in (config.executor, config.skill) if c)]
            title = " · ".join(str(p) for p in parts if p)
            console.print(results_table(results, title))
            for r in results:
                if r.message:
                    console.print(f"episode {r.index}: {r.message}", highlight=False)
            for what, path in outputs.items():
                if path is not None:
                    console.print(f"{what}: {path}")
        if interrupted or failures:
            break

    if json:
        out: dict[str, Any] = {"pipeline": config.model_dump(mode="json"), "interrupted": interrupted, "failures": failures}
        if many:
            out["suites"] = {k: {"episodes": v, "summary": summarize(v)} for k, v in per_suite.items()}
        else:
            results = next(iter(per_suite.values()))
            out.update(episodes=results, summary=summarize(results))
        print_json(out)
    elif many:
        console.print(suites_table(per_suite))
    if failures:
        raise fail("; ".join(failures), 1)
    if interrupted:
        raise typer.Exit(130)


def _run_pipeline(
    config: Any, outputs: dict[str, Path | None], show_progress: bool
) -> tuple[list[EpisodeResult], bool, list[str]]:
    """Build the pipeline's runtime with the asked-for subscribers (record, video, metrics: plugins make them) and run it.

    Returns the episodes, whether Ctrl-C ended the run, and a line for each
    subscriber that failed during it (its output is incomplete).
    """
    options = {k: str(v) for k, v in outputs.items() if v is not None}
    runtime = build_runtime(config, get_registry(), options=options)
    if outputs.get("record") is not None:  # another robot's recording is refused before the first episode
        try:
            check_recording(outputs["record"], runtime.spec, runtime.space.name)  # type: ignore[arg-type]
        except BaseException:
            runtime.close()
            for component in reversed(runtime.components):
                component.close()
            raise
    results = run_with_progress(runtime, show_progress)
    return results, runtime.interrupted, [_failure(sub, why, outputs) for sub, why in runtime.detached]


def _failure(sub: Subscriber, why: str, outputs: dict[str, Path | None]) -> str:
    """One line on a subscriber that stopped during a run; for the recorder, the episodes it kept."""
    if not isinstance(sub, Recorder):
        return f"{type(sub).__name__} stopped during the run ({why})"
    kept = ", ".join(f"{index} ({file})" for index, file in sub.saved) or "none"
    return f"recording into {outputs['record']} failed ({why}); episodes kept: {kept}"


def run_with_progress(runtime: Runtime, show: bool) -> list[EpisodeResult]:
    """Run every episode of ``runtime`` (with progress bars when ``show``), then close it and its components."""
    progress = progress_bars(show)
    if show:
        runtime.subscribers.append(ProgressSubscriber(progress, runtime.config.episodes, runtime.config.max_steps))
    with progress:
        return run_to_end(runtime)
