"""The kit's one trainer: any policy on LeRobot datasets, on the CPU or a GPU, in one process or several.

The executor plugin names what is trained: its ``policy_class()`` (a
`s2kit.learning.policy.Policy`) and, optionally, a ``preset`` it forces (S2's
``baseline`` executor trains the ``baseline`` preset); the run's ``variant``
names a preset otherwise, and ``model.*`` overrides fields over it. The
trainer names no model.

One process, or several under torchrun (``torchrun --nproc-per-node 2 -m
s2kit.cli.main train ...``): each rank draws its own share of every batch,
gradients are averaged by DistributedDataParallel (gloo on the CPU, NCCL on
GPUs), rank 0 validates, logs and saves. Fixed seeds make a run repeatable;
``resume`` continues from the run's newest checkpoint with its optimizer,
schedule, EMA and random states, bit for bit.

With ``ema`` > 0 the trainer keeps an exponential moving average of the
weights: a checkpoint's ``model.safetensors`` holds it (and validation scores
it), its ``training_state.pt`` the raw weights and the average both.

A run folder holds ``train.json`` (the config and datasets it was started
with), ``metrics.jsonl`` (losses) and ``checkpoints/step_NNNNNNN/``
(`s2kit.learning.checkpoints`).

`train` is an executor's policy on LeRobot datasets (frames, state, actions,
guidance): `prepare` (frames loaded, what the policy derives from them,
normalization, guidance embeddings, the network, its sampler and validation
batches) and then `fit`, the loop, which knows neither model nor data. A
model on the same frames that is not an executor's (SOF's skill planner,
which reads no actions) calls `prepare` and `fit` with a checkpoint record
of its own; a model with data of another kind (SOF's skill tokenizer on the
optical flow of action-free video) prepares its own batches and trains
through the same `start_processes`, `resume_state`, `fit` and `validate`.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import torch
from pydantic import BaseModel, ConfigDict, Field

from s2kit.core.checkpoints import find_checkpoint
from s2kit.core.config import validate_model
from s2kit.core.errors import ConfigError, S2kitError
from s2kit.learning.augment import augment
from s2kit.learning.batch import ACTION_MASK, ACTIONS, DONE
from s2kit.learning.checkpoints import (
    TRAINING,
    CheckpointError,
    CheckpointInfo,
    Embodiment,
    save_checkpoint,
)
from s2kit.learning.data import EE_STATE, FrameData, Normalizer, guidance_embeddings, load_frames
from s2kit.learning.policy import Policy, PolicyConfig

__all__ = [
    "BatchSource",
    "Episodes",
    "FrameSampler",
    "Prepared",
    "Processes",
    "RunConfig",
    "TrainConfig",
    "TrainingError",
    "fit",
    "lr_factor",
    "model_settings",
    "prepare",
    "resume_state",
    "split_episodes",
    "start_processes",
    "train",
    "validate",
]


class TrainingError(S2kitError):
    """Training cannot go on (the loss became non-finite)."""


class RunConfig(BaseModel):
    """How any model on the kit trains (optimization, held-out share, frame cache, bookkeeping); `TrainConfig` adds
    what an executor's policy trains on, and a model trained by a command of its own (SOF's skill tokenizer) adds its
    data options the same way. Every field can be set with ``--set key=value`` (``--set model.dim=64``)."""

    model_config = ConfigDict(extra="forbid")

    model: dict[str, Any] = Field(default_factory=dict, description="Fields of the model's config (over the preset's, where it has presets).")
    # optimization
    steps: int = Field(3000, ge=1)
    batch_size: int = Field(64, ge=1, description="Samples per step over all processes.")
    lr: float = Field(3e-4, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    warmup_steps: int = Field(100, ge=0, description="Linear learning-rate warm-up over this many steps, then the lr_schedule.")
    lr_schedule: Literal["cosine", "linear", "constant"] = Field(
        "cosine", description="After the warm-up: cosine or linear decay from lr to lr_final * lr, or constant lr."
    )
    lr_final: float = Field(0.1, ge=0.0, le=1.0, description="The learning rate at the last step, as a fraction of lr (cosine, linear).")
    grad_clip: float = Field(1.0, gt=0)
    ema: float = Field(
        0.0, ge=0.0, lt=1.0,
        description="Decay of an exponential moving average of the weights, updated every step (e.g. 0.999); checkpoints "
        "and validation use the average. 0: none.",
    )  # fmt: skip
    seed: int = 0
    # data
    val_fraction: float = Field(0.05, ge=0.0, lt=1.0, description="Episodes held out for validation.")
    cache: str = Field(
        "auto",
        description="Where each dataset's decoded frames are kept (memory-mapped): auto (<dataset>/.s2kit-cache, or "
        "$XDG_CACHE_HOME/s2kit where the dataset is read-only), a folder, or off (decode into memory every run).",
    )
    # bookkeeping
    val_every: int = Field(500, ge=1)
    save_every: int = Field(1000, ge=1)
    log_every: int = Field(50, ge=1)
    threads: int | None = Field(None, ge=1, description="torch threads per process (default: torch's).")
    prefetch: bool | None = Field(
        None,
        description="Draw and augment the next batch on a worker thread while the step runs (and copy it to the GPU); the "
        "same batches either way. Default: on a GPU, or where torch's threads leave a core free (docs/benchmarks.md).",
    )
    device: str = Field(
        "cpu", pattern=r"^(cpu|cuda(:\d+)?)$",
        description="Where the network trains: cpu, cuda or cuda:N (batches are drawn on the CPU and copied over). Under torchrun "
        "each process takes the GPU of its local rank. A checkpoint written on either device loads and resumes on the other.",
    )  # fmt: skip


class TrainConfig(RunConfig):
    """How an executor's policy trains on LeRobot datasets: `RunConfig` and what its samples are made of."""

    variant: str | None = Field(None, description="The policy's preset to start from (S2: s2, baseline, guidance_only, budget_only); default: its first.")
    state: Literal["ee", "all"] = Field("ee", description="ee: hand pose and gripper (the same on every robot); all: the whole state.")
    augment: bool = Field(True, description="Random shifts of up to 4 px per image (DrQ-style).")
    colour_jitter: float = Field(
        0.0, ge=0.0, lt=1.0,
        description="Photometric augmentation per image: brightness and contrast by a factor in [1-j, 1+j], each colour channel by "
        "one in [1-j/2, 1+j/2] (0: none).",
    )
    background_jitter: float = Field(
        0.0, ge=0.0, le=1.0,
        description="Probability per image that its large plain, unsaturated regions (table, floor, wall) take new random colours, "
        "keeping their shading; coloured items keep theirs (0: never).",
    )
    precompute: bool = Field(
        True,
        description="Where the policy has a frozen image encoder (a frozen pretrained trunk) and no augmentation changes the "
        "pixels (augment=false, no jitter): run the encoder once per frame before training and keep its features in memory "
        "(float16), instead of on every batch.",
    )
    done_window: int = Field(8, ge=1, description="Frames after a subtask ends that, with the ended subtask's text, are labelled done.")
    stale_fraction: float = Field(0.15, ge=0.0, lt=1.0, description="Share of each batch that is such stale-guidance samples.")


