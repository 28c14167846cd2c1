"""Executor ``mpc``: Plan2Align-style receding-horizon refinement of any executor's chunks.

Plan2Align (arXiv 2502.20795) refines a generation by predictive planning:
propose candidates, score them over short windows, keep a buffer of the best,
re-plan from it. For a robot that is model-predictive control around a
policy. Each time a chunk is needed, ``mpc``:

1. **Proposes** ``candidates`` chunks: the inner executor's own chunk first;
   more samples of its head with fresh noise where the head is generative
   (`Executor.propose`: one batched call for a kit policy with a flow or
   diffusion head); the buffer's chunks kept from earlier steps, shifted by
   the steps executed since (the rest padded with holding still); and
   perturbations of the inner's chunk (Gaussian, a constant offset plus a
   smaller per-step jitter, ``noise`` times each perturbed dimension's
   largest step) to fill up to ``candidates``.
2. Passes **every candidate through the safety layer** (clamped to the
   robot's action space; a non-finite one is dropped) before anything scores
   it, so a scorer never favours a command the robot would not execute.
3. **Scores** the first ``window`` steps of every candidate (a shorter chunk
   padded with holding still) in one batch
   (`scorers.py`): ``critic``, a learned progress model, or ``sim``, the
   simulator rolling each candidate out (privileged: the upper bound a
   perfect model would give). With ``iterations`` > 1, each further pass
   perturbs the best so far at half the previous noise and scores again.
4. **Executes** the best candidate (the runtime runs its first
   ``execute_horizon`` steps), and keeps the ``buffer`` best candidates
   whose score reaches ``threshold`` for the next steps.

A scorer that fails falls back to the inner's chunk, with one warning; the
chunk's info says so (``mpc.fallback``). The chunk's ``subtask_done`` and
info are the inner's, with ``mpc``: where the chosen candidate came from,
its score and the inner chunk's, and the scoring time.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field, field_validator

from s2kit import hookimpl
from s2kit.core.config import PluginConfig
from s2kit.core.errors import ConfigError
from s2kit.core.interfaces import Executor
from s2kit.core.safety import SafetyFilter, UnsafeAction
from s2kit.core.types import ActionChunk, Guidance, Observation, RobotSpec
from s2kit.learning.executor import PolicyExecutor
from s2kit.plugins.executors.mpc.columns import s2kit_dataset_columns  # noqa: F401 - a hook of this plugin

if TYPE_CHECKING:
    from s2kit.plugins.executors.mpc.critic import ProgressCritic

__all__ = ["CriticExecutor", "MpcConfig", "MpcExecutor"]

log = logging.getLogger(__name__)


class MpcConfig(PluginConfig):
    inner: dict[str, Any] = Field(
        default_factory=lambda: {"name": "s2"}, description="The executor whose chunks are refined: an executor section {name: ..., <options>}."
    )
    robot: str | None = Field(None, description="The robot the pipeline drives (filled in by the pipeline; passed on to the inner).")
    # scoring
    scorer: Literal["critic", "sim"] = Field("critic", description="critic: a learned progress model (checkpoint `critic`); sim: "
                                             "roll each candidate out in the simulator (privileged, simulation only).")  # fmt: skip
    critic: Path | None = Field(None, description="The critic's checkpoint or run folder (s2kit train --executor mpc-critic).")
    critic_backend: Literal["torch", "onnxruntime"] = Field("torch", description="Run the critic on torch or on ONNX Runtime.")
    critic_onnx: Path | None = Field(None, description="The critic's exported graph for onnxruntime; default: <critic checkpoint>/model.onnx.")
    threads: int | None = Field(1, ge=1, description="The critic's intra-op threads.")
    # candidates
    candidates: int = Field(8, ge=1, description="Candidate chunks scored per step (K).")
    window: int = Field(5, ge=1, description="Steps of each candidate that are scored.")
    iterations: int = Field(1, ge=1, description="Passes of perturb-and-score around the best candidate.")
    noise: float = Field(0.5, ge=0.0, description="Perturbation scale, as a fraction of each perturbed dimension's largest step.")
    perturb: list[int] = Field(default_factory=lambda: [0, 1, 2], description="Action dimensions perturbed (default: the translation).")
    buffer: int = Field(3, ge=0, description="Best candidates kept for the next steps.")
    threshold: float | None = Field(None, description="Score a candidate needs to enter the buffer (None: any).")
    seed: int = Field(0, description="Seed of the perturbations (reset every episode).")

    @field_validator("inner")
    @classmethod
    def _names_an_executor(cls, value: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(value.get("name"), str) or not value["name"]:
            raise ValueError("inner needs a 'name' (the executor to refine, e.g. {name: s2})")
        if value["name"] == "mpc":
            raise ValueError("inner must be another executor than mpc")
        return value


class MpcExecutor(Executor):
    """Receding-horizon refinement around any executor: propose, clamp, score, execute the best, keep a buffer."""

    name = "mpc"
    Config = MpcConfig

    def __init__(self, config: MpcConfig | None = None) -> None:
        super().__init__(config)
        from s2kit.core.registry import get_registry
        from s2kit.plugins.executors.mpc.scorers import make_scorer

        cfg: MpcConfig = self.config  # type: ignore[assignment]
        registry = get_registry()
        inner = cfg.inner if cfg.robot is None else registry.with_robot("executor", cfg.inner, cfg.robot)
        self.inner: Executor = registry.create("executor", inner)  # type: ignore[assignment]
        self.action_space = self.inner.action_space
        self.scorer = make_scorer(cfg)
        self.rng = np.random.default_rng(cfg.seed)
        self._kept: list[np.ndarray] = []  # the buffer: the best candidates of the last step, safe
        self._last_time: float | None = None
        self._warned = False

    def setup(self, spec: RobotSpec) -> None:
        super().setup(spec)
        self.inner.setup(spec)
        space = spec.action_space(self.action_space)
        cfg: MpcConfig = self.config  # type: ignore[assignment]
        bad = [d for d in cfg.perturb if not 0 <= d < space.dim]
        if bad:
            raise ConfigError(f"executor 'mpc': perturb names dimensions {bad}; space {space.name!r} has {space.dim}")
        self.space = space
        self.safety = SafetyFilter(space, spec.state_names)
        step = np.asarray(space.max_step if space.max_step is not None else np.asarray(space.high) - np.asarray(space.low), dtype=np.float32)
        self._scale = np.zeros(space.dim, np.float32)
        self._scale[cfg.perturb] = cfg.noise * step[cfg.perturb]
        self._absolute = np.asarray(space.absolute_mask, dtype=bool)
        self.scorer.setup(spec, space, cfg.window)

    def reset(self) -> None:
        self.inner.reset()
        self.rng = np.random.default_rng(self.config.seed)  # type: ignore[attr-defined]
        self._kept, self._last_time = [], None

    def close(self) -> None:
        self.inner.close()
        self.scorer.close()

    # --- candidates ----------------------------------------------------------------------------

    def _perturbed(self, chunk: np.ndarray, count: int, scale: np.ndarray) -> list[np.ndarray]:
        """``count`` copies of ``chunk`` with a constant offset (scale) plus a per-step jitter (half the scale)."""
        h, d = chunk.shape
        offset = self.rng.standard_normal((count, 1, d)) * scale
        jitter = self.rng.standard_normal((count, h, d)) * (scale / 2)
        return list((chunk[None] + offset + jitter).astype(np.float32))

    def _shifted(self, chunk: np.ndarray, steps: int, length: int) -> np.ndarray:
        """A kept chunk ``steps`` later: its rest, then holding still (no increment, the last absolute command)."""
        rest = chunk[steps:length] if steps < len(chunk) else chunk[:0]
        hold = np.where(self._absolute, chunk[-1], 0.0).astype(np.float32)
        pad = np.repeat(hold[None], length - len(rest), axis=0)
        return np.concatenate([rest, pad])[:length]

    def _safe(self, chunks: list[np.ndarray], observation: Observation) -> tuple[np.ndarray, list[int]]:
        """The candidates through the safety layer (K, H, D), and which of the given ones they are (non-finite dropped)."""
        out, kept = [], []
        self.safety.reset(observation.state)  # each candidate starts from this state: filtering a chunk changes no state
        for i, chunk in enumerate(chunks):
            try:
                out.append(self.safety.filter_chunk(chunk)[0])
            except UnsafeAction:
                continue
            kept.append(i)
        return (np.stack(out) if out else np.zeros((0,))), kept

    # --- acting --------------------------------------------------------------------------------

    def act(self, observation: Observation, guidance: Guidance) -> ActionChunk:
        cfg: MpcConfig = self.config  # type: ignore[assignment]
        proposed = self.inner.propose(observation, guidance, cfg.candidates)
        base = proposed[0]
        horizon = len(base.actions)
        steps = 0
        if self._last_time is not None:
            steps = max(0, round((observation.timestamp - self._last_time) / self.spec.control_period))
        self._last_time = observation.timestamp
        chunks = [c.actions.astype(np.float32) for c in proposed if c.actions.shape == base.actions.shape]
        sources = ["inner"] + ["sample"] * (len(chunks) - 1)
        for kept in self._kept:
            chunks.append(self._shifted(kept, steps, horizon))
            sources.append("kept")
        missing = cfg.candidates - len(chunks)
        if missing > 0:
            chunks += self._perturbed(chunks[0], missing, self._scale)
            sources += ["perturbed"] * missing
        safe, index = self._safe(chunks, observation)
        if not index or index[0] != 0:  # the inner's own chunk is not safe: let the runtime refuse it, as without mpc
            return base
        sources = [sources[i] for i in index]
        t = time.perf_counter()
        try:
            scores = self._score(observation, guidance, safe)
            for i in range(1, cfg.iterations):  # the cross-entropy-method way: narrower around the best so far
                more = self._perturbed(safe[int(np.argmax(scores))], cfg.candidates, self._scale * 0.5**i)
                extra, kept_index = self._safe(more, observation)
                if kept_index:
                    safe = np.concatenate([safe, extra])
                    scores = np.concatenate([scores, self._score(observation, guidance, extra)])
                    sources += ["refined"] * len(kept_index)
        except ConfigError:
            raise
        except Exception as err:  # noqa: BLE001 - any scorer failure: the inner's chunk, said once
            if not self._warned:
                self._warned = True
                log.warning("executor mpc: scorer %r failed (%s: %s); executing the inner executor's chunks", cfg.scorer, type(err).__name__, err)
            return ActionChunk(base.actions, base.space, base.period, base.subtask_done,
                               {**base.info, "mpc": {"fallback": f"{type(err).__name__}: {err}"}})  # fmt: skip
        ms = 1000 * (time.perf_counter() - t)
        order = np.argsort(-scores, kind="stable")
        best = int(order[0])
        self._kept = [safe[i] for i in order[: cfg.buffer] if cfg.threshold is None or scores[i] >= cfg.threshold]
        info = {**base.info, "mpc": {"source": sources[best], "score": float(scores[best]), "inner_score": float(scores[0]),
                                     "candidates": len(safe), "score_ms": ms}}  # fmt: skip
        return ActionChunk(safe[best].astype(np.float32), base.space, base.period, base.subtask_done, info)

    def _score(self, observation: Observation, guidance: Guidance, candidates: np.ndarray) -> np.ndarray:
        """Every candidate's score over ``window`` commands (a chunk shorter than that is padded with holding still)."""
        window = self.config.window  # type: ignore[attr-defined]
        if candidates.shape[1] < window:
            candidates = np.stack([self._shifted(c, 0, window) for c in candidates])
        scores = np.asarray(self.scorer.score(observation, guidance, candidates[:, :window]), dtype=np.float64)
        if scores.shape != (len(candidates),):
            raise ValueError(f"the scorer gave {scores.shape} scores for {len(candidates)} candidates")
        if not np.isfinite(scores).any():
            raise ValueError("no candidate got a finite score")
        return np.where(np.isfinite(scores), scores, -np.inf)


class CriticExecutor(PolicyExecutor):
    """``mpc``'s critic on the kit (``critic.py``): ``s2kit train --executor mpc-critic`` and ``s2kit export``; it
    scores chunks for ``mpc``, it does not drive."""

    name = "mpc-critic"

    @classmethod
    def policy_class(cls) -> type[ProgressCritic]:
        from s2kit.plugins.executors.mpc.critic import ProgressCritic

        return ProgressCritic

    def act(self, observation: Observation, guidance: Guidance) -> ActionChunk:
        raise ConfigError(f"executor 'mpc-critic' scores chunks for executor mpc: --executor mpc --set executor.critic={self.path}")


@hookimpl
def s2kit_executors() -> list[type[Executor]]:
    return [MpcExecutor, CriticExecutor]
