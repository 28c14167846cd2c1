"""A small real dataset (the scripted expert on the simulated HSR) and tiny S2 runs trained on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_s2kit


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread: None) -> None:
    """Models trained inside a test here use one torch thread (`one_torch_thread`)."""


#: A network small enough to train in seconds on the CPU.
TINY = ["model.dim=32", "model.heads=2", "model.encoder_layers=1", "model.decoder_layers=1", "batch_size=16", "threads=1"]


@pytest.fixture(scope="session")
def hsr_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("s2data") / "hsr"
    done = run_s2kit("collect", "--robot", "hsr", "--out", str(root), "--episodes", "4", "--seed", "3", "--json", env={"MUJOCO_GL": "osmesa"})
    assert done.returncode == 0, done.stderr
    return root


def train_args(executor: str, data: Path, out: Path, steps: int, *extra: str) -> list[str]:
    args = ["train", "--executor", executor, "--data", str(data), "--out", str(out), "--steps", str(steps)]
    for option in (*TINY, "val_fraction=0.25", "val_every=1000", *extra):
        args += ["--set", option]
    return args


#: tiny_run's own settings: with the focus head (a research switch), so that its validation figure is tested too.
TINY_RUN = ["model.focus_weight=1"]


@pytest.fixture(scope="session")
def tiny_run(hsr_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("s2run") / "run"
    done = run_s2kit(*train_args("s2", hsr_dataset, out, 6, "save_every=3", *TINY_RUN))
    assert done.returncode == 0, done.stderr
    return out
