"""SOF's plugin module (entry point ``sof``): the ``sof`` skill, the ``sof-translator`` executor, the ``s2kit sof``
commands and the video overlay of skill tokens.

The ``sof`` skill plans and acts: at every chunk its planner
(`s2kit.plugins.skills.sof.planner`) reads the observation and the
guidance (goal and current subtask) and plans the next windows' skill
tokens; the translator (`s2kit.plugins.skills.sof.translator`, run by the
``sof-translator`` executor, on torch or ONNX Runtime) turns the first
window's tokens and the observation into the chunk. Guidance that carries
skill tokens of its own (`Guidance.skills`) is acted out as given. The
chunk's ``info`` holds the tokens it acts out (`CHUNK_SKILLS`: the episode
result lists them) and the whole plan; its ``subtask_done`` is the
planner's done signal. `encode` turns a clip into its skill tokens with the
tokenizer.

Importing this module imports no torch: the networks load when a skill or
executor is built.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from s2kit import hookimpl
from s2kit.core.config import PluginConfig
from s2kit.core.errors import ConfigError
from s2kit.core.hookspecs import VideoOverlay
from s2kit.core.interfaces import Executor, Skill
from s2kit.core.types import CHUNK_SKILLS, ActionChunk, Guidance, Observation, RobotSpec
from s2kit.learning.executor import PolicyExecutor, PolicyExecutorConfig
from s2kit.plugins.skills.sof.cli import s2kit_register_commands

__all__ = [
    "PLAN_INFO", "SkillTranslatorExecutor", "SofConfig", "SofSkill", "check_tokens", "draw_skill_tokens", "token_colour",
    "s2kit_executors", "s2kit_register_commands", "s2kit_skills", "s2kit_video_overlays",
]  # fmt: skip

#: The camera whose video frames show the skill tokens.
OVERLAY_CAMERA = "head"
#: ``ActionChunk.info`` key of the whole plan (``horizon * tokens`` skill tokens) a chunk's tokens came from.
PLAN_INFO = "skill_plan"


def check_tokens(tokens: Sequence[int] | None, count: int, codebook: int, where: str) -> list[int]:
    """The first ``count`` of ``tokens`` as ints, or one `ConfigError` naming what is wrong: none, too few, or a
    value outside 0 .. codebook - 1."""
    if not tokens:
        raise ConfigError(f"{where}: the guidance carries no skill tokens (run the translator inside the sof skill, or under a planner that gives them)")
    values = [int(t) for t in tokens]
    if len(values) < count:
        raise ConfigError(f"{where}: {len(values)} skill token(s) given, a window takes {count}")
    bad = [t for t in values[:count] if not 0 <= t < codebook]
    if bad:
        raise ConfigError(f"{where}: skill token(s) {bad} outside 0..{codebook - 1}")
    return values[:count]


class SkillTranslatorExecutor(PolicyExecutor):
    """``sof-translator``: acts out the skill tokens of its guidance (`Guidance.skills`, one window's worth)."""

    name: ClassVar[str] = "sof-translator"

    @classmethod
    def policy_class(cls) -> Any:
        from s2kit.plugins.skills.sof.translator import SkillTranslator

        return SkillTranslator

    def inputs(self, observation: Observation, guidance: Guidance) -> dict[str, np.ndarray]:
        from s2kit.plugins.skills.sof.labels import SKILLS

        model = self.info.model
        tokens = check_tokens(guidance.skills, model.tokens, model.codebook, f"executor {self.name!r}")
        return super().inputs(observation, guidance) | {SKILLS: np.asarray([tokens], dtype=np.int64)}

    def act(self, observation: Observation, guidance: Guidance) -> ActionChunk:
        chunk = super().act(observation, guidance)
        chunk.info[CHUNK_SKILLS] = [int(t) for t in (guidance.skills or [])[: self.info.model.tokens]]
        return chunk


class SofConfig(PluginConfig):
    """The three trained parts and how to run them."""

    planner: Path | None = Field(None, description="The skill planner's checkpoint or run (s2kit sof train-planner).")
    translator: Path | None = Field(None, description="The translator's checkpoint or run (s2kit train sof-translator).")
    tokenizer: Path | None = Field(None, description="The skill tokenizer's checkpoint or run; only `encode` needs it.")
    robot: str | None = Field(None, description="The robot the pipeline drives (filled in by the pipeline).")
    backend: Literal["torch", "onnxruntime"] = Field("torch", description="Run the translator on torch, or on ONNX Runtime.")
    onnx: Path | None = Field(None, description="The translator's exported graph for onnxruntime; default: <translator>/model.onnx.")
    threads: int | None = Field(1, ge=1, description="Intra-op threads of both networks.")
    temperature: float = Field(0.0, ge=0.0, description="0: plan greedily; above 0: sample the planned tokens at this temperature.")
    done_threshold: float = Field(0.5, gt=0.0, lt=1.0, description="Subtask-done probability above which the subtask counts as finished.")
    seed: int = Field(0, description="Seed of the sampled plans (reset every episode).")
    allow_embodiment_mismatch: bool = Field(False, description="Run a translator trained on another robot (as executors allow).")


class SofSkill(Skill):
    """``sof``: plans skill tokens and acts them out (see the module docstring)."""

    name: ClassVar[str] = "sof"
    Config: ClassVar[type[PluginConfig]] = SofConfig

    def __init__(self, config: PluginConfig | None = None) -> None:
        super().__init__(config)
        import torch

        from s2kit.plugins.skills.sof.training import load_planner

        cfg: SofConfig = self.config  # type: ignore[assignment]
        missing = [name for name in ("planner", "translator") if getattr(cfg, name) is None]
        if missing:
            raise ConfigError(f"skill {self.name!r} needs {' and '.join(missing)}: " + " ".join(f"--set skill.{m}=RUN" for m in missing))
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.planner, self.planner_info, _ = load_planner(cfg.planner)  # type: ignore[arg-type]
        self.translator = SkillTranslatorExecutor(
            PolicyExecutorConfig(
                checkpoint=cfg.translator, robot=cfg.robot, backend=cfg.backend, onnx=cfg.onnx, threads=cfg.threads,
                allow_embodiment_mismatch=cfg.allow_embodiment_mismatch,
            )  # fmt: skip
        )
        plan, acts = self.planner_info.model, self.translator.info.model
        if (plan.tokens, plan.codebook) != (acts.tokens, acts.codebook):
            raise ConfigError(
                f"skill {self.name!r}: planner {cfg.planner} plans {plan.tokens} tokens of {plan.codebook} values per window, "
                f"translator {cfg.translator} reads {acts.tokens} of {acts.codebook}: train both on one tokenizer's tokens"
            )
        self.action_space = self.translator.action_space
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.guidance_encoder: Any = None
        self._tokenizer: Any = None

    def setup(self, spec: RobotSpec) -> None:
        super().setup(spec)
        roles = {c.role for c in spec.cameras}
        missing = [c for c in self.planner_info.model.cameras if c not in roles]
        if missing:
            raise ConfigError(f"skill {self.name!r}: robot {spec.name!r} has no camera {missing} for the planner (it has {sorted(roles)})")
        self.translator.setup(spec)

    def reset(self) -> None:
        self.generator.manual_seed(self.config.seed)  # type: ignore[attr-defined]
        self.translator.reset()

    def accepts(self, guidance: Guidance) -> bool:
        """Always: it plans from the goal and, where there is one, the current subtask."""
        return True

    def plan(self, observation: Observation, guidance: Guidance) -> tuple[list[int], float]:
        """(the planned tokens, ``horizon * tokens`` of them, the probability that the guidance's subtask is done)."""
        import torch

        from s2kit.learning.batch import DONE, IMAGES, TEXT
        from s2kit.learning.inputs import camera_images
        from s2kit.learning.text import GuidanceEncoder
        from s2kit.plugins.skills.sof.labels import SKILLS

        model = self.planner_info.model
        if self.guidance_encoder is None:  # the MiniLM encoder loads on first use
            self.guidance_encoder = GuidanceEncoder()
        batch = {
            IMAGES: torch.from_numpy(camera_images(observation.images, model.cameras, model.image_size).copy()),
            TEXT: torch.from_numpy(self.guidance_encoder(guidance)[None]),
        }
        with torch.inference_mode():
            out = self.planner.sample(batch, temperature=self.config.temperature, generator=self.generator)  # type: ignore[attr-defined]
        return [int(t) for t in out[SKILLS][0]], float(out[DONE][0])

    def act(self, observation: Observation, guidance: Guidance) -> ActionChunk:
        from s2kit.learning.text import current_subtask

        if guidance.skills:  # tokens given: act them out
            planned, done = list(guidance.skills), 0.0
        else:
            planned, done = self.plan(observation, guidance)
        chunk = self.translator.act(observation, guidance.model_copy(update={"skills": planned}))
        chunk.info[PLAN_INFO] = planned
        chunk.info["done_probability"] = done
        chunk.subtask_done = bool(current_subtask(guidance)) and done > self.config.done_threshold  # type: ignore[attr-defined]
        return chunk

    def encode(self, frames: np.ndarray) -> np.ndarray:
        """The skill tokens of a (T, H, W, 3) uint8 clip: its consecutive windows' tokens, in order ((T - 1) // window
        windows, ``tokens`` each, flattened). Needs ``tokenizer``."""
        import torch

        from s2kit.learning.inputs import square_frames
        from s2kit.plugins.skills.sof.flow import optical_flow
        from s2kit.plugins.skills.sof.training import load_tokenizer

        cfg: SofConfig = self.config  # type: ignore[assignment]
        if cfg.tokenizer is None:
            raise ConfigError(f"skill {self.name!r} encodes frames with its tokenizer: --set skill.tokenizer=RUN")
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(cfg.tokenizer)
        model, info, _ = self._tokenizer
        W = info.model.window
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ConfigError(f"skill {self.name!r}: encode takes a (T, H, W, 3) uint8 clip, got {frames.dtype} {frames.shape}")
        if len(frames) < W + 1:
            raise ConfigError(f"skill {self.name!r}: a clip of {len(frames)} frame(s) holds no window of {W} flows ({W + 1} frames)")
        clip = square_frames(frames, info.model.image_size)
        flow = torch.from_numpy(optical_flow(clip).transpose(0, 3, 1, 2).copy())  # (T - 1, 2, S, S)
        n = (len(frames) - 1) // W
        windows = flow[: n * W].view(n, W, *flow.shape[1:])
        with torch.inference_mode():
            _, tokens = model.encode(windows)
        return tokens.flatten().numpy().astype(np.int64)

    def close(self) -> None:
        self.translator.close()


# --- drawing the tokens ----------------------------------------------------------------------------


def token_colour(token: int) -> tuple[int, int, int]:
    """A distinct, bright colour per token value (golden-angle hues)."""
    import colorsys

    r, g, b = colorsys.hsv_to_rgb((token * 0.618033988749895) % 1.0, 0.85, 1.0)
    return int(255 * r), int(255 * g), int(255 * b)


def draw_skill_tokens(image: np.ndarray, camera: str, info: Mapping[str, Any]) -> np.ndarray | None:
    """A `VideoOverlay`: on the `OVERLAY_CAMERA`'s frame, a strip along the top with one block per skill token the chunk
    acts out, coloured by its value (the same token, the same colour), so a video shows when the skill changes."""
    tokens = info.get(CHUNK_SKILLS)
    if not tokens or camera != OVERLAY_CAMERA:
        return None
    out = image.copy()
    height, width = out.shape[:2]
    band = max(2, height // 16)
    block = width // (2 * len(tokens))
    for i, token in enumerate(tokens):
        out[:band, i * block : (i + 1) * block - 1] = token_colour(int(token))
    return out


@hookimpl
def s2kit_skills() -> list[type[Skill]]:
    return [SofSkill]


@hookimpl
def s2kit_executors() -> list[type[Executor]]:
    return [SkillTranslatorExecutor]


@hookimpl
def s2kit_video_overlays() -> list[VideoOverlay]:
    return [draw_skill_tokens]
