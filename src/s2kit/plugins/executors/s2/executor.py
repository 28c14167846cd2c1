"""Executors ``s2`` and ``baseline``: a trained S2 network driving a robot.

``s2`` reads the goal, the trajectory text and the current subtask and sees
``rho`` of each camera's patches; ``baseline`` is the same network trained
with the budget off and the goal only (the pi0.5-style stand-in). Both load
a checkpoint (a run folder means its newest; ``s2`` without one loads the
small checkpoint shipped with s2kit), run on torch or on ONNX Runtime (an
exported graph, ``s2kit export``), and report the network's subtask-done
probability as ``ActionChunk.subtask_done`` (non-privileged progress) and the
kept patches in ``info["keep"]`` (role -> (grid, grid) bool) for overlay
videos.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from s2kit import hookimpl
from s2kit.core.config import PluginConfig
from s2kit.core.errors import ConfigError
from s2kit.core.interfaces import Executor
from s2kit.core.types import ActionChunk, Guidance, Observation, RobotSpec
from s2kit.plugins.executors.s2.columns import s2kit_dataset_columns  # noqa: F401 - a hook of this plugin
from s2kit.plugins.executors.s2.overlay import s2kit_video_overlays  # noqa: F401 - a hook of this plugin

if TYPE_CHECKING:
    from s2kit.learning.checkpoints import CheckpointInfo
    from s2kit.learning.data import Normalizer, StateEncoder

__all__ = ["BaselineExecutor", "S2Config", "S2Executor", "current_subtask", "default_checkpoint", "prepare_inputs"]


def default_checkpoint() -> Path:
    """The small S2 checkpoint shipped inside the package (rebuilt by scripts/build_default_checkpoint.sh)."""
    return Path(str(resources.files("s2kit.plugins.executors.s2") / "default"))


class S2Config(PluginConfig):
    """Which checkpoint, how to run it."""

    checkpoint: Path | None = Field(None, description="A checkpoint or run folder; default: s2kit's shipped S2 checkpoint (s2 only).")
    rho: float | None = Field(None, gt=0.0, le=1.0, description="Keep-fraction of each camera's patches; default: the checkpoint's.")
    backend: Literal["torch", "onnxruntime"] = Field("torch", description="Run the network on torch, or on ONNX Runtime.")
    onnx: Path | None = Field(None, description="The exported graph for onnxruntime; default: <checkpoint>/model.onnx.")
    threads: int | None = Field(
        1, ge=1, description="Intra-op threads. 1: a chunk is small work, and more threads spin on a busy machine (docs/executors.md)."
    )
    done_threshold: float = Field(0.5, gt=0.0, lt=1.0, description="Subtask-done probability above which the subtask counts as finished.")
    seed: int = Field(0, description="Seed of the flow-matching noise (reset every episode).")


class S2Executor(Executor):
    """S2: goal + refined guidance, an evidence budget of rho per camera."""

    name = "s2"
    Config = S2Config
    #: What the network must have been trained as, for this executor name (None: anything).
    requires: ClassVar[dict[str, Any] | None] = None

    def __init__(self, config: S2Config | None = None) -> None:
        super().__init__(config)
        from s2kit.learning.checkpoints import read_info

        cfg: S2Config = self.config  # type: ignore[assignment]
        path = cfg.checkpoint
        if path is None:
            if self.requires is not None:
                raise ConfigError(f"executor {self.name!r} needs a checkpoint: --set executor.checkpoint=RUN")
            path = default_checkpoint()
            if not path.is_dir():
                raise ConfigError(
                    f"executor {self.name!r}: this s2kit ships no trained S2 checkpoint yet; train one "
                    "(s2kit train --executor s2 ..., docs/executors.md) and --set executor.checkpoint=RUN"
                )
        self.info = read_info(path)
        model = self.info.model
        if self.requires is not None:
            wrong = {k: getattr(model, k) for k, v in self.requires.items() if getattr(model, k) != v}
            if wrong:
                raise ConfigError(f"executor {self.name!r}: {path} is not a {self.name} network ({wrong}); use executor s2")
        if cfg.rho is not None and not model.budget:
            raise ConfigError(f"executor {self.name!r}: {path} was trained without an evidence budget; rho does not apply")
        self.rho = cfg.rho if cfg.rho is not None else model.rho
        self.action_space = self.info.action_space
        self.backend = _make_backend(cfg, path)
        from s2kit.learning.data import Normalizer

        self.norm = Normalizer.from_dict(self.info.normalization)
        self.rng = np.random.default_rng(cfg.seed)

    @classmethod
    def train(
        cls,
        data: Sequence[Path],
        out: Path,
        *,
        overrides: Sequence[str] = (),
        resume: bool = False,
        progress: Callable[[int, int, dict[str, float]], None] | None = None,
        log: Callable[[str], None] = print,
    ) -> Path:
        from s2kit.core.config import validate_overrides
        from s2kit.learning.trainer import TrainConfig, train

        config: TrainConfig = validate_overrides(TrainConfig, overrides, f"train {cls.name}")  # type: ignore[assignment]
        report = None if progress is None else (lambda step, losses: progress(step, config.steps, losses))
        return train(cls.name, data, out, config, resume=resume, progress=report, log=log)

    @classmethod
    def export(cls, checkpoint: Path, out: Path, *, format: str, overrides: Sequence[str] = ()) -> dict[str, Any]:
        from s2kit.core.config import validate_overrides
        from s2kit.learning.export import FORMATS, ExportConfig, export_onnx

        if format not in FORMATS:
            raise ConfigError(f"export {cls.name}: unknown format {format!r} (known: {', '.join(FORMATS)})")
        config: ExportConfig = validate_overrides(ExportConfig, overrides, f"export {cls.name}")  # type: ignore[assignment]
        return export_onnx(checkpoint, out, **config.model_dump())

    @classmethod
    def details(cls) -> dict[str, Any]:
        shipped = cls.requires is None and default_checkpoint().is_dir()
        return {"default checkpoint": str(default_checkpoint()) if shipped else "none (executor.checkpoint required)"}

    def setup(self, spec: RobotSpec) -> None:
        super().setup(spec)
        from s2kit.learning.data import StateEncoder

        roles = {c.role for c in spec.cameras}
        missing = [c for c in self.info.model.cameras if c not in roles]
        if missing:
            raise ConfigError(f"executor {self.name!r}: robot {spec.name!r} has no camera {missing} (it has {sorted(roles)})")
        spec.action_space(self.action_space)  # raises if the robot does not accept it
        self.state = StateEncoder(spec.state_names, self.info.state_names)
        if self.state.dim != self.info.model.state_dim:
            raise ConfigError(f"executor {self.name!r}: the checkpoint reads {self.info.model.state_dim} state inputs, robot {spec.name!r} gives {self.state.dim}")

    def reset(self) -> None:
        self.rng = np.random.default_rng(self.config.seed)  # type: ignore[attr-defined]

    def act(self, observation: Observation, guidance: Guidance) -> ActionChunk:
        model = self.info.model
        actions, done, keep = self.backend(*prepare_inputs(self.info, self.state, self.norm, observation, guidance, self.rng), self.rho)
        subtask = current_subtask(guidance)
        actions = self.norm.unaction(actions[0]).astype(np.float32)
        info: dict[str, Any] = {"done_probability": float(done[0])}
        if model.budget:
            info["keep"] = {role: _mask(keep[0, i], model.grid) for i, role in enumerate(model.cameras)}
        return ActionChunk(
            actions=actions, space=self.action_space, period=self.spec.control_period,
            subtask_done=bool(subtask) and float(done[0]) > self.config.done_threshold, info=info,  # type: ignore[attr-defined]
        )  # fmt: skip

    def close(self) -> None:
        self.backend = None  # type: ignore[assignment]


class BaselineExecutor(S2Executor):
    """The pi0.5-style stand-in: the same network, every patch, the coarse instruction only."""

    name = "baseline"
    requires: ClassVar[dict[str, Any] | None] = {"budget": False, "guidance": "goal"}


def current_subtask(guidance: Guidance) -> str:
    """The subtask the guidance is at ("" when it names none)."""
    return guidance.subtasks[guidance.current] if guidance.subtasks and guidance.current < len(guidance.subtasks) else ""


def prepare_inputs(
    info: CheckpointInfo, state: StateEncoder, norm: Normalizer, observation: Observation, guidance: Guidance, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A backend's inputs for one observation, as the executor feeds them (``s2kit export`` checks its graph on these).

    Images (1, cameras, 3, S, S) uint8; state (1, state_dim) encoded and normalized; text
    (1, 3, 384): goal, trajectory, current subtask; flow noise (1, H, A) drawn from ``rng``.
    """
    from s2kit.learning.text import sentence_encoder
    from s2kit.learning.data import square_frames

    model = info.model
    images = np.stack([square_frames(observation.images[c][None], model.image_size)[0] for c in model.cameras])  # (cameras, S, S, 3)
    images = images.transpose(0, 3, 1, 2)[None]  # (1, cameras, 3, S, S)
    values = norm.state(state(observation.state))[None].astype(np.float32)  # (1, state)
    text = sentence_encoder().encode([guidance.goal, guidance.trajectory, current_subtask(guidance)])[None]  # (1, 3, 384)
    noise = rng.standard_normal((1, model.chunk, model.action_dim)).astype(np.float32)
    return images, values, text, noise


