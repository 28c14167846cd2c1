"""How ``mpc`` scores candidate chunks: each scorer maps (observation, guidance, candidates (K, W, D)) to K scores.

- `SimScorer` (``scorer: sim``): privileged, simulation only. The simulated
  robot rolls every candidate out from the current state and restores it
  (`SimState.rollout`); the score is the task's progress after the window
  (`SimRobot.progress_potential`). What a perfect model of the world would
  give: the upper bound of the learned critic.
- `CriticScorer` (``scorer: critic``): the learned critic (``critic.py``),
  every candidate in one batch, on torch or onnxruntime.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from s2kit.core.errors import ConfigError
from s2kit.core.types import ActionSpace, Guidance, Observation, RobotSpec

if TYPE_CHECKING:
    from s2kit.plugins.executors.mpc.executor import MpcConfig

__all__ = ["Scorer", "SimScorer", "make_scorer"]


class Scorer:
    """Scores candidate chunks; higher is better."""

    def setup(self, spec: RobotSpec, space: ActionSpace) -> None:
        self.spec, self.space = spec, space

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


def make_scorer(config: MpcConfig) -> Scorer:
    """The scorer ``config`` names; a `ConfigError` before any episode where it cannot be built."""
    if config.scorer == "sim":
        return SimScorer()
    if config.critic is None:
        raise ConfigError(
            "executor 'mpc': scorer 'critic' needs a trained critic: --set executor.critic=RUN "
            "(s2kit train --executor mpc-critic ...), or --set executor.scorer=sim in simulation"
        )
    from s2kit.plugins.executors.mpc.critic import CriticScorer

    return CriticScorer(config.critic, backend=config.critic_backend, threads=config.threads)
