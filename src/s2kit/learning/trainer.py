"""Training S2 (and its baseline and ablations) on LeRobot datasets.

One process, or several under torchrun (``torchrun --nproc-per-node 2 -m
s2kit.cli.main train ...``): each rank draws its own share of every batch,
gradients are averaged by DistributedDataParallel over gloo (CPU), rank 0
validates, logs and saves. Fixed seeds make a run repeatable; ``resume``
continues from the run's newest checkpoint with its optimizer, schedule and
random states.

A run folder holds ``train.json`` (the config and datasets it was started
with), ``metrics.jsonl`` (losses) and ``checkpoints/step_NNNNNNN/``
(`s2kit.learning.checkpoints`).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from s2kit.core.checkpoints import find_checkpoint
from s2kit.core.config import validate_model
from s2kit.core.errors import ConfigError, S2kitError
from s2kit.learning.text import sentence_encoder
from s2kit.learning.checkpoints import (
    TRAINING,
    CheckpointError,
    CheckpointInfo,
    save_checkpoint,
)
from s2kit.plugins.executors.s2.configuration import VARIANTS, ModelConfig
from s2kit.learning.data import (
    EE_STATE,
    FOCUS_SCALE,
    FrameData,
    Normalizer,
    load_frames,
)
from s2kit.plugins.executors.s2.modeling import (
    ACTION_MASK,
    ACTIONS,
    DONE,
    FOCUS,
    FOCUS_UV,
    IMAGES,
    SHIFT,
    S2Policy,
    focus_error,
    focus_map_pixels,
    rho_schedule,
)

__all__ = ["TrainConfig", "TrainingError", "train"]


class TrainingError(S2kitError):
    """Training cannot go on (the loss became non-finite)."""


class TrainConfig(BaseModel):
    """How a run trains; every field can be set with ``--set key=value`` (``--set model.dim=64``)."""

    model_config = ConfigDict(extra="forbid")

    variant: str = Field("s2", description=f"Which network: {', '.join(VARIANTS)}.")
    model: dict[str, Any] = Field(default_factory=dict, description="ModelConfig fields over the variant's.")
    state: Literal["ee", "all"] = Field("ee", description="ee: hand pose and gripper (the same on every robot); all: the whole state.")
    # optimization
    steps: int = Field(3000, ge=1)
    batch_size: int = Field(64, ge=1, description="Samples per step over all processes.")
    lr: float = Field(3e-4, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    warmup_steps: int = Field(100, ge=0, description="Linear learning-rate warm-up, then cosine decay to 10%.")
    grad_clip: float = Field(1.0, gt=0)
    seed: int = 0
    # data
    val_fraction: float = Field(0.05, ge=0.0, lt=1.0, description="Episodes held out for validation.")
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
    done_window: int = Field(8, ge=1, description="Frames after a subtask ends that, with the ended subtask's text, are labelled done.")
    stale_fraction: float = Field(0.15, ge=0.0, lt=1.0, description="Share of each batch that is such stale-guidance samples.")
    # bookkeeping
    val_every: int = Field(500, ge=1)
    save_every: int = Field(1000, ge=1)
    log_every: int = Field(50, ge=1)
    threads: int | None = Field(None, ge=1, description="torch threads per process (default: torch's).")
    device: str = Field(
        "cpu", pattern=r"^(cpu|cuda(:\d+)?)$",
        description="Where the network trains: cpu, cuda or cuda:N (batches are drawn on the CPU and copied over). Under torchrun "
        "each process takes the GPU of its local rank. A checkpoint written on either device loads and resumes on the other.",
    )  # fmt: skip

    def model_settings(self, executor: str) -> ModelConfig:
        variant = "baseline" if executor == "baseline" else self.variant
        if variant not in VARIANTS:
            raise ConfigError(f"train: unknown variant {variant!r} (known: {', '.join(VARIANTS)})")
        base = {**VARIANTS[variant], **self.model}
        return validate_model(ModelConfig, base, "train: model")  # type: ignore[return-value]


_BOOKKEEPING = {"steps", "val_every", "save_every", "log_every", "threads", "device"}


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


def _lr_factor(step: int, config: TrainConfig) -> float:
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _split(data: FrameData, fraction: float, seed: int) -> tuple[FrameData, FrameData | None]:
    n = data.num_episodes
    held = round(fraction * n)
    if held == 0 or n < 2:
        return data, None
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return data.subset(order[held:]), data.subset(order[:held])


def _shift(images: torch.Tensor, pad: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random translation of each image by up to ``pad`` pixels (edge-padded), (B, C, 3, S, S) uint8.

    Returns the shifted images and how far their content moved, (B, C, 2) as (u, v) in the [-1, 1] image units.
    """
    B, C, _, S, _ = images.shape
    padded = F.pad(images.flatten(0, 1).float(), (pad, pad, pad, pad), mode="replicate")  # (batch*cameras, 3, S+2p, S+2p)
    offsets = torch.randint(0, 2 * pad + 1, (B * C, 2), generator=generator)  # (row, column) of the crop in the padded image
    span = torch.arange(S)
    rows = (offsets[:, :1] + span)[:, None, :, None]  # (batch*cameras, 1, S, 1)
    cols = (offsets[:, 1:] + span)[:, None, None, :]  # (batch*cameras, 1, 1, S)
    out = padded[torch.arange(B * C)[:, None, None, None], torch.arange(3)[None, :, None, None], rows, cols]
    moved = (pad - offsets.flip(-1)).float() * 2 / S  # a pixel at column c lands at c + pad - offset
    return out.to(torch.uint8).view(B, C, 3, S, S), moved.view(B, C, 2)


