"""The kit's action heads: the diffusion schedule and sampler, and what each head learns from two-mode demonstrations."""

from __future__ import annotations

import functools
import math

import pytest
import torch
from torch import Tensor, nn

from s2kit.learning.heads import (
    diffusion_error,
    diffusion_sample,
    diffusion_schedule,
    flow_error,
    flow_sample,
    regression_error,
    time_embedding,
)

STEPS = 100  # Diffusion Policy's training levels


def test_the_schedule_goes_from_almost_clean_to_almost_pure_noise() -> None:
    alpha_bar = torch.tensor(diffusion_schedule(STEPS), dtype=torch.float64)
    assert alpha_bar.shape == (STEPS,) and ((alpha_bar > 0) & (alpha_bar < 1)).all()
    assert (alpha_bar.diff() < 0).all()  # strictly more noise at every level
    assert alpha_bar[0] > 0.999 and alpha_bar[-1] < 1e-4
    # squaredcos: the signal fraction follows cos^2 of the level, so half the signal is gone about half way
    assert 0.4 < alpha_bar[STEPS // 2] < 0.6


def level(t: Tensor) -> Tensor:
    """The diffusion level k a decoder is shown as t = k / STEPS."""
    return (t * STEPS).round().long()


def gaussian_denoiser(mean: float, std: float):
    """The exact noise predictor for chunks drawn from N(mean, std^2): E[noise | x_k] at every level."""
    alpha_bar = torch.tensor(diffusion_schedule(STEPS), dtype=torch.float64)

    def epsilon(x: Tensor, t: Tensor) -> Tensor:
        a = alpha_bar[level(t)][:, None, None]
        return (1 - a).sqrt() * (x - a.sqrt() * mean) / (a * std**2 + 1 - a)

    return epsilon


def point_denoiser(target: Tensor):
    """The exact noise predictor for data that is the one chunk ``target``."""
    alpha_bar = torch.tensor(diffusion_schedule(STEPS), dtype=torch.float64)

    def epsilon(x: Tensor, t: Tensor) -> Tensor:
        a = alpha_bar[level(t)][:, None, None]
        return (x - a.sqrt() * target) / (1 - a).sqrt()

    return epsilon


@pytest.mark.parametrize("sample_steps", [1, 10, STEPS])
def test_ddim_with_the_exact_noise_returns_the_one_chunk_the_data_holds(sample_steps: int) -> None:
    """Data that is one chunk: whatever the number of DDIM steps, sampling with the true noise lands on it."""
    target = torch.tensor([[0.3], [-1.7]], dtype=torch.float64)  # (chunk, action)
    noise = torch.randn(5, 2, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    chunks = diffusion_sample(point_denoiser(target), noise, STEPS, sample_steps)
    assert torch.allclose(chunks, target.expand(5, 2, 1), atol=1e-6)


def test_the_training_target_is_the_noise_the_schedule_added() -> None:
    target = torch.tensor([[0.3], [-1.7]])
    error = diffusion_error(point_denoiser(target.double()), target.expand(64, 2, 1).double(), STEPS)
    assert error.shape == (64, 2, 1) and error.max() < 1e-12


def test_ddim_with_the_exact_noise_reproduces_a_gaussian() -> None:
    """Deterministic DDIM over every level is the probability-flow ODE: noise maps onto the data's distribution, spread
    included. (With 10 steps it starts at level 90, where some signal is left, and lands about 0.1 short of the mean.)"""
    noise = torch.randn(20000, 1, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x = diffusion_sample(gaussian_denoiser(1.5, 0.5), noise, STEPS, STEPS)
    assert abs(x.mean() - 1.5) < 0.03 and abs(x.std() - 0.5) < 0.03


def test_sampling_is_a_function_of_the_noise() -> None:
    epsilon = gaussian_denoiser(0.0, 1.0)
    a, b = (torch.randn(3, 2, 1, generator=torch.Generator().manual_seed(s), dtype=torch.float64) for s in (0, 1))
    assert torch.equal(diffusion_sample(epsilon, a, STEPS, 10), diffusion_sample(epsilon, a.clone(), STEPS, 10))
    assert not torch.allclose(diffusion_sample(epsilon, a, STEPS, 10), diffusion_sample(epsilon, b, STEPS, 10))


def test_sample_steps_outside_the_training_levels_are_an_error() -> None:
    with pytest.raises(ValueError, match="between 1 and the 100"):
        diffusion_sample(gaussian_denoiser(0.0, 1.0), torch.zeros(1, 1, 1), STEPS, 101)


# --- two modes: the same input, the action +1 or -1 at random ----------------------------------

CHUNK, DIM = 2, 8
STEPS_TO_FIT = 800  # both generative heads split the modes by 600 steps


class Decoder(nn.Module):
    """A tiny MLP over (noisy chunk, time embedding, a constant observation); the regression head reads no chunk."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(CHUNK + DIM, 64), nn.GELU(), nn.Linear(64, 64), nn.GELU(), nn.Linear(64, CHUNK))

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return self.net(torch.cat([x.flatten(1), time_embedding(t, DIM)], dim=-1)).view(-1, CHUNK, 1)


def two_mode_chunks(n: int, g: torch.Generator) -> Tensor:
    """Chunks (n, CHUNK, 1): all +1 or all -1, even odds, a little noise."""
    sign = torch.randint(0, 2, (n, 1, 1), generator=g).float() * 2 - 1
    return sign + 0.05 * torch.randn(n, CHUNK, 1, generator=g)


@functools.cache
def fit_two_modes(head: str) -> Tensor:
    """Train a tiny decoder with ``head`` on two-mode chunks; 2000 of its chunks, sampled from fixed noise."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        g = torch.Generator().manual_seed(0)
        decoder = Decoder()
        optimizer = torch.optim.Adam(decoder.parameters(), lr=3e-3)
        for _ in range(STEPS_TO_FIT):
            actions = two_mode_chunks(256, g)
            if head == "regression":
                error = regression_error(decoder(torch.zeros_like(actions), torch.zeros(len(actions))), actions)
            elif head == "flow":
                error = flow_error(decoder, actions)
            else:
                error = diffusion_error(decoder, actions, STEPS)
            optimizer.zero_grad()
            error.mean().backward()
            optimizer.step()
        noise = torch.randn(2000, CHUNK, 1, generator=torch.Generator().manual_seed(1))
        with torch.inference_mode():
            if head == "regression":
                return decoder(torch.zeros_like(noise), torch.zeros(len(noise)))
            if head == "flow":
                return flow_sample(decoder, noise, 10)
            return diffusion_sample(decoder, noise, STEPS, 10, clip=3.0)
    finally:
        torch.set_num_threads(threads)



def test_regression_averages_the_two_modes() -> None:
    chunks = fit_two_modes("regression")
    assert chunks.abs().max() < 0.2  # every prediction is near the mean, 0, an action no demonstration took


@pytest.mark.parametrize("head", ["flow", "diffusion"])
def test_flow_and_diffusion_reproduce_both_modes(head: str) -> None:
    chunks = fit_two_modes(head)
    near = {sign: ((chunks - sign).abs() < 0.3).all(dim=(1, 2)) for sign in (1, -1)}  # whole chunks near a mode
    share = {sign: near[sign].float().mean().item() for sign in near}
    assert min(share.values()) > 0.3 and sum(share.values()) > 0.9, share
