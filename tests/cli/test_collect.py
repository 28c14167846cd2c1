"""``s2kit collect``: expert episodes into a LeRobot v3.0 dataset."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from s2kit.cli.main import build_app
from s2kit.datasets.lerobot import LeRobotDatasetReader
from s2kit.core.registry import reset_registry
from tests.conftest import BIN, ROOT

SMALL = ["--set", "robot.image_height=32", "--set", "robot.image_width=32"]


def collect(*args: str):
    reset_registry(None)
    return CliRunner().invoke(build_app(), ["collect", *args, *SMALL])


def test_collect_writes_a_readable_dataset_with_guidance_and_appends(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    result = collect("--robot", "hsr", "--episodes", "2", "--seed", "3", "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["saved"] == 2 and report["dropped"] == 0
    info = json.loads((out / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["robot_type"] == "hsr" and info["fps"] == 10
    assert {"observation.images.head", "observation.images.wrist", "observation.state", "action",
            "annotation.subtask", "annotation.trajectory", "annotation.subtask_index"} <= set(info["features"])  # fmt: skip
    stats = json.loads((out / "meta" / "stats.json").read_text())
    assert {"min", "max", "mean", "std", "q01", "q99"} <= set(stats["action"])
    reader = LeRobotDatasetReader(out)
    episode = reader.episode(0)
    n = report["episodes"][0]["steps"]
    assert episode["action"].shape == (n, 7) and episode["observation.images.head"].shape == (n, 32, 32, 3)
    assert set(episode["task"]) == {report["episodes"][0]["instruction"]}  # the goal is the task
    boundaries = np.flatnonzero(np.diff(episode["annotation.subtask_index"]))
    assert len(boundaries) == report["episodes"][0]["subtasks_total"] - 1  # one change per subtask boundary
    assert episode["annotation.subtask"][0] != episode["annotation.subtask"][-1]
    # privileged.focus (S2's auxiliary target): from the hand to what the subtask needs, shrinking to the grasp
    focus = np.asarray(episode["privileged.focus"])
    assert focus.shape == (n, 3) and np.isfinite(focus).all()
    first = episode["annotation.subtask_index"] == 0
    reach = np.linalg.norm(focus[first, :2], axis=1)
    assert reach[0] > 0.05 and reach.min() < 0.02
    # privileged.focus_uv (the focus map's target): that item's place in each camera, in [-1, 1] or NaN
    assert info["features"]["privileged.focus_uv"]["names"] == ["head.u", "head.v", "wrist.u", "wrist.v"]
    uv = np.asarray(episode["privileged.focus_uv"])
    assert uv.shape == (n, 4) and np.isfinite(uv[:, :2]).mean() > 0.5
    assert np.nanmax(np.abs(uv)) <= 1.0
    # a second collect into the same folder appends
    again = collect("--robot", "hsr", "--episodes", "1", "--seed", "10", "--out", str(out), "--json")
    assert again.exit_code == 0, again.output
    assert LeRobotDatasetReader(out).num_episodes == 3


def test_collect_refuses_a_folder_that_is_not_its_dataset(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    result = collect("--robot", "hsr", "--episodes", "1", "--out", str(tmp_path))
    assert result.exit_code == 2 and "not empty" in result.output
    assert (tmp_path / "notes.txt").read_text() == "mine"
    other = tmp_path / "txg2"
    assert collect("--robot", "txg2", "--episodes", "1", "--seed", "3", "--out", str(other)).exit_code == 0
    mismatch = collect("--robot", "hsr", "--episodes", "1", "--out", str(other))
    assert mismatch.exit_code == 2 and "Error:" in mismatch.output


def test_killing_collect_keeps_every_completed_episode(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [str(BIN / "s2kit"), "collect", "--robot", "hsr", "--episodes", "50", "--out", str(out), *SMALL],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 90
    info = out / "meta" / "info.json"
    while time.monotonic() < deadline:
        if info.exists() and json.loads(info.read_text())["total_episodes"] >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    reader = LeRobotDatasetReader(out)
    assert reader.num_episodes >= 2
    for i in range(reader.num_episodes):
        episode = reader.episode(i)
        assert len(episode["action"]) == len(episode["observation.images.head"]) > 0


def test_collect_with_noise_records_the_experts_corrections_from_perturbed_states(tmp_path: Path) -> None:
    """DART: the robot executes noisy commands, the dataset keeps the expert's clean ones."""
    expert = ["--seed", "5", "--episodes", "1", "--set", "executor.horizon=1", "--json"]
    runs = {}
    for name, noise in (("clean", "0"), ("noisy", "0.01"), ("again", "0.01")):
        result = collect("--robot", "hsr", "--out", str(tmp_path / name), "--noise", noise, *expert)
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["saved"] == 1  # the expert still solves the task
        runs[name] = LeRobotDatasetReader(tmp_path / name).episode(0)
    clean, noisy = runs["clean"], runs["noisy"]
    # the perturbed robot went elsewhere, so the expert chose other commands ...
    n = min(len(clean["action"]), len(noisy["action"]))
    assert not np.allclose(clean["observation.state"][:n], noisy["observation.state"][:n], atol=1e-3)
    # ... but the labels are its clean commands: never faster than its speed (4 cm per step),
    # which the executed noisy commands exceed
    assert np.linalg.norm(noisy["action"][:, :3], axis=1).max() <= 0.04 + 1e-5
    # and the same seeds give the same episode
    np.testing.assert_array_equal(noisy["action"], runs["again"]["action"])
    np.testing.assert_array_equal(noisy["observation.state"], runs["again"]["observation.state"])