def _recolour(images: torch.Tensor, strength: float, generator: torch.Generator) -> torch.Tensor:
    """Random brightness, contrast and colour balance for each image of (B, C, 3, S, S) uint8.

    Contrast scales each image about its mean grey level, then brightness and a per-channel gain scale it; the result is
    clipped to [0, 255]. Each camera of each sample draws its own factors.
    """
    B, C = images.shape[:2]

    def factor(*shape: int, span: float) -> torch.Tensor:
        return 1 + (torch.rand(B, C, *shape, generator=generator) * 2 - 1) * span

    x = images.float()
    mean = x.mean(dim=(2, 3, 4), keepdim=True)
    x = (x - mean) * factor(1, 1, 1, span=strength) + mean
    x = x * factor(1, 1, 1, span=strength) * factor(3, 1, 1, span=strength / 2)
    return x.round().clamp(0, 255).to(torch.uint8)


def _recolour_background(images: torch.Tensor, probability: float, generator: torch.Generator, modes: int = 3) -> torch.Tensor:
    """New colours for the backdrop of each image of (B, C, 3, S, S) uint8, with ``probability`` per image.

    The backdrop is found without a segmentation: the ``modes`` most common colours of an image (binned by
    chromaticity and brightness) that each cover at least 5% of it and are not saturated (the table, floor
    and wall; the task's items have saturated colours). Pixels of about the same chromaticity as such a mode,
    and within a factor of 1.6 of its brightness, are scaled channel by channel so that the mode's mean colour
    becomes a random one; shading and edges stay.
    """
    B, C, _, S, _ = images.shape
    x = images.flatten(0, 1).float()  # (N, 3, S, S)
    N = x.shape[0]
    brightness = x.sum(1) + 1.0  # (N, S, S)
    chroma = x[:, :2] / brightness[:, None]  # (N, 2, S, S): r and g shares
    bins = (chroma * 16).long().clamp(0, 15)
    key = (bins[:, 0] * 16 + bins[:, 1]) * 8 + (brightness / (766 / 8)).long().clamp(0, 7)  # (N, S, S)
    counts = torch.zeros(N, 16 * 16 * 8).scatter_add_(1, key.flatten(1), torch.ones(N, S * S))
    share, top = counts.topk(modes, dim=1)  # (N, modes)
    apply = torch.rand(N, generator=generator) < probability
    out = x.clone()
    for m in range(modes):
        members = (key == top[:, m, None, None]).float()  # (N, S, S)
        size = share[:, m, None].clamp(min=1)  # (N, 1): the mode's pixel count
        colour = (x * members[:, None]).sum((2, 3)) / size  # (N, 3) the mode's mean colour
        centre = (chroma * members[:, None]).sum((2, 3)) / size  # (N, 2) and its mean chromaticity
        saturation = (colour.max(1).values - colour.min(1).values) / colour.max(1).values.clamp(min=1)
        chosen = apply & (share[:, m] >= 0.05 * S * S) & (saturation < 0.6)  # (N,)
        level = colour.sum(1) + 1.0
        ratio = brightness / level[:, None, None]
        near = ((chroma - centre[:, :, None, None]).abs().amax(1) < 0.03) & (ratio > 1 / 1.6) & (ratio < 1.6)  # (N, S, S)
        target = 20 + torch.rand(N, 3, generator=generator) * 225
        gain = target / colour.clamp(min=1.0)  # (N, 3)
        mask = (near & chosen[:, None, None])[:, None]
        out = torch.where(mask, x * gain[:, :, None, None], out)
    return out.round().clamp(0, 255).to(torch.uint8).view(B, C, 3, S, S)


