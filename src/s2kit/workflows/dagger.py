"""DAgger: a trained executor drives, the privileged expert labels every state it reaches.

Behaviour cloning learns only the states the expert visits; off its path the
learner's errors compound (Ross, Gordon and Bagnell, "A Reduction of
Imitation Learning and Structured Prediction to No-Regret Online Learning",
AISTATS 2011). DAgger lets the learner drive, asks the expert what it would
have commanded at every state the learner reached, and trains on the
aggregate. ``s2kit collect --dagger RUN`` records such episodes:

- `DaggerExecutor` is what the runtime sees as its executor. It holds the
  learner (the checkpoint RUN, run by the executor plugin that trained it)
  and the expert (the pipeline's executor: ``scripted`` by default). It
  hands the runtime one command per call, so that every recorded frame
  carries the expert's label for exactly the state it was chosen from.
- Mixing is per segment: at every chunk boundary the learner would have
  (every ``execute_horizon`` steps, and whenever the guidance changes, e.g.
  at a subtask end) a coin with probability ``beta`` picks the expert for
  the next segment, else the learner. A learner segment runs the learner's
  chunk as ``s2kit run`` would (its first ``execute_horizon`` actions,
  open loop); an expert segment runs the expert's label at every step
  (closed loop), so where the expert drove, the executed command is the
  label (before the safety layer). ``beta=0``: the learner alone;
  ``beta=1``: the expert alone. The coins of episode ``i`` are seeded by
  ``seed + i``, the episode's own seed.
- `DaggerRecorder` writes the dataset: the frames of `LeRobotRecorder`,
  with ``action`` the expert's label, plus

  | feature | dtype | what |
  | --- | --- | --- |
  | ``dagger.executed_action`` | float32 (action dim) | the command the robot executed (after the safety layer) |
  | ``dagger.driver`` | int64 | who chose it: 1 the expert, 0 the learner |

  so ``s2kit train`` trains on the labels unchanged, and the mean of
  ``dagger.driver`` is the expert's share of the steps.

The expert's label at a state is the first action of the chunk it returns
for that observation. The ``scripted`` expert decides from the simulator's
privileged state alone; its only memory within an episode is the hand's
starting yaw (which it keeps level to), taken at its first call: it is asked
at every step from the first, so that is the episode's starting yaw, as when
it drives alone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np

from s2kit.core.checkpoints import checkpoint_executor
from s2kit.core.errors import ConfigError, DataError, PluginError
from s2kit.core.hookspecs import DatasetColumn
from s2kit.core.interfaces import Executor
from s2kit.core.registry import Registry
from s2kit.core.runtime import Runtime
from s2kit.core.types import ActionChunk, Guidance, Observation, RobotSpec, Step
from s2kit.workflows.collect import LeRobotRecorder

__all__ = ["DRIVER", "EXECUTED", "EXPERT", "LABEL", "LEARNER", "DaggerExecutor", "DaggerRecorder", "attach_learner"]

#: Dataset columns: the executed command, and who chose it.
EXECUTED, DRIVER = "dagger.executed_action", "dagger.driver"
#: ``dagger.driver`` values.
LEARNER, EXPERT = 0, 1
#: The ``ActionChunk.info`` entry carrying the expert's label of the chunk's (single) step.
LABEL = "dagger.label"


def check_beta(beta: float) -> float:
    """``beta`` if it is a probability, else a one-line `ConfigError`."""
    if not 0.0 <= beta <= 1.0:
        raise ConfigError(f"--beta is the probability that the expert drives a segment: it must be in [0, 1], not {beta}")
    return beta


class DaggerExecutor(Executor):
    """The learner and the expert as one executor: who drives is drawn per segment, the expert labels every step.

    Chunks are one step long and carry the expert's label in ``info[LABEL]``
    and the driver in ``info[DRIVER]``, beside the learner's own chunk info
    on the learner's steps (its video overlay). Runs in the runtime's sync
    mode only (`attach_learner` checks).
    """

    name = "dagger"

    def __init__(self, learner: Executor, expert: Executor, *, beta: float, horizon: int, seed: int = 0) -> None:
        super().__init__()
        if learner.action_space != expert.action_space:
            raise ConfigError(
                f"DAgger: the learner ({learner.name!r}) acts in {learner.action_space!r}, the expert ({expert.name!r}) "
                f"in {expert.action_space!r}; the expert's commands must be labels in the learner's space"
            )
        if horizon < 1:
            raise ConfigError(f"DAgger: horizon must be >= 1, not {horizon}")
        self.learner, self.expert = learner, expert
        self.beta = check_beta(beta)
        self.horizon = horizon
        self.seed = seed
        self.action_space = learner.action_space
        self.episodes = 0
        self._rng = np.random.default_rng(seed)
        self._clear()

    def _clear(self) -> None:
        self._queue: list[np.ndarray] = []  # the learner's actions left in its segment
        self._left = 0  # the expert's steps left in its segment
        self._info: dict[str, Any] = {}
        self._guidance: Guidance | None = None

    def setup(self, spec: RobotSpec) -> None:
        super().setup(spec)
        self.learner.setup(spec)
        self.expert.setup(spec)

    def reset(self) -> None:
        self.learner.reset()
        self.expert.reset()
        self._rng = np.random.default_rng([self.seed + self.episodes, 0xDA66E])
        self.episodes += 1
        self._clear()

    def act(self, observation: Observation, guidance: Guidance) -> ActionChunk:
        label = np.asarray(self.expert.act(observation, guidance).actions[0], dtype=np.float32)
        done = False
        if guidance != self._guidance or not (self._queue or self._left):  # a new segment
            self._clear()
            self._guidance = guidance
            if self._rng.random() < self.beta:
                self._left = self.horizon
            else:
                chunk = self.learner.act(observation, guidance)
                self._queue = list(np.asarray(chunk.actions, dtype=np.float32)[: self.horizon])
                self._info, done = dict(chunk.info), chunk.subtask_done
        if self._left:
            self._left -= 1
            action, info = label, {DRIVER: EXPERT}
        else:
            action, info = self._queue.pop(0), {**self._info, DRIVER: LEARNER}
        info[LABEL] = label
        return ActionChunk(actions=action[None], space=self.action_space, period=self.spec.control_period, subtask_done=done, info=info)

    def close(self) -> None:
        self.learner.close()
        self.expert.close()


class DaggerRecorder(LeRobotRecorder):
    """`LeRobotRecorder` for `DaggerExecutor` steps: ``action`` is the expert's label, plus the executed command and its driver.

    Keeps every episode that ends (``keep="all"``) unless told otherwise: the
    learner's failures are the states DAgger is for. Refuses a dataset
    recorded without DAgger (and `LeRobotRecorder`'s writer refuses a DAgger
    dataset): the two have different columns.
    """

    def __init__(
        self,
        root: str | Path,
        spec: RobotSpec,
        action_space: str,
        *,
        keep: Literal["success", "all"] = "all",
        use_videos: bool = True,
        columns: dict[str, DatasetColumn] | None = None,
    ) -> None:
        info = Path(root) / "meta" / "info.json"
        if info.exists():
            try:
                features = json.loads(info.read_text()).get("features", {})
            except (OSError, ValueError) as err:
                raise DataError(f"{info} is not readable JSON: {err}") from None
            if DRIVER not in features:
                raise DataError(
                    f"{root} holds episodes recorded without --dagger; record DAgger episodes into a dataset "
                    f"of their own and train on both (--data {root},NEW)"
                )
        super().__init__(root, spec, action_space, keep=keep, use_videos=use_videos, columns=columns)
        self.driven = {"expert": 0, "learner": 0}  # executed steps each drove, over every episode

    def features(self, spec: RobotSpec, action_space: str) -> dict[str, dict]:
        features = super().features(spec, action_space)
        executed = dict(features["action"])
        features[EXECUTED] = executed
        features[DRIVER] = {"dtype": "int64", "shape": [1], "names": ["expert"]}
        return features

    def frame(self, step: Step) -> dict[str, Any]:
        if LABEL not in step.info:
            raise PluginError("DaggerRecorder records the steps of a DaggerExecutor; this step carries no expert label")
        frame = super().frame(step)
        frame[EXECUTED] = frame["action"]
        frame["action"] = np.asarray(step.info[LABEL], dtype=np.float32)
        frame[DRIVER] = np.array([step.info[DRIVER]], dtype=np.int64)
        self.driven["expert" if step.info[DRIVER] == EXPERT else "learner"] += 1
        return frame


def attach_learner(runtime: Runtime, run: str | Path, *, beta: float, registry: Registry, seed: int = 0) -> DaggerExecutor:
    """Make ``runtime``'s executor (the expert) a `DaggerExecutor` over it and the learner of checkpoint ``run``.

    Checks, before any episode, that ``beta`` is a probability, that the
    runtime runs in sync mode, that ``run`` is a checkpoint, and that the
    expert can label this robot's states (one reset and one expert call on
    the first episode's seed: a robot without privileged simulator state
    fails here). The learner is built by the executor plugin ``run`` names,
    with its default options; the runtime closes it with the expert.
    """
    check_beta(beta)
    expert = runtime.executor
    if expert is None:
        raise ConfigError("DAgger needs an expert executor to label the states")
    if runtime.config.mode != "sync":
        raise ConfigError("DAgger records one command per step: run it with runtime.mode=sync")
    plugin = checkpoint_executor(run)
    _check_expert_labels(runtime, expert, seed)
    learner = registry.create("executor", {"name": plugin, "checkpoint": str(run)})
    try:
        dagger = DaggerExecutor(learner, expert, beta=beta, horizon=runtime.config.execute_horizon, seed=seed)  # type: ignore[arg-type]
        dagger.setup(runtime.spec)
    except BaseException:
        learner.close()
        raise
    runtime.executor = dagger
    return dagger


def _check_expert_labels(runtime: Runtime, expert: Executor, seed: int) -> None:
    """A one-line `ConfigError` where ``expert`` cannot label this robot's observations."""
    observation = runtime.robot.reset(seed=seed)
    goal = runtime.robot.instruction or runtime.config.instruction or ""
    expert.reset()
    try:
        expert.act(observation, Guidance(goal=goal))
    except PluginError as err:
        raise ConfigError(f"DAgger: expert {expert.name!r} cannot label robot {runtime.robot.name!r}: {err}") from None
