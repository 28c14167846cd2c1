"""Skill ``reach-colour`` and executor ``colour-seeker``, which acts through it.

The skill looks for the colour named in the current subtask in the head
image and moves the gripper onto it: no privileged state, only pixels. A
pipeline can name the skill itself (``s2kit run --skill reach-colour``): it
then acts for every subtask that names one colour, and the executor, if the
pipeline has one, for the rest.
"""

from __future__ import annotations

import re

import numpy as np
from pydantic import Field

from s2kit.core import ActionChunk, Executor, Guidance, Observation, PluginConfig, RobotSpec, Skill
from s2kit_example.robot import COLOURS


class ReachConfig(PluginConfig):
    """How far to plan ahead and how fast to move."""

    horizon: int = Field(4, ge=1, le=32, description="Actions per chunk.")
    speed: float = Field(0.04, gt=0, description="Table units per step.")
    tolerance: int = Field(20, ge=0, le=255, description="Per-channel colour tolerance.")


def colours_named(text: str) -> list[str]:
    """The colours a text names, in the robot's colour order."""
    words = set(re.findall(r"[a-z]+", text.lower()))
    return [c for c in COLOURS if c in words]


class ReachColourSkill(Skill):
    """Finds the named colour in the head image and moves the gripper onto it."""

    name = "reach-colour"
    Config = ReachConfig

    def accepts(self, guidance: Guidance) -> bool:
        # One colour: "touch the red square". The coarse "touch the red square, then
        # the blue square" names two, whose order this skill cannot follow.
        return len(colours_named(guidance.subtask)) == 1

    def act(self, observation: Observation, guidance: Guidance) -> ActionChunk:
        cfg: ReachConfig = self.config  # type: ignore[assignment]
        actions = np.zeros((cfg.horizon, 7), dtype=np.float32)
        actions[:, 6] = 1.0
        target = self.locate(observation.images["head"], guidance.subtask)
        if target is not None:
            pos = observation.state[:2].astype(np.float32)
            for i in range(cfg.horizon):
                delta = target - pos
                dist = float(np.linalg.norm(delta))
                step = delta if dist <= cfg.speed else delta / dist * cfg.speed
                actions[i, :2] = step
                pos = pos + step
        return ActionChunk(actions=actions, period=self.spec.control_period)

    def locate(self, image: np.ndarray, text: str) -> np.ndarray | None:
        """Centre of the named colour's pixels in table units, or None if not seen."""
        named = colours_named(text)
        if not named:
            return None
        colour = named[0]
        diff = np.abs(image.astype(np.int16) - np.array(COLOURS[colour], dtype=np.int16))
        ys, xs = np.nonzero((diff <= self.config.tolerance).all(axis=-1))  # type: ignore[attr-defined]
        if xs.size == 0:
            return None
        h, w = image.shape[:2]
        return np.array([(xs.mean() + 0.5) / w, (ys.mean() + 0.5) / h], dtype=np.float32)


class ColourSeekerExecutor(Executor):
    """Acts out the current subtask with the reach-colour skill."""

    name = "colour-seeker"
    Config = ReachConfig

    def __init__(self, config: ReachConfig | None = None) -> None:
        super().__init__(config)
        self.skill = ReachColourSkill(self.config)  # type: ignore[arg-type]

    def setup(self, spec: RobotSpec) -> None:
        super().setup(spec)
        self.skill.setup(spec)

    def act(self, observation: Observation, guidance: Guidance) -> ActionChunk:
        return self.skill.act(observation, guidance)