class _Sampler:
    """Batches of training samples: ordinary frames plus a share of stale-guidance ones."""

    def __init__(self, data: FrameData, config: TrainConfig, chunk: int, embeddings: torch.Tensor, norm: Normalizer, seed: int) -> None:
        self.data, self.config, self.chunk, self.embeddings, self.norm = data, config, chunk, embeddings, norm
        self.generator = torch.Generator().manual_seed(seed)
        self.stale_frames = (data.stale >= 0).nonzero().squeeze(1)

    def __call__(self, size: int) -> dict[str, torch.Tensor]:
        g = self.generator
        index = torch.randint(0, len(self.data), (size,), generator=g)
        stale = torch.zeros(size, dtype=torch.bool)
        n_stale = round(self.config.stale_fraction * size) if len(self.stale_frames) else 0
        if n_stale:
            index[:n_stale] = self.stale_frames[torch.randint(0, len(self.stale_frames), (n_stale,), generator=g)]
            stale[:n_stale] = True
        batch = self.data.batch(index, chunk=self.chunk, embeddings=self.embeddings, norm=self.norm, stale=stale)
        if self.config.augment:
            # The model reads its coordinates back in the unshifted frame (SHIFT), and the focus map's target moves with the image.
            batch[IMAGES], batch[SHIFT] = _shift(batch[IMAGES], 4, g)
            if FOCUS_UV in batch:
                batch[FOCUS_UV] = batch[FOCUS_UV] + batch[SHIFT]
        if self.config.background_jitter:
            batch[IMAGES] = _recolour_background(batch[IMAGES], self.config.background_jitter, g)
        if self.config.colour_jitter:
            batch[IMAGES] = _recolour(batch[IMAGES], self.config.colour_jitter, g)
        return batch


class _Prefetcher:
    """Draws the next batch (and copies it to the GPU) on a worker thread while the current step runs.

    ``state()`` is the sampler's generator state before the batch that has been drawn but not yet
    taken, so a run resumed from a checkpoint draws exactly the batches it would have drawn.
    """

    def __init__(self, sampler: _Sampler, size: int, device: torch.device) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.sampler, self.size, self.device = sampler, size, device
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="s2-batches")
        self.pending: Any = None
        self.before_pending = sampler.generator.get_state()

    def __call__(self) -> dict[str, torch.Tensor]:
        batch = self._draw().result() if self.pending is None else self.pending.result()
        self.pending = self._draw()
        return batch

    def _draw(self) -> Any:
        self.before_pending = self.sampler.generator.get_state()  # taken before the worker starts drawing
        return self.pool.submit(lambda: _to(self.sampler(self.size), self.device))

    def state(self) -> torch.Tensor:
        return self.before_pending if self.pending is not None else self.sampler.generator.get_state()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


# --- the loop ------------------------------------------------------------------------------


