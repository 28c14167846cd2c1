"""How ``mpc`` scores candidate chunks: each scorer maps (observation, guidance, candidates (K, W, D)) to K scores.

- `SimScorer` (``scorer: sim``): privileged, simulation only. The simulated
  robot rolls every candidate out from the current state and restores it
  (`SimState.rollout`); the score is the task's progress after the window
  (`SimRobot.progress_potential`). What a perfect model of the world would
  give: the upper bound of the learned critic.
- `CriticScorer` (``scorer: critic``): the learned critic (``critic.py``, the
  executor ``mpc-critic``), every candidate in one call, on torch or
  onnxruntime.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from s2kit.core.errors import ConfigError
from s2kit.core.types import ActionSpace, Guidance, Observation, RobotSpec
from s2kit.plugins.executors.mpc.columns import CANDIDATES, VALUE

if TYPE_CHECKING:
    from s2kit.plugins.executors.mpc.executor import MpcConfig

__all__ = ["CriticScorer", "Scorer", "SimScorer", "make_scorer"]


class Scorer:
    """Scores candidate chunks; higher is better."""

    def setup(self, spec: RobotSpec, space: ActionSpace, window: int) -> None:
        """Before any episode: the robot, its action space, and how many commands of each candidate are scored."""
        self.spec, self.space, self.window = spec, space, window

    def score(self, observation: Observation, guidance: Guidance, candidates: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def close(self) -> None:
        """Free what the scorer holds."""


class SimScorer(Scorer):
    """Roll each candidate out in the simulator (privileged)."""

    def score(self, observation: Observation, guidance: Guidance, candidates: np.ndarray) -> np.ndarray:
        rollout = getattr(observation.privileged, "rollout", None)
        if rollout is None:
            raise ConfigError(
                "executor 'mpc': scorer 'sim' needs the simulator in the same process (a simulated robot's "
                "privileged state); use scorer 'critic' on a real robot"
            )
        return rollout(candidates, self.space.name)


class CriticScorer(Scorer):
    """The critic's value of every candidate in one call (torch: any K; an ONNX graph: its K a call, padded)."""

    def __init__(self, checkpoint: Path, *, backend: str = "torch", onnx: Path | None = None, threads: int | None = 1) -> None:
        from s2kit.learning.executor import PolicyExecutorConfig
        from s2kit.plugins.executors.mpc.executor import CriticExecutor

        config = PolicyExecutorConfig(checkpoint=checkpoint, backend=backend, onnx=onnx, threads=threads)  # type: ignore[arg-type]
        self.critic = CriticExecutor(config)

    def setup(self, spec: RobotSpec, space: ActionSpace, window: int) -> None:
        super().setup(spec, space, window)
        self.critic.setup(spec)
        chunk = self.critic.info.model.chunk
        if window != chunk:
            raise ConfigError(f"executor 'mpc': the critic {self.critic.path} scores {chunk} commands; --set executor.window={chunk}")

    def score(self, observation: Observation, guidance: Guidance, candidates: np.ndarray) -> np.ndarray:
        critic = self.critic
        assert critic.backend is not None, "score after close"
        inputs = critic.inputs(observation, guidance)
        normalized = critic.norm.action(np.asarray(candidates, dtype=np.float32)).astype(np.float32)  # (K, chunk, A)
        if getattr(critic.backend, "batch", None) is None:  # torch: every candidate at once
            return critic.backend({**inputs, CANDIDATES: normalized[None]}, critic.options)[VALUE][0]
        fixed = critic.info.model.candidates  # type: ignore[attr-defined]
        values = []
        for start in range(0, len(normalized), fixed):
            part = normalized[start : start + fixed]
            padded = np.concatenate([part, np.repeat(part[-1:], fixed - len(part), axis=0)])
            values.append(critic.backend({**inputs, CANDIDATES: padded[None]}, critic.options)[VALUE][0][: len(part)])
        return np.concatenate(values)

    def close(self) -> None:
        self.critic.close()


def make_scorer(config: MpcConfig) -> Scorer:
    """The scorer ``config`` names; a `ConfigError` before any episode where it cannot be built."""
    if config.scorer == "sim":
        return SimScorer()
    if config.critic is None:
        raise ConfigError(
            "executor 'mpc': scorer 'critic' needs a trained critic: --set executor.critic=RUN "
            "(s2kit train --executor mpc-critic ...), or --set executor.scorer=sim in simulation"
        )
    return CriticScorer(config.critic, backend=config.critic_backend, onnx=config.critic_onnx, threads=config.threads)