def test_perturbed_commands_stay_within_the_action_space() -> None:
    from s2kit.workflows.collect import PerturbedRobot
    from s2kit.core.types import ee_delta_space

    space = ee_delta_space(max_translation=0.05, max_rotation=0.25)
    sent: list[np.ndarray] = []

    class Recording:
        def apply(self, action: np.ndarray, space: str) -> None:
            sent.append(action)

    robot = PerturbedRobot(Recording(), space, std=0.02)  # type: ignore[arg-type]
    for _ in range(200):
        robot.apply(np.array([0.05, -0.05, 0.0, 0.1, 0.0, 0.0, 1.0], dtype=np.float32), "ee_delta")
    actions = np.stack(sent)
    assert (actions >= np.asarray(space.low) - 1e-7).all() and (actions <= np.asarray(space.high) + 1e-7).all()
    assert (actions[:, 0] == np.float32(0.05)).sum() > 50  # pushed past the bound: clamped
    assert len(np.unique(actions[:, 2])) > 150  # translation perturbed ...
    assert (actions[:, 3:] == np.array([0.1, 0.0, 0.0, 1.0], dtype=np.float32)).all()  # ... rotation and gripper not



def test_noise_in_a_space_without_translation_is_one_clear_error() -> None:
    import pytest

    from s2kit.workflows.collect import PerturbedRobot
    from s2kit.core.errors import ConfigError
    from s2kit.core.types import ActionSpace

    joints = ActionSpace(name="joint_pos", names=("a", "b"), low=(-1.0, -1.0), high=(1.0, 1.0), absolute=True)
    with pytest.raises(ConfigError, match="has none of dx, dy, dz"):
        PerturbedRobot(object(), joints, std=0.01)  # type: ignore[arg-type]


def test_collect_takes_the_robots_first_suite_unless_told_and_refuses_one_it_does_not_declare(invoke, tmp_path: Path) -> None:
    base = ["collect", "--robot", "point", "--planner", "waypoints", "--executor", "seek", "--episodes", "1"]
    result = invoke(*base, "--out", str(tmp_path / "a"))
    assert result.exit_code == 0, result.output
    assert "collect · point · a · waypoints · seek" in result.output  # the in-distribution suite the robot declares
    assert "collect · point · b ·" in invoke(*base, "--suite", "b", "--out", str(tmp_path / "b")).output
    wrong = invoke(*base, "--suite", "zz", "--out", str(tmp_path / "zz"))
    assert wrong.exit_code == 2 and wrong.output.strip() == (
        "Error: unknown suite 'zz' for robot 'point' (it declares: a, b, distractor)"
    )
    assert not (tmp_path / "zz").exists()  # refused before the dataset was created


