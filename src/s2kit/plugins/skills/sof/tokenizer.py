"""SOF's skill tokenizer: a window of optical flow to a few discrete skill tokens, and back (arXiv 2512.20052).

Encoder: each flow field of the window is read by a small strided CNN into a
vector; a causal convolution over time and a transformer with a causal mask
mix them, so the state at step t has seen flows up to t only; token k is
read at the last step of its segment of ``window / tokens`` flows and
quantized with FSQ (`s2kit.plugins.skills.sof.fsq`). So a token depends on
nothing after its own segment: skills can be read from a stream as it comes.

Decoder: flow is relative motion, which the tokens alone cannot place, so
it is conditioned on the window's first frame (as SOF's is). The tokens and
one query per time step go through a transformer; each query's output
modulates (FiLM) the first frame's feature map, and a small convolutional
head turns that into the flow field of its step.

Training minimizes the endpoint error (EPE) in pixels. Held-out figures
(`SkillTokenizer.validation_metrics`): EPE against two baselines, zero flow
(the flow's mean length) and the training windows' mean flow (per step and
pixel, kept in the checkpoint), over all pixels and over moving ones, and
how the codebook is used (the share of codes that occur, and the perplexity
of their distribution).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator, model_validator
from torch import Tensor, nn

from s2kit.learning.batch import IMAGES
from s2kit.learning.policy import Policy, PolicyConfig
from s2kit.plugins.skills.sof.fsq import FSQ, check_levels
from s2kit.learning.vision import transformer

__all__ = ["FLOW", "MOVING_PX", "TOKENS", "SkillTokenizer", "TokenizerConfig"]

#: Batch key: a window of flow fields (B, window, 2, S, S) in pixels (float16 or float32); in `SkillTokenizer.sample`'s
#: result, their reconstruction.
FLOW = "flow"
#: In `SkillTokenizer.sample`'s result: the window's skill tokens (B, tokens), indices into the FSQ codebook.
TOKENS = "tokens"
#: A pixel moves (for the moving-pixel figures) where its true flow is at least this long, in pixels.
MOVING_PX = 0.5


class TokenizerConfig(PolicyConfig):
    """The skill tokenizer's network and what it reads. It reads one camera's video, nothing else: the state, action
    and text sizes every kit policy config has are unused."""

    cameras: list[str] = Field(default_factory=lambda: ["head"], description="The one camera role whose video it reads.")
    image_size: int = Field(48, ge=16, description="Frames are letterboxed to this square size, and the flow is computed at it.")
    # the skill
    window: int = Field(8, ge=1, description="Flow fields per window (H); a window spans window + 1 frames.")
    tokens: int = Field(2, ge=1, description="Skill tokens per window; each covers window / tokens flow fields.")
    levels: list[int] = Field(default_factory=lambda: [5, 5, 5], description="FSQ levels per code dimension; the codebook is their product.")
    # the network
    dim: int = Field(128, ge=8, description="Width of the temporal layers and the transformers.")
    heads: int = Field(4, ge=1)
    encoder_layers: int = Field(2, ge=1)
    decoder_layers: int = Field(2, ge=1)
    channels: int = Field(16, ge=4, description="Width of the convolutions over each flow field and the first frame.")
    kernel: int = Field(3, ge=1, description="Steps the causal convolution over time sees.")

    @field_validator("levels")
    @classmethod
    def _levels(cls, levels: list[int]) -> list[int]:
        return check_levels(levels)

    @model_validator(mode="after")
    def _shapes(self) -> TokenizerConfig:
        if len(self.cameras) != 1:
            raise ValueError(f"cameras {self.cameras}: the tokenizer reads one camera")
        if self.window % self.tokens:
            raise ValueError(f"window {self.window} is not a multiple of tokens {self.tokens}: each token covers window / tokens flows")
        if self.image_size % 8:
            raise ValueError(f"image_size {self.image_size} is not a multiple of 8 (the flow encoder halves it three times)")
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} is not a multiple of heads {self.heads}")
        return self


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1)


class CausalConv(nn.Module):
    """A residual convolution over time that sees the current and ``kernel - 1`` earlier steps only."""

    def __init__(self, dim: int, kernel: int) -> None:
        super().__init__()
        self.kernel = kernel
        self.conv = nn.Conv1d(dim, dim, kernel)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:  # (B, T, D)
        h = self.norm(x).transpose(1, 2)  # (batch, dim, time)
        h = self.conv(F.pad(h, (self.kernel - 1, 0)))  # left padding only: step t sees t - kernel + 1 .. t
        return x + F.gelu(h).transpose(1, 2)


class SkillTokenizer(Policy):
    """Flow windows to FSQ skill tokens and back, conditioned on the window's first frame (see the module docstring)."""

    config_class = TokenizerConfig

    def __init__(self, config: TokenizerConfig) -> None:
        super().__init__(config)
        c = config
        S, C, D, H = c.image_size, c.channels, c.dim, c.window
        # statistics of the training flow (set by training, kept in the checkpoint)
        self.register_buffer("flow_scale", torch.ones(()))  # RMS flow length, pixels
        self.register_buffer("mean_flow", torch.zeros(H, 2, S, S))  # the mean-flow baseline
        # encoder
        self.flow_stem = nn.Sequential(_conv(2, C, 2), nn.GELU(), _conv(C, 2 * C, 2), nn.GELU(), _conv(2 * C, 2 * C, 2), nn.GELU())
        self.flow_in = nn.Linear(2 * C * (S // 8) ** 2, D)
        self.temporal = nn.Sequential(CausalConv(D, c.kernel), CausalConv(D, c.kernel))
        self.time = nn.Parameter(torch.randn(H, D) * 0.02)
        self.encoder = transformer(c.dim, c.heads, c.encoder_layers)
        self.to_code = nn.Linear(D, len(c.levels))
        self.fsq = FSQ(c.levels)
        # decoder
        self.from_code = nn.Linear(len(c.levels), D)
        self.token_pos = nn.Parameter(torch.randn(c.tokens, D) * 0.02)
        self.queries = nn.Parameter(torch.randn(H, D) * 0.02)
        self.image_stem = nn.Sequential(_conv(3, C, 2), nn.GELU(), _conv(C, 2 * C, 2), nn.GELU(), _conv(2 * C, 2 * C), nn.GELU())
        self.image_in = nn.Linear(2 * C, D)
        self.decoder = transformer(c.dim, c.heads, c.decoder_layers)
        self.film = nn.Linear(D, 4 * C)
        self.head = nn.Sequential(
            _conv(2 * C, 2 * C), nn.GELU(), nn.Upsample(scale_factor=2, mode="nearest"), _conv(2 * C, C), nn.GELU(), _conv(C, 2)
        )
        nn.init.zeros_(self.film.weight)  # starts as the plain first-frame features
        nn.init.zeros_(self.film.bias)
        self.register_buffer("causal", nn.Transformer.generate_square_subsequent_mask(H), persistent=False)

    # --- the two halves ------------------------------------------------------------------------

    def latents(self, flow: Tensor) -> Tensor:
        """Flow windows (B, H, 2, S, S) in pixels to the tokens' latents before quantization (B, tokens, d)."""
        c = self.config
        B, H = flow.shape[:2]
        x = (flow.float() / self.flow_scale).flatten(0, 1)  # (batch * window, 2, S, S)
        x = self.flow_stem(x).flatten(1)  # (batch * window, 2C * (S/8)^2)
        x = self.flow_in(x).view(B, H, -1)  # (batch, window, dim)
        x = self.temporal(x) + self.time
        x = self.encoder(x, mask=self.causal, is_causal=True)  # (batch, window, dim), step t has seen flows <= t
        step = H // c.tokens
        return self.to_code(x[:, step - 1 :: step])  # (batch, tokens, d): each at its segment's last step

    def encode(self, flow: Tensor) -> tuple[Tensor, Tensor]:
        """Flow windows (B, H, 2, S, S) to (codes (B, tokens, d) on the FSQ grid, token indices (B, tokens))."""
        return self.fsq(self.latents(flow))

    def decode(self, codes: Tensor, images: Tensor) -> Tensor:
        """Codes (B, tokens, d) and first frames (B, 3, S, S) uint8 to flow windows (B, H, 2, S, S) in pixels."""
        B, S = codes.shape[0], self.config.image_size
        H = self.config.window
        features = self.image_stem(images.float() / 255.0)  # (batch, 2C, S/4, S/4)
        scene = self.image_in(features.mean((2, 3)))[:, None]  # (batch, 1, dim)
        sequence = torch.cat([self.from_code(codes) + self.token_pos, scene, self.queries.expand(B, -1, -1)], dim=1)
        steps = self.decoder(sequence)[:, -H:]  # (batch, window, dim): one per flow field
        gamma, beta = self.film(steps).chunk(2, dim=-1)  # each (batch, window, 2C)
        x = features[:, None] * (1 + gamma[..., None, None]) + beta[..., None, None]  # (batch, window, 2C, S/4, S/4)
        x = self.head(x.flatten(0, 1))  # (batch * window, 2, S/2, S/2)
        x = F.interpolate(x, size=(S, S), mode="bilinear", align_corners=False)
        return (x * self.flow_scale).view(B, H, 2, S, S)

    # --- the kit's contract --------------------------------------------------------------------

    def loss(self, batch: dict[str, Tensor], **schedule: Any) -> dict[str, Tensor]:
        flow = batch[FLOW].float()
        codes, _ = self.encode(flow)
        error = _endpoint_error(self.decode(codes, batch[IMAGES][:, 0]), flow)
        return {"loss": error.mean(), "epe_px": error.mean().detach()}

    @torch.inference_mode()
    def sample(self, batch: dict[str, Tensor], noise: Tensor | None = None, **options: Any) -> dict[str, Tensor]:
        """The window's skill tokens (``tokens``, (B, tokens)) and its reconstruction from them (``flow``)."""
        codes, tokens = self.encode(batch[FLOW])
        return {TOKENS: tokens, FLOW: self.decode(codes, batch[IMAGES][:, 0])}

    def outputs(self) -> tuple[str, ...]:
        return (TOKENS,)

    def validation_metrics(self, batches: Sequence[dict[str, Tensor]], outputs: Sequence[dict[str, Tensor]]) -> dict[str, float]:
        """EPE in pixels of the reconstruction, of zero flow and of the mean flow, over all pixels and over moving ones
        (true flow >= `MOVING_PX`); the share of codebook entries that occur and the perplexity of the tokens."""
        sums = dict.fromkeys(("epe_px", "epe_zero_px", "epe_mean_px", "moving_epe_px", "moving_epe_zero_px", "moving_epe_mean_px"), 0.0)
        pixels, moving = 0, 0
        counts = torch.zeros(self.fsq.codebook_size, dtype=torch.long)
        for batch, out in zip(batches, outputs, strict=True):
            flow = batch[FLOW].float()
            errors = {
                "epe_px": _endpoint_error(out[FLOW], flow),
                "epe_zero_px": _endpoint_error(torch.zeros_like(flow), flow),
                "epe_mean_px": _endpoint_error(self.mean_flow.expand_as(flow), flow),
            }
            mask = errors["epe_zero_px"] >= MOVING_PX
            for name, error in errors.items():
                sums[name] += float(error.sum())
                sums[f"moving_{name}"] += float(error[mask].sum())
            pixels += errors["epe_px"].numel()
            moving += int(mask.sum())
            counts += torch.bincount(out[TOKENS].flatten().cpu(), minlength=self.fsq.codebook_size)
        figures = {k: v / max(moving if k.startswith("moving") else pixels, 1) for k, v in sums.items()}
        p = counts[counts > 0].double() / counts.sum()
        return figures | {
            "moving_fraction": moving / max(pixels, 1),
            "codes_used": float((counts > 0).sum()),
            "code_usage": float((counts > 0).sum()) / self.fsq.codebook_size,
            "perplexity": float(torch.exp(-(p * p.log()).sum())),
        }


def _endpoint_error(estimate: Tensor, truth: Tensor) -> Tensor:
    """Per-pixel endpoint error (B, H, S, S) of flow windows (B, H, 2, S, S); a tiny floor keeps its gradient finite at 0."""
    return torch.sqrt(((estimate - truth) ** 2).sum(2) + 1e-8)
