"""Encoders any policy can use: the patch stem for images, the MiniLM encoder for guidance.

`patch_stem` turns a (3, S, S) image into (dim, S/patch, S/patch) patch
features; `GuidanceEncoder` (from `s2kit.learning.text`) turns a planner's
guidance into the three sentence embeddings a policy reads (goal,
trajectory, current subtask), the ``text`` input of a batch.
"""

from __future__ import annotations

from typing import Literal

from torch import nn

from s2kit.learning.text import GuidanceEncoder, current_subtask, sentence_encoder

__all__ = ["GuidanceEncoder", "current_subtask", "patch_stem", "sentence_encoder"]


def patch_stem(dim: int, patch_size: int, kind: Literal["patch", "conv"] = "patch", width: int = 32) -> nn.Sequential:
    """Image (3, S, S) to patch features (dim, S/patch, S/patch); the total stride is ``patch_size`` (a multiple of 4).

    ``patch``: two convolutions (kernel = stride = 4, then patch/4), as a ViT's patchify split in two so a
    stride-4 map exists for finer readouts; ``conv``: a small CNN (3x3 convolutions of stride 2, 2, ``width``
    and 2 * ``width`` channels, GroupNorm), then patch/4.
    """
    if patch_size % 4:
        raise ValueError(f"patch_size {patch_size} must be a multiple of 4")
    last = patch_size // 4
    if kind == "patch":
        return nn.Sequential(nn.Conv2d(3, dim // 2, kernel_size=4, stride=4), nn.GELU(), nn.Conv2d(dim // 2, dim, kernel_size=last, stride=last))
    return nn.Sequential(
        nn.Conv2d(3, width, kernel_size=3, stride=2, padding=1), nn.GroupNorm(8, width), nn.GELU(),
        nn.Conv2d(width, 2 * width, kernel_size=3, stride=2, padding=1), nn.GroupNorm(8, 2 * width), nn.GELU(),
        nn.Conv2d(2 * width, dim, kernel_size=last, stride=last),
    )  # fmt: skip
