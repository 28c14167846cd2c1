"""Dataset columns a model declares (``s2kit_dataset_columns``) are what ``collect`` records beyond its own."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from s2kit import hookimpl
from s2kit.core.config import validate_pipeline
from s2kit.core.errors import PluginError
from s2kit.core.hookspecs import DatasetColumn
from s2kit.core.interfaces import Subscriber
from s2kit.core.registry import load_registry
from s2kit.core.runtime import build_runtime
from s2kit.core.types import Observation, RobotSpec, Step, ee_delta_space
from s2kit.datasets.lerobot import LeRobotDatasetReader
from s2kit.workflows.collect import LeRobotRecorder, dataset_columns, dataset_features

HEIGHT = "label.height"


@hookimpl
def s2kit_dataset_columns(spec: RobotSpec) -> dict[str, DatasetColumn]:
    # this test module is a plugin too: a model that trains on twice the point's height
    def read(observation: Observation) -> np.ndarray:
        return np.asarray(observation.state[2:3] * 2, dtype=np.float32)

    return {HEIGHT: DatasetColumn({"dtype": "float32", "shape": [1], "names": ["z2"]}, read)}


def test_a_declared_column_is_recorded_in_every_frame(tmp_path: Path) -> None:
    registry = load_registry(modules=["tests.doubles", __name__], env={})
    pipeline = validate_pipeline(
        {"robot": {"name": "point", "image_size": 16}, "planner": {"name": "waypoints"}, "executor": {"name": "seek"},
         "runtime": {"episodes": 1, "max_steps": 30}}  # fmt: skip
    )
    runtime = build_runtime(pipeline, registry)
    columns = dataset_columns(runtime.spec, registry)
    assert HEIGHT in columns
    recorder = LeRobotRecorder(tmp_path / "ds", runtime.spec, runtime.space.name, keep="all", columns=columns)
    runtime.subscribers.append(recorder)
    runtime.run()
    recorder.close()
    reader = LeRobotDatasetReader(tmp_path / "ds")
    assert reader.features[HEIGHT]["names"] == ["z2"]
    episode = reader.episode(0)
    state = np.asarray(episode["observation.state"])
    np.testing.assert_allclose(np.asarray(episode[HEIGHT]).reshape(-1), state[:, 2] * 2, rtol=1e-6)


def robot(*cameras: str) -> RobotSpec:
    return RobotSpec(name="r", joints=(), cameras=[{"role": c, "height": 8, "width": 8} for c in cameras],
                     state_names=("x",), action_spaces=(ee_delta_space(),), control_hz=10.0)  # fmt: skip


def test_s2_declares_its_privileged_targets_per_camera() -> None:
    columns = dataset_columns(robot("head", "wrist"), load_registry(env={}))
    assert columns["privileged.focus_uv"].feature["names"] == ["head.u", "head.v", "wrist.u", "wrist.v"]
    unknown = Observation(images={}, state=np.zeros(1, np.float32), timestamp=0.0)  # a real robot: nothing privileged
    assert np.isnan(columns["privileged.focus"].read(unknown)).all() and columns["privileged.focus_uv"].read(unknown).shape == (4,)


def test_a_column_that_clashes_with_the_recorded_ones_is_an_error() -> None:
    column = DatasetColumn({"dtype": "float32", "shape": [1]}, lambda observation: np.zeros(1, np.float32))
    with pytest.raises(PluginError, match="'action', which s2kit records itself"):
        dataset_features(robot("head"), "ee_delta", {"action": column})


def test_an_episode_cut_by_ctrl_c_is_dropped_even_when_keeping_all(tmp_path: Path) -> None:
    registry = load_registry(modules=["tests.doubles"], env={})
    pipeline = validate_pipeline(
        {"robot": {"name": "point", "image_size": 16}, "planner": {"name": "waypoints"}, "executor": {"name": "seek"},
         "runtime": {"episodes": 3, "max_steps": 30}}  # fmt: skip
    )
    runtime = build_runtime(pipeline, registry)

    class CtrlC(Subscriber):  # what the first Ctrl-C does: ask the loop to stop at the next step
        def on_step(self, step: Step) -> None:
            if runtime.robot.seed == 1 and step.index == 5:  # type: ignore[attr-defined]
                runtime.stop_requested = True

    recorder = LeRobotRecorder(tmp_path / "ds", runtime.spec, runtime.space.name, keep="all", columns={})
    runtime.subscribers += [recorder, CtrlC()]
    results = runtime.run()
    recorder.close()
    assert [r.status for r in results] == ["done", "interrupted"]
    assert (recorder.saved, recorder.dropped, recorder.interrupted) == (1, 1, 1)
    reader = LeRobotDatasetReader(tmp_path / "ds")
    assert reader.num_episodes == 1 and len(reader.episode(0)["action"]) == results[0].steps
