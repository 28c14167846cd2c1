from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from s2kit.core.registry import Registry, load_registry, reset_registry

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.fixture
def registry() -> Registry:
    """Installed plugins plus the test doubles."""
    return load_registry(modules=["tests.doubles"], env={})


@pytest.fixture
def cli_registry(registry: Registry) -> Iterator[Registry]:
    """Make the CLI see the test doubles (and forget them afterwards)."""
    reset_registry(registry)
    yield registry
    reset_registry(None)


def run_s2kit(*args: str, env: dict[str, str] | None = None, **kwargs) -> subprocess.CompletedProcess[str]:
    """Run the installed ``s2kit`` console script in a real subprocess."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    full_env.pop("S2KIT_DEBUG", None)
    return subprocess.run(
        [str(BIN / "s2kit"), *args], capture_output=True, text=True, env=full_env, timeout=120, **kwargs
    )


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """One torch thread for the test, restored afterwards: a small model trained inside a test gains nothing from
    more, and on a busy 2-core machine more threads only spin."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def fit_on_draws(model: Any, draw: Callable[[], dict[str, Any]], steps: int, *, lr: float = 3e-3, optimizer: Any = None) -> None:
    """Train a small kit network in a test: ``steps`` steps of its ``loss`` on fresh batches from ``draw``, with
    ``optimizer`` (a torch optimizer class; AdamW by default) over its trainable parameters, then evaluation mode."""
    import torch

    opt = (optimizer or torch.optim.AdamW)([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    for _ in range(steps):
        loss = model.loss(draw())["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
