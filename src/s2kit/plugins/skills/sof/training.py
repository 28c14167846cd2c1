"""Training SOF's skill tokenizer on action-free video and its skill planner on video and language, through the
kit's loop; their checkpoints and the tokenizer's report.

`train_tokenizer` checks the sources (`open_sources`: before anything is
cached or trained), builds the flow windows, holds out episodes, sets the
network's flow statistics from the training episodes, and hands model,
sampler and validation batches to the kit (`s2kit.learning.trainer`:
`start_processes`, `resume_state`, `fit`, `validate`): the optimizer and its
schedule, EMA, data parallel, resume, metrics.jsonl and checkpoints are the
kit's. The executor trainer (`s2kit train`) is not used because its data are
frames with state, actions and guidance, which action-free video has not.

A checkpoint is a kit checkpoint folder (`s2kit.learning.checkpoints`:
model.safetensors, config.json, training_state.pt) whose config.json is a
`TokenizerInfo` (``kind: sof.tokenizer``) rather than an executor's record;
`load_tokenizer` reads it, with the kit's `load_weights` checks.

At the end the last checkpoint is loaded back and scored on the held-out
windows: ``RUN/report.json`` and one log line.

`train_planner` trains the skill planner on LeRobot datasets' frames and
language annotations, no actions: the kit's `prepare` (with ``actions``
off; the planner derives its targets with the tokenizer) and `fit`. Its
checkpoint's config.json is a `PlannerInfo` (``kind: sof.planner``), read
back by `load_planner`. (The translator learns from actions: it is the
kit executor ``sof-translator``, trained by ``s2kit train``.)
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from s2kit.core.checkpoints import CONFIG, read_config
from s2kit.core.config import describe_validation_error, validate_model
from s2kit.learning.checkpoints import CheckpointError, load_weights
from s2kit.learning.trainer import RunConfig, TrainConfig, fit, prepare, resume_state, split_episodes, start_processes, validate
from s2kit.plugins.skills.sof.planner import PlannerConfig, SkillPlanner
from s2kit.plugins.skills.sof.tokenizer import SkillTokenizer, TokenizerConfig
from s2kit.plugins.skills.sof.videos import FlowWindows, WindowSampler, flow_name, load_windows, open_sources

__all__ = [
    "KIND", "PLANNER_KIND", "REPORT", "PlannerInfo", "PlannerTrainConfig", "TokenizerInfo", "TokenizerTrainConfig", "evaluate",
    "load_planner", "load_tokenizer", "train_planner", "train_tokenizer",
]  # fmt: skip

#: What a tokenizer checkpoint's config.json says it is.
KIND = "sof.tokenizer"
#: What a planner checkpoint's config.json says it is.
PLANNER_KIND = "sof.planner"
#: The report a training run writes in its folder.
REPORT = "report.json"
#: Held-out windows scored at most (drawn with a fixed seed), in batches of this many.
_VAL_WINDOWS, _VAL_BATCH = 2048, 256


class TokenizerTrainConfig(RunConfig):
    """How the skill tokenizer trains: the kit's `RunConfig` (``model.*`` are `TokenizerConfig` fields), with defaults
    for its small network (docs/skills.md, "Skill tokenizer")."""

    steps: int = Field(2000, ge=1)
    batch_size: int = Field(32, ge=1, description="Windows per step over all processes.")
    lr: float = Field(1e-3, gt=0)
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0, description="Episodes held out for validation and the report.")
    val_every: int = Field(250, ge=1)
    save_every: int = Field(500, ge=1)


class TokenizerInfo(BaseModel):
    """A tokenizer checkpoint's config.json: the network's config and what it was trained on."""

    model_config = ConfigDict(extra="forbid")

    format: int = 1
    kind: Literal["sof.tokenizer"] = KIND
    model: TokenizerConfig
    step: int = 0
    fps: float = Field(description="Frame rate of the training video: a window spans window / fps seconds.")
    flow: str = Field(description="The optical flow it was trained on (`s2kit.plugins.skills.sof.videos.flow_name`).")
    sources: list[dict[str, Any]] = Field(default_factory=list)
    train: dict[str, Any] = Field(default_factory=dict, description="The training config that produced it.")


def _batches(windows: FlowWindows | None) -> list[dict[str, torch.Tensor]]:
    """Fixed validation batches: up to `_VAL_WINDOWS` windows, the same at every evaluation."""
    if windows is None:
        return []
    pick = torch.randperm(len(windows), generator=torch.Generator().manual_seed(12345))[:_VAL_WINDOWS]
    return [windows.batch(part) for part in pick.split(_VAL_BATCH)]


def train_tokenizer(
    data: Sequence[str | Path],
    out: str | Path,
    config: TokenizerTrainConfig,
    *,
    resume: bool = False,
    progress: Callable[[int, dict[str, float]], None] | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Train a skill tokenizer on the videos of ``data`` (LeRobot datasets, folders of videos) into run folder ``out``;
    the last checkpoint's folder. Bad sources or options are one error before anything is cached."""
    out = Path(out)
    model_config: TokenizerConfig = validate_model(TokenizerConfig, config.model, "train-tokenizer: model")  # type: ignore[assignment]
    sources = open_sources(data, model_config.cameras[0], model_config.window)
    processes = start_processes(config)
    rank, world = processes.rank, processes.world
    record = {"model": KIND, "data": [str(d) for d in data], "config": config.model_dump()}
    state = resume_state(out, record, config, resume)

    started = time.perf_counter()
    if rank > 0:  # rank 0 computes the frames and flow into the cache once; the others map them
        torch.distributed.barrier()
    windows = load_windows(sources, image_size=model_config.image_size, window=model_config.window, cache=config.cache, log=log if rank == 0 else None)
    if rank == 0 and world > 1:
        torch.distributed.barrier()
    train_windows, val_windows = split_episodes(windows, config.val_fraction, config.seed)
    scale, mean = train_windows.statistics(seed=config.seed)
    model = SkillTokenizer(model_config)
    model.flow_scale.fill_(scale)
    model.mean_flow.copy_(mean)
    model = model.to(processes.device)
    sampler = WindowSampler(train_windows, seed=config.seed * 1000 + rank)
    info = TokenizerInfo(
        model=model_config, fps=sources[0].fps, flow=flow_name(), sources=[s.record() for s in sources], train=config.model_dump()
    )
    if rank == 0:
        held = 0 if val_windows is None else val_windows.num_episodes
        log(
            f"skill tokenizer: {train_windows.num_episodes} episodes / {len(train_windows)} windows for training, {held} episodes "
            f"held out (frames and flow ready in {time.perf_counter() - started:.0f} s); flow RMS {scale:.3f} px; "
            f"{model.parameter_count() / 1e6:.2f} M parameters; {model.fsq.codebook_size} codes; steps "
            f"{0 if state is None else int(state['step'])}..{config.steps}"
        )
    val_batches = _batches(val_windows) if rank == 0 else []
    last = fit(model, sampler, out, config, info, record=record, processes=processes, state=state, val_batches=val_batches, progress=progress, log=log)
    if rank == 0:
        held_out = val_windows is not None
        report = evaluate(last, val_windows if held_out else train_windows) | {"held_out": held_out}
        (out / REPORT).write_text(json.dumps(report, indent=2) + "\n")
        log(report_line(report))
    return last


