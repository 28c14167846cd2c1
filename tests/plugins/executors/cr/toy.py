"""A small problem a cr policy must fit: move by what the image shows and which way the subtask says.

Each camera image is one colour (red or green) with noise; the subtask embedding says "left" or "right"; the
action chunk is (colour sign, side sign), repeated. The decoder sees the image only through the thought codes,
so solving it needs the codes to carry the colour.
"""

from __future__ import annotations

import torch

from s2kit.learning.batch import ACTIONS, DONE, IMAGES, STATE, TEXT

SMALL = {"cameras": ["head"], "image_size": 32, "patch_size": 8, "state_dim": 1, "action_dim": 2, "chunk": 4, "text_dim": 16,
         "dim": 32, "heads": 2, "encoder_layers": 1, "decoder_layers": 1, "keypoints": 0, "budget": False}  # fmt: skip


def colour_batch(n: int, *, seed: int = 0, size: int = 32, chunk: int = 4, text_dim: int = 16) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    colour = torch.randint(0, 2, (n,), generator=g)
    side = torch.randint(0, 2, (n,), generator=g)
    images = torch.randint(0, 60, (n, 1, 3, size, size), generator=g, dtype=torch.uint8)
    images[torch.arange(n), 0, colour] += 180  # channel 0 (red) or 1 (green) lit
    words = torch.randn(2, text_dim, generator=torch.Generator().manual_seed(1234))  # 'left', 'right'
    text = torch.zeros(n, 3, text_dim)
    text[:, 2] = words[side]
    xy = torch.stack([colour.float() * 2 - 1, side.float() * 2 - 1], dim=1)
    return {IMAGES: images, STATE: torch.zeros(n, 1), TEXT: text, ACTIONS: xy[:, None].expand(n, chunk, 2).contiguous(), DONE: side.float()}
