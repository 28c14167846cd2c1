"""What S2 trains on beyond the kit's batches: its privileged focus targets, and the held-out figures they give.

The dataset columns ``privileged.focus`` and ``privileged.focus_uv``
(`s2kit.plugins.executors.s2.columns`, recorded in simulation) become two
batch entries through the kit's extension point
(`s2kit.learning.data.ExtraColumns`, declared as ``S2Policy.extra_columns``):

- the focus head's target, in decimetres (values of order one), NaN where
  unknown or where the sample's guidance is stale (the frame's focus belongs
  to the next subtask, not the text's);
- the focus map's target, where that item is in each camera's squared image,
  (B, cameras, 2) in [-1, 1]; it moves with the image under the shift
  augmentation.

A dataset without the columns (a real robot's) gives NaN targets, which the
losses skip. `focus_metrics` gives validation's focus RMS (cm) and focus map
distance (px).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from torch import Tensor

from s2kit.core.errors import DataError
from s2kit.learning.data import ExtraColumns
from s2kit.plugins.executors.s2.columns import FOCUS as FOCUS_COLUMN
from s2kit.plugins.executors.s2.columns import FOCUS_UV as FOCUS_UV_COLUMN

__all__ = ["FOCUS_SCALE", "FocusColumns", "focus_metrics"]

#: ``privileged.focus`` is in metres; the focus head predicts decimetres, values of order one.
FOCUS_SCALE = 10.0


class FocusColumns(ExtraColumns):
    """``privileged.focus`` and ``privileged.focus_uv`` as the batch entries ``focus`` and ``uv`` name (S2's batch keys)."""

    features = (FOCUS_COLUMN, FOCUS_UV_COLUMN)

    def __init__(self, focus: str, uv: str) -> None:
        self.focus, self.uv = focus, uv
        self.keys = (focus, uv)
        self.image_positions = (uv,)

    def read(self, episode: Mapping[str, Any], length: int, *, features: Mapping[str, Any], cameras: Sequence[str]) -> dict[str, np.ndarray]:
        focus = np.full((length, 3), np.nan, np.float32)
        if FOCUS_COLUMN in episode:
            focus = np.asarray(episode[FOCUS_COLUMN], dtype=np.float32).reshape(length, 3)
        uv = np.full((length, len(cameras), 2), np.nan, np.float32)
        if FOCUS_UV_COLUMN in episode:
            names = list(features.get(FOCUS_UV_COLUMN, {}).get("names") or [])
            recorded = np.asarray(episode[FOCUS_UV_COLUMN], dtype=np.float32).reshape(length, -1)
            for i, camera in enumerate(cameras):
                if f"{camera}.u" not in names or f"{camera}.v" not in names:
                    continue
                h, w = features[f"observation.images.{camera}"]["shape"][:2]
                scale = np.array([w / max(h, w), h / max(h, w)], dtype=np.float32)  # square_frames letterboxes
                uv[:, i] = recorded[:, [names.index(f"{camera}.u"), names.index(f"{camera}.v")]] * scale
        for name, values in ((FOCUS_COLUMN, focus), (FOCUS_UV_COLUMN, uv)):
            if np.isinf(values).any():
                raise DataError(f"infinite {name} values")
        return {self.focus: focus, self.uv: uv}

    def batch(self, values: dict[str, Tensor], stale: Tensor | None) -> dict[str, Tensor]:
        focus, uv = values[self.focus] * FOCUS_SCALE, values[self.uv].clone()
        if stale is not None:
            focus[stale] = float("nan")  # the frame's focus belongs to the next subtask, not the stale text's
            uv[stale] = float("nan")
        return {self.focus: focus, self.uv: uv}


def focus_metrics(
    batches: Sequence[dict[str, Tensor]], outputs: Sequence[dict[str, Tensor]], focus: str, uv: str, image_size: int
) -> dict[str, float]:
    """Where the data has focus targets: the focus head's RMS error in centimetres (``focus_rms_cm``) and the focus
    map's mean distance from the focus item in pixels of ``image_size`` images (``focus_map_px``), over every validation
    batch."""
    from s2kit.plugins.executors.s2.modeling import focus_error, focus_map_pixels

    squared, rows, pixels, maps = 0.0, 0, 0.0, 0
    for batch, out in zip(batches, outputs, strict=True):
        if "focus" in out and focus in batch:
            s, n = focus_error(out["focus"], batch[focus])
            squared, rows = squared + float(s), rows + int(n)
        if "focus_map" in out and uv in batch:
            distance = focus_map_pixels(out["focus_map"], batch[uv], image_size)
            known = distance.isfinite()
            pixels, maps = pixels + float(distance[known].sum()), maps + int(known.sum())
    metrics = {}
    if rows:
        metrics["focus_rms_cm"] = (squared / (3 * rows)) ** 0.5 * 100.0 / FOCUS_SCALE  # decimetres -> cm
    if maps:
        metrics["focus_map_px"] = pixels / maps
    return metrics
