"""Checkpoints of any kit policy: saved and loaded through the registry, one clear error when broken, the embodiment check."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from s2kit.core.errors import ConfigError
from s2kit.core.registry import Registry, load_registry, reset_registry
from s2kit.core.types import Guidance, ee_delta_space
from s2kit.learning.checkpoints import CheckpointError, CheckpointInfo, Embodiment, load_policy, read_info, save_checkpoint
from s2kit.learning.inputs import EE_STATE
from tests.learning.compat_inputs import SPEC, observations
from tests.learning.mlp import NAME, MlpConfig, MlpPolicy

ACTIONS = ["dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"]


@pytest.fixture(scope="module")
def registry() -> Iterator[Registry]:
    """The installed plugins plus the test's MLP executor, as the process-wide registry."""
    registry = load_registry(modules=["tests.learning.mlp"], env={})
    reset_registry(registry)
    yield registry
    reset_registry(None)


def make_checkpoint(folder: Path, embodiment: Embodiment | None = None, **model: Any) -> Path:
    torch.manual_seed(0)
    config = MlpConfig(state_dim=10, action_dim=7, chunk=4, **model)  # the hand pose, its angles as sine and cosine
    info = CheckpointInfo(
        executor=NAME, model=config, state_names=list(EE_STATE), action_names=ACTIONS, control_hz=10.0, embodiment=embodiment,
        normalization={"state_mean": [0.0] * 10, "state_std": [1.0] * 10, "action_mean": [0.0] * 7, "action_std": [0.01] * 7},
    )  # fmt: skip
    return save_checkpoint(folder, MlpPolicy(config), info)


def embodiment(**changes: Any) -> Embodiment:
    actions = np.array([[-0.02] * 6 + [0.0], [0.02] * 6 + [1.0]])
    return Embodiment.of_data([{"robot_type": "compat"}], 10.0, MlpConfig(), "ee_delta", actions).model_copy(update=changes)


def test_a_policy_that_is_not_s2_saves_and_loads_through_the_registry(registry: Registry, tmp_path: Path) -> None:
    folder = make_checkpoint(tmp_path / "mlp", hidden=24)
    saved = json.loads((folder / "config.json").read_text())
    assert saved["executor"] == NAME and saved["format"] == 2 and saved["model"]["hidden"] == 24
    model, info, where = load_policy(folder)
    assert type(model) is MlpPolicy and isinstance(info.model, MlpConfig) and info.model.hidden == 24 and where == folder
    torch.manual_seed(0)
    fresh = MlpPolicy(info.model)  # what was saved: the same seed, the same weights
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in fresh.state_dict().items())


def test_its_executor_is_the_kits_with_nothing_of_its_own(registry: Registry, tmp_path: Path) -> None:
    folder = make_checkpoint(tmp_path / "mlp")
    executor = registry.create("executor", {"name": NAME, "checkpoint": str(folder)})
    executor.setup(SPEC)
    guidance = Guidance(goal="put the red cube in the bowl", subtasks=["pick it up"])
    chunk = executor.act(observations()[0], guidance)
    assert chunk.actions.shape == (4, 7) and chunk.space == "ee_delta" and np.isfinite(chunk.actions).all()
    assert not chunk.subtask_done and "done_probability" not in chunk.info  # it predicts no subtask end


def _truncate(folder: Path) -> None:
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])


def _nan(folder: Path) -> None:
    state = load_file(str(folder / "model.safetensors"))
    state["net.0.weight"][0, 0] = float("nan")
    save_file(state, str(folder / "model.safetensors"))


def _config(**changes: Any) -> Any:
    def change(folder: Path) -> None:
        raw = json.loads((folder / "config.json").read_text())
        for key, value in changes.items():
            if key.startswith("model."):
                raw["model"][key.removeprefix("model.")] = value
            else:
                raw[key] = value
        (folder / "config.json").write_text(json.dumps(raw))

    return change


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (_truncate, r"model.safetensors is corrupt"),
        (_nan, r"holds non-finite weights \(net.0.weight\): a diverged run"),
        (_config(**{"model.hidden": 16}), r"model.safetensors does not match its config: .*wrong shape \['net.0.bias', 'net.0.weight'"),
        (_config(**{"model.hiden": 16}), r"config.json: model.hiden: Extra inputs are not permitted"),
        (_config(executor="nowhere"), r"config.json was built by executor 'nowhere', which cannot be loaded here: unknown executor"),
        (_config(executor="scripted"), r"config.json names executor 'scripted', which runs no learned policy"),
        (_config(format=9), r"config.json has format 9; this s2kit reads format 1, 2"),
        (_config(state_names=["ee_x"]), r"config.json: state/action names do not match the model's sizes"),
    ],
)
def test_a_corrupt_or_mismatched_checkpoint_is_one_clear_error(registry: Registry, tmp_path: Path, breakage: Any, message: str) -> None:
    folder = make_checkpoint(tmp_path / "mlp")
    breakage(folder)
    with pytest.raises(CheckpointError, match=message) as caught:
        load_policy(folder)
    assert "\n" not in str(caught.value)


