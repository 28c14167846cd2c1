"""``s2kit train`` for S2: checkpoints that load alone, resuming, seeds, data parallelism, bad input."""

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
from s2kit.core.config import validate_overrides
from s2kit.core.errors import ConfigError
from s2kit.learning.checkpoints import (
    CheckpointError,
    load_policy,
    read_info,
)
from s2kit.learning.trainer import (
    TrainConfig,
    _device,
    _Prefetcher,
    _recolour,
    _recolour_background,
    _shift,
)
from tests.conftest import ROOT, run_s2kit
from tests.plugins.executors.s2.conftest import train_args


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
    assert any("val_action_mse" in line for line in lines)  # a validation split was held out and scored


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
    other = run_s2kit(*train_args("s2", hsr_dataset, tiny_run, 8, "lr=0.1"), "--resume")
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


def test_two_processes_train_data_parallel_over_gloo(hsr_dataset: Path, tmp_path: Path) -> None:
    """torchrun with 2 CPU processes: the ranks average gradients; rank 0 writes one run."""
    out = tmp_path / "ddp"
    done = _torchrun(train_args("s2", hsr_dataset, out, 3), 29533)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 process(es)" in done.stderr
    assert read_info(out).step == 3
    single = tmp_path / "single"
    assert run_s2kit(*train_args("s2", hsr_dataset, single, 3)).returncode == 0
    a, b = weights(out), weights(single)
    assert any(not (a[k] == b[k]).all() for k in a)  # each rank drew its own half-batch: another trajectory


def test_data_parallel_trains_a_network_with_parameters_its_loss_does_not_read(hsr_dataset: Path, tmp_path: Path) -> None:
    """The baseline with the regression head has no keep-scorer input and no flow embeddings in its loss."""
    out = tmp_path / "ddp_baseline"
    done = _torchrun(train_args("baseline", hsr_dataset, out, 2, "model.head=regression"), 29534)
    assert done.returncode == 0, done.stderr[-3000:]
    assert read_info(out).step == 2


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


def test_the_shift_augmentation_says_how_far_each_image_moved() -> None:
    """The model moves the coordinates it reads back by that much, and the focus map's target moves with the image."""
    images = torch.zeros(6, 2, 3, 32, 32, dtype=torch.uint8)
    images[:, :, :, 10, 20] = 255  # one bright pixel: row 10, column 20
    shifted, moved = _shift(images, 4, torch.Generator().manual_seed(0))
    assert moved.shape == (6, 2, 2) and moved.abs().max() <= 4 * 2 / 32 and moved.std() > 0
    for b in range(6):
        for c in range(2):
            row, column = (shifted[b, c, 0] == 255).nonzero()[0].tolist()
            assert (column - 20, row - 10) == tuple(round(x) for x in (moved[b, c] * 16).tolist())


def test_the_background_augmentation_recolours_the_backdrop_and_keeps_the_items() -> None:
    """A wood table with a shaded band and a white wall takes new colours; the red item on it keeps its own."""
    scene = torch.empty(32, 2, 3, 24, 24, dtype=torch.uint8)
    scene[:] = torch.tensor([158, 115, 77], dtype=torch.uint8)[:, None, None]  # the training table
    scene[..., 16:, :] = torch.tensor([126, 92, 62], dtype=torch.uint8)[:, None, None]  # the same wood in shade (0.8)
    scene[..., :6, :] = torch.tensor([204, 204, 199], dtype=torch.uint8)[:, None, None]  # the wall
    scene[..., 8:12, 8:12] = torch.tensor([217, 31, 26], dtype=torch.uint8)[:, None, None]  # a red cube
    out = _recolour_background(scene, 1.0, torch.Generator().manual_seed(0))
    assert out.shape == scene.shape and out.dtype == torch.uint8
    assert torch.equal(out[..., 8:12, 8:12], scene[..., 8:12, 8:12])  # the item is untouched
    lit, shade, wall = out[..., 0, 12, 20].float(), out[..., 0, 20, 20].float(), out[..., 0, 2, 2].float()  # (32, 2) red channel
    assert (lit - 158).abs().median() > 20 and (wall - 204).abs().median() > 20  # table and wall recoloured
    assert (lit[:, None] - lit[None]).abs().max() > 50  # each image draws its own colour
    unclipped = lit < 250
    assert torch.allclose(shade[unclipped] / lit[unclipped].clamp(min=1), torch.full_like(lit[unclipped], 126 / 158), atol=0.06)  # shading kept
    assert torch.equal(_recolour_background(scene, 0.0, torch.Generator().manual_seed(0)), scene)


def test_the_colour_augmentation_changes_each_image_within_its_bounds() -> None:
    """Brightness, contrast and colour balance per camera of each sample; 0.4 keeps every factor within [0.6, 1.4]."""
    grey = torch.full((64, 2, 3, 8, 8), 100, dtype=torch.uint8)
    grey[..., :4] = 60  # two grey levels, so contrast shows
    out = _recolour(grey, 0.4, torch.Generator().manual_seed(0))
    assert out.shape == grey.shape and out.dtype == torch.uint8
    means = out.float().mean(dim=(3, 4))  # (64, 2, 3)
    assert means.std(dim=(0, 1)).min() > 5  # each sample and camera drew its own factors
    assert (means[..., 0] - means[..., 1]).abs().max() > 5  # the colour balance moved: grey became tinted
    ratio = means / 80
    assert ratio.min() > 0.6 * 0.8 - 0.02 and ratio.max() < 1.4 * 1.2 + 0.02  # brightness times channel gain
    assert torch.equal(_recolour(grey, 0.0, torch.Generator().manual_seed(0)), grey)
    white = torch.full((4, 1, 3, 8, 8), 250, dtype=torch.uint8)
    assert _recolour(white, 0.4, torch.Generator().manual_seed(1)).min() >= 250 * 0.6 * 0.8 - 1  # brightened past 255: clipped, not wrapped


class _Counter:
    """A stand-in for the training sampler: batches drawn from its own generator."""

    def __init__(self, seed: int) -> None:
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, size: int) -> dict[str, torch.Tensor]:
        return {"x": torch.rand(size, generator=self.generator)}


def test_batches_drawn_ahead_are_the_samplers_and_a_resume_draws_the_one_not_yet_taken() -> None:
    ahead = _Prefetcher(_Counter(7), 4, torch.device("cpu"))
    plain = _Counter(7)
    try:
        taken = [ahead()["x"] for _ in range(3)]
        assert all(torch.equal(t, plain(4)["x"]) for t in taken)
        resumed = _Counter(0)
        resumed.generator.set_state(ahead.state())  # what a checkpoint saved now holds
        assert torch.equal(resumed(4)["x"], ahead()["x"])
    finally:
        ahead.close()


def test_training_on_a_gpu_that_is_not_there_is_one_clear_error() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ConfigError, match="device=cuda but torch sees no GPU"):
        _device("cuda")
    with pytest.raises(ConfigError, match="device"):
        validate_overrides(TrainConfig, ["device=gpu"], "train s2")
