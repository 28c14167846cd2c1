"""The four roles a plugin can fill, and the subscriber interface.

A component class names itself (``name``), declares its options (``Config``,
a `PluginConfig` subclass) and is built by ``cls.create(config)``, by
default ``cls(config)``. Keep the module that defines it light: import
torch, a simulator or a middleware client inside methods, so that listing plugins and
``import s2kit.core`` stay fast (a robot-side process need not load a model
stack).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from s2kit.core.config import PluginConfig
from s2kit.core.errors import ConfigError, PluginError
from s2kit.core.types import (
    EE_DELTA,
    ActionChunk,
    EpisodeInfo,
    EpisodeResult,
    Guidance,
    Observation,
    RobotSpec,
    RobotStatus,
    Step,
    TaskText,
)

__all__ = [
    "KINDS",
    "PLAN_EVENTS",
    "Component",
    "Executor",
    "Planner",
    "Robot",
    "Skill",
    "Subscriber",
]

KINDS = ("robot", "planner", "executor", "skill")

#: When the runtime asks a planner for guidance: at the start of an episode,
#: when a subtask ends (the executor says so, or the robot's progress moves),
#: and every ``runtime.plan_period`` steps.
PLAN_EVENTS = ("start", "subtask", "period")


class Component:
    """What every plugin component shares: a name, a config model, a lifecycle."""

    kind: ClassVar[str] = ""
    name: ClassVar[str] = ""
    Config: ClassVar[type[PluginConfig]] = PluginConfig

    def __init__(self, config: PluginConfig | None = None) -> None:
        if config is None:
            config = self.Config()
        elif not isinstance(config, self.Config):
            raise TypeError(f"{type(self).__name__} expects a {self.Config.__name__}, got {type(config).__name__}")
        self.config = config

    @classmethod
    def create(cls, config: PluginConfig) -> Component:
        """Build the component for a validated ``config`` (what the registry calls).

        The default is ``cls(config)``. A class may return another
        implementation the config asks for: a robot plugin returns its real
        robot's driver when ``config.backend`` names a middleware.
        """
        return cls(config)

    @classmethod
    def details(cls) -> dict[str, Any]:
        """Extra facts ``s2kit plugins show`` prints (task suites, checkpoints, ...).

        Must not start anything: it is called on the class, without a config.
        """
        return {}

    def close(self) -> None:
        """Release resources (connections, processes, files). Safe to call twice."""

    def __enter__(self) -> Component:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Robot(Component, ABC):
    """A robot, real or simulated: observe it, command it, ask how the episode stands.

    The runtime calls `reset` once per episode, then alternates `observe`,
    `apply` and `status`. Commands reaching `apply` have already passed the
    safety layer: finite, within the spec's limits and per-step change.

    A robot that sets its own tasks (a simulator) may declare task suites
    (`suites`, chosen through its ``suite`` option) and hand its task's texts
    to planners (`task`, and the same in each `Observation.task`).
    """

    kind = "robot"

    @classmethod
    def suites(cls) -> tuple[str, ...]:
        """The task suites this robot declares, the in-distribution one first; () for none.

        A robot that declares suites takes the chosen one as its ``suite``
        option. ``s2kit run`` and ``collect`` use the robot's default and
        ``eval`` runs them all, reporting the first apart and the mean over
        the rest (the distribution shifts). A robot without suites never gets
        a ``suite`` option set.
        """
        return ()

    @classmethod
    def check_suite(cls, suite: str) -> None:
        """Raise `ConfigError` unless ``suite`` is one this robot can run (default: one of `suites`).

        Called before any episode; a robot that also takes suites from files overrides it.
        """
        declared = cls.suites()
        if not declared:
            raise ConfigError(f"robot {cls.name!r} declares no task suites, so it takes no suite ({suite!r} given)")
        if suite not in declared:
            raise ConfigError(f"unknown suite {suite!r} for robot {cls.name!r} (it declares: {', '.join(declared)})")

    @property
    @abstractmethod
    def spec(self) -> RobotSpec:
        """Joints, cameras, state layout, action spaces and control rate."""

    @abstractmethod
    def reset(self, *, seed: int | None = None) -> Observation:
        """Start a new episode (a simulator samples its task from ``seed``) and observe."""

    @abstractmethod
    def observe(self) -> Observation:
        """The current observation."""

    @abstractmethod
    def apply(self, action: np.ndarray, space: str) -> None:
        """Execute one command (shape ``(D,)``) in action space ``space`` for one control period."""

    def hold(self) -> None:
        """Stop moving and hold the current position (used when an episode is stopped)."""

    def status(self) -> RobotStatus:
        """How the episode stands; the default knows nothing and never ends the episode."""
        return RobotStatus()

    @property
    def task(self) -> TaskText | None:
        """The current episode's task where the robot sets it: instruction, subtask texts, which is current.

        None (the default) where the robot does not know its task (a real
        robot: the instruction then comes from ``runtime.instruction``). A
        robot that returns one also puts it in each `Observation.task`, which
        is how planners that plan from the true task, and ``s2kit collect``'s
        annotations, get it.
        """
        return None

    @property
    def instruction(self) -> str | None:
        """The current episode's instruction where the robot sets the task; by default `task`'s."""
        task = self.task
        return task.instruction if task is not None else None


class Planner(Component, ABC):
    """Turns an instruction and what the robot sees into `Guidance` for the executor.

    ``events`` lists the `PLAN_EVENTS` this planner wants to be asked at. For
    an event it does not list, the runtime keeps the current guidance and, at
    a subtask end, moves it to the next subtask itself.
    """

    kind = "planner"
    events: ClassVar[tuple[str, ...]] = ("start",)

    def reset(self) -> None:
        """Forget the previous episode."""

    @abstractmethod
    def plan(
        self,
        instruction: str,
        observation: Observation,
        *,
        event: str = "start",
        history: Sequence[Guidance] = (),
        status: RobotStatus | None = None,
    ) -> Guidance:
        """Guidance for the current moment.

        ``history`` holds this episode's earlier guidance, oldest first;
        ``status`` is the robot's progress where it reports one. The returned
        ``goal`` must be ``instruction`` verbatim.
        """

    def propose(
        self,
        instruction: str,
        observation: Observation,
        count: int,
        *,
        round: int = 0,  # noqa: A002 - Plan2Align's word for one propose-score-keep pass
        hint: Sequence[str] = (),
        event: str = "start",
        history: Sequence[Guidance] = (),
        status: RobotStatus | None = None,
    ) -> list[Guidance]:
        """Up to ``count`` different candidate guidances, for a refiner to score (the ``refine`` planner).

        ``round`` counts the refiner's passes: each asks for candidates not
        given before. ``hint`` is the best subtask list found so far, which
        a planner that writes text may condition on. A planner with one
        answer gives it in round 0 and nothing after.
        """
        if round > 0:
            return []
        return [self.plan(instruction, observation, event=event, history=history, status=status)]

    @staticmethod
    def current_subtask(
        count: int, *, event: str, history: Sequence[Guidance] = (), status: RobotStatus | None = None
    ) -> int:
        """Which of ``count`` new subtasks is current when a planner re-plans.

        The robot's count of completed subtasks where it reports one; else,
        from the history, one past the previous current subtask at a subtask
        end and the same one on a period; 0 at the start.
        """
        current = 0
        if status is not None and status.subtasks_completed is not None:
            current = status.subtasks_completed
        elif history and event != "start":
            current = history[-1].current + (1 if event == "subtask" else 0)
        return max(0, min(current, count - 1))


class _Actor(Component, ABC):
    """What executors and skills share: chunks of actions in one action space."""

    action_space: str = EE_DELTA

    def setup(self, spec: RobotSpec) -> None:
        """Called once with the robot's spec before any episode."""
        self.spec = spec

    def reset(self) -> None:
        """Forget the previous episode."""

    @abstractmethod
    def act(self, observation: Observation, guidance: Guidance) -> ActionChunk:
        """The next chunk of actions, ``(H, D)`` in ``self.action_space``."""