def test_another_executors_checkpoint_is_refused(registry: Registry, tmp_path: Path) -> None:
    folder = make_checkpoint(tmp_path / "mlp")
    with pytest.raises(ConfigError, match=f"is a checkpoint of executor '{NAME}'; run it with that one"):
        registry.create("executor", {"name": "s2", "checkpoint": str(folder)})


def test_a_robot_that_differs_from_the_checkpoints_embodiment_is_refused_unless_allowed(registry: Registry, tmp_path: Path) -> None:
    folder = make_checkpoint(tmp_path / "mlp", embodiment())
    assert read_info(folder).embodiment == embodiment()
    registry.create("executor", {"name": NAME, "checkpoint": str(folder)}).setup(SPEC)  # the robot it was trained on
    other = SPEC.model_copy(update={"name": "other", "control_hz": 5.0})
    with pytest.raises(ConfigError) as caught:
        registry.create("executor", {"name": NAME, "checkpoint": str(folder)}).setup(other)
    assert str(caught.value) == (
        f"executor '{NAME}': {folder} was trained for another robot than 'other' (robot type 'other', trained on 'compat'; "
        "control rate 5 Hz, trained at 10 Hz); --set executor.allow_embodiment_mismatch=true runs it anyway"
    )
    registry.create("executor", {"name": NAME, "checkpoint": str(folder), "allow_embodiment_mismatch": True}).setup(other)
    old = make_checkpoint(tmp_path / "format1")  # no embodiment record (format 1): loads as before, unchecked
    registry.create("executor", {"name": NAME, "checkpoint": str(old)}).setup(other)


def test_what_makes_another_embodiment() -> None:
    """The same action space is not the same robot; several training robots (cross-embodiment in ee_delta) are all accepted."""
    both = embodiment(robots=["compat", "txg2"])
    assert both.differences(SPEC) == [] and both.differences(SPEC.model_copy(update={"name": "txg2"})) == []
    assert embodiment().differences(SPEC.model_copy(update={"control_hz": 10.05})) == []  # within 1%
    narrow = SPEC.model_copy(update={"action_spaces": (ee_delta_space(max_translation=0.01),)})
    assert embodiment().differences(narrow) == ["ee_delta limits narrower than the trained actions in dx, dy, dz"]
    data = Embodiment.of_data(
        [{"robot_type": "txg2"}, {"robot_type": "hsr"}, {"robot_type": "hsr"}], 15.0, MlpConfig(), "ee_delta", np.array([[1.0, -2.0], [3.0, 0.0]])
    )  # fmt: skip
    assert data.robots == ["hsr", "txg2"] and data.control_hz == 15.0 and data.image_size == 16
    assert data.action_low == [1.0, -2.0] and data.action_high == [3.0, 0.0]


def test_the_shipped_and_format_1_checkpoints_keep_loading(tmp_path: Path) -> None:
    from s2kit.plugins.executors.s2.executor import default_checkpoint, shipped_robots

    old = Path(__file__).parent / "compat" / "flow_s2"  # written before the learning kit
    assert read_info(old).format == 1 and read_info(old).embodiment is None
    for folder in [old, *(default_checkpoint(robot) for robot in shipped_robots())]:
        copy = tmp_path / folder.name
        shutil.copytree(folder, copy)
        model, info, _ = load_policy(copy)
        assert type(model).__name__ == "S2Policy" and info.executor == "s2"
    for robot in shipped_robots():  # each shipped checkpoint was trained for its robot
        info = read_info(default_checkpoint(robot))
        assert info.format == 2 and info.embodiment is not None and info.embodiment.robots == [robot]
