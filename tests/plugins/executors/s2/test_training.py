"""``s2kit train`` for S2 on the kit's trainer (tests/learning/test_trainer.py has the trainer's own): checkpoints that load
alone, S2's validation figures, the baseline's preset, resuming, data parallelism with frozen parameters, bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from s2kit.core.checkpoints import find_checkpoint
from s2kit.learning.checkpoints import (
    CheckpointError,
    load_policy,
    read_info,
)
from tests.conftest import ROOT, run_s2kit
from tests.plugins.executors.s2.conftest import TINY_RUN, train_args


def weights(run: Path) -> dict:
    return load_file(str(find_checkpoint(run) / "model.safetensors"))


def test_a_run_writes_checkpoints_that_load_with_nothing_else(tiny_run: Path, hsr_dataset: Path) -> None:
    steps = sorted(p.name for p in (tiny_run / "checkpoints").iterdir())
    assert steps == ["step_0000003", "step_0000006"]
    info = read_info(tiny_run)  # the newest
    assert info.step == 6 and info.executor == "s2" and info.variant == "s2"
    assert info.state_names == ["ee_x", "ee_y", "ee_z", "ee_roll", "ee_pitch", "ee_yaw", "gripper"]
    assert len(info.normalization["action_std"]) == 7 and info.datasets[0]["path"] == str(hsr_dataset)
    model, _, folder = load_policy(tiny_run)
    assert folder.name == "step_0000006" and not model.training
    lines = [json.loads(line) for line in (tiny_run / "metrics.jsonl").read_text().splitlines()]
    val = [line for line in lines if "val_action_mse" in line]  # a validation split was held out and scored
    assert val and "val_done_accuracy" in val[-1]
    # S2's own figure, from its policy's validation hook: an error in centimetres, so within the arm's reach (a
    # figure in decimetres or metres, the scales the head trains at and the data records, would fall outside)
    assert 1.0 < val[-1]["val_focus_rms_cm"] < 100.0
    assert [line["rho"] for line in lines if "rho" in line][-1] < 1.0  # S2's schedule anneals its keep-fraction


def test_resuming_gives_the_same_weights_as_an_uninterrupted_run(hsr_dataset: Path, tmp_path: Path) -> None:
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert run_s2kit(*train_args("s2", hsr_dataset, straight, 4, "save_every=2")).returncode == 0
    shutil.copytree(straight, resumed)
    shutil.rmtree(resumed / "checkpoints" / "step_0000004")  # as if stopped after step 2
    done = run_s2kit(*train_args("s2", hsr_dataset, resumed, 4, "save_every=2"), "--resume")
    assert done.returncode == 0, done.stderr
    assert "steps 2..4" in done.stderr
    a, b = weights(straight), weights(resumed)
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)  # fixed seeds: bit for bit


def test_a_run_is_not_overwritten_and_resume_refuses_other_settings(tiny_run: Path, hsr_dataset: Path) -> None:
    again = run_s2kit(*train_args("s2", hsr_dataset, tiny_run, 6))
    assert again.returncode == 2 and "already holds a run" in again.stderr and "--resume" in again.stderr
    other = run_s2kit(*train_args("s2", hsr_dataset, tiny_run, 8, *TINY_RUN, "lr=0.1"), "--resume")
    assert other.returncode == 2 and "other settings (lr)" in other.stderr
    unknown = run_s2kit(*train_args("s2", hsr_dataset, tiny_run.parent / "x", 2, "learning_rate=0.1"))
    assert unknown.returncode == 2 and "unknown option 'learning_rate'" in unknown.stderr


def test_corrupt_or_mismatched_checkpoints_are_one_clear_error(tiny_run: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(find_checkpoint(tiny_run), bad)
    weights_file = bad / "model.safetensors"
    weights_file.write_bytes(weights_file.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_policy(bad)
    shutil.copy(find_checkpoint(tiny_run) / "model.safetensors", weights_file)
    config = json.loads((bad / "config.json").read_text())
    config["model"]["dim"] = 64  # weights for another network size
    (bad / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="does not match its config"):
        load_policy(bad)
    (bad / "config.json").write_text("{not json")
    done = run_s2kit("run", "--robot", "hsr", "--executor", "s2", "--set", f"executor.checkpoint={bad}", env={"MUJOCO_GL": "osmesa"})
    assert done.returncode == 2 and "config.json is not readable JSON" in done.stderr and "Traceback" not in done.stderr
    with pytest.raises(CheckpointError, match="neither a checkpoint"):
        load_policy(tmp_path)


def _torchrun(args: list[str], port: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MUJOCO_GL": "osmesa", "OMP_NUM_THREADS": "1"}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(port)]
    return subprocess.run([*torchrun, "-m", "s2kit.cli.main", *args], capture_output=True, text=True, env=env, timeout=300, check=False)


def test_data_parallel_trains_a_network_with_parameters_its_loss_does_not_read(hsr_dataset: Path, tmp_path: Path) -> None:
    """The baseline with the regression head has no keep-scorer input and no flow embeddings in its loss."""
    out = tmp_path / "ddp_baseline"
    done = _torchrun(train_args("baseline", hsr_dataset, out, 2, "model.head=regression", "variant=s2"), 29534)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 process(es)" in done.stderr
    info = read_info(out)
    assert info.step == 2 and info.variant == "baseline" and not info.model.budget  # the executor's preset, whatever variant says


def test_a_diverging_run_stops_with_one_line_and_keeps_its_checkpoints(hsr_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "diverging"
    done = run_s2kit(*train_args("s2", hsr_dataset, out, 40, "lr=1e30", "warmup_steps=0", "grad_clip=1e30", "save_every=1"))
    assert done.returncode == 1 and "training diverged at step" in done.stderr and "Traceback" not in done.stderr
    assert read_info(out).step >= 1  # what was saved before is still there and loads
    load_policy(find_checkpoint(out))


def test_non_finite_weights_are_a_corrupt_checkpoint(tiny_run: Path, tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    bad = tmp_path / "nan"
    shutil.copytree(find_checkpoint(tiny_run), bad)
    state = load_file(str(bad / "model.safetensors"))
    first = next(iter(state))
    state[first] = torch.full_like(state[first], float("nan"))
    save_file(state, str(bad / "model.safetensors"))
    with pytest.raises(CheckpointError, match="non-finite weights"):
        load_policy(bad)


def test_a_checkpoint_from_before_the_focus_head_and_fine_keypoints_loads_as_it_was(tiny_run: Path, tmp_path: Path) -> None:
    """Fields added to the model config later default, for an older checkpoint, to what it was trained as."""
    old = tmp_path / "old"
    shutil.copytree(find_checkpoint(tiny_run), old)
    config = json.loads((old / "config.json").read_text())
    for field in ("focus_weight", "keypoint_grid", "focus_map"):
        del config["model"][field]
    (old / "config.json").write_text(json.dumps(config))
    from safetensors.torch import load_file, save_file

    weights = {k: v for k, v in load_file(str(old / "model.safetensors")).items() if not k.startswith(("focus_", "map_"))}
    weights["keypoint_logits.weight"] = weights["keypoint_logits.weight"].new_zeros(config["model"]["keypoints"], config["model"]["dim"])
    save_file(weights, str(old / "model.safetensors"))
    model, info, _ = load_policy(old)
    assert info.model.focus_weight == 0 and info.model.keypoint_grid == "patch" and not hasattr(model, "focus_head")
    assert info.model.focus_map == 0 and not hasattr(model, "map_logits")
