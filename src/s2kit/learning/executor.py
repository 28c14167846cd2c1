"""One executor for every kit policy: `PolicyExecutor` loads a checkpoint and turns observations into chunks.

A learned executor is a thin subclass naming its policy (``policy_class()``,
which imports torch only when called, so plugin modules stay light) and
adding only what is its own: inference options such as S2's ``rho``
(`sample_options`), extra chunk info (`chunk_info`), checks of the
checkpoint (`check_checkpoint`), a shipped checkpoint (`shipped_checkpoint`).
The rest is here, the same for all: checkpoint or run folder resolution,
the torch or onnxruntime backend and its threads, the embodiment check, the
inputs (images letterboxed, state encoded and normalized, guidance
embedded, seeded flow noise, `prepare_inputs`), the done threshold, and the
``train``/``export`` classmethods that the CLI calls, delegating to the
kit's trainer and exporter.

Importing this module imports no torch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from s2kit.core.config import PluginConfig
from s2kit.core.errors import ConfigError
from s2kit.core.interfaces import Executor
from s2kit.core.types import ActionChunk, Guidance, Observation, RobotSpec
from s2kit.learning.batch import ACTIONS, DONE, IMAGES, NOISE, STATE, TEXT
from s2kit.learning.export import ExportConfig

if TYPE_CHECKING:
    from s2kit.learning.checkpoints import CheckpointInfo
    from s2kit.learning.inputs import Normalizer, StateEncoder
    from s2kit.learning.policy import Policy
    from s2kit.learning.text import GuidanceEncoder

__all__ = ["Backend", "PolicyExecutor", "PolicyExecutorConfig", "TorchBackend", "make_backend", "prepare_inputs"]

#: A backend: (inputs by name, the policy's inference options) -> `Policy.outputs()` by name, as numpy arrays.
Backend = Callable[[dict[str, np.ndarray], dict[str, Any]], dict[str, np.ndarray]]


class PolicyExecutorConfig(PluginConfig):
    """Which checkpoint, how to run it."""

    checkpoint: Path | None = Field(None, description="A checkpoint or run folder; default: the one the executor ships for the robot, if any.")
    robot: str | None = Field(None, description="The robot the pipeline drives (filled in by the pipeline); picks the shipped checkpoint.")
    backend: Literal["torch", "onnxruntime"] = Field("torch", description="Run the network on torch, or on ONNX Runtime.")
    onnx: Path | None = Field(None, description="The exported graph for onnxruntime; default: <checkpoint>/model.onnx.")
    threads: int | None = Field(
        1, ge=1, description="Intra-op threads. 1: a chunk is small work, and more threads spin on a busy machine (docs/executors.md)."
    )
    done_threshold: float = Field(0.5, gt=0.0, lt=1.0, description="Subtask-done probability above which the subtask counts as finished.")
    seed: int = Field(0, description="Seed of the flow-matching noise (reset every episode).")
    allow_embodiment_mismatch: bool = Field(
        False, description="Run a checkpoint on a robot other than the one it was trained for (robot type, control rate, action limits)."
    )


class PolicyExecutor(Executor):
    """A trained kit policy driving a robot (see the module docstring for what a subclass adds)."""

    Config: ClassVar[type[PluginConfig]] = PolicyExecutorConfig
    #: Options of ``s2kit export`` for this executor (``--set key=value``); a subclass adds its inference options.
    ExportConfig: ClassVar[type[ExportConfig]] = ExportConfig

    # --- what a learned executor declares -------------------------------------------------------

    @classmethod
    def policy_class(cls) -> type[Policy]:
        """The `Policy` this executor runs and trains (import its module here, not at the top: it imports torch)."""
        raise NotImplementedError(f"executor {cls.name!r} names no policy class")

    @classmethod
    def sample_options(cls, info: CheckpointInfo, settings: Mapping[str, Any], where: str) -> dict[str, Any]:
        """`Policy.sample`'s inference options for this checkpoint, from the executor's (or export's) ``settings``.

        ``where`` starts an error message ("executor 's2': PATH"). Exports fix them in the graph. None by default.
        """
        return {}

    def shipped_checkpoint(self) -> Path | None:
        """The checkpoint used when none is given (None: one is required)."""
        return None

    def check_checkpoint(self, info: CheckpointInfo, path: Path) -> None:
        """Refuse a checkpoint this executor must not run (`ConfigError`); any checkpoint of its policy by default."""

    def chunk_info(self, outputs: dict[str, np.ndarray]) -> dict[str, Any]:
        """Extra ``ActionChunk.info`` entries from the backend's outputs (batch 1); none by default."""
        return {}

    # --- the rest, the same for every kit policy ------------------------------------------------

    def __init__(self, config: PluginConfig | None = None) -> None:
        super().__init__(config)
        from s2kit.learning.checkpoints import policy_class, read_info
        from s2kit.learning.inputs import Normalizer

        cfg: PolicyExecutorConfig = self.config  # type: ignore[assignment]
        path = cfg.checkpoint if cfg.checkpoint is not None else self.shipped_checkpoint()
        if path is None:
            raise ConfigError(f"executor {self.name!r} needs a checkpoint: --set executor.checkpoint=RUN")
        self.path = Path(path)
        self.info = read_info(path)
        if policy_class(self.info.executor, path) is not self.policy_class():
            raise ConfigError(f"executor {self.name!r}: {path} is a checkpoint of executor {self.info.executor!r}; run it with that one")
        self.check_checkpoint(self.info, self.path)
        self.options = self.sample_options(self.info, cfg.model_dump(), f"executor {self.name!r}: {path}")
        self.action_space = self.info.action_space
        self.backend: Backend | None = make_backend(cfg.backend, self.path, cfg.onnx, cfg.threads)
        self.norm = Normalizer.from_dict(self.info.normalization)
        self.rng = np.random.default_rng(cfg.seed)
        self.guidance_encoder: GuidanceEncoder | None = None

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
        return train(cls, data, out, config, resume=resume, progress=report, log=log)

    @classmethod
    def export(cls, checkpoint: Path, out: Path, *, format: str, overrides: Sequence[str] = ()) -> dict[str, Any]:
        from s2kit.core.config import validate_overrides
        from s2kit.learning.export import FORMATS, export_onnx

        if format not in FORMATS:
            raise ConfigError(f"export {cls.name}: unknown format {format!r} (known: {', '.join(FORMATS)})")
        config = validate_overrides(cls.ExportConfig, overrides, f"export {cls.name}")
        return export_onnx(checkpoint, out, **config.model_dump())

    def setup(self, spec: RobotSpec) -> None:
        super().setup(spec)
        from s2kit.learning.inputs import StateEncoder

        model = self.info.model
        roles = {c.role for c in spec.cameras}
        missing = [c for c in model.cameras if c not in roles]
        if missing:
            raise ConfigError(f"executor {self.name!r}: robot {spec.name!r} has no camera {missing} (it has {sorted(roles)})")
        spec.action_space(self.action_space)  # raises if the robot does not accept it
        embodiment = self.info.embodiment
        differences = [] if embodiment is None else embodiment.differences(spec)
        if differences and not self.config.allow_embodiment_mismatch:  # type: ignore[attr-defined]
            raise ConfigError(
                f"executor {self.name!r}: {self.path} was trained for another robot than {spec.name!r} ({'; '.join(differences)}); "
                "--set executor.allow_embodiment_mismatch=true runs it anyway"
            )
        self.state = StateEncoder(spec.state_names, self.info.state_names)
        if self.state.dim != model.state_dim:
            raise ConfigError(f"executor {self.name!r}: the checkpoint reads {model.state_dim} state inputs, robot {spec.name!r} gives {self.state.dim}")

    def reset(self) -> None:
        self.rng = np.random.default_rng(self.config.seed)  # type: ignore[attr-defined]

    def inputs(self, observation: Observation, guidance: Guidance) -> dict[str, np.ndarray]:
        """The backend's inputs for one observation (`prepare_inputs`)."""
        from s2kit.learning.text import GuidanceEncoder

        if self.guidance_encoder is None:  # the MiniLM encoder loads on first use
            self.guidance_encoder = GuidanceEncoder()
        return prepare_inputs(self.info, self.state, self.norm, observation, guidance, self.rng, self.guidance_encoder)

    @property
    def stochastic(self) -> bool:
        """Whether the head samples (flow matching, diffusion), so that fresh noise gives another chunk."""
        return getattr(self.info.model, "head", "regression") != "regression"  # the kit's heads: regression, flow, diffusion

    def act(self, observation: Observation, guidance: Guidance) -> ActionChunk:
        assert self.backend is not None, "act after close"
        return self._chunk(self.backend(self.inputs(observation, guidance), self.options), 0, guidance)

    def propose(self, observation: Observation, guidance: Guidance, count: int) -> list[ActionChunk]:
        """``act``'s chunk, then ``count`` - 1 more samples with fresh noise where the head samples, in one batch
        (a graph exported with batch 1 runs them one by one); ``act``'s chunk alone for a regression head."""
        assert self.backend is not None, "act after close"
        if count <= 1 or not self.stochastic:
            return [self.act(observation, guidance)]
        inputs = self.inputs(observation, guidance)
        noise = np.concatenate([inputs[NOISE], self.rng.standard_normal((count - 1, *inputs[NOISE].shape[1:])).astype(np.float32)])
        if getattr(self.backend, "batch", None) == 1:
            outs = [self.backend({**inputs, NOISE: noise[i : i + 1]}, self.options) for i in range(count)]
            outputs = {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}
        else:
            batch = {k: np.repeat(v, count, axis=0) for k, v in inputs.items() if k != NOISE}
            outputs = self.backend({**batch, NOISE: noise}, self.options)
        return [self._chunk(outputs, i, guidance) for i in range(count)]

    def _chunk(self, outputs: dict[str, np.ndarray], i: int, guidance: Guidance) -> ActionChunk:
        """Row ``i`` of the backend's outputs as a chunk in the robot's units, with its done signal and info."""
        from s2kit.learning.text import current_subtask

        row = {k: v[i : i + 1] for k, v in outputs.items()}
        actions = self.norm.unaction(row[ACTIONS][0]).astype(np.float32)
        info: dict[str, Any] = {}
        done = row.get(DONE)
        if done is not None:
            info["done_probability"] = float(done[0])
        info.update(self.chunk_info(row))
        finished = bool(current_subtask(guidance)) and done is not None and float(done[0]) > self.config.done_threshold  # type: ignore[attr-defined]
        return ActionChunk(actions=actions, space=self.action_space, period=self.spec.control_period, subtask_done=finished, info=info)

    def close(self) -> None:
        self.backend = None


def prepare_inputs(
    info: CheckpointInfo,
    state: StateEncoder,
    norm: Normalizer,
    observation: Observation,
    guidance: Guidance,
    rng: np.random.Generator,
    text: GuidanceEncoder | None = None,
) -> dict[str, np.ndarray]:
    """A backend's inputs for one observation, as the executor feeds them (``s2kit export`` checks its graph on these).

    ``images`` (1, cameras, 3, S, S) uint8, letterboxed; ``state`` (1, state_dim) encoded and normalized;
    ``text`` (1, 3, 384): goal, trajectory, current subtask; ``noise`` (1, H, A) drawn from ``rng``
    (drawn whatever the head, so that the draws stay in step).
    """
    from s2kit.learning.inputs import camera_images
    from s2kit.learning.text import GuidanceEncoder

    model = info.model
    return {
        IMAGES: camera_images(observation.images, model.cameras, model.image_size),  # (1, cameras, 3, S, S)
        STATE: norm.state(state(observation.state))[None].astype(np.float32),  # (1, state)
        TEXT: (text or GuidanceEncoder())(guidance)[None],  # (1, 3, 384)
        NOISE: rng.standard_normal((1, model.chunk, model.action_dim)).astype(np.float32),
    }


class TorchBackend:
    """The policy on torch, eager, under inference mode."""

    def __init__(self, path: Path, threads: int | None) -> None:
        import torch

        from s2kit.learning.checkpoints import load_policy

        if threads:
            torch.set_num_threads(threads)
        self.model, self.info, _ = load_policy(path)
        self.outputs = self.model.outputs()

    def __call__(self, inputs: dict[str, np.ndarray], options: dict[str, Any]) -> dict[str, np.ndarray]:
        import torch

        batch = {k: torch.from_numpy(v) for k, v in inputs.items() if k != NOISE}
        noise = inputs.get(NOISE)
        with torch.inference_mode():
            out = self.model.sample(batch, noise=None if noise is None else torch.from_numpy(noise), **options)
        return {k: out[k].numpy() for k in self.outputs}


def make_backend(kind: str, checkpoint: Path, onnx: Path | None, threads: int | None) -> Backend:
    """The torch backend for ``checkpoint``, or the onnxruntime one for its graph (``onnx``, default <checkpoint>/model.onnx)."""
    if kind == "torch":
        return TorchBackend(checkpoint, threads)
    from s2kit.core.checkpoints import find_checkpoint
    from s2kit.learning.export import OnnxBackend

    return OnnxBackend(onnx if onnx is not None else find_checkpoint(checkpoint) / "model.onnx", threads)
