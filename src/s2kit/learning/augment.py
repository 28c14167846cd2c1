"""Image augmentation of whole training batches: random shifts, colour jitter, new backdrop colours.

Every function takes a batch's images at once, (B, cameras, 3, S, S) uint8, and
draws from the generator it is given, so a run's batches are repeatable. The
shift also says how far each image's content moved (batch key ``shift``): a
policy reads positions back in the unshifted frame, and a policy's image-space
targets (`s2kit.learning.data.ExtraColumns.image_positions`) move with it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from s2kit.learning.batch import IMAGES, SHIFT

__all__ = ["augment", "recolour", "recolour_background", "shift"]


def shift(images: torch.Tensor, pad: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random translation of each image by up to ``pad`` pixels (edge-padded), (B, C, 3, S, S) uint8 (DrQ).

    Returns the shifted images and how far their content moved, (B, C, 2) as (u, v) in the [-1, 1] image units.
    """
    B, C, _, S, _ = images.shape
    N = B * C
    offsets = torch.randint(0, 2 * pad + 1, (N, 2), generator=generator)  # (row, column) of the crop in the padded image
    # Edge padding is a clamp of the source index; rows and columns are gathered one after the other on the bytes.
    span = torch.arange(S)
    rows = (offsets[:, :1] + span - pad).clamp(0, S - 1)  # (N, S): the source row of each output row
    cols = (offsets[:, 1:] + span - pad).clamp(0, S - 1)  # (N, S)
    flat = images.reshape(N, 3, S, S)
    out = flat.gather(2, rows[:, None, :, None].expand(N, 3, S, S))
    out = out.gather(3, cols[:, None, None, :].expand(N, 3, S, S))
    moved = (pad - offsets.flip(-1)).float() * 2 / S  # a pixel at column c lands at c + pad - offset
    return out.view(B, C, 3, S, S), moved.view(B, C, 2)


def recolour(images: torch.Tensor, strength: float, generator: torch.Generator) -> torch.Tensor:
    """Random brightness, contrast and colour balance for each image of (B, C, 3, S, S) uint8.

    Contrast scales each image about its mean grey level, then brightness and a per-channel gain scale it; the result is
    clipped to [0, 255]. Each camera of each sample draws its own factors.
    """
    B, C = images.shape[:2]

    def factor(*shape: int, span: float) -> torch.Tensor:
        return 1 + (torch.rand(B, C, *shape, generator=generator) * 2 - 1) * span

    x = images.float()
    mean = x.mean(dim=(2, 3, 4), keepdim=True)
    x = (x - mean) * factor(1, 1, 1, span=strength) + mean
    x = x * factor(1, 1, 1, span=strength) * factor(3, 1, 1, span=strength / 2)
    return x.round().clamp(0, 255).to(torch.uint8)


def recolour_background(images: torch.Tensor, probability: float, generator: torch.Generator, modes: int = 3) -> torch.Tensor:
    """New colours for the backdrop of each image of (B, C, 3, S, S) uint8, with ``probability`` per image.

    The backdrop is found without a segmentation: the ``modes`` most common colours of an image (binned by
    chromaticity and brightness) that each cover at least 5% of it and are not saturated (the table, floor
    and wall; the task's items have saturated colours). Pixels of about the same chromaticity as such a mode,
    and within a factor of 1.6 of its brightness, are scaled channel by channel so that the mode's mean colour
    becomes a random one; shading and edges stay.
    """
    B, C, _, S, _ = images.shape
    x = images.flatten(0, 1).float()  # (N, 3, S, S)
    N = x.shape[0]
    brightness = x.sum(1) + 1.0  # (N, S, S)
    chroma = x[:, :2] / brightness[:, None]  # (N, 2, S, S): r and g shares
    bins = (chroma * 16).long().clamp(0, 15)
    key = (bins[:, 0] * 16 + bins[:, 1]) * 8 + (brightness / (766 / 8)).long().clamp(0, 7)  # (N, S, S)
    counts = torch.zeros(N, 16 * 16 * 8).scatter_add_(1, key.flatten(1), torch.ones(N, S * S))
    share, top = counts.topk(modes, dim=1)  # (N, modes)
    apply = torch.rand(N, generator=generator) < probability
    out = x.clone()
    for m in range(modes):
        members = (key == top[:, m, None, None]).float()  # (N, S, S)
        size = share[:, m, None].clamp(min=1)  # (N, 1): the mode's pixel count
        colour = (x * members[:, None]).sum((2, 3)) / size  # (N, 3) the mode's mean colour
        centre = (chroma * members[:, None]).sum((2, 3)) / size  # (N, 2) and its mean chromaticity
        saturation = (colour.max(1).values - colour.min(1).values) / colour.max(1).values.clamp(min=1)
        chosen = apply & (share[:, m] >= 0.05 * S * S) & (saturation < 0.6)  # (N,)
        level = colour.sum(1) + 1.0
        ratio = brightness / level[:, None, None]
        near = ((chroma - centre[:, :, None, None]).abs().amax(1) < 0.03) & (ratio > 1 / 1.6) & (ratio < 1.6)  # (N, S, S)
        target = 20 + torch.rand(N, 3, generator=generator) * 225
        gain = target / colour.clamp(min=1.0)  # (N, 3)
        mask = (near & chosen[:, None, None])[:, None]
        out = torch.where(mask, x * gain[:, :, None, None], out)
    return out.round().clamp(0, 255).to(torch.uint8).view(B, C, 3, S, S)


def augment(
    batch: dict[str, torch.Tensor],
    generator: torch.Generator,
    *,
    pad: int = 0,
    colour_jitter: float = 0.0,
    background_jitter: float = 0.0,
    image_positions: Sequence[str] = (),
) -> dict[str, torch.Tensor]:
    """The batch with its images augmented in place of the originals: shifted by up to ``pad`` px (adding ``shift``
    and moving the ``image_positions`` entries, (B, cameras, 2) in (u, v) units, with their image), new backdrop
    colours, colour jitter; each step only where its setting is non-zero."""
    if pad:
        batch[IMAGES], batch[SHIFT] = shift(batch[IMAGES], pad, generator)
        for key in image_positions:
            if key in batch:
                batch[key] = batch[key] + batch[SHIFT]
    if background_jitter:
        batch[IMAGES] = recolour_background(batch[IMAGES], background_jitter, generator)
    if colour_jitter:
        batch[IMAGES] = recolour(batch[IMAGES], colour_jitter, generator)
    return batch
