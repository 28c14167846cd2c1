"""Action heads any policy can use: regression, flow matching and diffusion, as parameter-free helpers.

A head's network is the policy's own decoder, passed in as a callable, so the
same weights serve training and sampling and a policy keeps its parameter
names. Flow matching follows pi0 (Black et al. 2024): the decoder predicts
the velocity ``noise - actions`` at ``x_t = t * noise + (1 - t) * actions``,
with t drawn from Beta(1.5, 1) (weighted toward t = 1, noise, where the chunk
depends most on the observation and least on x_t), and sampling integrates
it with Euler steps from t = 1 to t = 0.

Diffusion follows DDPM (Ho et al. 2020) as Diffusion Policy (Chi et al. 2023) and DNAct use it over
action chunks: ``steps`` noise levels on the squaredcos_cap_v2 schedule (Nichol & Dhariwal 2021), the
decoder predicts the noise added to the chunk (epsilon), and sampling runs DDIM (Song et al. 2021, eta 0)
on every ``steps / sample_steps``-th level, so it is deterministic given the starting noise (an exported
graph with the noise as an input reproduces torch). The decoder sees the level k as t = k / steps in
[0, 1), so a time embedding made for flow time serves both.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["Denoiser", "Velocity", "diffusion_error", "diffusion_sample", "diffusion_schedule", "flow_error", "flow_sample", "masked_mean",
           "regression_error", "time_embedding"]  # fmt: skip

#: The decoder as a flow head sees it: (x_t (B, H, A), t (B,)) -> velocity (B, H, A).
Velocity = Callable[[Tensor, Tensor], Tensor]
#: The decoder as a diffusion head sees it: (x_k (B, H, A), t = k / steps (B,)) -> the noise in x_k (B, H, A).
Denoiser = Callable[[Tensor, Tensor], Tensor]


def time_embedding(t: Tensor, dim: int) -> Tensor:
    """Sinusoidal embedding of a time t in [0, 1] (flow time, or a diffusion level k / steps), (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(1000.0) * torch.arange(half, device=t.device, dtype=t.dtype) / half)
    angles = t[:, None] * 1000.0 * freqs[None]  # (batch, half)
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


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


def diffusion_schedule(steps: int) -> list[float]:
    """The cumulative signal fractions alpha_bar_k, k = 0 .. steps - 1, of squaredcos_cap_v2 (each beta capped at 0.999).

    Python floats, so that a traced sampler holds them as constants.
    """
    if steps < 1:
        raise ValueError(f"diffusion steps must be at least 1, got {steps}")

    def alpha_bar(s: float) -> float:
        return math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2

    cumulative, product = [], 1.0
    for k in range(steps):
        product *= 1.0 - min(1.0 - alpha_bar((k + 1) / steps) / alpha_bar(k / steps), 0.999)
        cumulative.append(product)
    return cumulative


def diffusion_error(epsilon: Denoiser, actions: Tensor, steps: int) -> Tensor:
    """Squared error (B, H, A) of the predicted noise at a random level k of ``steps``, for target chunks ``actions``."""
    B = actions.shape[0]
    alpha_bar = torch.tensor(diffusion_schedule(steps), device=actions.device, dtype=actions.dtype)
    k = torch.randint(0, steps, (B,), device=actions.device)
    a = alpha_bar[k][:, None, None]  # (batch, 1, 1)
    noise = torch.randn_like(actions)
    x_k = a.sqrt() * actions + (1 - a).sqrt() * noise
    return (epsilon(x_k, k.to(actions.dtype) / steps) - noise) ** 2


def diffusion_sample(epsilon: Denoiser, noise: Tensor, steps: int, sample_steps: int, clip: float | None = None) -> Tensor:
    """A chunk (B, H, A) from ``noise`` (B, H, A): DDIM (eta 0) over the levels (sample_steps - 1) * s, ..., s, 0 of
    ``steps``, s = steps // sample_steps (diffusers' "leading" spacing, as Diffusion Policy samples).

    ``clip`` bounds each step's estimate of the clean chunk (Diffusion Policy clips to its action range): at the
    noisiest levels that estimate divides the predicted noise's error by sqrt(alpha_bar), which is small.
    """
    if not 1 <= sample_steps <= steps:
        raise ValueError(f"DDIM sample steps must be between 1 and the {steps} diffusion steps, got {sample_steps}")
    alpha_bar, stride = diffusion_schedule(steps), steps // sample_steps
    x, B = noise, noise.shape[0]
    for k in range(stride * (sample_steps - 1), -1, -stride):
        eps = epsilon(x, torch.full((B,), k / steps, device=noise.device, dtype=noise.dtype))
        clean = (x - math.sqrt(1 - alpha_bar[k]) * eps) / math.sqrt(alpha_bar[k])
        if clip is not None:
            clean = clean.clamp(-clip, clip)
        previous = alpha_bar[k - stride] if k >= stride else 1.0  # after the last level: the clean chunk
        x = math.sqrt(previous) * clean + math.sqrt(1 - previous) * eps
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
