"""Robot ``planar``: a 2-D gripper over a table of coloured squares.

Pure numpy, so it runs anywhere; it shows everything a robot plugin owes the
runtime: a spec, reset/observe/apply, a hold, progress, and its task (the
instruction and each subtask's text, which planners such as ``oracle`` and
``s2kit collect``'s annotations use). It declares no task suites: it has one
task distribution, so ``run``, ``collect`` and ``eval`` set no ``suite``
option on it. (A robot with suites would return their names from
``suites()``, the in-distribution one first, and take the chosen one as its
``suite`` option.)
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from s2kit.core import (
    CameraSpec,
    Observation,
    PluginConfig,
    Robot,
    RobotSpec,
    RobotStatus,
    ee_delta_space,
)
from s2kit.core.types import TaskText

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 180, 60),
    "blue": (40, 60, 220),
    "yellow": (230, 210, 30),
    "purple": (150, 50, 190),
}


class PlanarConfig(PluginConfig):
    """Scene and camera settings."""

    squares: int = Field(3, ge=2, le=len(COLOURS), description="Coloured squares on the table.")
    targets: int = Field(2, ge=1, description="How many of them the task visits, in order.")
    image_size: int = Field(64, ge=16, le=256, description="Head camera resolution (square).")
    half_size: float = Field(0.06, gt=0, lt=0.2, description="Half the side of a square, in table units.")


class PlanarRobot(Robot):
    """A 2-D gripper over coloured squares; touch them in the order the instruction gives."""

    name = "planar"
    Config = PlanarConfig

    def __init__(self, config: PlanarConfig | None = None) -> None:
        super().__init__(config)
        cfg: PlanarConfig = self.config  # type: ignore[assignment]
        if cfg.targets > cfg.squares:
            raise ValueError(f"targets ({cfg.targets}) cannot exceed squares ({cfg.squares})")
        self._spec = RobotSpec(
            name=self.name,
            cameras=(CameraSpec(role="head", height=cfg.image_size, width=cfg.image_size),),
            state_names=("x", "y"),
            action_spaces=(ee_delta_space(max_translation=0.05),),
            control_hz=10.0,
        )
        self.reset(seed=0)

    @classmethod
    def details(cls) -> dict[str, object]:
        return {"colours": ", ".join(COLOURS)}

    @property
    def spec(self) -> RobotSpec:
        return self._spec

    @property
    def task(self) -> TaskText:
        # The instruction and one subtask per square; the current one is the first not yet touched.
        names = [f"the {c} square" for c in self.order]
        current = min(self.touched, len(names) - 1)
        return TaskText("touch " + ", then ".join(names), tuple(f"touch {n}" for n in names), current)

    def reset(self, *, seed: int | None = None) -> Observation:
        cfg: PlanarConfig = self.config  # type: ignore[assignment]
        rng = np.random.default_rng(seed)
        colours = list(rng.choice(list(COLOURS), size=cfg.squares, replace=False))
        self.squares = {c: self._place(rng, i) for i, c in enumerate(colours)}
        self.order = colours[: cfg.targets]
        self.pos = np.array([0.5, 0.5], dtype=np.float32)
        self.touched = 0
        self.steps = 0
        return self.observe()

    def _place(self, rng: np.random.Generator, index: int) -> np.ndarray:
        # Squares sit on a ring around the start so they never overlap it or each other.
        angle = 2 * np.pi * (index + rng.uniform(0.1, 0.9)) / self.config.squares  # type: ignore[attr-defined]
        return np.array([0.5 + 0.32 * np.cos(angle), 0.5 + 0.32 * np.sin(angle)], dtype=np.float32)

    def scene(self) -> str:
        return "; ".join(f"{c} square at ({p[0]:.2f}, {p[1]:.2f})" for c, p in self.squares.items())

    def observe(self) -> Observation:
        cfg: PlanarConfig = self.config  # type: ignore[assignment]
        n = cfg.image_size
        image = np.full((n, n, 3), 90, dtype=np.uint8)
        for colour, centre in self.squares.items():
            lo = np.clip(((centre - cfg.half_size) * n).astype(int), 0, n)
            hi = np.clip(((centre + cfg.half_size) * n).astype(int), 0, n)
            image[lo[1] : hi[1], lo[0] : hi[0]] = COLOURS[colour]
        g = np.clip((self.pos * n).astype(int), 1, n - 2)
        image[g[1] - 1 : g[1] + 2, g[0] - 1 : g[0] + 2] = 255
        return Observation(
            images={"head": image},
            state=self.pos.copy(),
            timestamp=self.steps * self._spec.control_period,
            scene=self.scene(),
            task=self.task,  # planners get the robot's task texts from each observation
        )

    def apply(self, action: np.ndarray, space: str) -> None:
        self.pos = np.clip(self.pos + action[:2], 0.0, 1.0).astype(np.float32)
        self.steps += 1
        if self.touched < len(self.order):
            centre = self.squares[self.order[self.touched]]
            if np.all(np.abs(self.pos - centre) <= self.config.half_size):  # type: ignore[attr-defined]
                self.touched += 1

    def status(self) -> RobotStatus:
        total = len(self.order)
        return RobotStatus(done=self.touched >= total, subtasks_completed=self.touched, subtasks_total=total)
