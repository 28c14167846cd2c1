"""S2's video overlay: the image patches the visual evidence budget kept.

S2's executor reports, in each chunk's ``info[KEEP]``, which patch tokens of
each camera reached the action model (camera role -> bool (rows, cols), True
= kept). In episode videos (``s2kit run --video``, ``s2kit eval --video``)
the other patches are darkened and the kept region outlined; frames of
steps without a mask are left as they are. The plugin module
(``executor.py``) re-exports the hook, so it registers with S2.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from s2kit import hookimpl
from s2kit.core.errors import DataError
from s2kit.core.hookspecs import VideoOverlay

__all__ = ["KEEP", "draw_kept_patches", "overlay_keep", "s2kit_video_overlays"]

#: ``ActionChunk.info`` key of the kept patches: camera role -> bool (rows, cols), True = kept.
KEEP = "keep"


def overlay_keep(
    frame: np.ndarray,
    keep: np.ndarray,
    dim: float = 0.35,
    outline: tuple[int, int, int] = (255, 196, 0),
) -> np.ndarray:
    """``frame`` with the patches ``keep`` leaves out darkened and the kept region outlined.

    ``keep`` is a bool ``(rows, cols)`` patch grid over the whole frame (S2's
    kept patch tokens, True = kept); it is stretched to the frame's size.
    Unkept pixels keep ``dim`` of their brightness; kept pixels are
    unchanged, except a one-pixel ``outline`` along the kept region's inner
    edge where it meets unkept patches. A mask that keeps everything leaves
    the frame as it was.
    """
    keep = np.asarray(keep, dtype=bool)
    if keep.ndim != 2 or keep.size == 0:
        raise DataError(f"a keep mask must be a 2-D (rows, cols) patch grid, got shape {keep.shape}")
    height, width = frame.shape[:2]
    # the patch row (column) of each pixel row (column)
    rows = np.arange(height) * keep.shape[0] // height
    cols = np.arange(width) * keep.shape[1] // width
    kept = keep[rows[:, None], cols[None, :]]  # (height, width)
    out = np.where(kept[..., None], frame, (frame * dim).astype(np.uint8))
    edge = np.zeros_like(kept)
    edge[1:] |= kept[1:] & ~kept[:-1]
    edge[:-1] |= kept[:-1] & ~kept[1:]
    edge[:, 1:] |= kept[:, 1:] & ~kept[:, :-1]
    edge[:, :-1] |= kept[:, :-1] & ~kept[:, 1:]
    out[edge] = outline
    return out


def draw_kept_patches(image: np.ndarray, camera: str, info: Mapping[str, Any]) -> np.ndarray | None:
    """A `VideoOverlay`: ``camera``'s kept patches drawn on ``image`` where ``info`` has S2's mask for it."""
    keep = info.get(KEEP)
    if not keep or camera not in keep:
        return None
    return overlay_keep(image, keep[camera])


@hookimpl
def s2kit_video_overlays() -> list[VideoOverlay]:
    return [draw_kept_patches]