def evaluate(checkpoint: str | Path, windows: FlowWindows) -> dict[str, Any]:
    """The tokenizer of ``checkpoint``, loaded back, scored on ``windows`` (`SkillTokenizer.validation_metrics`)."""
    model, info, folder = load_tokenizer(checkpoint)
    batches = _batches(windows)
    figures = validate(model, batches)
    return {
        "checkpoint": str(folder), "step": info.step, "episodes": windows.num_episodes, "windows": sum(len(b["flow"]) for b in batches),
        "window": info.model.window, "tokens": info.model.tokens, "levels": info.model.levels, "codebook": model.fsq.codebook_size,
        "image_size": info.model.image_size, "camera": info.model.cameras[0], "fps": info.fps, **figures,
    }  # fmt: skip


def report_line(report: dict[str, Any]) -> str:
    """The report in one line."""
    where = f"{report['episodes']} held-out episodes" if report.get("held_out", True) else f"the {report['episodes']} training episodes (none held out)"
    return (
        f"skill tokenizer on {where} ({report['windows']} windows): EPE {report['epe_px']:.3f} px against zero flow "
        f"{report['epe_zero_px']:.3f} and mean flow {report['epe_mean_px']:.3f}; on moving pixels ({report['moving_fraction']:.0%}) "
        f"{report['moving_epe_px']:.3f} against {report['moving_epe_zero_px']:.3f} and {report['moving_epe_mean_px']:.3f}; "
        f"codes used {report['codes_used']:.0f} of {report['codebook']} ({report['code_usage']:.0%}), perplexity {report['perplexity']:.1f}"
    )


