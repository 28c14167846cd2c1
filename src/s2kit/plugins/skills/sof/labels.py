"""Skill tokens as per-frame training data: a trained tokenizer reads them off each frame's video window.

Frame t of an episode is labelled with the tokens of the window of flow
that starts at it (frames t .. t + window): the skill the video shows next.
The last ``window`` frames of an episode start no whole window; they are
labelled with the episode's last window and marked as such (``whole``
False), so that a model can leave them out where it must.

The frames are those of the kit's `s2kit.learning.data.load_frames` over the
same LeRobot datasets, in the same order; the tokenizer reads them from its
own camera at its own size through the frame and flow caches
(`s2kit.plugins.skills.sof.videos`), so a second run costs only the encoder.

`with_tokens` adds them to the kit's frames, and `SkillColumn` to its batches (`ExtraColumns`): the
translator's input and the planner's targets are the same per-frame arrays.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from s2kit.core.errors import DataError
from s2kit.learning.data import ExtraColumns, FrameData
from s2kit.plugins.skills.sof.videos import RATE_TOLERANCE

__all__ = ["PLAN", "SKILLS", "FrameTokens", "SkillColumn", "frame_tokens", "with_tokens"]

#: Batch key and the translator's graph input: the skill tokens to act out, (B, tokens) int64.
SKILLS = "skills"
#: Batch key of the planner's targets: the tokens of the next ``horizon`` windows, (B, horizon * tokens), -1 where none.
PLAN = "plan"

#: Windows the tokenizer encodes at once.
_BATCH = 256


@dataclass
class FrameTokens:
    """Per-frame skill tokens of some datasets, in `load_frames` order."""

    tokens: Tensor  # (frames, tokens) int64: the window starting at each frame (the episode's last one for its last frames)
    whole: Tensor  # (frames,) bool: a whole window starts at the frame
    window: int
    codebook: int


def frame_tokens(
    tokenizer: str | Path,
    data: Sequence[str | Path],
    *,
    cache: str = "auto",
    log: Callable[[str], None] | None = None,
    frames: int | None = None,
) -> FrameTokens:
    """The skill tokens of every frame of the LeRobot datasets ``data`` under the tokenizer checkpoint (or run) ``tokenizer``.

    A dataset at another frame rate than the tokenizer's video is a `DataError` (a window would span another duration);
    so is a count of frames other than ``frames``, where given (those `load_frames` loaded from the same datasets).
    """
    from s2kit.plugins.skills.sof.training import load_tokenizer
    from s2kit.plugins.skills.sof.videos import load_windows, open_sources

    model, info, folder = load_tokenizer(tokenizer)
    c = info.model
    sources = open_sources(data, c.cameras[0], c.window)
    for source in sources:
        if abs(source.fps - info.fps) > RATE_TOLERANCE * info.fps:
            raise DataError(
                f"{source.path} runs at {source.fps:g} fps and tokenizer {folder} was trained on {info.fps:g} fps video: "
                "a skill window would span another duration"
            )
    windows = load_windows(sources, image_size=c.image_size, window=c.window, cache=cache, log=log)
    encoded = torch.empty((len(windows), c.tokens), dtype=torch.long)
    with torch.inference_mode():
        for part in torch.arange(len(windows)).split(_BATCH):
            encoded[part] = model.encode(windows.batch(part)["flow"])[1]
    tokens, whole = [], []
    first = 0  # the episode's first window
    for source in sources:
        for length in source.lengths:
            count = length - c.window  # its windows start at frames 0 .. count - 1
            t = np.arange(length)
            tokens.append(encoded[first + np.minimum(t, count - 1)])
            whole.append(torch.from_numpy(t < count))
            first += count
    total = sum(len(t) for t in tokens)
    if frames is not None and total != frames:
        raise DataError(
            f"{', '.join(map(str, data))}: the tokenizer's video gives {total} frames and the dataset's "
            f"records {frames}: they must be the same episodes"
        )
    if log is not None:
        log(f"skill tokens of {total} frames from tokenizer {folder} ({len(windows)} windows)")
    return FrameTokens(torch.cat(tokens), torch.cat(whole), c.window, model.fsq.codebook_size)


class SkillColumn(ExtraColumns):
    """Per-frame skill-token arrays (set by a policy's `derive_frames`, not read from dataset columns) into a batch as
    int64; ``targets``: they are targets, -1 (none) where a sample pairs a frame with stale guidance."""

    def __init__(self, *keys: str, targets: bool = False) -> None:
        self.keys = keys
        self.targets = targets

    def read(self, *args: object, **kwargs: object) -> dict[str, np.ndarray]:
        raise TypeError("skill tokens are derived from the frames (frame_tokens), not read from dataset columns")

    def batch(self, values: dict[str, Tensor], stale: Tensor | None) -> dict[str, Tensor]:
        out = {}
        for key, value in values.items():
            tokens = value.long()
            if stale is not None and self.targets:
                tokens[stale] = -1
            out[key] = tokens
        return out



def with_tokens(frames: FrameData, key: str, values: Tensor, *, targets: bool = False) -> FrameData:
    """``frames`` with per-frame token arrays ``values`` (frames, n) batched under ``key`` (`SkillColumn`)."""
    return replace(frames, extras={**frames.extras, key: values.float()}, columns=(*frames.columns, SkillColumn(key, targets=targets)))