DAGGER_LEARNER = ROOT / "tests" / "learning" / "compat" / "baseline_regression"


def test_collect_dagger_appends_expert_labels_and_trains_unchanged(tmp_path: Path) -> None:
    out = tmp_path / "dagger"
    dagger = ["--dagger", str(DAGGER_LEARNER), "--beta", "0.5", "--set", "runtime.max_steps=30", "--json"]
    result = collect("--robot", "txg2", "--episodes", "2", "--seed", "3", "--out", str(out), *dagger)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["saved"] == 2 and not report["summary"]["task_success"]["mean"]  # failed episodes are kept
    driven = report["dagger"]["steps_driven"]
    assert driven["expert"] > 0 and driven["learner"] > 0 and driven["expert"] + driven["learner"] == 60
    again = collect("--robot", "txg2", "--episodes", "1", "--seed", "9", "--out", str(out), *dagger)
    assert again.exit_code == 0, again.output
    reader = LeRobotDatasetReader(out)
    assert reader.num_episodes == 3
    assert reader.features["dagger.executed_action"]["names"] == reader.features["action"]["names"]
    episode = reader.episode(0)
    driver = np.asarray(episode["dagger.driver"]).reshape(-1)
    assert set(driver.tolist()) == {0, 1}
    assert not np.allclose(np.asarray(episode["action"])[driver == 0], np.asarray(episode["dagger.executed_action"])[driver == 0])
    # a plain collect and a DAgger collect do not mix in one dataset: each says so before any episode
    plain = collect("--robot", "txg2", "--episodes", "1", "--out", str(out))
    assert plain.exit_code == 2 and "dagger.driver" in plain.output
    into_plain = collect("--robot", "txg2", "--episodes", "1", "--out", str(tmp_path / "plain"))
    assert into_plain.exit_code == 0, into_plain.output
    refused = collect("--robot", "txg2", "--episodes", "1", "--out", str(tmp_path / "plain"), *dagger)
    assert refused.exit_code == 2 and "recorded without --dagger" in refused.output
    assert LeRobotDatasetReader(tmp_path / "plain").num_episodes == 1
    # s2kit train reads the labels as the actions
    tiny = ["model.dim=32", "model.heads=2", "model.encoder_layers=1", "model.decoder_layers=1", "batch_size=8", "threads=1", "val_fraction=0"]
    args = ["train", "--executor", "baseline", "--data", f"{out},{tmp_path / 'plain'}", "--out", str(tmp_path / "run"), "--steps", "1"]
    trained = CliRunner().invoke(build_app(), [*args, *(a for s in tiny for a in ("--set", s))])
    assert trained.exit_code == 0, trained.output
    assert list((tmp_path / "run" / "checkpoints").glob("step_*/config.json"))


def test_collect_dagger_refuses_bad_input_before_any_episode(invoke, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    base = ["collect", "--robot", "point", "--planner", "waypoints", "--episodes", "1", "--out", str(out)]
    cases = {
        ("--dagger", str(tmp_path)): "is neither a checkpoint",
        ("--dagger", str(DAGGER_LEARNER), "--beta", "1.5"): "must be in [0, 1], not 1.5",
        ("--beta", "0.5"): "--beta is DAgger's: give --dagger RUN too",
        ("--dagger", str(DAGGER_LEARNER)): "expert 'scripted' cannot label robot 'point'",
    }
    for args, message in cases.items():
        result = invoke(*base, *args)
        assert result.exit_code == 2 and message in result.output and result.output.count("\n") == 1, result.output
        assert not out.exists()
