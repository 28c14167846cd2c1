"""The data contracts that pass between planners, executors, skills and robots.

Two kinds of container live here, on purpose:

* Per-step data (`Observation`, `ActionChunk`, `RobotStatus`) are slotted
  dataclasses around numpy arrays. They are created every control step, so
  they do no validation: the control loop must not pay for it.
* Plans, specs and anything that crosses a process boundary (`Guidance`,
  `RobotSpec`, `ActionSpace`, ...) are pydantic models, validated once when
  they are made.

The canonical action space is `ee_delta` (Open X-Embodiment / RT-X): 7-D
(dx, dy, dz, droll, dpitch, dyaw, gripper) in the robot's base frame; the
first six are per-step increments (metres, radians), the gripper is an
absolute opening command in [0, 1] (0 closed, 1 open). Every robot maps it to
its own joints, so one policy can drive any robot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "CHUNK_SKILLS",
    "EE_DELTA",
    "EE_DELTA_NAMES",
    "EE_STATE",
    "ActionChunk",
    "ActionSpace",
    "CameraSpec",
    "EpisodeInfo",
    "EpisodeResult",
    "Guidance",
    "JointSpec",
    "Observation",
    "RobotSpec",
    "RobotStatus",
    "StageTiming",
    "Step",
    "TaskText",
    "ee_delta_space",
]

EE_DELTA = "ee_delta"
EE_DELTA_NAMES = ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper")
#: The state entries of the hand every arm can give (its pose in the base frame and the gripper opening), the
#: counterpart of ``ee_delta``: a learned executor that reads only these runs on any robot whose state has them.
EE_STATE = ("ee_x", "ee_y", "ee_z", "ee_roll", "ee_pitch", "ee_yaw", "gripper")


# --- per-step containers (hot path: no validation) ---------------------------


@dataclass(slots=True)
class Observation:
    """What a robot sees at one instant.

    ``images`` maps a camera role (``head``, ``wrist``, ...) to a uint8
    ``(H, W, 3)`` array; ``state`` is the float32 proprioceptive vector whose
    entries are named by ``RobotSpec.state_names``; ``timestamp`` is seconds
    on the robot's clock; ``scene`` is an optional free-text description of
    the scene, for planners, where the robot can give one. ``task`` is the
    robot's own task (instruction, subtask texts, which is current) where it
    knows it (`Robot.task`), for planners. ``privileged`` carries simulator
    state for privileged components (an expert that
    demonstrates, a planner that reads the true task); it is None on real robots, and learned models must not read it.
    """

    images: dict[str, np.ndarray]
    state: np.ndarray
    timestamp: float = 0.0
    scene: str | None = None
    privileged: Any = None
    task: TaskText | None = None


@dataclass(frozen=True, slots=True)
class TaskText:
    """A task as the robot that sets it knows it: the texts a planner can hand on.

    ``instruction`` is the episode's instruction; ``subtasks`` the texts of
    its subtasks, in the order they must be done; ``current`` the index of
    the subtask under way (the last one once all are done; 0 without
    subtasks). A simulator knows this; a real robot usually does not, and
    gives None instead of a `TaskText`.
    """

    instruction: str
    subtasks: tuple[str, ...] = ()
    current: int = 0

    def __post_init__(self) -> None:
        if self.subtasks and not 0 <= self.current < len(self.subtasks):
            raise ValueError(f"current={self.current} is out of range for {len(self.subtasks)} subtasks")

    @property
    def subtask(self) -> str:
        """The current subtask's text ('' without subtasks)."""
        return self.subtasks[self.current] if self.subtasks else ""


@dataclass(slots=True)
class ActionChunk:
    """A chunk of ``H`` actions of dimension ``D`` in one action space.

    ``actions`` is float32 ``(H, D)``; ``period`` is seconds between two
    consecutive actions (the robot's control period). ``subtask_done`` is the
    executor's own signal that the current subtask is complete, which the
    runtime uses to re-query the planner without privileged state. ``info``
    carries anything else an executor wants subscribers to see; a skill puts
    the skill tokens it acted out under `CHUNK_SKILLS` (the episode result
    lists them).
    """

    actions: np.ndarray
    space: str = EE_DELTA
    period: float = 0.1
    subtask_done: bool = False
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.actions.shape[0])


#: ``ActionChunk.info`` key of the skill tokens a chunk acts out (a list of ints); `EpisodeResult.skills` collects them.
CHUNK_SKILLS = "skills"


