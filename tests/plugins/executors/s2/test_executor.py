"""Executors ``s2`` and ``baseline``: chunks from observations and guidance, kept patches, progress, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from s2kit.core.errors import ConfigError
from s2kit.core.registry import get_registry
from s2kit.core.types import Guidance
from s2kit.learning.checkpoints import read_info
from tests.conftest import run_s2kit
from tests.plugins.executors.s2.conftest import train_args


@pytest.fixture(scope="module")
def hsr():
    robot = get_registry().create("robot", {"name": "hsr"})
    yield robot
    robot.close()


def make(name: str, **options):
    return get_registry().create("executor", {"name": name, **options})


def test_s2_acts_in_ee_delta_with_its_budget_and_rho_at_run_time(tiny_run: Path, hsr) -> None:
    observation = hsr.reset(seed=5)
    guidance = Guidance(goal=hsr.instruction, trajectory="move the red cube", subtasks=["pick up the red cube", "put it in the bowl"])
    info = read_info(tiny_run)
    grid = info.model.grid
    # trained on the simulated HSR: the checkpoint says so, and the HSR it runs on is that embodiment
    assert info.embodiment is not None and info.embodiment.robots == ["hsr"] and info.embodiment.control_hz == hsr.spec.control_hz
    for rho, kept in ((None, round(0.25 * grid * grid)), (0.5, round(0.5 * grid * grid))):
        executor = make("s2", checkpoint=str(tiny_run), **({} if rho is None else {"rho": rho}))
        executor.setup(hsr.spec)
        chunk = executor.act(observation, guidance)
        assert chunk.space == "ee_delta" and chunk.actions.shape == (10, 7) and np.isfinite(chunk.actions).all()
        assert set(chunk.info["keep"]) == {"head", "wrist"}
        assert all(mask.shape == (grid, grid) and mask.sum() == kept for mask in chunk.info["keep"].values())
        assert chunk.subtask_done == (chunk.info["done_probability"] > 0.5)  # the done head: test_budget_learning.py
    # the same seed, the same chunk: an episode can be replayed
    executor.reset()
    again = executor.act(observation, guidance)
    executor.reset()
    np.testing.assert_array_equal(again.actions, executor.act(observation, guidance).actions)


def test_the_baseline_takes_only_a_baseline_network(tiny_run: Path, hsr_dataset: Path, tmp_path: Path, hsr) -> None:
    with pytest.raises(ConfigError, match="is not a baseline network"):
        make("baseline", checkpoint=str(tiny_run))
    with pytest.raises(ConfigError, match="needs a checkpoint"):
        make("baseline")
    run = tmp_path / "baseline"
    assert run_s2kit(*train_args("baseline", hsr_dataset, run, 2)).returncode == 0
    info = read_info(run)
    assert info.executor == "baseline" and not info.model.budget and info.model.guidance == "goal"
    executor = make("baseline", checkpoint=str(run))
    executor.setup(hsr.spec)
    chunk = executor.act(hsr.reset(seed=1), Guidance(goal=hsr.instruction))
    assert chunk.actions.shape == (10, 7) and "keep" not in chunk.info
    with pytest.raises(ConfigError, match="without an evidence budget"):
        make("baseline", checkpoint=str(run), rho=0.5)


def test_a_robot_without_the_cameras_or_state_is_refused(tiny_run: Path, hsr) -> None:
    executor = make("s2", checkpoint=str(tiny_run))
    spec = hsr.spec.model_copy(update={"cameras": hsr.spec.cameras[:1]})
    with pytest.raises(ConfigError, match="has no camera"):
        executor.setup(spec)


def test_an_episode_runs_with_the_executors_own_progress_signal(tiny_run: Path) -> None:
    done = run_s2kit(
        "run", "--robot", "hsr", "--planner", "retrieval", "--executor", "s2", "--set", f"executor.checkpoint={tiny_run}",
        "--set", "runtime.max_steps=30", "--set", "runtime.progress=executor", "--json", env={"MUJOCO_GL": "osmesa"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert '"status": "max_steps"' in done.stdout


def test_s2_without_a_checkpoint_says_how_to_get_one(monkeypatch, tmp_path: Path) -> None:
    import s2kit.plugins.executors.s2.executor as module

    with pytest.raises(ConfigError, match="no trained S2 checkpoint for robot 'planar'; s2kit ships them for hsr.*executor.checkpoint=RUN"):
        make("s2", robot="planar")
    with pytest.raises(ConfigError, match="without a robot .--set executor.robot=NAME."):
        make("s2")
    monkeypatch.setattr(module, "shipped_root", lambda: tmp_path / "absent")
    with pytest.raises(ConfigError, match="s2kit ships none yet"):
        make("s2", robot="hsr")


def test_the_default_pipeline_runs_the_shipped_checkpoint_and_it_does_a_task() -> None:
    """`make demo`'s pipeline: no executor named, the retrieval planner, the executor's own progress, on the held-out
    `id` scene where docs/experiments.md's evaluation of the shipped HSR checkpoint saw it finish the whole task
    (seed 100011; the run is deterministic)."""
    done = run_s2kit(
        "run", "--suite", "id", "--episodes", "1", "--seed", "100011", "--set", "runtime.progress=executor", "--json",
        env={"MUJOCO_GL": "osmesa"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["pipeline"]["executor"] == {"name": "s2"} and report["pipeline"]["planner"]["name"] == "retrieval"
    episode = report["episodes"][0]
    assert episode["status"] == "done" and episode["subtasks_completed"] == episode["subtasks_total"] == 2


def test_each_robot_runs_its_own_shipped_checkpoint_without_options() -> None:
    """`s2kit run --robot NAME`: the pipeline tells s2 its robot, and s2 loads the checkpoint trained for it (another
    robot's would be refused by the embodiment check)."""
    from s2kit.plugins.executors.s2.executor import default_checkpoint, shipped_robots

    assert set(shipped_robots()) >= {"hsr", "txg2"}
    for robot in ("hsr", "txg2"):
        assert read_info(default_checkpoint(robot)).embodiment.robots == [robot]
    done = run_s2kit(
        "run", "--robot", "txg2", "--episodes", "1", "--seed", "100000", "--set", "runtime.max_steps=16", "--json", env={"MUJOCO_GL": "osmesa"}
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["pipeline"]["robot"]["name"] == "txg2" and report["summary"]["episodes"] == 1
    assert report["episodes"][0]["actors"]["executor"] >= 1
