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
from tests.conftest import run_s2kit


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
    optimizer = torch.optim.Adam([p for p in critic.parameters() if p.requires_grad], lr=3e-3)
    for step in range(500):
        sign = torch.randint(0, 2, (64,)).float() * 2 - 1
        dx = torch.rand(64) * 2 - 1
        batch = batch_for(critic, sign, dx)
        batch[STEPS] = torch.where(sign * dx > 0, torch.ones(64), -torch.ones(64))  # done at once, or never
        loss = critic.loss(batch)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    critic.eval()
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


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Expert episodes that succeed, and ones cut off before the end (their last subtask never done)."""
    root = tmp_path_factory.mktemp("critic") / "data"
    for args in (("--episodes", "3", "--seed", "3"), ("--episodes", "2", "--seed", "20", "--keep", "all", "--set", "runtime.max_steps=15")):
        done = run_s2kit("collect", "--robot", "hsr", "--out", str(root), *args, "--json", env={"MUJOCO_GL": "osmesa"})
        assert done.returncode == 0, done.stderr
    return root


def test_collect_records_the_subtasks_done_after_each_command(recorded: Path) -> None:
    from s2kit.datasets.lerobot import LeRobotDatasetReader

    reader = LeRobotDatasetReader(recorded)
    first = reader.episode(0)
    done = np.asarray(first["progress.subtasks_done"]).reshape(-1)
    assert done[0] == 0 and done[-1] == len(json.loads(first["annotation.subtasks"][0]))  # a success ends with all done
    assert (np.diff(done) >= 0).all()
    cut = np.asarray(reader.episode(reader.num_episodes - 1)["progress.subtasks_done"]).reshape(-1)
    assert len(cut) == 15 and (steps_to_done(cut) == -1).all()  # cut off before its first subtask was done


def test_the_critic_trains_exports_and_scores_for_mpc_on_torch_and_onnxruntime(recorded: Path, tmp_path: Path) -> None:
    run = tmp_path / "critic"
    tiny = ["model.dim=32", "model.heads=2", "model.layers=1", "model.image_size=32", "batch_size=16", "threads=1",
            "stale_fraction=0", "val_fraction=0.2", "val_every=20", "model.candidates=4"]  # fmt: skip
    args = ["train", "--executor", "mpc-critic", "--data", str(recorded), "--out", str(run), "--steps", "20"]
    for option in tiny:
        args += ["--set", option]
    done = run_s2kit(*args)
    assert done.returncode == 0, done.stderr
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("val_value_mae" in m or "value_mae" in json.dumps(m) for m in metrics)
    exported = run_s2kit("export", str(run), "--out", str(run / "model.onnx"), "--json", env={"MUJOCO_GL": "osmesa"})
    assert exported.returncode == 0, exported.stderr
    report = json.loads(exported.stdout)
    assert report["max_abs_value"] < 1e-4
    for backend in ("torch", "onnxruntime"):
        done = run_s2kit("eval", "--robot", "hsr", "--executor", "mpc", "--suites", "id", "--episodes", "1", "--workers", "1",
                         "--set", f"executor.critic={run}", "--set", f"executor.critic_backend={backend}", "--set", "executor.window=5",
                         "--set", f"executor.critic_onnx={run / 'model.onnx'}",
                         "--set", "executor.inner.name=scripted", "--set", "executor.candidates=6", "--set", "runtime.max_steps=15",
                         "--json", env={"MUJOCO_GL": "osmesa"})  # fmt: skip
        assert done.returncode == 0, done.stderr
        (episode,) = json.loads(done.stdout)["suites"]["id"]["episodes"]
        assert episode["steps"] == 15 and episode["status"] == "max_steps"


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