@dataclass(slots=True)
class RobotStatus:
    """How the current episode stands, as the robot (or its simulator) knows it.

    ``done`` ends the episode. ``subtasks_completed`` counts subtasks completed
    in the required order; it and ``subtasks_total`` are None where the robot
    cannot tell (a real robot without a success detector).
    """

    done: bool = False
    subtasks_completed: int | None = None
    subtasks_total: int | None = None


@dataclass(slots=True)
class Step:
    """One executed control step, as subscribers see it.

    ``action`` is the command the robot received (after the safety layer);
    ``raw_action`` what the executor asked for. ``observation`` is what the
    robot saw after the command, ``previous`` what it saw before (the input
    the command was chosen from: an imitation-learning frame pairs
    ``previous`` with ``action``). ``time`` is seconds since the episode
    started on the runtime's clock. ``info`` is the ``info`` of the chunk the
    command came from (e.g. what a model reports for its video overlay);
    ``actor`` says who gave that chunk: ``"executor"`` or ``"skill"``.
    """

    index: int
    time: float
    observation: Observation
    action: np.ndarray
    raw_action: np.ndarray
    space: str
    guidance: Guidance
    previous: Observation | None = None
    info: dict[str, Any] = field(default_factory=dict)
    actor: str = "executor"


# --- plans, specs, messages (validated once) ---------------------------------


class Guidance(BaseModel):
    """What a planner gives an executor (goal-preserving local guidance).

    ``goal`` is the original instruction and is never replaced; refined
    language is added beside it, never instead of it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    goal: str = Field(description="The original instruction, kept verbatim as the stable goal.")
    trajectory: str = Field("", description="Refined trajectory-level text: which object, arm, route.")
    subtasks: list[str] = Field(default_factory=list, description="Ordered refined subtask texts.")
    current: int = Field(0, ge=0, description="Index of the subtask being executed.")
    latent: list[float] | None = Field(None, description="Optional plan vector (ThinkAct-style).")
    skills: list[int] | None = Field(None, description="Optional skill tokens.")

    @model_validator(mode="after")
    def _current_in_range(self) -> Guidance:
        if self.subtasks and self.current >= len(self.subtasks):
            raise ValueError(
                f"current={self.current} is out of range for {len(self.subtasks)} subtasks"
            )
        return self

    @property
    def subtask(self) -> str:
        """The current subtask's text ('' when there are no subtasks)."""
        return self.subtasks[self.current] if self.subtasks else ""

    def advanced(self) -> Guidance:
        """The same guidance with ``current`` moved to the next subtask (saturating)."""
        if self.current + 1 >= len(self.subtasks):
            return self
        return self.model_copy(update={"current": self.current + 1})


class JointSpec(BaseModel):
    """One joint: its name and position limits (metres or radians)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    lower: float
    upper: float

    @model_validator(mode="after")
    def _ordered(self) -> JointSpec:
        if not self.lower <= self.upper:
            raise ValueError(f"joint {self.name!r}: lower {self.lower} > upper {self.upper}")
        return self


class CameraSpec(BaseModel):
    """One camera: its role (``head``, ``wrist``, ...) and image size."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: str
    height: int = Field(96, gt=0)
    width: int = Field(96, gt=0)


