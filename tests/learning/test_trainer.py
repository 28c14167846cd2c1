"""The kit's trainer, on a tiny policy: checkpoints, validation, presets, schedules, EMA, resuming, prefetch, data parallel."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from s2kit.core.checkpoints import find_checkpoint
from s2kit.core.config import validate_overrides
from s2kit.core.errors import ConfigError
from s2kit.core.registry import reset_registry
from s2kit.learning.checkpoints import CheckpointError, read_info
from s2kit.learning.trainer import TrainConfig, _device, _Prefetcher, lr_factor, model_settings, train
from tests.conftest import ROOT
from tests.learning.tiny import FAST, TinyExecutor, WideExecutor, registered, run


@pytest.fixture(autouse=True, scope="module")
def _tiny_registered() -> Iterator[None]:
    registered()
    yield
    reset_registry(None)


def weights(run_folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(find_checkpoint(run_folder) / "model.safetensors"))


def training_state(run_folder: Path) -> dict:
    return torch.load(find_checkpoint(run_folder) / "training_state.pt", weights_only=False)


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_run_writes_checkpoints_metrics_and_the_policys_validation_figures(tiny_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    progress: list[int] = []
    last = run(tiny_dataset, out, 4, "save_every=2", "val_every=2", progress=lambda step, losses: progress.append(step))
    assert last.name == "step_0000004" and sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_0000002", "step_0000004"]
    assert progress == [1, 2, 3, 4]
    info = read_info(out)
    assert info.executor == "tiny" and info.variant == "narrow" and info.step == 4 and info.model.hidden == 8
    assert info.model.state_dim == 4 and info.model.action_dim == 7  # set from the data
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [line["weight"] for line in lines if "weight" in line] == [1.0, 0.75, 0.5, 0.25]  # the policy's schedule, logged
    val = [line for line in lines if "val_action_mse" in line]
    assert len(val) == 2 and all("val_done_accuracy" in line and "val_marked" in line for line in val)  # the policy's own figure
    state = training_state(out)
    assert torch.equal(state["model"]["unused.weight"], weights(out)["unused.weight"])


def test_the_executor_or_the_run_picks_the_preset_and_model_options_go_over_it(tiny_dataset: Path) -> None:
    config = validate_overrides(TrainConfig, ["variant=wide", "model.image_size=24"], "train")
    variant, model = model_settings(TinyExecutor, config)
    assert variant == "wide" and model.hidden == 24 and model.image_size == 24
    variant, model = model_settings(WideExecutor, validate_overrides(TrainConfig, ["variant=narrow"], "train"))
    assert variant == "wide" and model.hidden == 24  # forced by the executor
    with pytest.raises(ConfigError, match="unknown variant 'huge' .*known: narrow, wide"):
        model_settings(TinyExecutor, validate_overrides(TrainConfig, ["variant=huge"], "train"))
    with pytest.raises(ConfigError, match="model: unknown option 'hiden'"):
        model_settings(TinyExecutor, validate_overrides(TrainConfig, ["model.hiden=3"], "train"))


def test_an_executor_without_a_policy_cannot_be_trained(tiny_dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'scripted' is not a learned executor"):
        train("scripted", [tiny_dataset], tmp_path / "x", TrainConfig())


def test_learning_rate_schedules() -> None:
    def factors(schedule: str) -> list[float]:
        config = TrainConfig(steps=12, warmup_steps=2, lr_schedule=schedule, lr_final=0.1)
        return [lr_factor(step, config) for step in range(12)]

    cosine, linear, constant = factors("cosine"), factors("linear"), factors("constant")
    assert cosine[:2] == linear[:2] == constant[:2] == [0.5, 1.0]  # the warm-up
    assert cosine[2] == linear[2] == 1.0 and cosine[-1] > 0.1 and abs(linear[7] - 0.55) < 1e-9
    assert all(a >= b for a, b in zip(cosine[2:], cosine[3:])) and constant[2:] == [1.0] * 10
    assert lr_factor(12, TrainConfig(steps=12, warmup_steps=2)) == pytest.approx(0.1)  # cosine down to lr_final


@pytest.mark.parametrize("options", [[], ["ema=0.9"], ["prefetch=false"]], ids=["plain", "ema", "no-prefetch"])
def test_resuming_gives_the_same_weights_as_an_uninterrupted_run(tiny_dataset: Path, tmp_path: Path, options: list[str]) -> None:
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    run(tiny_dataset, straight, 4, "save_every=2", *options)
    shutil.copytree(straight, resumed)
    shutil.rmtree(resumed / "checkpoints" / "step_0000004")  # as if stopped after step 2
    lines: list[str] = []
    run(tiny_dataset, resumed, 4, "save_every=2", *options, resume=True, log=lines.append)
    assert any("steps 2..4" in line for line in lines)
    assert same(weights(straight), weights(resumed))  # fixed seeds: bit for bit
    assert same(training_state(straight)["model"], training_state(resumed)["model"])


def test_drawing_batches_ahead_changes_nothing(tiny_dataset: Path, tmp_path: Path) -> None:
    run(tiny_dataset, tmp_path / "ahead", 3, "prefetch=true", "colour_jitter=0.2", "background_jitter=0.5")
    run(tiny_dataset, tmp_path / "inline", 3, "prefetch=false", "colour_jitter=0.2", "background_jitter=0.5")
    assert same(weights(tmp_path / "ahead"), weights(tmp_path / "inline"))


def test_ema_weights_are_what_the_checkpoint_holds_and_the_raw_ones_are_kept_for_resuming(tiny_dataset: Path, tmp_path: Path) -> None:
    run(tiny_dataset, tmp_path / "ema", 3, "ema=0.5", "lr=0.01", "warmup_steps=0")
    run(tiny_dataset, tmp_path / "raw", 3, "lr=0.01", "warmup_steps=0")
    saved, state = weights(tmp_path / "ema"), training_state(tmp_path / "ema")
    assert same(saved, state["ema"]) and not same(saved, state["model"])
    assert same(state["model"], weights(tmp_path / "raw"))  # the average does not change the training itself
    key = "actions.weight"
    assert not torch.equal(saved[key], state["model"][key])
    plain = training_state(tmp_path / "raw")
    assert plain["ema"] is None and same(weights(tmp_path / "raw"), plain["model"])


def test_a_run_is_not_overwritten_and_resume_refuses_other_settings(tiny_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    run(tiny_dataset, out, 2)
    with pytest.raises(ConfigError, match="already holds a run.*--resume"):
        run(tiny_dataset, out, 2)
    with pytest.raises(ConfigError, match=r"other settings \(lr, ema\)"):
        run(tiny_dataset, out, 4, "lr=0.1", "ema=0.9", resume=True)
    run(tiny_dataset, out, 3, "prefetch=false", "log_every=5", resume=True)  # bookkeeping may change, steps may grow
    assert read_info(out).step == 3


def test_a_truncated_training_state_on_resume_is_one_error_naming_the_file(tiny_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    run(tiny_dataset, out, 2)
    state = find_checkpoint(out) / "training_state.pt"
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])  # as a full disk or a killed copy leaves it
    with pytest.raises(CheckpointError, match=rf"--resume: {state} is unreadable"):
        run(tiny_dataset, out, 3, resume=True)
    torch.save({"step": 2}, state)  # some other file under that name
    with pytest.raises(CheckpointError, match=r"is not a training state \(no model, optimizer, sampler, torch_rng\)"):
        run(tiny_dataset, out, 3, resume=True)


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
        validate_overrides(TrainConfig, ["device=gpu"], "train")


def test_two_processes_train_data_parallel_over_gloo(tiny_dataset: Path, tmp_path: Path) -> None:
    """torchrun with 2 CPU processes: the ranks average gradients; rank 0 writes one run."""
    from tests.learning.ddp_ranks import solo

    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29541"]
    out = tmp_path / "ddp"
    done = subprocess.run([*torchrun, "-m", "tests.learning.ddp_ranks", str(tiny_dataset), str(out), "3", "ema=0"],
                          capture_output=True, text=True, env=env, timeout=300, check=False, cwd=ROOT)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 process(es)" in done.stderr and read_info(out).step == 3
    assert len(list((tiny_dataset / ".s2kit-cache").glob("frames-*.u8"))) == 1  # decoded once, by rank 0
    ranks = [torch.load(out / f"rank{r}.pt") for r in (0, 1)]
    assert same(ranks[0], ranks[1])  # every step applied one gradient on both ranks
    assert same(weights(out), ranks[0])  # and rank 0 saved it
    # Each rank drew half of each batch of 8 (its shard). Had the ranks trained on their own, each would end
    # where a one-process run on its shard ends; averaged gradients take both somewhere else.
    for rank, rank_weights in enumerate(ranks):
        alone = solo(tiny_dataset, tmp_path / f"solo{rank}", 3, rank, "batch_size=4", "ema=0")
        assert set(alone) == set(rank_weights)
        assert not same(alone, rank_weights), f"rank {rank} trained as if alone"


def test_fast_options_are_valid() -> None:
    validate_overrides(TrainConfig, FAST, "train")


def test_a_run_started_before_newer_settings_existed_resumes(tiny_dataset: Path, tmp_path: Path) -> None:
    """A train.json without a setting added since (ema, lr_schedule, ...) compares as that setting's default."""
    out = tmp_path / "old"
    run(tiny_dataset, out, 2)
    record = json.loads((out / "train.json").read_text())
    for key in ("ema", "lr_schedule", "lr_final", "cache", "prefetch"):
        del record["config"][key]
    (out / "train.json").write_text(json.dumps(record))
    run(tiny_dataset, out, 3, resume=True)
    assert read_info(out).step == 3