#: Settings that do not change what a run computes: a resumed run may change them.
_BOOKKEEPING = {"steps", "val_every", "save_every", "log_every", "threads", "device", "prefetch", "cache"}


# --- what is trained -----------------------------------------------------------------------


def _policy(executor: Any) -> type[Policy]:
    """The policy class of an executor plugin (class or registered name), from its ``policy_class()``."""
    cls = _executor_class(executor)
    find = getattr(cls, "policy_class", None)
    if find is not None:
        try:
            return find()
        except NotImplementedError:  # `PolicyExecutor`'s own, not overridden
            pass
    raise ConfigError(f"executor {cls.name!r} is not a learned executor on the kit (it names no policy class); it cannot be trained")


def _executor_class(executor: Any) -> Any:
    if isinstance(executor, str):
        from s2kit.core.registry import get_registry

        return get_registry().get("executor", executor).cls
    return executor


def model_settings(executor: Any, config: TrainConfig) -> tuple[str, PolicyConfig]:
    """(the preset, the policy config) a run of ``executor`` trains: the executor's forced ``preset``, or the run's
    ``variant`` (default: the policy's first preset), with ``model.*`` over it."""
    cls = _executor_class(executor)
    policy = _policy(cls)
    presets = policy.presets
    variant = getattr(cls, "preset", None) or config.variant or next(iter(presets), "")
    if presets and variant not in presets:
        raise ConfigError(f"train {cls.name}: unknown variant {variant!r} (known: {', '.join(presets)})")
    if not presets and variant:
        raise ConfigError(f"train {cls.name}: {policy.__name__} has no variants; leave variant unset")
    base = {**presets.get(variant, {}), **config.model}
    return variant, validate_model(policy.config_class, base, "train: model")  # type: ignore[return-value]