def _mask(index: np.ndarray, grid: int) -> np.ndarray:
    mask = np.zeros(grid * grid, dtype=bool)
    mask[index] = True
    return mask.reshape(grid, grid)


class TorchBackend:
    """The network on torch, eager, under inference mode."""

    def __init__(self, path: Path, threads: int | None) -> None:
        import torch

        from s2kit.learning.checkpoints import load_policy

        if threads:
            torch.set_num_threads(threads)
        self.model, _, _ = load_policy(path)

    def __call__(self, images: np.ndarray, state: np.ndarray, text: np.ndarray, noise: np.ndarray, rho: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(actions (B, H, A) normalized, done probability (B,), kept patch indices (B, cameras, k))."""
        import torch

        from s2kit.plugins.executors.s2.modeling import IMAGES, STATE, TEXT

        batch = {IMAGES: torch.from_numpy(images), STATE: torch.from_numpy(state), TEXT: torch.from_numpy(text)}
        with torch.inference_mode():
            actions, done, extras = self.model.sample(batch, rho, torch.from_numpy(noise))
        keep = extras.get("keep_index")
        return actions.numpy(), done.numpy(), (keep.numpy() if keep is not None else np.zeros((len(images), 0, 0), dtype=np.int64))


def _make_backend(cfg: S2Config, checkpoint: Path) -> Any:
    if cfg.backend == "torch":
        return TorchBackend(checkpoint, cfg.threads)
    from s2kit.core.checkpoints import find_checkpoint
    from s2kit.learning.export import OnnxBackend

    graph = cfg.onnx if cfg.onnx is not None else find_checkpoint(checkpoint) / "model.onnx"
    return OnnxBackend(graph, cfg.threads)


@hookimpl
def s2kit_executors() -> list[type[Executor]]:
    return [S2Executor, BaselineExecutor]