def load_tokenizer(path: str | Path, device: str = "cpu") -> tuple[SkillTokenizer, TokenizerInfo, Path]:
    """(the tokenizer in eval mode, its info, the checkpoint folder) of a checkpoint or a run's newest one; a checkpoint
    that is not a tokenizer's, or is corrupt, is one `CheckpointError` naming the file."""
    return _load(path, device, TokenizerInfo, SkillTokenizer, "SOF skill tokenizer")  # type: ignore[return-value]


def _load(path: str | Path, device: str, info_class: type[BaseModel], model_class: type[Any], what: str) -> tuple[Any, Any, Path]:
    """A checkpoint of one of SOF's own kinds (its config.json's ``kind`` is ``info_class``'s), loaded with the kit's checks."""
    folder, raw = read_config(path)
    where = folder / CONFIG
    kind = info_class.model_fields["kind"].default
    if not isinstance(raw, dict) or raw.get("kind") != kind:
        if isinstance(raw, dict) and raw.get("executor"):
            other = f"executor {raw['executor']!r}'s"
        elif isinstance(raw, dict) and raw.get("kind"):
            other = f"a {raw['kind']!r}"
        else:
            other = "another kind of"
        raise CheckpointError(f"{where} is {other} checkpoint, not a {what}'s")
    try:
        info = info_class.model_validate(raw)
    except ValidationError as err:
        raise CheckpointError(f"{where}: {describe_validation_error(err, info_class)}") from None
    model = model_class(info.model)  # type: ignore[attr-defined]
    load_weights(folder, model, device)
    return model.to(device).eval(), info, folder


# --- the skill planner -----------------------------------------------------------------------------


class PlannerTrainConfig(TrainConfig):
    """How the skill planner trains: the kit's `TrainConfig` (``model.*`` are `PlannerConfig` fields). Without pixel
    augmentation by default, so that the frozen trunk runs once per frame."""

    steps: int = Field(3000, ge=1)
    augment: bool = Field(False, description="Random shifts of up to 4 px per image (the trunk then runs on every batch).")
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0, description="Episodes held out for validation.")


class PlannerInfo(BaseModel):
    """A planner checkpoint's config.json: the network's config, the tokenizer it plans in, what it was trained on."""

    model_config = ConfigDict(extra="forbid")

    format: int = 1
    kind: Literal["sof.planner"] = PLANNER_KIND
    model: PlannerConfig
    step: int = 0
    fps: float = Field(description="Frame rate of the training video.")
    datasets: list[dict[str, Any]] = Field(default_factory=list)
    train: dict[str, Any] = Field(default_factory=dict, description="The training config that produced it.")


def train_planner(
    data: Sequence[str | Path],
    out: str | Path,
    config: PlannerTrainConfig,
    *,
    resume: bool = False,
    progress: Callable[[int, dict[str, float]], None] | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Train a skill planner on the LeRobot datasets ``data`` (frames and annotations; actions are not read) into run
    folder ``out``, its targets labelled by the tokenizer ``model.tokenizer``; the last checkpoint's folder."""
    out = Path(out)
    model_config: PlannerConfig = validate_model(PlannerConfig, config.model, "train-planner: model")  # type: ignore[assignment]
    SkillPlanner.check_training(model_config, "train-planner")
    processes = start_processes(config)
    record = {"model": PLANNER_KIND, "data": [str(d) for d in data], "config": config.model_dump()}
    state = resume_state(out, record, config, resume)
    start_step = int(state["step"]) if state is not None else 0
    prepared = prepare(SkillPlanner, model_config, data, config, processes, log=log, name="sof skill planner", actions=False, start_step=start_step)
    frames = prepared.train_frames
    info = PlannerInfo(model=prepared.model.config, fps=frames.fps, datasets=frames.datasets, train=config.model_dump())
    return fit(
        prepared.model, prepared.sampler, out, config, info, record=record, processes=processes, state=state,
        val_batches=prepared.val_batches, progress=progress, log=log,
    )  # fmt: skip


def load_planner(path: str | Path, device: str = "cpu") -> tuple[SkillPlanner, PlannerInfo, Path]:
    """(the planner in eval mode, its info, the checkpoint folder) of a checkpoint or a run's newest one; one
    `CheckpointError` naming the file where it is not a planner's or is corrupt."""
    return _load(path, device, PlannerInfo, SkillPlanner, "SOF skill planner")  # type: ignore[return-value]