# --- set-up --------------------------------------------------------------------------------


def _distributed(device: torch.device) -> tuple[int, int]:
    """(rank, world size), joining the process group when torchrun started us (gloo on the CPU, NCCL on GPUs)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return (torch.distributed.get_rank(), world) if world > 1 else (0, 1)


def _device(name: str) -> torch.device:
    """The torch device that ``TrainConfig.device`` names; under torchrun, "cuda" is the local rank's GPU."""
    device = torch.device(name)
    if device.type != "cuda":
        return device
    if not torch.cuda.is_available():
        raise ConfigError(f"train: device={name} but torch sees no GPU (torch {torch.__version__}); use device=cpu")
    if device.index is None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"train: device={name} but torch sees {torch.cuda.device_count()} GPU(s)")
    return device


def _to(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return batch if device.type == "cpu" else {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def lr_factor(step: int, config: RunConfig) -> float:
    """The learning rate at ``step`` as a fraction of ``lr``: linear warm-up, then the ``lr_schedule``."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    progress = min(1.0, (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps))
    if config.lr_schedule == "constant":
        return 1.0
    decay = 0.5 * (1 + math.cos(math.pi * progress)) if config.lr_schedule == "cosine" else 1.0 - progress
    return config.lr_final + (1.0 - config.lr_final) * decay


def _precompute(
    model: Policy, train: FrameData, val: FrameData | None, config: TrainConfig, device: torch.device, log: Callable[[str], None] | None
) -> tuple[FrameData, FrameData | None]:
    """The frames with a frozen image encoder's features in place of their images, where the policy has one and
    `TrainConfig.precompute` allows (no augmentation of the pixels)."""
    with torch.inference_mode():
        if model.frozen_features(train.frames(torch.zeros(1, dtype=torch.long)).flatten(0, 1).to(device)) is None:
            return train, val
    pixels_change = config.augment or config.colour_jitter > 0 or config.background_jitter > 0
    if pixels_change or not config.precompute:
        if log is not None:
            why = "augmentation changes the pixels (augment=false and no jitter precompute it)" if pixels_change else "precompute=false"
            log(f"the frozen image encoder runs on every batch: {why}")
        return train, val
    start = time.perf_counter()

    def encode(images: torch.Tensor) -> torch.Tensor:
        return model.frozen_features(images.to(device)).cpu()  # type: ignore[union-attr]

    train = train.with_features(encode)
    val = val.with_features(encode) if val is not None else None
    if log is not None:
        frames = len(train) + (len(val) if val is not None else 0)
        size = train.images.stores[0][0].numel() * 2 / 1e3
        log(f"the frozen image encoder's features of {frames} frames computed once ({size:.0f} kB per frame) in {time.perf_counter() - start:.0f} s")
    return train, val


class Episodes(Protocol):
    """What `split_episodes` splits: data made of episodes (`FrameData`; a model's own, such as SOF's flow windows)."""

    @property
    def num_episodes(self) -> int: ...

    def subset(self, episodes: torch.Tensor) -> Any: ...


def split_episodes(data: Episodes, fraction: float, seed: int) -> tuple[Any, Any | None]:
    """(training, held-out) episodes of ``data``: ``round(fraction * episodes)`` held out, drawn with ``seed``; no
    held-out part where that is none or there is one episode."""
    n = data.num_episodes
    held = round(fraction * n)
    if held == 0 or n < 2:
        return data, None
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return data.subset(order[held:]), data.subset(order[:held])


_split = split_episodes  # the name scripts/diagnostics use


class FrameSampler:
    """Batches of training samples: ordinary frames plus a share of stale-guidance ones, augmented as whole batches."""

    def __init__(self, data: FrameData, config: TrainConfig, chunk: int, embeddings: torch.Tensor, norm: Normalizer, seed: int) -> None:
        self.data, self.config, self.chunk, self.embeddings, self.norm = data, config, chunk, embeddings, norm
        self.generator = torch.Generator().manual_seed(seed)
        self.stale_frames = (data.stale >= 0).nonzero().squeeze(1)
        self.image_positions = [k for columns in data.columns for k in columns.image_positions]

    def __call__(self, size: int) -> dict[str, torch.Tensor]:
        g = self.generator
        index = torch.randint(0, len(self.data), (size,), generator=g)
        stale = torch.zeros(size, dtype=torch.bool)
        n_stale = round(self.config.stale_fraction * size) if len(self.stale_frames) else 0
        if n_stale:
            index[:n_stale] = self.stale_frames[torch.randint(0, len(self.stale_frames), (n_stale,), generator=g)]
            stale[:n_stale] = True
        batch = self.data.batch(index, chunk=self.chunk, embeddings=self.embeddings, norm=self.norm, stale=stale)
        # The policy reads its coordinates back in the unshifted frame (``shift``); image-space targets move with the image.
        return augment(
            batch, g, pad=4 if self.config.augment else 0, colour_jitter=self.config.colour_jitter,
            background_jitter=self.config.background_jitter, image_positions=self.image_positions,
        )  # fmt: skip


class _Prefetcher:
    """Draws the next batch (and copies it to the GPU) on a worker thread while the current step runs.

    Drawing is torch operations on whole batches, which release the GIL, so on the CPU it overlaps the step as well.
    ``state()`` is the sampler's generator state before the batch that has been drawn but not yet
    taken, so a run resumed from a checkpoint draws exactly the batches it would have drawn.
    """

    def __init__(self, sampler: Any, size: int, device: torch.device) -> None:
        self.sampler, self.size, self.device = sampler, size, device
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="s2kit-batches")
        self.pending: Future | None = None
        self.before_pending = sampler.generator.get_state()

    def __call__(self) -> dict[str, torch.Tensor]:
        batch = (self.pending or self._draw()).result()
        self.pending = self._draw()
        return batch

    def _draw(self) -> Future:
        self.before_pending = self.sampler.generator.get_state()  # taken before the worker starts drawing
        return self.pool.submit(lambda: _to(self.sampler(self.size), self.device))

    def state(self) -> torch.Tensor:
        return self.before_pending if self.pending is not None else self.sampler.generator.get_state()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class _Ema:
    """An exponential moving average of a model's weights (buffers copied), in a copy of the model."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        mine, theirs = list(self.model.parameters()), list(model.parameters())
        torch._foreach_lerp_(mine, theirs, 1.0 - self.decay)
        for a, b in zip(self.model.buffers(), model.buffers(), strict=True):
            a.copy_(b)


# --- the loop ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Processes:
    """Where a run trains: its device, and its rank among ``world`` processes (torchrun), 0 of 1 otherwise."""

    device: torch.device
    rank: int
    world: int


def start_processes(config: RunConfig) -> Processes:
    """Join the run's processes (torchrun), take its device and threads, and seed torch: what every run does first."""
    device = _device(config.device)
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)
    rank, world = _distributed(device)
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    return Processes(device, rank, world)


def _training_state(path: Path) -> dict[str, Any]:
    """A checkpoint's training_state.pt for ``--resume``; a truncated or foreign file is one error naming it."""
    try:
        state = torch.load(path, weights_only=False, map_location="cpu")
    except Exception as err:  # noqa: BLE001 - torch raises RuntimeError, EOFError, UnpicklingError, ... for a damaged file
        raise CheckpointError(f"--resume: {path} is unreadable ({type(err).__name__}: {err}); resume from an earlier checkpoint "
                              "by removing this one's folder, or start a new run") from None
    missing = [k for k in ("step", "model", "optimizer", "sampler", "torch_rng") if not isinstance(state, dict) or k not in state]
    if missing:
        raise CheckpointError(f"--resume: {path} is not a training state (no {', '.join(missing)})")
    return state


def resume_state(out: Path, record: dict[str, Any], config: RunConfig, resume: bool) -> dict[str, Any] | None:
    """The training state a run continues from (None: a new run), checked before any data is read.

    ``record`` is what train.json will hold: what is trained, the data, and ``config`` (``config.model_dump()``). With
    ``resume`` the run in ``out`` must have been started with the same record, settings that do not change what a run
    computes aside (and a setting added since then counting as its default); without it, ``out`` must hold no run.
    """
    run_record = out / "train.json"
    if not resume:
        if (out / "checkpoints").exists() and any((out / "checkpoints").iterdir()):  # every rank, so none waits alone
            raise ConfigError(f"{out} already holds a run; use --resume to continue it or another --out")
        return None
    previous = json.loads(run_record.read_text()) if run_record.is_file() else None
    if previous is None:
        raise CheckpointError(f"--resume: {out} is not a training run (no train.json)")
    # what shapes the result must match; steps may grow (the schedules then follow the new total)
    what = [k for k in record if k != "config"]
    mine = {k: record[k] for k in what} | {"config": config.model_dump(exclude=_BOOKKEEPING)}
    started = type(config)().model_dump() | previous["config"]  # a setting added since then: its default
    theirs = {k: previous.get(k) for k in what} | {"config": {k: v for k, v in started.items() if k not in _BOOKKEEPING}}
    if mine != theirs:
        diff = [k for k in what if mine[k] != theirs[k]] + [k for k in mine["config"] if mine["config"][k] != theirs["config"].get(k)]
        raise ConfigError(f"--resume: {out} was started with other settings ({', '.join(diff)}); start a new run or use the same ones")
    folder = find_checkpoint(out)
    if not (folder / TRAINING).is_file():
        raise CheckpointError(f"--resume: {folder} has no {TRAINING}")
    return _training_state(folder / TRAINING)


class BatchSource(Protocol):
    """Training batches: ``source(size)`` draws one from the source's own ``generator`` (saved for ``--resume``)."""

    generator: torch.Generator

    def __call__(self, size: int) -> dict[str, torch.Tensor]: ...


def fit(
    model: Policy,
    batches: BatchSource,
    out: Path,
    config: RunConfig,
    info: BaseModel,
    *,
    record: dict[str, Any],
    processes: Processes,
    state: dict[str, Any] | None = None,
    val_batches: Sequence[dict[str, torch.Tensor]] = (),
    progress: Callable[[int, dict[str, float]], None] | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """The kit's training loop, whatever the model and its data; the last checkpoint's folder.

    AdamW with the `lr_factor` schedule, gradient clipping, optional EMA, DistributedDataParallel over ``processes``,
    batches drawn ahead (`RunConfig.prefetch`), losses and ``val_batches``' figures (`validate`) in metrics.jsonl,
    checkpoints every ``save_every`` steps with ``info`` (the config.json, a pydantic model with ``step`` and
    ``format``) and the training state; ``state`` (`resume_state`) continues a run. ``record`` goes to train.json.
    """
    device, rank, world = processes.device, processes.rank, processes.world
    start_step = int(state["step"]) if state is not None else 0
    unused = set(model.unused_parameters())
    for param_name, parameter in model.named_parameters():
        parameter.requires_grad_(param_name not in unused)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    ema = _Ema(model, config.ema) if config.ema > 0 else None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])  # moves the moments onto the parameters' device
        if ema is not None:
            if state.get("ema") is None:
                raise ConfigError(f"--resume: {out} was trained without ema; resume it with ema=0")
            ema.model.load_state_dict(state["ema"])
    ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None) if world > 1 else model
    per_rank = max(1, config.batch_size // world)
    if state is not None:
        batches.generator.set_state(state["sampler"][rank] if rank < len(state["sampler"]) else state["sampler"][0])
        torch.set_rng_state(state["torch_rng"])
        if device.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"], device)

    ahead = config.prefetch if config.prefetch is not None else device.type == "cuda" or torch.get_num_threads() < (os.cpu_count() or 1)
    prefetch = _Prefetcher(batches, per_rank, device) if ahead else None
    next_batch = prefetch if prefetch is not None else (lambda: _to(batches(per_rank), device))
    sampler_state = prefetch.state if prefetch is not None else batches.generator.get_state
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        (out / "train.json").write_text(json.dumps(record, indent=2) + "\n")
    val_batches = [_to(b, device) for b in val_batches] if rank == 0 else []
    scored = ema.model if ema is not None else model  # what checkpoints hold and validation scores

    def save(step: int) -> Path:
        sampler_states = [sampler_state()]
        if world > 1:
            gathered: list[Any] = [None] * world
            torch.distributed.all_gather_object(gathered, sampler_state())
            sampler_states = gathered
        if rank != 0:
            return out
        if not all(torch.isfinite(p).all() for p in scored.parameters()):
            raise TrainingError(f"training diverged by step {step}: non-finite weights, not saved; the earlier checkpoints in {out / 'checkpoints'} are intact")
        training = {"step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "ema": ema.model.state_dict() if ema is not None else None,
                    "sampler": sampler_states, "torch_rng": torch.get_rng_state(),
                    "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}  # fmt: skip
        return save_checkpoint(out / "checkpoints" / f"step_{step:07d}", scored, info.model_copy(update={"step": step}), training)

    metrics = open(out / "metrics.jsonl", "a") if rank == 0 else None  # noqa: SIM115 - closed below
    last = out
    try:
        t_start, seen = time.perf_counter(), 0
        for step in range(start_step, config.steps):
            model.train()
            schedule = model.schedule(step, config.steps)
            for group in optimizer.param_groups:
                group["lr"] = config.lr * lr_factor(step, config)
            batch = next_batch()
            losses = ddp(batch, **schedule)  # Policy.forward is its loss, so DDP's hooks see the pass
            if not torch.isfinite(losses["loss"]):
                raise TrainingError(
                    f"training diverged at step {step + 1}: the loss is {float(losses['loss'])}; "
                    f"the checkpoints in {out / 'checkpoints'} are intact (try a lower --set lr=...)"
                )
            optimizer.zero_grad(set_to_none=True)
            losses["loss"].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            if ema is not None:
                ema.update(model)
            seen += per_rank * world
            done_step = step + 1
            values = {k: float(v.detach()) for k, v in losses.items()}
            if rank == 0:
                if progress is not None:
                    progress(done_step, values)
                if done_step % config.log_every == 0 or done_step == config.steps:
                    rate = seen / (time.perf_counter() - t_start)
                    shown = {k: v for k, v in schedule.items() if isinstance(v, int | float)}
                    metrics.write(json.dumps({"step": done_step, **shown, "lr": optimizer.param_groups[0]["lr"], "samples_per_s": rate, **values}) + "\n")  # type: ignore[union-attr]
                    metrics.flush()  # type: ignore[union-attr]
                if val_batches and (done_step % config.val_every == 0 or done_step == config.steps):
                    val = validate(scored, val_batches)
                    metrics.write(json.dumps({"step": done_step, **{f"val_{k}": v for k, v in val.items()}}) + "\n")  # type: ignore[union-attr]
                    metrics.flush()  # type: ignore[union-attr]
                    log(f"step {done_step}: " + ", ".join(f"val {k} {v:.4f}" for k, v in val.items()))
            if done_step % config.save_every == 0 or done_step == config.steps:
                last = save(done_step)
    finally:
        if prefetch is not None:
            prefetch.close()
        if metrics is not None:
            metrics.close()
        if world > 1:
            torch.distributed.destroy_process_group()
    return last


def train(
    executor: Any,
    data: Sequence[str | Path],
    out: str | Path,
    config: TrainConfig,
    *,
    resume: bool = False,
    progress: Callable[[int, dict[str, float]], None] | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Train the policy of ``executor`` (an executor plugin class, or its registered name) on ``data`` into run folder
    ``out``; the last checkpoint's folder.

    ``progress(step, losses)`` is called on rank 0 after every step.
    """
    out = Path(out)
    executor_cls = _executor_class(executor)
    name = executor_cls.name
    variant, model_config = model_settings(executor_cls, config)
    config = config.model_copy(update={"variant": variant})  # recorded resolved, so a resumed run compares like with like
    policy = _policy(executor_cls)
    policy.check_training(model_config, f"train {name}")
    processes = start_processes(config)
    record = {"executor": name, "data": [str(d) for d in data], "config": config.model_dump()}
    state = resume_state(out, record, config, resume)
    start_step = int(state["step"]) if state is not None else 0
    prepared = prepare(policy, model_config, data, config, processes, log=log, name=f"{name} ({variant or policy.__name__})", start_step=start_step)
    train_frames = prepared.train_frames
    info = CheckpointInfo(
        executor=name, variant=variant, model=prepared.model.config,
        normalization=prepared.norm.to_dict(), state_names=train_frames.state_names, action_names=train_frames.action_names,
        control_hz=train_frames.fps, datasets=train_frames.datasets, train=config.model_dump(),
    )  # fmt: skip
    info.embodiment = Embodiment.of_data(train_frames.datasets, train_frames.fps, prepared.model.config, info.action_space, train_frames.actions.numpy())
    return fit(
        prepared.model, prepared.sampler, out, config, info, record=record, processes=processes, state=state,
        val_batches=prepared.val_batches, progress=progress, log=log,
    )  # fmt: skip


@dataclass
class Prepared:
    """What a policy on LeRobot frames trains with (`prepare`): the network, its batches and the frames behind them."""

    model: Policy
    sampler: FrameSampler
    val_batches: list[dict[str, torch.Tensor]]
    train_frames: FrameData
    norm: Normalizer


def prepare(
    policy: type[Policy],
    model_config: PolicyConfig,
    data: Sequence[str | Path],
    config: TrainConfig,
    processes: Processes,
    *,
    log: Callable[[str], None] = print,
    name: str = "",
    actions: bool = True,
    start_step: int = 0,
) -> Prepared:
    """Frames of ``data`` loaded (and what the policy derives from them, `Policy.derive_frames`), episodes held out,
    normalization fitted, guidance embedded, the network built on the device, a frozen encoder's features computed
    once, the sampler and the validation batches: everything `fit` needs but the checkpoint record.

    ``actions`` False: a policy that learns without actions (SOF's skill planner) reads none, and the datasets need
    none. ``name`` heads the log line, which says the steps from ``start_step`` (a resumed run's) on.
    """
    device, rank, world = processes.device, processes.rank, processes.world
    if rank > 0:  # rank 0 decodes a dataset's frames into the cache once; the others map them
        torch.distributed.barrier()
    frames = load_frames(
        data, cameras=model_config.cameras, image_size=model_config.image_size,
        state=EE_STATE if config.state == "ee" else None, done_window=config.done_window,
        columns=policy.extra_columns, cache=config.cache, log=log if rank == 0 else None, actions=actions,
    )  # fmt: skip
    frames, fixed = policy.derive_frames(model_config, frames, data, cache=config.cache, log=log if rank == 0 else None)
    if rank == 0 and world > 1:
        torch.distributed.barrier()
    model_config = model_config.model_copy(update={"state_dim": frames.state.shape[1], "action_dim": max(frames.actions.shape[1], 1), **fixed})
    train_frames, val_frames = split_episodes(frames, config.val_fraction, config.seed)
    del frames
    norm = Normalizer.fit(train_frames.state.numpy(), train_frames.actions.numpy())
    embeddings = guidance_embeddings(train_frames.strings, data, config.cache)  # (strings, 384)
    if embeddings.shape[1] != model_config.text_dim:
        raise ConfigError(f"train: model.text_dim is {model_config.text_dim}, the sentence encoder gives {embeddings.shape[1]}")

    model = policy(model_config).to(device)
    model.normalization_fitted(torch.as_tensor(norm.action_mean, device=device), torch.as_tensor(norm.action_std, device=device))
    # (a frozen encoder's weights are the package's, whatever the training state holds: its features need no resume)
    train_frames, val_frames = _precompute(model, train_frames, val_frames, config, device, log if rank == 0 else None)
    sampler = FrameSampler(train_frames, config, model_config.chunk, embeddings, norm, seed=config.seed * 1000 + rank)
    if rank == 0:
        n_val = 0 if val_frames is None else val_frames.num_episodes
        log(
            f"{name or policy.__name__}: {train_frames.num_episodes} episodes / {len(train_frames)} frames for training, "
            f"{n_val} episodes held out; {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters; "
            f"{world} process(es); steps {start_step}..{config.steps}"
        )
    val_batches = _validation_batches(val_frames, model_config.chunk, embeddings, norm) if rank == 0 else []
    return Prepared(model, sampler, val_batches, train_frames, norm)


def _validation_batches(frames: FrameData | None, chunk: int, embeddings: torch.Tensor, norm: Normalizer, size: int = 256) -> list[dict[str, torch.Tensor]]:
    """Fixed validation batches (every frame up to 2048, ordinary and stale ones), the same at every evaluation."""
    if frames is None:
        return []
    g = torch.Generator().manual_seed(12345)
    index = torch.randperm(len(frames), generator=g)[:2048]
    out = [frames.batch(part, chunk=chunk, embeddings=embeddings, norm=norm) for part in index.split(size)]
    stale = (frames.stale >= 0).nonzero().squeeze(1)
    if len(stale):
        part = stale[torch.randperm(len(stale), generator=g)[:size]]
        out.append(frames.batch(part, chunk=chunk, embeddings=embeddings, norm=norm, stale=torch.ones(len(part), dtype=torch.bool)))
    return out


def validate(model: Policy, batches: Sequence[dict[str, torch.Tensor]]) -> dict[str, float]:
    """Held-out figures: where the batches carry actions, the action MSE of sampled chunks (normalized units, fixed
    noise) and the subtask-done accuracy where the policy predicts it; and the policy's own
    (`Policy.validation_metrics`), the only ones of a model that predicts no actions (SOF's skill tokenizer, mpc's
    critic)."""
    model.eval()
    errors, weights, correct, total = 0.0, 0.0, 0, 0
    outputs = []
    with torch.inference_mode():
        g = torch.Generator().manual_seed(0)
        for batch in batches:
            if ACTIONS not in batch or ACTIONS not in model.outputs():  # a model that predicts no actions (a critic)
                outputs.append(model.sample(batch))
                continue
            noise = torch.randn(batch[ACTIONS].shape, generator=g).to(batch[ACTIONS].device)
            out = model.sample(batch, noise=noise)
            outputs.append(out)
            actions = out[ACTIONS]
            mask = batch[ACTION_MASK][..., None].expand_as(actions).float()
            errors += float((((actions - batch[ACTIONS]) ** 2) * mask).sum())
            weights += float(mask.sum())
            if out.get(DONE) is not None:
                correct += int(((out[DONE] > 0.5).float() == batch[DONE]).sum())
                total += len(out[DONE])
        extra = model.validation_metrics(batches, outputs)
    figures = {"action_mse": errors / max(weights, 1.0)} if weights else {}
    if total:
        figures["done_accuracy"] = correct / total
    return figures | extra