class Executor(_Actor):
    """Turns observations and guidance into chunks of actions.

    ``action_space`` names the space its chunks are in (default the canonical
    ``ee_delta``); the robot must accept it.
    """

    kind = "executor"

    def propose(self, observation: Observation, guidance: Guidance, count: int) -> list[ActionChunk]:
        """Up to ``count`` different chunks for this moment, for a refiner to score (the ``mpc`` executor).

        A generative head gives samples with fresh noise; a deterministic
        executor has one answer, its ``act`` (the default).
        """
        return [self.act(observation, guidance)]

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
        """Train this executor on LeRobot datasets ``data`` into run folder ``out``; the newest checkpoint.

        ``overrides`` are ``key=value`` training options; ``progress(step, total, losses)``
        is called as training goes. Executors that learn override this.
        """
        raise PluginError(f"executor {cls.name!r} cannot be trained")

    @classmethod
    def export(cls, checkpoint: Path, out: Path, *, format: str, overrides: Sequence[str] = ()) -> dict[str, Any]:
        """Export a checkpoint's inference graph to ``out`` in ``format``; a report (checks, sizes)."""
        raise PluginError(f"executor {cls.name!r} cannot be exported")


class Skill(_Actor):
    """A reusable behaviour: skill tokens (or a subtask) in, actions out.

    A pipeline names one in its ``skill`` section. Whenever the runtime needs
    a chunk it asks `accepts` with the current guidance: if the skill accepts,
    its ``act`` gives the chunk (acting out the guidance's ``skills`` tokens or
    its current subtask), else the pipeline's executor does. Its chunks pass
    the same checks and safety layer as an executor's. A skill can also
    encode action-free frames into its tokens, where it was learned that way
    (SOF); the default says it cannot.
    """

    kind = "skill"

    def accepts(self, guidance: Guidance) -> bool:
        """Whether this skill acts for ``guidance`` (called before every chunk; keep it cheap).

        The default: the guidance carries skill tokens or names a current subtask.
        """
        return bool(guidance.skills) or bool(guidance.subtask)

    def encode(self, frames: np.ndarray) -> np.ndarray:
        """Skill tokens for a ``(T, H, W, 3)`` uint8 clip; not every skill can."""
        raise NotImplementedError(f"skill {self.name!r} cannot encode frames into tokens")


class Subscriber:
    """Observes the control loop without changing it (recorder, progress, metrics, video).

    Every method has a default that does nothing; override what you need.
    Subscribers must not mutate what they are given.
    """

    def on_episode_start(self, info: EpisodeInfo) -> None:
        """An episode begins."""

    def on_plan(self, step: int, event: str, guidance: Guidance) -> None:
        """The planner was asked (``event``) at control step ``step``."""

    def on_step(self, step: Step) -> None:
        """One command was sent to the robot."""

    def on_episode_end(self, result: EpisodeResult) -> None:
        """The episode ended (also when interrupted or stopped by the safety layer)."""

    def close(self) -> None:
        """The run is over."""
