"""DAgger: the learner drives (mixed with the expert by beta), the expert labels every state it reached."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from s2kit.core.checkpoints import CheckpointError
from s2kit.core.config import validate_pipeline
from s2kit.core.errors import ConfigError
from s2kit.core.interfaces import Subscriber
from s2kit.core.registry import load_registry
from s2kit.core.runtime import Runtime, build_runtime
from s2kit.core.types import EpisodeInfo, Step
from s2kit.datasets.lerobot import LeRobotDatasetReader
from s2kit.plugins.robots.sim.expert import ScriptedExecutor
from s2kit.workflows.dagger import DRIVER, EXECUTED, EXPERT, LEARNER, DaggerRecorder, attach_learner

LEARNER_RUN = Path(__file__).parents[1] / "learning" / "compat" / "baseline_regression"


def pipeline(robot: str, executor: str = "scripted", **runtime: object) -> Runtime:
    config = validate_pipeline(
        {"robot": {"name": robot, "image_height": 32, "image_width": 32}, "planner": {"name": "oracle"},
         "executor": {"name": executor, **({"checkpoint": str(LEARNER_RUN)} if executor != "scripted" else {})},
         "runtime": {"episodes": 2, "max_steps": 40, "seed": 3, **runtime}}  # fmt: skip
    )
    return build_runtime(config, load_registry(env={}))


class Witness(Subscriber):
    """Asks a fresh expert of its own what it would command at each recorded state; keeps what was executed."""

    def __init__(self, runtime: Runtime) -> None:
        self.expert = ScriptedExecutor()
        self.expert.setup(runtime.spec)
        self.labels: list[np.ndarray] = []
        self.raw: list[np.ndarray] = []
        self.executed: list[np.ndarray] = []

    def on_episode_start(self, info: EpisodeInfo) -> None:
        self.expert.reset()

    def on_step(self, step: Step) -> None:
        assert step.previous is not None
        self.labels.append(self.expert.act(step.previous, step.guidance).actions[0])
        self.raw.append(step.raw_action)
        self.executed.append(step.action)


def collect_dagger(tmp_path: Path, robot: str, beta: float, **runtime: object) -> tuple[dict[str, np.ndarray], Witness]:
    rt = pipeline(robot, **runtime)
    attach_learner(rt, LEARNER_RUN, beta=beta, registry=load_registry(env={}), seed=3)
    witness = Witness(rt)
    recorder = DaggerRecorder(tmp_path / "ds", rt.spec, rt.space.name)
    rt.subscribers += [recorder, witness]
    try:
        results = rt.run()
    finally:
        rt.close()
        for component in reversed(rt.components):
            component.close()
    assert recorder.saved == len(results) == 2  # failed episodes are kept too
    reader = LeRobotDatasetReader(tmp_path / "ds")
    episodes = [reader.episode(i) for i in range(reader.num_episodes)]
    data = {key: np.concatenate([np.asarray(e[key]) for e in episodes]) for key in ("action", EXECUTED, DRIVER)}
    return data, witness


@pytest.mark.parametrize(("robot", "beta"), [("hsr", 0.0), ("hsr", 1.0), ("txg2", 0.5)])
def test_the_action_is_the_experts_command_at_each_recorded_state(tmp_path: Path, robot: str, beta: float) -> None:
    data, witness = collect_dagger(tmp_path, robot, beta)
    label, executed, driver = data["action"], data[EXECUTED], data[DRIVER].reshape(-1)
    np.testing.assert_array_equal(label, np.stack(witness.labels))
    np.testing.assert_array_equal(executed, np.stack(witness.executed))
    expert = driver == EXPERT
    # where the expert drove, it ran its label (the safety layer may have changed it on the way); elsewhere the learner's command
    np.testing.assert_array_equal(np.stack(witness.raw)[expert], label[expert])
    if beta == 0.0:
        assert (driver == LEARNER).all()
        assert not np.allclose(label, executed, atol=1e-3)  # the labels are not what the learner did
    elif beta == 1.0:
        assert expert.all()
    else:
        assert 0 < expert.mean() < 1
        assert not np.allclose(label[~expert], executed[~expert], atol=1e-3)


def test_with_beta_0_the_learner_drives_as_it_does_alone(tmp_path: Path) -> None:
    data, _ = collect_dagger(tmp_path, "hsr", 0.0)
    alone = pipeline("hsr", executor="baseline")
    witness = Witness(alone)
    alone.subscribers.append(witness)
    alone.run()
    for component in reversed(alone.components):
        component.close()
    np.testing.assert_array_equal(data[EXECUTED], np.stack(witness.executed))


def test_an_episode_cut_by_ctrl_c_is_dropped(tmp_path: Path) -> None:
    rt = pipeline("hsr", max_steps=15)
    attach_learner(rt, LEARNER_RUN, beta=0.5, registry=load_registry(env={}), seed=0)
    recorder = DaggerRecorder(tmp_path / "ds", rt.spec, rt.space.name)

    class CtrlC(Subscriber):
        def on_step(self, step: Step) -> None:
            if recorder.saved == 1 and step.index == 5:  # the first Ctrl-C: stop at the next step
                rt.stop_requested = True

    rt.subscribers += [recorder, CtrlC()]
    results = rt.run()
    recorder.close()
    for component in reversed(rt.components):
        component.close()
    assert [r.status for r in results] == ["max_steps", "interrupted"] and rt.interrupted
    assert (recorder.saved, recorder.interrupted) == (1, 1)
    assert LeRobotDatasetReader(tmp_path / "ds").num_episodes == 1


def test_bad_input_is_refused_before_any_episode(tmp_path: Path) -> None:
    rt = pipeline("hsr")
    registry = load_registry(env={})
    with pytest.raises(ConfigError, match=r"must be in \[0, 1\], not -0.1"):
        attach_learner(rt, LEARNER_RUN, beta=-0.1, registry=registry)
    with pytest.raises(CheckpointError, match="neither a checkpoint"):
        attach_learner(rt, tmp_path, beta=0.5, registry=registry)
    rt_async = pipeline("hsr", mode="async")
    with pytest.raises(ConfigError, match="runtime.mode=sync"):
        attach_learner(rt_async, LEARNER_RUN, beta=0.5, registry=registry)
    for runtime in (rt, rt_async):
        assert runtime.executor is not None and runtime.executor.name == "scripted"  # nothing was attached
        for component in reversed(runtime.components):
            component.close()
