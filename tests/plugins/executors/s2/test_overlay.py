"""S2's video overlay: the patches its evidence budget kept, drawn into episode videos."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from s2kit.core.config import validate_pipeline
from s2kit.core.errors import DataError
from s2kit.core.runtime import build_runtime
from s2kit.core.types import Guidance
from s2kit.plugins.executors.s2.overlay import KEEP, overlay_keep
from s2kit.workflows.video import VideoRecorder
from tests.workflows.test_video import record


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
    assert len(frames) == result.steps > 1 and frames[0].shape[1] == 384  # 32 px, 12 times
    for frame in frames:
        assert abs(frame[24:360, 24:144].mean() - 200) < 8  # kept (away from the point and the outline)
        assert abs(frame[24:360, 216:360].mean() - 70) < 8  # darkened to 35%


@pytest.mark.parametrize("size", [32, 30])  # 30: patches of 7.5 pixels, a grid the factor (13) does not divide
def test_kept_patches_line_up_with_the_upscaled_camera_image(tmp_path: Path, size: int) -> None:
    """The video upscales each camera; the overlay must still cover the pixels the model kept."""
    rng = np.random.default_rng(size)
    image = np.repeat(rng.integers(40, 216, (size, size, 1), dtype=np.uint8), 3, axis=2)  # grey: no chroma to blur
    keep = np.zeros((4, 4), bool)
    keep[1:3, 0:3] = True
    frame = record(VideoRecorder(tmp_path), [{"head": image}] * 2, Guidance(goal="g"), info={KEEP: {"head": keep}})
    factor = -(-384 // size)
    shown = frame[: size * factor, : size * factor].astype(float)
    # what the model's patches cover at the camera's resolution, each pixel a factor x factor block on screen
    blocks = shown.reshape(size, factor, size, factor, 3).mean(axis=(1, 3))  # (rows, cols, rgb)
    expected = overlay_keep(image, keep).astype(float)
    # no block is off: codec noise is a few levels (up to ~16 where the outline's colour bleeds into grey);
    # a grid drawn a pixel off, or a one-pixel outline instead of a block-wide one, differs by 50+
    assert np.abs(blocks - expected).max() < 25
