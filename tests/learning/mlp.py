"""A test plugin: a learned executor on the kit that is not S2 (an MLP over pooled images, the state and the goal).

Registered through the ``s2kit_executors`` hook like any plugin (load it with
``load_registry(modules=["tests.learning.mlp"])``), so the kit's loader,
executor and exporter must find it through the registry alone.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from s2kit import hookimpl
from s2kit.core.interfaces import Executor
from s2kit.learning.batch import ACTION_MASK, ACTIONS, IMAGES, STATE, TEXT
from s2kit.learning.executor import PolicyExecutor
from s2kit.learning.heads import masked_mean, regression_error
from s2kit.learning.policy import Policy, PolicyConfig

NAME = "mlp_test"


class MlpConfig(PolicyConfig):
    image_size: int = Field(16, ge=16)
    hidden: int = Field(32, ge=1)


class MlpPolicy(Policy):
    """Regression on [each camera pooled to 4x4, the state, the goal's embedding]; it predicts no subtask end."""

    config_class = MlpConfig
    config: MlpConfig

    def __init__(self, config: MlpConfig) -> None:
        super().__init__(config)
        c = config
        self.net = nn.Sequential(
            nn.Linear(len(c.cameras) * 3 * 16 + c.state_dim + c.text_dim, c.hidden), nn.GELU(), nn.Linear(c.hidden, c.chunk * c.action_dim)
        )  # fmt: skip

    def _chunk(self, batch: dict[str, Tensor]) -> Tensor:
        B = batch[IMAGES].shape[0]
        pooled = F.adaptive_avg_pool2d(batch[IMAGES].flatten(0, 1).float() / 255.0, 4).reshape(B, -1)  # (batch, cameras*3*16)
        x = self.net(torch.cat([pooled, batch[STATE], batch[TEXT][:, 0]], dim=-1))
        return x.view(B, self.config.chunk, self.config.action_dim)  # (batch, chunk, action)

    def loss(self, batch: dict[str, Tensor], **schedule: Any) -> dict[str, Tensor]:
        action = masked_mean(regression_error(self._chunk(batch), batch[ACTIONS]), batch.get(ACTION_MASK))
        return {"action": action, "loss": action}

    def sample(self, batch: dict[str, Tensor], noise: Tensor | None = None, **options: Any) -> dict[str, Tensor]:
        return {ACTIONS: self._chunk(batch)}

    def outputs(self) -> tuple[str, ...]:
        return (ACTIONS,)


class MlpExecutor(PolicyExecutor):
    """The MLP policy driving a robot: everything but the policy class comes from the kit."""

    name = NAME

    @classmethod
    def policy_class(cls) -> type[MlpPolicy]:
        return MlpPolicy


@hookimpl
def s2kit_executors() -> list[type[Executor]]:
    return [MlpExecutor]
