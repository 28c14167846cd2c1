"""S2's video overlay: the patches its evidence budget kept, drawn into episode videos."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from s2kit.core.config import validate_pipeline
from s2kit.core.errors import DataError
from s2kit.core.runtime import build_runtime
from s2kit.plugins.executors.s2.overlay import overlay_keep
from s2kit.workflows.video import VideoRecorder


def decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def test_overlay_darkens_unkept_patches_and_outlines_the_kept_region() -> None:
    frame = np.full((96, 96, 3), 200, np.uint8)
    keep = np.zeros((12, 12), bool)  # 8-pixel patches
    keep[2:5, 3:6] = True  # rows 16..39, cols 24..47
    out = overlay_keep(frame, keep, dim=0.35, outline=(255, 0, 0))
    assert out.shape == frame.shape and out.dtype == np.uint8
    assert (out[20:36, 28:44] == 200).all()  # inside the kept region: unchanged
    assert (out[:16] == 70).all() and (out[40:] == 70).all() and (out[:, 48:] == 70).all()  # outside: 35%
    assert out[16, 30].tolist() == [255, 0, 0] and out[30, 47].tolist() == [255, 0, 0]  # the inner edge
    assert out[15, 30].tolist() == [70, 70, 70]  # the edge is drawn inside the kept patches
    np.testing.assert_array_equal(overlay_keep(frame, np.ones((12, 12), bool)), frame)  # all kept: as it was
    # a mask of another grid is stretched to the frame (here 4 x 4 patches of 24 pixels)
    assert (overlay_keep(frame, np.eye(4, dtype=bool))[30:40, 30:40] == 200).all()
    with pytest.raises(DataError, match="2-D"):
        overlay_keep(frame, np.ones(12, bool))


def test_an_executors_kept_patches_darken_the_video(registry, tmp_path: Path) -> None:
    # ``masked`` (tests/doubles.py) reports kept patches as S2 does; the installed S2 plugin draws them
    pipeline = validate_pipeline(
        {
            "robot": {"name": "point", "image_size": 32, "background": 200},
            "planner": {"name": "waypoints"},
            "executor": {"name": "masked", "grid": 4},  # keeps the left half
            "runtime": {"episodes": 1, "max_steps": 20},
        }
    )
    video = VideoRecorder(tmp_path, start=7)
    (result,) = build_runtime(pipeline, registry, [video]).run()
    assert [p.name for p in video.written] == ["episode_000007.mp4"]
    frames = decode(video.written[0])
    assert len(frames) == result.steps > 1 and frames[0].shape == (32, 32, 3)
    for frame in frames:
        assert abs(frame[2:30, 2:12].mean() - 200) < 8  # kept (away from the point and the outline)
        assert abs(frame[2:30, 18:30].mean() - 70) < 8  # darkened to 35%
