"""Data the SOF tests share: episodes of the simulated HSR recorded by ``s2kit collect``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
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


def nan_actions(dataset: Path, out: Path) -> Path:
    """A copy of ``dataset`` at ``out`` (without its cache) whose every action is NaN: what reads no actions reads it
    as it reads the original."""
    shutil.copytree(dataset, out, ignore=shutil.ignore_patterns(".s2kit-cache"))
    for path in (out / "data").rglob("*.parquet"):
        table = pq.read_table(path)
        nan = pa.array([[float("nan")] * 7] * len(table), type=table.schema.field("action").type)
        pq.write_table(table.set_column(table.schema.get_field_index("action"), "action", nan), path)
    return out
