"""Action heads any policy can use: regression and flow matching, as parameter-free helpers.

A head's network is the policy's own decoder, passed in as a callable, so the
same weights serve training and sampling and a policy keeps its parameter
names. Flow matching follows pi0 (Black et al. 2024): the decoder predicts
the velocity ``noise - actions`` at ``x_t = t * noise + (1 - t) * actions``,
with t drawn from Beta(1.5, 1) (weighted toward t = 1, noise, where the chunk
depends most on the observation and least on x_t), and sampling integrates
it with Euler steps from t = 1 to t = 0.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["Velocity", "flow_error", "flow_sample", "masked_mean", "regression_error"]

#: The decoder as a flow head sees it: (x_t (B, H, A), t (B,)) -> velocity (B, H, A).
Velocity = Callable[[Tensor, Tensor], Tensor]


def flow_error(velocity: Velocity, actions: Tensor) -> Tensor:
    """Squared error (B, H, A) of the predicted velocity at a random flow time, for target chunks ``actions``."""
    B = actions.shape[0]
    t = torch.distributions.Beta(1.5, 1.0).sample((B,)).to(actions.device) * 0.999 + 0.001
    noise = torch.randn_like(actions)
    x_t = t[:, None, None] * noise + (1 - t[:, None, None]) * actions
    return (velocity(x_t, t) - (noise - actions)) ** 2


def flow_sample(velocity: Velocity, noise: Tensor, steps: int) -> Tensor:
    """A chunk (B, H, A) from ``noise`` (B, H, A): ``steps`` Euler steps from t = 1 (noise) to t = 0 (actions)."""
    x, B, dt = noise, noise.shape[0], 1.0 / steps
    for i in range(steps):
        t = torch.full((B,), 1.0 - i * dt, device=noise.device)
        x = x - dt * velocity(x, t)
    return x


def regression_error(prediction: Tensor, actions: Tensor) -> Tensor:
    """Squared error (B, H, A) of a directly predicted chunk."""
    return (prediction - actions) ** 2


def masked_mean(error: Tensor, mask: Tensor | None) -> Tensor:
    """Mean of ``error`` (B, H, A) over the chunk steps ``mask`` (B, H) keeps (all without a mask)."""
    if mask is None:
        return error.mean()
    weight = mask.to(error.dtype)[..., None].expand_as(error)  # (batch, chunk, action)
    return (error * weight).sum() / weight.sum().clamp(min=1.0)
