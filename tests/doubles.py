"""Small test doubles for the runtime's tests. Never shipped as plugins.

Loaded as a plugin module with ``load_registry(modules=["tests.doubles"])`` or
``S2KIT_PLUGINS=tests.doubles``.

``point`` is a point that moves in 3-D towards waypoints; its instruction
lists them in order ("reach 0.2,0,0; reach 0.2,0.2,0") and each one reached in
order completes a subtask. ``waypoints`` is a planner that splits that
instruction into subtasks; ``seek`` an executor that moves towards the current
subtask's waypoint; ``masked`` is ``seek`` reporting kept image patches the
way S2 does (``info["keep"]``) and taking a ``checkpoint``; ``constant`` and
``faulty`` executors emit fixed or broken chunks. ``reach`` is a skill that
moves like ``seek`` (or emits a fixed action) and accepts guidance by the
default rule or by one skill token, which ``waypoints`` can carry.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
from pydantic import Field

from s2kit import hookimpl
from s2kit.core.config import PluginConfig
from s2kit.core.errors import EpisodeAborted
from s2kit.core.interfaces import Executor, Planner, Robot, Skill
from s2kit.core.types import (
    ActionChunk,
    ActionSpace,
    CameraSpec,
    Guidance,
    Observation,
    RobotSpec,
    RobotStatus,
    ee_delta_space,
)

DEFAULT_TASK = "reach 0.2,0,0; reach 0.2,0.2,0; reach 0,0.2,0.1"


def parse_waypoints(instruction: str) -> list[np.ndarray]:
    return [
        np.array([float(v) for v in part.strip().removeprefix("reach").split(",")], dtype=np.float32)
        for part in instruction.split(";")
    ]


class PointConfig(PluginConfig):
    task: str = Field(DEFAULT_TASK, description="Waypoints to reach in order.")
    tolerance: float = Field(0.02, gt=0)
    image_size: int = Field(16, gt=0)
    max_translation: float = Field(0.05, gt=0)
    realtime: bool = False
    control_hz: float = 50.0
    start: list[float] = Field(default_factory=lambda: [0.0, 0.0, 0.0])
    suite: str | None = None
    report_progress: bool = Field(True, description="False: a robot that cannot tell subtask progress.")
    abort_at: int | None = Field(None, description="Raise EpisodeAborted at this step of every episode.")
    background: int = Field(0, ge=0, le=255, description="Grey level of the image behind the point.")


class PointRobot(Robot):
    """A point that moves in 3-D; subtasks are waypoints reached in order."""

    name = "point"
    Config = PointConfig

    def __init__(self, config: PointConfig | None = None) -> None:
        super().__init__(config)
        cfg: PointConfig = self.config  # type: ignore[assignment]
        self.waypoints = parse_waypoints(cfg.task)
        self._spec = RobotSpec(
            name="point",
            cameras=(CameraSpec(role="head", height=cfg.image_size, width=cfg.image_size),),
            state_names=("x", "y", "z", "gripper"),
            action_spaces=(
                ee_delta_space(max_translation=cfg.max_translation),
                ActionSpace(
                    name="position",
                    names=("x", "y", "z"),
                    low=(-1.0, -1.0, -1.0),
                    high=(1.0, 1.0, 1.0),
                    max_step=(0.1, 0.1, 0.1),
                    absolute=True,
                ),
            ),
            control_hz=cfg.control_hz,
            realtime=cfg.realtime,
        )
        self.applied: list[np.ndarray] = []
        self.holds = 0
        self.closed = False
        self.reset()

    @property
    def spec(self) -> RobotSpec:
        return self._spec

    @classmethod
    def suites(cls) -> tuple[str, ...]:
        return ("a", "b", "distractor")  # the in-distribution one first

    @property
    def instruction(self) -> str:
        return self.config.task  # type: ignore[attr-defined]

    def reset(self, *, seed: int | None = None) -> Observation:
        self.pos = np.array(self.config.start, dtype=np.float32)  # type: ignore[attr-defined]
        self.gripper = 1.0
        self.reached = 0
        self.t = 0
        self.seed = seed
        self.applied = []
        return self.observe()

    def observe(self) -> Observation:
        size = self.config.image_size  # type: ignore[attr-defined]
        image = np.full((size, size, 3), self.config.background, dtype=np.uint8)  # type: ignore[attr-defined]
        px = np.clip(((self.pos[:2] + 1) / 2 * (size - 1)).astype(int), 0, size - 1)
        image[px[1], px[0]] = 255
        state = np.array([*self.pos, self.gripper], dtype=np.float32)
        return Observation(images={"head": image}, state=state, timestamp=self.t * self.spec.control_period)

    def apply(self, action: np.ndarray, space: str) -> None:
        if self.t == self.config.abort_at:  # type: ignore[attr-defined]
            raise EpisodeAborted("the point fell off the table")
        self.applied.append(np.array(action))
        if space == "ee_delta":
            self.pos = self.pos + action[:3]
            self.gripper = float(action[6])
        else:
            self.pos = np.array(action, dtype=np.float32)
        self.t += 1
        tol = self.config.tolerance  # type: ignore[attr-defined]
        if self.reached < len(self.waypoints) and np.linalg.norm(self.pos - self.waypoints[self.reached]) < tol:
            self.reached += 1

    def hold(self) -> None:
        self.holds += 1

    def status(self) -> RobotStatus:
        total = len(self.waypoints)
        if not self.config.report_progress:  # type: ignore[attr-defined]
            return RobotStatus(done=self.reached >= total)
        return RobotStatus(done=self.reached >= total, subtasks_completed=self.reached, subtasks_total=total)

    def close(self) -> None:
        self.closed = True


class WaypointConfig(PluginConfig):
    tokens: bool = Field(False, description="Carry the current subtask's index as the guidance's skill token.")


class WaypointPlanner(Planner):
    """Splits 'reach A; reach B' into subtasks; follows the robot's progress when given."""

    name = "waypoints"
    Config = WaypointConfig
    events = ("start", "subtask")

    def plan(
        self,
        instruction: str,
        observation: Observation,
        *,
        event: str = "start",
        history: Sequence[Guidance] = (),
        status: RobotStatus | None = None,
    ) -> Guidance:
        subtasks = [part.strip() for part in instruction.split(";")]
        current = 0
        if status is not None and status.subtasks_completed is not None:
            current = min(status.subtasks_completed, len(subtasks) - 1)
        elif event == "subtask" and history:
            current = min(history[-1].current + 1, len(subtasks) - 1)
        skills = [current] if self.config.tokens else None  # type: ignore[attr-defined]
        return Guidance(
            goal=instruction, trajectory="visit the waypoints in order", subtasks=subtasks, current=current, skills=skills
        )


