"""Augmentation of whole batches: shifts that say how far each image moved, colour and backdrop jitter."""

from __future__ import annotations

import torch

from s2kit.learning.augment import augment, recolour, recolour_background, shift
from s2kit.learning.batch import IMAGES, SHIFT


def test_the_shift_augmentation_says_how_far_each_image_moved() -> None:
    """The model moves the coordinates it reads back by that much, and the focus map's target moves with the image."""
    images = torch.zeros(6, 2, 3, 32, 32, dtype=torch.uint8)
    images[:, :, :, 10, 20] = 255  # one bright pixel: row 10, column 20
    shifted, moved = shift(images, 4, torch.Generator().manual_seed(0))
    assert moved.shape == (6, 2, 2) and moved.abs().max() <= 4 * 2 / 32 and moved.std() > 0
    for b in range(6):
        for c in range(2):
            row, column = (shifted[b, c, 0] == 255).nonzero()[0].tolist()
            assert (column - 20, row - 10) == tuple(round(x) for x in (moved[b, c] * 16).tolist())


def test_the_background_augmentation_recolours_the_backdrop_and_keeps_the_items() -> None:
    """A wood table with a shaded band and a white wall takes new colours; the red item on it keeps its own."""
    scene = torch.empty(32, 2, 3, 24, 24, dtype=torch.uint8)
    scene[:] = torch.tensor([158, 115, 77], dtype=torch.uint8)[:, None, None]  # the training table
    scene[..., 16:, :] = torch.tensor([126, 92, 62], dtype=torch.uint8)[:, None, None]  # the same wood in shade (0.8)
    scene[..., :6, :] = torch.tensor([204, 204, 199], dtype=torch.uint8)[:, None, None]  # the wall
    scene[..., 8:12, 8:12] = torch.tensor([217, 31, 26], dtype=torch.uint8)[:, None, None]  # a red cube
    out = recolour_background(scene, 1.0, torch.Generator().manual_seed(0))
    assert out.shape == scene.shape and out.dtype == torch.uint8
    assert torch.equal(out[..., 8:12, 8:12], scene[..., 8:12, 8:12])  # the item is untouched
    lit, shade, wall = out[..., 0, 12, 20].float(), out[..., 0, 20, 20].float(), out[..., 0, 2, 2].float()  # (32, 2) red channel
    assert (lit - 158).abs().median() > 20 and (wall - 204).abs().median() > 20  # table and wall recoloured
    assert (lit[:, None] - lit[None]).abs().max() > 50  # each image draws its own colour
    unclipped = lit < 250
    assert torch.allclose(shade[unclipped] / lit[unclipped].clamp(min=1), torch.full_like(lit[unclipped], 126 / 158), atol=0.06)  # shading kept
    assert torch.equal(recolour_background(scene, 0.0, torch.Generator().manual_seed(0)), scene)


def test_the_colour_augmentation_changes_each_image_within_its_bounds() -> None:
    """Brightness, contrast and colour balance per camera of each sample; 0.4 keeps every factor within [0.6, 1.4]."""
    grey = torch.full((64, 2, 3, 8, 8), 100, dtype=torch.uint8)
    grey[..., :4] = 60  # two grey levels, so contrast shows
    out = recolour(grey, 0.4, torch.Generator().manual_seed(0))
    assert out.shape == grey.shape and out.dtype == torch.uint8
    means = out.float().mean(dim=(3, 4))  # (64, 2, 3)
    assert means.std(dim=(0, 1)).min() > 5  # each sample and camera drew its own factors
    assert (means[..., 0] - means[..., 1]).abs().max() > 5  # the colour balance moved: grey became tinted
    ratio = means / 80
    assert ratio.min() > 0.6 * 0.8 - 0.02 and ratio.max() < 1.4 * 1.2 + 0.02  # brightness times channel gain
    assert torch.equal(recolour(grey, 0.0, torch.Generator().manual_seed(0)), grey)
    white = torch.full((4, 1, 3, 8, 8), 250, dtype=torch.uint8)
    assert recolour(white, 0.4, torch.Generator().manual_seed(1)).min() >= 250 * 0.6 * 0.8 - 1  # brightened past 255: clipped, not wrapped


def test_image_space_targets_move_with_the_shifted_image() -> None:
    """A policy's image positions (its ExtraColumns.image_positions) follow the content; other entries stay."""
    images = torch.zeros(4, 1, 3, 16, 16, dtype=torch.uint8)
    batch = {IMAGES: images, "uv": torch.zeros(4, 1, 2), "other": torch.zeros(4, 1, 2)}
    out = augment(batch, torch.Generator().manual_seed(0), pad=4, image_positions=["uv"])
    assert torch.equal(out["uv"], out[SHIFT]) and out[SHIFT].abs().sum() > 0 and not out["other"].any()
