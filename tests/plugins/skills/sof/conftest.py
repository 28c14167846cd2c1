"""Data the SOF tests share: episodes of the simulated HSR recorded by ``s2kit collect``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_s2kit


@pytest.fixture(scope="session")
def collected(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two episodes of the simulated HSR recorded by ``s2kit collect``, 32-pixel cameras."""
    root = tmp_path_factory.mktemp("sofcollect") / "hsr"
    done = run_s2kit(
        "collect", "--robot", "hsr", "--out", str(root), "--episodes", "2", "--seed", "3", "--keep", "all",
        "--set", "robot.image_height=32", "--set", "robot.image_width=32", "--set", "runtime.max_steps=24", "--json",
        env={"MUJOCO_GL": "osmesa"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return root
