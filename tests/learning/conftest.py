"""Tiny LeRobot datasets (synthetic, written without a simulator) for the kit's data and trainer tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.datasets.test_lerobot import LENGTHS, make_episode, write


@pytest.fixture(scope="session")
def tiny_dataset_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tiny") / "data"
    write(root, [make_episode(seed, length) for seed, length in enumerate(LENGTHS)])
    return root


@pytest.fixture
def tiny_dataset(tiny_dataset_source: Path, tmp_path: Path) -> Path:
    """A fresh copy per test (its frame cache is the test's own)."""
    copy = tmp_path / "data"
    shutil.copytree(tiny_dataset_source, copy)
    return copy
