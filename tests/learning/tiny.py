"""A tiny policy on the kit, and its executor stand-in: what the trainer and data tests train (seconds on a CPU).

A plugin module (`registered` loads it into the registry, as checkpoints are read through it). Run as a script
(``python -m tests.learning.tiny DATA OUT STEPS [KEY=VALUE ...]``) it trains the tiny policy, so that torchrun can start it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from s2kit import hookimpl
from s2kit.core.config import validate_overrides
from s2kit.core.interfaces import Executor
from s2kit.core.registry import Registry, load_registry, reset_registry
from s2kit.learning.batch import ACTION_MASK, ACTIONS, DONE, IMAGES, STATE, TEXT
from s2kit.learning.data import ExtraColumns
from s2kit.learning.executor import PolicyExecutor
from s2kit.learning.policy import Policy, PolicyConfig

#: A column of the test datasets (tests/datasets/test_lerobot.py) read as an extra target, and where its target goes.
MARK = "mark"


class TinyConfig(PolicyConfig):
    image_size: int = Field(16, ge=8)
    hidden: int = Field(16, ge=1)


class StateColumns(ExtraColumns):
    """An extra target: the dataset's first state entry per frame, and a fixed image position that moves with the shift."""

    features = ("observation.state",)
    keys = (MARK, "mark_uv")
    image_positions = ("mark_uv",)

    def read(self, episode: Any, length: int, *, features: Any, cameras: Any) -> dict[str, np.ndarray]:
        first = np.asarray(episode["observation.state"], dtype=np.float32).reshape(length, -1)[:, :1]
        return {MARK: first, "mark_uv": np.zeros((length, len(cameras), 2), np.float32)}

    def batch(self, values: dict[str, Tensor], stale: Tensor | None) -> dict[str, Tensor]:
        mark = values[MARK].clone()
        if stale is not None:
            mark[stale] = float("nan")
        return {MARK: mark, "mark_uv": values["mark_uv"]}


class TinyPolicy(Policy):
    config_class = TinyConfig
    presets = {"narrow": {"hidden": 8}, "wide": {"hidden": 24}}
    extra_columns = (StateColumns(),)

    def __init__(self, config: TinyConfig) -> None:
        super().__init__(config)
        c = config
        inputs = len(c.cameras) * 3 * 16 + c.state_dim + c.text_dim
        self.body = nn.Sequential(nn.Linear(inputs, c.hidden), nn.GELU(), nn.Dropout(0.1))
        self.actions = nn.Linear(c.hidden, c.chunk * c.action_dim)
        self.done = nn.Linear(c.hidden, 1)
        self.unused = nn.Linear(2, 2)  # never read: frozen in training

    def _features(self, batch: dict[str, Tensor]) -> Tensor:
        B = batch[IMAGES].shape[0]
        images = F.adaptive_avg_pool2d(batch[IMAGES].flatten(0, 1).float() / 255.0, 4).view(B, -1)  # (batch, cameras*3*16)
        return self.body(torch.cat([images, batch[STATE], batch[TEXT][:, 0]], dim=-1))

    def loss(self, batch: dict[str, Tensor], weight: float = 1.0) -> dict[str, Tensor]:
        h = self._features(batch)
        c = self.config
        error = (self.actions(h).view(-1, c.chunk, c.action_dim) - batch[ACTIONS]) ** 2
        mask = batch[ACTION_MASK][..., None].expand_as(error).float()
        action = (error * mask).sum() / mask.sum().clamp(min=1)
        done = F.binary_cross_entropy_with_logits(self.done(h).squeeze(-1), batch[DONE])
        return {"action": action, "done": done, "loss": action + weight * done}

    def schedule(self, step: int, total: int) -> dict[str, Any]:
        return {"weight": 1.0 - step / total}

    def sample(self, batch: dict[str, Tensor], noise: Tensor | None = None, **options: Any) -> dict[str, Tensor]:
        h = self._features(batch)
        c = self.config
        return {ACTIONS: self.actions(h).view(-1, c.chunk, c.action_dim), DONE: torch.sigmoid(self.done(h).squeeze(-1))}

    def validation_metrics(self, batches: Any, outputs: Any) -> dict[str, float]:
        known = torch.cat([b[MARK] for b in batches]).isfinite()
        return {"marked": float(known.float().mean())}

    def unused_parameters(self) -> list[str]:
        return ["unused.weight", "unused.bias"]


class TinyExecutor(PolicyExecutor):
    """The tiny policy's executor: a name and the policy class, the rest is the kit's."""

    name = "tiny"

    @classmethod
    def policy_class(cls) -> type[Policy]:
        return TinyPolicy


class WideExecutor(TinyExecutor):
    """An executor that forces a preset, as S2's baseline does."""

    name = "tiny_wide"
    preset = "wide"


@hookimpl
def s2kit_executors() -> list[type[Executor]]:
    return [TinyExecutor, WideExecutor]


def registered() -> Registry:
    """The installed plugins plus these executors, as the process-wide registry (checkpoints name their executor)."""
    registry = load_registry(modules=["tests.learning.tiny"], env={})
    reset_registry(registry)
    return registry


#: The options every test run uses: a small batch, a few steps, no validation delay.
FAST = ["batch_size=8", "threads=1", "log_every=1", "val_every=1000", "val_fraction=0.34", "state=all"]


def run(data: Path, out: Path, steps: int, *options: str, resume: bool = False, **kw: Any) -> Path:
    from s2kit.learning.trainer import TrainConfig, train

    config = validate_overrides(TrainConfig, [*FAST, f"steps={steps}", *options], "train tiny")
    return train(TinyExecutor, [data], out, config, resume=resume, log=kw.pop("log", lambda m: None), **kw)  # type: ignore[arg-type]


if __name__ == "__main__":
    registered()
    data, out, steps, *options = sys.argv[1:]
    run(Path(data), Path(out), int(steps), *options, log=lambda m: print(m, file=sys.stderr))
