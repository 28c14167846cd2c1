"""Recording episodes as a LeRobot v3.0 dataset, with the planner's language annotations.

`LeRobotRecorder` is a subscriber: each control step becomes one frame that
pairs what the robot saw before the command (``observation.images.<role>``,
``observation.state``) with the command it received (``action``), plus the
guidance the executor acted on:

| feature | dtype | what |
| --- | --- | --- |
| ``annotation.trajectory`` | string | the planner's refined trajectory-level text |
| ``annotation.subtask`` | string | the current subtask's refined text |
| ``annotation.subtask_index`` | int64 | index of that subtask (its changes are the subtask boundaries) |
| ``annotation.subtasks`` | string | all subtasks, JSON-encoded |

(``collect``'s default planner, ``oracle``, writes the robot's own subtask
texts, `Observation.task`, so any robot that gives its task is annotated),
and the columns installed plugins declare (``s2kit_dataset_columns``): a
model that trains on more (auxiliary targets from a simulator's privileged
state, say) names them, their feature specs and how to read them from the
observation, and every frame records them.

The frame's LeRobot *task* is the goal (the original instruction, kept
verbatim); a LeRobot reader loads the annotations as ordinary string and
integer columns. Episodes that did not succeed are dropped unless ``keep`` is
``"all"``. An episode cut short by Ctrl-C is always dropped, whatever ``keep``
says: a demonstration stopped half-way would teach a policy to stop there, and
a LeRobot reader has no field that would tell it apart.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np

from s2kit.datasets.lerobot import LeRobotWriter
from s2kit.core.errors import ConfigError, PluginError
from s2kit.core.hookspecs import DatasetColumn
from s2kit.core.interfaces import Robot, Subscriber
from s2kit.core.registry import Registry, get_registry
from s2kit.core.types import (
    ActionSpace,
    EpisodeInfo,
    EpisodeResult,
    Observation,
    RobotSpec,
    Step,
)

__all__ = ["ANNOTATIONS", "LeRobotRecorder", "PerturbedRobot", "dataset_columns", "dataset_features"]

#: The per-frame guidance features, as `collect` and `relabel` write them.
ANNOTATIONS: dict[str, dict] = {
    "annotation.trajectory": {"dtype": "string", "shape": [1]},
    "annotation.subtask": {"dtype": "string", "shape": [1]},
    "annotation.subtasks": {"dtype": "string", "shape": [1]},
    "annotation.subtask_index": {"dtype": "int64", "shape": [1]},
}


def dataset_columns(spec: RobotSpec, registry: Registry | None = None) -> dict[str, DatasetColumn]:
    """The extra columns the plugins of ``registry`` (default: the process's) declare for ``spec``'s robot."""
    registry = registry if registry is not None else get_registry()
    columns: dict[str, DatasetColumn] = {}
    owners: dict[str, str] = {}
    for plugin, declared in registry.call_each("s2kit_dataset_columns", spec=spec):
        for name, column in declared.items():
            if name in owners:
                raise PluginError(f"dataset column {name!r} is declared by both plugin {owners[name]!r} and plugin {plugin.name!r}")
            owners[name] = plugin.name
            columns[name] = column
    return columns


def dataset_features(
    spec: RobotSpec, action_space: str, columns: dict[str, DatasetColumn] | None = None
) -> dict[str, dict]:
    """The LeRobot features of a robot's episodes in one action space, with ``columns`` (default: the plugins')."""
    space = spec.action_space(action_space)
    features: dict[str, dict] = {
        f"observation.images.{cam.role}": {"dtype": "video", "shape": [cam.height, cam.width, 3]} for cam in spec.cameras
    }
    features["observation.state"] = {"dtype": "float32", "shape": [len(spec.state_names)], "names": list(spec.state_names)}
    features["action"] = {"dtype": "float32", "shape": [space.dim], "names": list(space.names)}
    features.update({key: dict(ft) for key, ft in ANNOTATIONS.items()})
    for name, column in (dataset_columns(spec) if columns is None else columns).items():
        if name in features:
            raise PluginError(f"a plugin declares dataset column {name!r}, which s2kit records itself")
        features[name] = dict(column.feature)
    return features


class LeRobotRecorder(Subscriber):
    """Writes each episode that ends (successfully, unless ``keep="all"``) to a LeRobot dataset.

    The dataset is opened (created, or appended to when ``root`` holds one
    with the same features) when the recorder is made, so a folder that
    cannot take these episodes is an error before any episode runs.
    ``columns``: the extra columns to record (default: what the installed
    plugins declare, `dataset_columns`).
    """

    def __init__(
        self,
        root: str | Path,
        spec: RobotSpec,
        action_space: str,
        *,
        keep: Literal["success", "all"] = "success",
        use_videos: bool = True,
        columns: dict[str, DatasetColumn] | None = None,
    ) -> None:
        self.root = Path(root)
        self.columns = dataset_columns(spec) if columns is None else dict(columns)
        self.keep = keep
        self.saved = 0
        self.dropped = 0  # every episode not saved, the interrupted ones included
        self.interrupted = 0
        self.writer: LeRobotWriter | None = LeRobotWriter(
            self.root,
            fps=spec.control_hz,
            robot_type=spec.name,
            features=self.features(spec, action_space),
            use_videos=use_videos,
            mode="append" if (self.root / "meta" / "info.json").exists() else "create",
        )

    def on_episode_start(self, info: EpisodeInfo) -> None:
        assert self.writer is not None
        self.writer.discard_episode()

    def features(self, spec: RobotSpec, action_space: str) -> dict[str, dict]:
        """The dataset's LeRobot features (a subclass that records more adds its own)."""
        return dataset_features(spec, action_space, self.columns)

    def on_step(self, step: Step) -> None:
        assert self.writer is not None
        self.writer.add_frame(self.frame(step), task=step.guidance.goal)

    def frame(self, step: Step) -> dict[str, Any]:
        """The dataset frame of one step: the observation before the command, the command, the guidance, the columns."""
        assert step.previous is not None
        obs, g = step.previous, step.guidance
        frame = {f"observation.images.{role}": image for role, image in obs.images.items()}
        frame["observation.state"] = np.asarray(obs.state, dtype=np.float32)
        frame["action"] = np.asarray(step.action, dtype=np.float32)
        frame["annotation.trajectory"] = g.trajectory
        frame["annotation.subtask"] = g.subtask
        frame["annotation.subtasks"] = json.dumps(g.subtasks)
        frame["annotation.subtask_index"] = np.array([g.current], dtype=np.int64)
        for name, column in self.columns.items():
            frame[name] = column.read(step.observation if column.after else obs)
        return frame

    def on_episode_end(self, result: EpisodeResult) -> None:
        if self.writer is None:
            return
        if result.status == "interrupted":
            self.interrupted += 1
        if result.steps and result.status != "interrupted" and (self.keep == "all" or result.task_success):
            self.writer.save_episode()
            self.saved += 1
        else:
            self.writer.discard_episode()
            self.dropped += 1

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class PerturbedRobot:
    """A robot that executes each command plus Gaussian noise: DART-style data collection.

    A demonstrator that always moves on its ideal path never shows a learner how to
    recover from the small errors the learner will make (Laskey et al., DART, 2017).
    Wrapped around the robot during ``s2kit collect --noise``, the robot executes
    each command with noise of standard deviation ``std`` added to the
    dimensions named in ``dims`` (then clamped to the action space's bounds, so
    the robot still never gets a command out of range), while the runtime, and
    so the dataset, records the clean command the expert chose. The expert
    then acts from the perturbed states, and its labels are the corrections.
    Everything else is the wrapped robot's.
    """

    def __init__(self, robot: Robot, space: ActionSpace, std: float, dims: tuple[str, ...] = ("dx", "dy", "dz")) -> None:
        if std < 0:
            raise ConfigError(f"noise std must be >= 0, got {std}")
        if std and not set(dims) & set(space.names):
            raise ConfigError(f"noise: action space {space.name!r} has none of {', '.join(dims)} (its dimensions: {', '.join(space.names)})")
        self._robot = robot
        self._scale = np.array([std if n in dims else 0.0 for n in space.names])
        self._low, self._high = np.asarray(space.low), np.asarray(space.high)
        self._rng = np.random.default_rng(0)

    def __getattr__(self, name: str) -> object:
        return getattr(self._robot, name)

    def reset(self, *, seed: int | None = None) -> Observation:
        self._rng = np.random.default_rng(None if seed is None else [seed, 0x0DA27])
        return self._robot.reset(seed=seed)

    def apply(self, action: np.ndarray, space: str) -> None:
        noisy = action + self._scale * self._rng.standard_normal(len(self._scale))
        self._robot.apply(np.clip(noisy, self._low, self._high).astype(np.float32), space)