def train(
    executor: str,
    data: Sequence[str | Path],
    out: str | Path,
    config: TrainConfig,
    *,
    resume: bool = False,
    progress: Callable[[int, dict[str, float]], None] | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Train ``executor`` (s2 or baseline) on ``data`` into run folder ``out``; the last checkpoint's folder.

    ``progress(step, losses)`` is called on rank 0 after every step.
    """
    out = Path(out)
    device = _device(config.device)
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)
    rank, world = _distributed(device)
    if config.threads:
        torch.set_num_threads(config.threads)
    start_step, state = 0, None
    run_record = out / "train.json"
    if resume:
        previous = json.loads(run_record.read_text()) if run_record.is_file() else None
        if previous is None:
            raise CheckpointError(f"--resume: {out} is not a training run (no train.json)")
        # what shapes the result must match; steps may grow (the schedules then follow the new total)
        mine = {"executor": executor, "data": [str(d) for d in data], "config": config.model_dump(exclude=_BOOKKEEPING)}
        theirs = {k: previous[k] for k in ("executor", "data")} | {"config": {k: v for k, v in previous["config"].items() if k not in _BOOKKEEPING}}
        if mine != theirs:
            diff = [k for k in ("executor", "data") if mine[k] != theirs[k]] + [k for k in mine["config"] if mine["config"][k] != theirs["config"].get(k)]
            raise ConfigError(f"--resume: {out} was started with other settings ({', '.join(diff)}); start a new run or use the same ones")
        folder = find_checkpoint(out)
        if not (folder / TRAINING).is_file():
            raise CheckpointError(f"--resume: {folder} has no {TRAINING}")
        state = torch.load(folder / TRAINING, weights_only=False, map_location="cpu")
        start_step = int(state["step"])
    elif (out / "checkpoints").exists() and any((out / "checkpoints").iterdir()):  # every rank, so none waits alone
        raise ConfigError(f"{out} already holds a run; use --resume to continue it or another --out")

    model_config = config.model_settings(executor)
    torch.manual_seed(config.seed)
    frames = load_frames(
        data, cameras=model_config.cameras, image_size=model_config.image_size,
        state=EE_STATE if config.state == "ee" else None, done_window=config.done_window,
    )  # fmt: skip
    model_config = model_config.model_copy(update={"state_dim": frames.state.shape[1], "action_dim": frames.actions.shape[1]})
    train_frames, val_frames = _split(frames, config.val_fraction, config.seed)
    del frames  # the split copied the frames it keeps: one copy of the images in memory, not two
    norm = Normalizer.fit(train_frames.state.numpy(), train_frames.actions.numpy())
    embeddings = torch.from_numpy(sentence_encoder().encode(train_frames.strings))  # (strings, 384)
    if embeddings.shape[1] != model_config.text_dim:
        raise ConfigError(f"train: model.text_dim is {model_config.text_dim}, the sentence encoder gives {embeddings.shape[1]}")

    model = S2Policy(model_config).to(device)
    unused = set(model.unused_parameters())
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name not in unused)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])  # moves the moments onto the parameters' device
    ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None) if world > 1 else model
    per_rank = max(1, config.batch_size // world)
    sampler = _Sampler(train_frames, config, model_config.chunk, embeddings, norm, seed=config.seed * 1000 + rank)
    if state is not None:
        sampler.generator.set_state(state["sampler"][rank] if rank < len(state["sampler"]) else state["sampler"][0])
        torch.set_rng_state(state["torch_rng"])
        if device.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"], device)

    # On a GPU the next batch is drawn while the step runs; on the CPU the step already has every core.
    prefetch = _Prefetcher(sampler, per_rank, device) if device.type == "cuda" else None
    next_batch = prefetch if prefetch is not None else (lambda: sampler(per_rank))
    sampler_state = prefetch.state if prefetch is not None else sampler.generator.get_state

    info = CheckpointInfo(
        executor=executor, variant="baseline" if executor == "baseline" else config.variant, model=model_config,
        normalization=norm.to_dict(), state_names=train_frames.state_names, action_names=train_frames.action_names,
        control_hz=train_frames.fps, datasets=train_frames.datasets, train=config.model_dump(),
    )  # fmt: skip
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        record = {"executor": executor, "data": [str(d) for d in data], "config": config.model_dump()}
        run_record.write_text(json.dumps(record, indent=2) + "\n")
        n_val = 0 if val_frames is None else val_frames.num_episodes
        log(
            f"{executor} ({info.variant}): {train_frames.num_episodes} episodes / {len(train_frames)} frames for training, "
            f"{n_val} episodes held out; {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters; "
            f"{world} process(es); steps {start_step}..{config.steps}"
        )
    val_batches = [_to(b, device) for b in _validation_batches(val_frames, config, model_config.chunk, embeddings, norm)] if rank == 0 else []

    def save(step: int) -> Path:
        sampler_states = [sampler_state()]
        if world > 1:
            gathered: list[Any] = [None] * world
            torch.distributed.all_gather_object(gathered, sampler_state())
            sampler_states = gathered
        if rank != 0:
            return out
        if not all(torch.isfinite(p).all() for p in model.parameters()):
            raise TrainingError(f"training diverged by step {step}: non-finite weights, not saved; the earlier checkpoints in {out / 'checkpoints'} are intact")
        training = {"step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "sampler": sampler_states, "torch_rng": torch.get_rng_state(),
                    "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}  # fmt: skip
        return save_checkpoint(out / "checkpoints" / f"step_{step:07d}", model, info.model_copy(update={"step": step}), training)

    metrics = open(out / "metrics.jsonl", "a") if rank == 0 else None  # noqa: SIM115 - closed below
    last = out
    try:
        t_start, seen = time.perf_counter(), 0
        for step in range(start_step, config.steps):
            model.train()
            rho = rho_schedule(step, config.steps, model_config.rho, model_config.budget_warmup)
            for group in optimizer.param_groups:
                group["lr"] = config.lr * _lr_factor(step, config)
            batch = next_batch()
            losses = ddp(batch, rho)  # S2Policy.forward is its loss, so DDP's hooks see the pass
            if not torch.isfinite(losses["loss"]):
                raise TrainingError(
                    f"training diverged at step {step + 1}: the loss is {float(losses['loss'])}; "
                    f"the checkpoints in {out / 'checkpoints'} are intact (try a lower --set lr=...)"
                )
            optimizer.zero_grad(set_to_none=True)
            losses["loss"].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            seen += per_rank * world
            done_step = step + 1
            values = {k: float(v.detach()) for k, v in losses.items()}
            if rank == 0:
                if progress is not None:
                    progress(done_step, values)
                if done_step % config.log_every == 0 or done_step == config.steps:
                    rate = seen / (time.perf_counter() - t_start)
                    metrics.write(json.dumps({"step": done_step, **({"rho": rho} if model_config.budget else {}), "lr": optimizer.param_groups[0]["lr"], "samples_per_s": rate, **values}) + "\n")  # type: ignore[union-attr]
                    metrics.flush()  # type: ignore[union-attr]
                if val_batches and (done_step % config.val_every == 0 or done_step == config.steps):
                    val = validate(model, val_batches, model_config.rho)
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


def _validation_batches(
    frames: FrameData | None, config: TrainConfig, chunk: int, embeddings: torch.Tensor, norm: Normalizer, size: int = 256
) -> list[dict[str, torch.Tensor]]:
    """Fixed validation batches (every frame up to 2048, ordinary and stale ones), the same at every evaluation."""
    if frames is None:
        return []
    g = torch.Generator().manual_seed(12345)
    index = torch.randperm(len(frames), generator=g)[:2048]
    out = []
    for part in index.split(size):
        out.append(frames.batch(part, chunk=chunk, embeddings=embeddings, norm=norm))
    stale = (frames.stale >= 0).nonzero().squeeze(1)
    if len(stale):
        part = stale[torch.randperm(len(stale), generator=g)[:size]]
        out.append(frames.batch(part, chunk=chunk, embeddings=embeddings, norm=norm, stale=torch.ones(len(part), dtype=torch.bool)))
    return out


def validate(model: S2Policy, batches: list[dict[str, torch.Tensor]], rho: float) -> dict[str, float]:
    """Held-out figures at the target rho: action MSE of sampled chunks (normalized units), done accuracy,
    and, where the data has focus targets, the focus head's RMS error in centimetres and the focus map's mean
    distance from the focus item in pixels."""
    model.eval()
    errors, weights, correct, total = 0.0, 0.0, 0, 0
    focus_squared, focus_rows = 0.0, 0
    map_pixels, maps = 0.0, 0
    with torch.inference_mode():
        g = torch.Generator().manual_seed(0)
        for batch in batches:
            noise = torch.randn(batch[ACTIONS].shape, generator=g).to(batch[ACTIONS].device)
            actions, done, extras = model.sample(batch, rho, noise)
            if "focus" in extras:
                squared, rows = focus_error(extras["focus"], batch[FOCUS])
                focus_squared += float(squared)
                focus_rows += int(rows)
            if "focus_map" in extras and FOCUS_UV in batch:
                distance = focus_map_pixels(extras["focus_map"], batch[FOCUS_UV], batch[IMAGES].shape[-1])
                known = distance.isfinite()
                map_pixels += float(distance[known].sum())
                maps += int(known.sum())
            mask = batch[ACTION_MASK][..., None].expand_as(actions).float()
            errors += float((((actions - batch[ACTIONS]) ** 2) * mask).sum())
            weights += float(mask.sum())
            correct += int(((done > 0.5).float() == batch[DONE]).sum())
            total += len(done)
    out = {"action_mse": errors / max(weights, 1.0), "done_accuracy": correct / max(total, 1)}
    if focus_rows:
        out["focus_rms_cm"] = (focus_squared / (3 * focus_rows)) ** 0.5 * 100.0 / FOCUS_SCALE  # decimetres -> cm
    if maps:
        out["focus_map_px"] = map_pixels / maps
    return out