class SeekConfig(PluginConfig):
    horizon: int = Field(8, ge=1)
    gain: float = 0.5
    signal_done: bool = Field(False, description="Say subtask_done when within tolerance of the waypoint.")


class SeekExecutor(Executor):
    """Moves towards the current subtask's waypoint, using only the guidance and the state."""

    name = "seek"
    Config = SeekConfig

    def act(self, observation: Observation, guidance: Guidance) -> ActionChunk:
        cfg: SeekConfig = self.config  # type: ignore[assignment]
        target = parse_waypoints(guidance.subtask)[0]
        done = cfg.signal_done and float(np.linalg.norm(observation.state[:3] - target)) < 0.02
        return ActionChunk(
            actions=seek_actions(observation.state, target, cfg.horizon, cfg.gain),
            period=self.spec.control_period,
            subtask_done=done,
        )


def seek_actions(state: np.ndarray, target: np.ndarray, horizon: int, gain: float) -> np.ndarray:
    """``(horizon, 7)`` ee_delta steps from the state's position towards ``target``, gripper open."""
    pos = state[:3].copy()
    actions = np.zeros((horizon, 7), dtype=np.float32)
    for i in range(horizon):
        delta = np.clip((target - pos) * gain * 2, -0.05, 0.05)
        actions[i, :3] = delta
        actions[i, 6] = 1.0
        pos = pos + delta
    return actions


class MaskedConfig(SeekConfig):
    grid: int = Field(4, ge=2, description="Patches per image side.")
    checkpoint: str | None = Field(None, description="A checkpoint folder (recorded, not read).")


