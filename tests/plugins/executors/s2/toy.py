"""A small problem an S2 policy must be able to fit: reach the square the subtask names.

Each camera image holds a red and a green square at random places; the
subtask embedding says which one is the target; the action chunk is the
target's (x, y) in [-1, 1], repeated; the focus target (the auxiliary head's)
is that (x, y) and a 0, and the focus map's target in every camera that (x, y). Solving it needs the image, the guidance, and (with
the budget on) keeping the right patches.
"""

from __future__ import annotations

import torch

from s2kit.plugins.executors.s2.modeling import (
    ACTIONS,
    DONE,
    FOCUS,
    FOCUS_UV,
    IMAGES,
    STATE,
    TEXT,
)


def toy_batch(n: int, *, size: int = 32, cameras: int = 1, chunk: int = 4, text_dim: int = 16, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    images = torch.zeros(n, cameras, 3, size, size, dtype=torch.uint8)
    side = size // 8
    pos = torch.randint(0, size - side, (n, 2, 2), generator=g)  # (sample, square, yx)
    for i in range(n):
        for square, channel in ((0, 0), (1, 1)):
            y, x = pos[i, square].tolist()
            images[i, :, channel, y : y + side, x : x + side] = 255
    target = torch.randint(0, 2, (n,), generator=g)
    words = torch.randn(2, text_dim, generator=torch.Generator().manual_seed(1234))  # 'reach the red/green square'
    text = torch.zeros(n, 3, text_dim)
    text[:, 2] = words[target]  # the subtask slot; goal and trajectory say nothing
    yx = pos[torch.arange(n), target].float() + side / 2
    xy = (yx.flip(-1) / size) * 2 - 1  # (sample, xy) in [-1, 1]
    actions = xy[:, None].expand(n, chunk, 2).contiguous()
    focus = torch.cat([xy, torch.zeros(n, 1)], dim=1)
    return {IMAGES: images, STATE: torch.zeros(n, 1), TEXT: text, ACTIONS: actions, DONE: (target == 1).float(), FOCUS: focus,
            FOCUS_UV: xy[:, None].expand(n, cameras, 2).contiguous()}  # fmt: skip
