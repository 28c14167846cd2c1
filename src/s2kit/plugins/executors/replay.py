"""Executor ``replay``: plays back the commands of a recorded episode.

Useful to check a robot or a driver against a known trajectory (record in
simulation with ``s2kit run --record DIR``, replay on the real robot), and to
reproduce an episode exactly. Playback follows the observation clock, not
the number of chunks asked for: the runtime may drop the rest of a chunk (at
a subtask end, or in async mode), and the command for control step ``t`` is
still the recorded step ``t``. When the recording runs out, increments become
zero and position targets keep their last value.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pydantic import Field

from s2kit import hookimpl
from s2kit.core.config import PluginConfig
from s2kit.core.data import list_episodes, read_episode
from s2kit.core.errors import ConfigError
from s2kit.core.interfaces import Executor
from s2kit.core.types import ActionChunk, Guidance, Observation, RobotSpec


class ReplayConfig(PluginConfig):
    """Where the recording is and which of its episodes to play."""

    path: Path = Field(description="A recording folder written by `s2kit run --record`.")
    episode: int = Field(0, ge=0, description="Index of the episode in the recording.")
    use: str = Field("action", pattern="^(action|raw_action)$", description="Play the safe commands or the raw ones.")
    chunk: int = Field(8, ge=1, description="Actions per chunk.")


class ReplayExecutor(Executor):
    """Replays a recorded episode's commands, chunk by chunk."""

    name = "replay"
    Config = ReplayConfig

    def __init__(self, config: ReplayConfig | None = None) -> None:
        super().__init__(config)
        cfg: ReplayConfig = self.config  # type: ignore[assignment]
        episodes = list_episodes(cfg.path)
        if cfg.episode >= len(episodes):
            raise ConfigError(f"executor 'replay': episode {cfg.episode} not in {cfg.path} ({len(episodes)} episodes)")
        self.action_space = json.loads((cfg.path / "meta.json").read_text())["action_space"]
        self.actions = read_episode(cfg.path / episodes[cfg.episode]["file"])[cfg.use]
        if len(self.actions) == 0:
            raise ConfigError(f"executor 'replay': episode {cfg.episode} in {cfg.path} has no steps")
        self._t0: float | None = None

    def setup(self, spec: RobotSpec) -> None:
        super().setup(spec)
        space = spec.action_space(self.action_space)
        if self.actions.shape[1:] != (space.dim,):
            raise ConfigError(
                f"executor 'replay': recorded actions have shape {self.actions.shape[1:]}, "
                f"robot {spec.name!r} space {space.name!r} needs ({space.dim},)"
            )
        # Past the end: increments become zero, absolute dimensions keep their last value.
        self._rest = np.where(space.absolute_mask, self.actions[-1], 0.0).astype(np.float32)

    def reset(self) -> None:
        self._t0 = None

    def act(self, observation: Observation, guidance: Guidance) -> ActionChunk:
        n = self.config.chunk  # type: ignore[attr-defined]
        if self._t0 is None:
            self._t0 = observation.timestamp
        step = max(0, round((observation.timestamp - self._t0) / self.spec.control_period))
        part = self.actions[step : step + n]
        if len(part) < n:
            part = np.concatenate([part, np.repeat(self._rest[None], n - len(part), axis=0)])
        return ActionChunk(actions=part.astype(np.float32), space=self.action_space, period=self.spec.control_period)


@hookimpl
def s2kit_executors() -> list[type[Executor]]:
    return [ReplayExecutor]