class MaskedSeekExecutor(SeekExecutor):
    """``seek``, saying it kept the left half of the head camera's patches (as S2's info["keep"])."""

    name = "masked"
    Config = MaskedConfig

    def act(self, observation: Observation, guidance: Guidance) -> ActionChunk:
        chunk = super().act(observation, guidance)
        grid = self.config.grid  # type: ignore[attr-defined]
        keep = np.zeros((grid, grid), dtype=bool)
        keep[:, : grid // 2] = True
        chunk.info["keep"] = {"head": keep}
        return chunk


class ConstantConfig(PluginConfig):
    value: list[float] = Field(default_factory=lambda: [0.0] * 7)
    horizon: int = Field(8, ge=1)
    space: str = "ee_delta"
    delay: float = Field(0.0, ge=0, description="Seconds each act() sleeps (async tests).")


class ConstantExecutor(Executor):
    """The same action, forever (the chunk's info counts calls)."""

    name = "constant"
    Config = ConstantConfig

    def __init__(self, config: ConstantConfig | None = None) -> None:
        super().__init__(config)
        self.action_space = self.config.space  # type: ignore[attr-defined]
        self.calls = 0

    def act(self, observation: Observation, guidance: Guidance) -> ActionChunk:
        cfg: ConstantConfig = self.config  # type: ignore[assignment]
        if cfg.delay:
            time.sleep(cfg.delay)
        self.calls += 1
        actions = np.tile(np.asarray(cfg.value, dtype=np.float32), (cfg.horizon, 1))
        return ActionChunk(actions=actions, space=cfg.space, period=self.spec.control_period)


class ClockConfig(PluginConfig):
    horizon: int = Field(8, ge=1)
    delay: float = Field(0.0, ge=0)


class ClockExecutor(Executor):
    """Action j of a chunk computed at step t0 encodes the step it is meant for: dx = (t0 + j) * 1e-4."""

    name = "clock"
    Config = ClockConfig

    def act(self, observation: Observation, guidance: Guidance) -> ActionChunk:
        cfg: ClockConfig = self.config  # type: ignore[assignment]
        t0 = round(observation.timestamp / self.spec.control_period)
        if cfg.delay:
            time.sleep(cfg.delay)
        actions = np.zeros((cfg.horizon, 7), dtype=np.float32)
        actions[:, 0] = (t0 + np.arange(cfg.horizon)) * 1e-4
        actions[:, 6] = 1.0
        return ActionChunk(actions=actions, period=self.spec.control_period)


class FaultyConfig(PluginConfig):
    fault: str = Field("nan", pattern="^(nan|shape|raise|type)$")
    after: int = Field(2, ge=0, description="Chunks that are fine before the fault.")


class FaultyExecutor(Executor):
    """Emits good chunks, then a broken one (NaN, wrong shape, an exception, a wrong type)."""

    name = "faulty"
    Config = FaultyConfig

    def __init__(self, config: FaultyConfig | None = None) -> None:
        super().__init__(config)
        self.calls = 0

    def reset(self) -> None:
        self.calls = 0

    def act(self, observation: Observation, guidance: Guidance) -> ActionChunk:
        cfg: FaultyConfig = self.config  # type: ignore[assignment]
        self.calls += 1
        actions = np.zeros((4, 7), dtype=np.float32)
        actions[:, 0] = 0.01
        actions[:, 6] = 1.0
        if self.calls > cfg.after:
            if cfg.fault == "nan":
                actions[1, 2] = np.nan
            elif cfg.fault == "shape":
                actions = np.zeros((4, 5), dtype=np.float32)
            elif cfg.fault == "raise":
                raise RuntimeError("model exploded")
            else:
                return "not a chunk"  # type: ignore[return-value]
        return ActionChunk(actions=actions, period=self.spec.control_period)


class ReachSkillConfig(PluginConfig):
    horizon: int = Field(8, ge=1)
    token: int | None = Field(None, description="Accept only guidance carrying this skill token (None: the default rule).")
    value: list[float] | None = Field(None, description="Emit this action in every row instead of reaching.")


class ReachSkill(Skill):
    """Reaches the current subtask's waypoint as ``seek`` does; records its lifecycle calls."""

    name = "reach"
    Config = ReachSkillConfig
    built: list[ReachSkill] = []  # every instance, newest last (to look at one a failed build closed)

    def __init__(self, config: ReachSkillConfig | None = None) -> None:
        super().__init__(config)
        self.setups = self.resets = self.calls = self.closes = 0
        ReachSkill.built.append(self)

    def setup(self, spec: RobotSpec) -> None:
        super().setup(spec)
        self.setups += 1

    def reset(self) -> None:
        self.resets += 1

    def close(self) -> None:
        self.closes += 1

    def accepts(self, guidance: Guidance) -> bool:
        token = self.config.token  # type: ignore[attr-defined]
        return super().accepts(guidance) if token is None else token in (guidance.skills or [])

    def act(self, observation: Observation, guidance: Guidance) -> ActionChunk:
        cfg: ReachSkillConfig = self.config  # type: ignore[assignment]
        self.calls += 1
        if cfg.value is not None:
            actions = np.tile(np.asarray(cfg.value, dtype=np.float32), (cfg.horizon, 1))
        else:
            actions = seek_actions(observation.state, parse_waypoints(guidance.subtask)[0], cfg.horizon, 0.5)
        return ActionChunk(actions=actions, period=self.spec.control_period)


@hookimpl
def s2kit_skills() -> list[type[Skill]]:
    return [ReachSkill]


@hookimpl
def s2kit_robots() -> list[type[Robot]]:
    return [PointRobot]


@hookimpl
def s2kit_planners() -> list[type[Planner]]:
    return [WaypointPlanner]


@hookimpl
def s2kit_executors() -> list[type[Executor]]:
    return [SeekExecutor, MaskedSeekExecutor, ConstantExecutor, FaultyExecutor, ClockExecutor]
