"""Finite Scalar Quantization (Mentzer et al., "Finite Scalar Quantization: VQ-VAE Made Simple", ICLR 2024).

Each of a code's ``d`` dimensions is squashed into a bounded range and
rounded to one of its ``levels[i]`` values; the code is the tuple of those
values, so the codebook is their grid (``prod(levels)`` codes) and has
nothing to learn, collapse or re-seed, unlike a VQ-VAE's. The rounding
passes gradients straight through. SOF quantizes its skill latents this way
(arXiv 2512.20052).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["FSQ", "MAX_CODEBOOK", "check_levels"]

#: The largest codebook allowed: tokens are a vocabulary that a planner predicts.
MAX_CODEBOOK = 2**16
#: Keeps the squashed range a little beyond the outer levels, so that they are reached (the paper's eps).
_EPS = 1e-3


def check_levels(levels: Sequence[int]) -> list[int]:
    """``levels`` as a list, or a `ValueError` saying what is wrong with them."""
    levels = list(levels)
    if not levels:
        raise ValueError("FSQ levels: at least one dimension is needed, e.g. [8, 5, 5, 5]")
    bad = [level for level in levels if isinstance(level, bool) or not isinstance(level, int) or level < 2]
    if bad:
        raise ValueError(f"FSQ levels {levels}: each must be an integer of at least 2 (got {bad[0]!r})")
    size = 1
    for level in levels:
        size *= level
    if size > MAX_CODEBOOK:
        raise ValueError(f"FSQ levels {levels} make {size} codes; at most {MAX_CODEBOOK}")
    return levels


class FSQ(nn.Module):
    """``z`` (..., d) to codes on the grid (..., d) in [-1, 1] and their indices (...) in [0, prod(levels)).

    Dimension i takes ``levels[i]`` values ``(k - levels[i] // 2) / (levels[i] // 2)``, k = 0 .. levels[i] - 1
    (an even level is one step short of +1, as in the paper).
    """

    def __init__(self, levels: Sequence[int]) -> None:
        super().__init__()
        levels = check_levels(levels)
        self.register_buffer("levels", torch.tensor(levels, dtype=torch.long), persistent=False)
        basis = torch.cumprod(torch.tensor([1, *levels[:-1]], dtype=torch.long), 0)
        self.register_buffer("basis", basis, persistent=False)
        self.codebook_size = int(torch.tensor(levels).prod())

    @property
    def dim(self) -> int:
        return len(self.levels)

    def bound(self, z: Tensor) -> Tensor:
        """``z`` squashed into each dimension's range, so that rounding gives exactly ``levels[i]`` integers."""
        half = (self.levels - 1) * (1 + _EPS) / 2
        offset = (self.levels % 2 == 0).to(z.dtype) * 0.5  # even levels: the grid is shifted by half a step
        shift = torch.atanh(offset / half)
        return torch.tanh(z + shift) * half - offset

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """(codes (..., d) on the grid, indices (...)); the gradient of the codes is that of `bound`, scaled."""
        bounded = self.bound(z)
        rounded = bounded + (torch.round(bounded) - bounded).detach()  # straight-through estimator
        codes = rounded / (self.levels // 2)
        return codes, self.indices(codes)

    def indices(self, codes: Tensor) -> Tensor:
        """Grid codes (..., d) to their indices (...)."""
        half = self.levels // 2
        digits = torch.round(codes * half).long() + half  # (..., d) in [0, levels)
        return (digits * self.basis).sum(-1)

    def codes(self, indices: Tensor) -> Tensor:
        """Indices (...) to their grid codes (..., d)."""
        half = self.levels // 2
        digits = (indices[..., None] // self.basis) % self.levels
        return (digits - half).float() / half
