"""mpc's learned scorer: the progress labels, the critic fitting a small problem, and the whole chain from recorded
episodes to mpc driving the simulated HSR with the critic (torch and onnxruntime)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from s2kit.learning.batch import ACTIONS, FEATURES, STATE, TEXT
from s2kit.learning.encoders import TRUNK_CHANNELS
from s2kit.plugins.executors.mpc.columns import CANDIDATES, STEPS, VALUE, steps_to_done
from s2kit.plugins.executors.mpc.critic import CriticConfig, ProgressCritic
from tests.conftest import fit_on_draws, run_s2kit


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_labels_count_the_commands_to_each_subtasks_end() -> None:
    done_after = np.array([0, 0, 1, 1, 1, 2, 2])  # the third command finishes subtask 1, the sixth subtask 2, the rest never
    np.testing.assert_array_equal(steps_to_done(done_after), [3, 2, 1, 3, 2, 1, -1])
    assert np.isnan(steps_to_done(np.array([0, -1, 1]))).all()  # a robot that could not say: unknown, not zero


def batch_for(critic: ProgressCritic, state_sign: torch.Tensor, dx: torch.Tensor) -> dict[str, torch.Tensor]:
    c = critic.config
    B = len(state_sign)
    g = torch.Generator().manual_seed(int(B))
    state = torch.zeros(B, c.state_dim)
    state[:, 0] = state_sign
    actions = torch.zeros(B, c.chunk, c.action_dim)
    actions[:, :, 0] = dx[:, None]
    features = torch.randn(B, len(c.cameras), TRUNK_CHANNELS[c.trunk_blocks] * c.cells, generator=g)
    return {FEATURES: features, STATE: state, TEXT: torch.randn(B, 3, c.text_dim, generator=g), ACTIONS: actions}


def test_the_critic_fits_a_small_problem() -> None:
    """Progress comes only when the chunk moves the way the state says: the critic must read both, and rank candidates."""
    torch.manual_seed(0)
    critic = ProgressCritic(CriticConfig(cameras=["head"], image_size=32, dim=32, heads=2, layers=1, state_dim=4, chunk=3, rank_weight=0.0))

    def labelled() -> dict[str, torch.Tensor]:
        sign = torch.randint(0, 2, (64,)).float() * 2 - 1
        dx = torch.rand(64) * 2 - 1
        out = batch_for(critic, sign, dx)
        out[STEPS] = torch.where(sign * dx > 0, torch.ones(64), -torch.ones(64))  # done at once, or never
        return out

    fit_on_draws(critic, labelled, 500, optimizer=torch.optim.Adam)
    with torch.inference_mode():
        sign = torch.tensor([1.0, -1.0])
        batch = batch_for(critic, sign, torch.zeros(2))
        candidates = torch.zeros(2, 5, 3, critic.config.action_dim)
        candidates[:, :, :, 0] = torch.linspace(-0.9, 0.9, 5)[None, :, None]
        value = critic.sample({**batch, CANDIDATES: candidates})[VALUE]  # (2, 5)
    moves = [0, 1, 3, 4]  # dx -0.9, -0.45, +0.45, +0.9 (index 2 stands still: either label)
    assert (value[0, moves] > 0.5).tolist() == [False, False, True, True]  # state +1: moving +x makes progress
    assert (value[1, moves] > 0.5).tolist() == [True, True, False, False]  # state -1: the other way round
    assert value[0, 4] > 0.8 and value[1, 0] > 0.8 and value[0, 0] < 0.2 and value[1, 4] < 0.2


def test_the_stop_term_scores_standing_still_below_a_successful_move() -> None:
    """Trained on successes alone, the value term says every chunk completes the subtask; the stop term must still rank
    the recorded move above itself stopping partway (what mpc's kept candidates become), and the cut-off dx must count."""
    values = {}
    for stop_weight in (0.0, 1.0):
        torch.manual_seed(0)
        config = CriticConfig(cameras=["head"], image_size=32, dim=32, heads=2, layers=1, state_dim=4, chunk=3,
                              rank_weight=0.0, stop_weight=stop_weight)  # fmt: skip
        critic = ProgressCritic(config)
        critic.normalization_fitted(torch.full((config.action_dim,), 0.5), torch.full((config.action_dim,), 2.0))
        still = -0.25  # a raw 0 in these normalized units

        def successes(critic: ProgressCritic = critic) -> dict[str, torch.Tensor]:
            sign = torch.randint(0, 2, (64,)).float() * 2 - 1
            out = batch_for(critic, sign, still + sign * (0.5 + torch.rand(64)))  # the recorded chunk moves the way the state says
            out[STEPS] = torch.ones(64)  # ... and always completes the subtask
            return out

        fit_on_draws(critic, successes, 300, optimizer=torch.optim.Adam)
        with torch.inference_mode():
            batch = batch_for(critic, torch.tensor([1.0, -1.0]), torch.zeros(2))
            candidates = torch.full((2, 2, 3, config.action_dim), still)
            candidates[0, 0, :, 0], candidates[1, 0, :, 0] = still + 1.0, still - 1.0  # moving the right way
            candidates[:, 1, 0, 0] = candidates[:, 0, 0, 0]  # moving one step, then standing still
            values[stop_weight] = critic.sample({**batch, CANDIDATES: candidates})[VALUE]  # (2, 2)
    assert (values[1.0][:, 0] > values[1.0][:, 1] + 0.3).all(), values[1.0]
    assert not (values[0.0][:, 0] > values[0.0][:, 1] + 0.3).all(), values[0.0]  # without it nothing tells them apart


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Expert episodes, every one kept, cut off at 60 steps: the short tasks succeed, the long ones never finish."""
    root = tmp_path_factory.mktemp("critic") / "data"
    done = run_s2kit("collect", "--robot", "hsr", "--out", str(root), "--episodes", "4", "--seed", "3", "--keep", "all",
                     "--set", "runtime.max_steps=60", "--json", env={"MUJOCO_GL": "osmesa"})  # fmt: skip
    assert done.returncode == 0, done.stderr
    return root


def test_collect_records_the_subtasks_done_after_each_command(recorded: Path) -> None:
    from s2kit.datasets.lerobot import LeRobotDatasetReader

    reader = LeRobotDatasetReader(recorded)
    finished = cut = 0
    for e in range(reader.num_episodes):
        episode = reader.episode(e)
        done = np.asarray(episode["progress.subtasks_done"]).reshape(-1)
        total = len(json.loads(episode["annotation.subtasks"][0]))
        assert done[0] in (0, 1) and (np.diff(done) >= 0).all() and done[-1] <= total
        if done[-1] == total:  # a success ends with every subtask done, its last command the one that did it
            finished += 1
            assert done[-2] < total and steps_to_done(done)[-1] == 1
        else:
            cut += 1
            assert len(done) == 60 and steps_to_done(done)[-1] == -1  # cut off: its last subtask never done
    assert finished and cut


def test_the_critic_trains_exports_and_scores_for_mpc_on_torch_and_onnxruntime(recorded: Path, tmp_path: Path) -> None:
    from s2kit.core.registry import get_registry
    from s2kit.learning.export import export_onnx
    from s2kit.plugins.executors.mpc.executor import MpcConfig, MpcExecutor

    run = tmp_path / "critic"
    tiny = ["model.dim=32", "model.heads=2", "model.layers=1", "model.image_size=32", "batch_size=16", "threads=1",
            "stale_fraction=0", "val_fraction=0.25", "val_every=20", "model.candidates=4"]  # fmt: skip
    args = ["train", "--executor", "mpc-critic", "--data", str(recorded), "--out", str(run), "--steps", "20"]
    for option in tiny:
        args += ["--set", option]
    done = run_s2kit(*args)
    assert done.returncode == 0, done.stderr
    held_out = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if "val_value_mae" in line]
    assert held_out and 0 <= held_out[-1]["val_value_mae"] <= 1
    report = export_onnx(run, run / "model.onnx", episodes=1, steps=0)  # the parity check on the simulated HSR
    assert report["max_abs_value"] < 1e-4
    robot = get_registry().create("robot", {"name": "hsr", "suite": "id", "render": True})
    try:
        for backend in ("torch", "onnxruntime"):
            executor = MpcExecutor(MpcConfig(inner={"name": "scripted"}, critic=run, critic_backend=backend, critic_onnx=run / "model.onnx",
                                             candidates=6, window=5))  # fmt: skip
            executor.setup(robot.spec)
            executor.reset()
            observation = robot.reset(seed=3)
            guidance = get_registry().create("planner", {"name": "oracle"}).plan(robot.instruction, observation)
            chunk = executor.act(observation, guidance)
            info = chunk.info["mpc"]
            assert "fallback" not in info and info["candidates"] == 6 and 0 <= info["score"] <= 1
            scores = executor.scorer.score(observation, guidance, np.zeros((6, 5, 7), np.float32))  # six the same: one graph call plus padding
            assert scores.shape == (6,) and np.allclose(scores, scores[0], atol=1e-5)
            executor.close()
    finally:
        robot.close()


def test_a_dataset_without_the_progress_column_is_one_error_before_training(tmp_path: Path) -> None:
    from tests.datasets.test_lerobot import LENGTHS, make_episode, write  # synthetic datasets: no progress column

    data = tmp_path / "data"
    write(data, [make_episode(seed, length) for seed, length in enumerate(LENGTHS)])
    done = run_s2kit("train", "--executor", "mpc-critic", "--data", str(data), "--out", str(tmp_path / "run"), "--steps", "2", "--set", "state=all")
    assert done.returncode != 0
    assert "no progress.subtasks_done column" in done.stderr and not (tmp_path / "run" / "checkpoints").exists()


def test_the_critic_cannot_drive() -> None:
    done = run_s2kit("run", "--executor", "mpc-critic", "--episodes", "1", "--set", "runtime.max_steps=2")
    assert done.returncode != 0