class ActionSpace(BaseModel):
    """An action space a robot accepts, with the limits the safety layer enforces.

    ``low``/``high`` bound each dimension. ``max_step`` bounds, per dimension,
    how far one command may move from the previous one: for an absolute
    dimension (a position target) the change between consecutive commands,
    for an incremental one (a delta) the increment itself. ``absolute`` says
    which dimensions are position targets; a single bool applies to all.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    names: tuple[str, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]
    max_step: tuple[float, ...] | None = None
    absolute: bool | tuple[bool, ...] = False

    @model_validator(mode="after")
    def _consistent(self) -> ActionSpace:
        dim = len(self.names)
        for key in ("low", "high", "max_step", "absolute"):
            value = getattr(self, key)
            if isinstance(value, tuple) and len(value) != dim:
                raise ValueError(f"action space {self.name!r}: {key} has {len(value)} entries, names has {dim}")
        if any(lo > hi for lo, hi in zip(self.low, self.high)):
            raise ValueError(f"action space {self.name!r}: some low > high")
        if self.max_step is not None and any(s <= 0 for s in self.max_step):
            raise ValueError(f"action space {self.name!r}: max_step entries must be > 0")
        return self

    @property
    def dim(self) -> int:
        return len(self.names)

    @property
    def absolute_mask(self) -> tuple[bool, ...]:
        """Per-dimension flags: True where the dimension is a position target."""
        if isinstance(self.absolute, bool):
            return (self.absolute,) * self.dim
        return self.absolute


def ee_delta_space(
    max_translation: float = 0.05,
    max_rotation: float = 0.25,
    max_gripper_step: float = 1.0,
) -> ActionSpace:
    """The canonical 7-D ``ee_delta`` space with a robot's own per-step limits.

    Translations in metres per step, rotations in radians per step, the
    gripper an absolute opening in [0, 1].
    """
    t, r = max_translation, max_rotation
    return ActionSpace(
        name=EE_DELTA,
        names=EE_DELTA_NAMES,
        low=(-t, -t, -t, -r, -r, -r, 0.0),
        high=(t, t, t, r, r, r, 1.0),
        max_step=(t, t, t, r, r, r, max_gripper_step),
        absolute=(False, False, False, False, False, False, True),
    )


class RobotSpec(BaseModel):
    """What a robot is: joints, cameras, state layout, action spaces, rate."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    joints: tuple[JointSpec, ...] = ()
    cameras: tuple[CameraSpec, ...] = ()
    state_names: tuple[str, ...] = ()
    action_spaces: tuple[ActionSpace, ...]
    control_hz: float = Field(10.0, gt=0)
    realtime: bool = Field(
        False,
        description="True for real hardware: the runtime paces commands to control_hz. "
        "A simulator steps itself and runs as fast as it can.",
    )

    @model_validator(mode="after")
    def _unique_spaces(self) -> RobotSpec:
        names = [s.name for s in self.action_spaces]
        if len(set(names)) != len(names):
            raise ValueError(f"robot {self.name!r}: duplicate action space names {names}")
        if not names:
            raise ValueError(f"robot {self.name!r}: declares no action space")
        return self

    @property
    def control_period(self) -> float:
        return 1.0 / self.control_hz

    def action_space(self, name: str) -> ActionSpace:
        """The action space called ``name``; ValueError naming the ones offered."""
        for space in self.action_spaces:
            if space.name == name:
                return space
        offered = ", ".join(s.name for s in self.action_spaces)
        raise ValueError(f"robot {self.name!r} does not accept action space {name!r} (it accepts: {offered})")


# --- episodes -----------------------------------------------------------------


class EpisodeInfo(BaseModel):
    """What subscribers are told when an episode starts."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    index: int
    seed: int | None
    instruction: str
    robot: RobotSpec
    action_space: str
    pipeline: dict[str, Any] = Field(default_factory=dict, description="The resolved pipeline config.")


class StageTiming(BaseModel):
    """Wall-clock statistics of one stage of the control loop, in milliseconds."""

    model_config = ConfigDict(extra="forbid")

    count: int
    total_ms: float
    mean_ms: float
    p50_ms: float
    p95_ms: float
    max_ms: float

    @classmethod
    def from_seconds(cls, samples: list[float]) -> StageTiming:
        if not samples:
            return cls(count=0, total_ms=0.0, mean_ms=0.0, p50_ms=0.0, p95_ms=0.0, max_ms=0.0)
        ms = np.asarray(samples, dtype=np.float64) * 1e3
        return cls(
            count=int(ms.size),
            total_ms=float(ms.sum()),
            mean_ms=float(ms.mean()),
            p50_ms=float(np.percentile(ms, 50)),
            p95_ms=float(np.percentile(ms, 95)),
            max_ms=float(ms.max()),
        )


class EpisodeResult(BaseModel):
    """How one episode went: outcome, progress, safety events and timings.

    ``status`` is one of ``done`` (the robot ended the episode),
    ``max_steps``, ``unsafe`` (the safety layer stopped it), ``aborted`` (the
    robot could not go on, e.g. an object fell out of reach; the run goes
    on), ``interrupted`` (Ctrl-C) or ``error``. ``subtask_success`` is the number of subtasks
    completed in the required order divided by their number; both it and
    ``task_success`` are None where the robot cannot tell.
    """

    model_config = ConfigDict(extra="forbid")

    index: int
    seed: int | None
    instruction: str
    status: str
    message: str = ""
    steps: int
    chunks: int = 0
    actors: dict[str, int] = Field(
        default_factory=dict, description="Chunks each actor gave: {'executor': n, 'skill': m}, for those that acted."
    )
    plans: int = 0
    skills: list[list[int]] = Field(
        default_factory=list, description="The skill tokens of each executed chunk that carried them (`CHUNK_SKILLS`), in order."
    )
    subtasks_completed: int | None = None
    subtasks_total: int | None = None
    subtask_success: float | None = None
    task_success: bool | None = None
    clamped_steps: int = Field(0, description="Steps whose command the safety layer changed.")
    dropped_actions: int = Field(0, description="Async mode: actions dropped because their time had passed.")
    duration_s: float = 0.0
    timings: dict[str, StageTiming] = Field(default_factory=dict)
