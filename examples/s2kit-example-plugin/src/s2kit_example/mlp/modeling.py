"""The colour MLP: a downsampled image, the state and the guidance, to a chunk of actions and a subtask-done probability.

Inputs (the kit's batch keys): each camera's image average-pooled to
``pool`` x ``pool`` pixels, the normalized state, and the sentence
embeddings of the goal and of the current subtask (the subtask names the
colour to reach now). Two hidden layers; the chunk comes from the kit's
regression head, the done probability from one more linear layer.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from s2kit.learning.batch import ACTION_MASK, ACTIONS, DONE, IMAGES, STATE, TEXT
from s2kit.learning.heads import masked_mean, regression_error
from s2kit.learning.policy import Policy
from s2kit_example.mlp.configuration import ColourMlpConfig

GOAL, SUBTASK = 0, 2  # rows of the text input: goal, trajectory, current subtask


class ColourMlpPolicy(Policy):
    config_class = ColourMlpConfig
    config: ColourMlpConfig

    def __init__(self, config: ColourMlpConfig) -> None:
        super().__init__(config)
        c = config
        inputs = len(c.cameras) * 3 * c.pool * c.pool + c.state_dim + 2 * c.text_dim
        self.body = nn.Sequential(nn.Linear(inputs, c.hidden), nn.GELU(), nn.Linear(c.hidden, c.hidden), nn.GELU())
        self.actions = nn.Linear(c.hidden, c.chunk * c.action_dim)
        self.done = nn.Linear(c.hidden, 1)

    def features(self, batch: dict[str, Tensor]) -> Tensor:
        images = batch[IMAGES]
        B = images.shape[0]
        pooled = F.adaptive_avg_pool2d(images.flatten(0, 1).float() / 255.0 - 0.5, self.config.pool)  # (batch*cameras, 3, pool, pool)
        text = batch[TEXT][:, [GOAL, SUBTASK]].flatten(1)  # (batch, 2 * text_dim)
        return self.body(torch.cat([pooled.reshape(B, -1), batch[STATE], text], dim=-1))

    def chunk(self, h: Tensor) -> Tensor:
        return self.actions(h).view(-1, self.config.chunk, self.config.action_dim)  # (batch, chunk, action)

    def loss(self, batch: dict[str, Tensor], **schedule: Any) -> dict[str, Tensor]:
        h = self.features(batch)
        action = masked_mean(regression_error(self.chunk(h), batch[ACTIONS]), batch.get(ACTION_MASK))
        out = {"action": action, "loss": action}
        if DONE in batch and self.config.done_weight > 0:
            out["done"] = F.binary_cross_entropy_with_logits(self.done(h).squeeze(-1), batch[DONE].float())
            out["loss"] = action + self.config.done_weight * out["done"]
        return out

    def sample(self, batch: dict[str, Tensor], noise: Tensor | None = None, **options: Any) -> dict[str, Tensor]:
        h = self.features(batch)
        return {ACTIONS: self.chunk(h), DONE: torch.sigmoid(self.done(h).squeeze(-1))}
