from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from s2kit.core.config import validate_pipeline
from s2kit.workflows.video import VideoRecorder
from s2kit.workflows.video import overlay_keep, tile_frames, write_video
from s2kit.core.errors import DataError
from s2kit.core.runtime import build_runtime


def decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def test_one_video_per_episode_with_every_step(registry, tmp_path: Path) -> None:
    pipeline = validate_pipeline(
        {
            "robot": {"name": "point", "image_size": 32},
            "planner": {"name": "waypoints"},
            "executor": {"name": "seek"},
            "runtime": {"episodes": 2, "max_steps": 200},
        }
    )
    video = VideoRecorder(tmp_path)
    results = build_runtime(pipeline, registry, [video]).run()
    assert [p.name for p in video.written] == [
        "episode_000000.mp4",
        "episode_000001.mp4",
    ]
    frames = decode(video.written[0])
    assert len(frames) == results[0].steps and frames[0].shape == (32, 32, 3)
    # the point is drawn white; the episode ends on the last waypoint (0, 0.2, 0.1)
    size = 32
    x, y = round((0 + 1) / 2 * (size - 1)), round((0.2 + 1) / 2 * (size - 1))
    last = frames[-1].sum(axis=-1)
    by, bx = np.unravel_index(np.argmax(last), last.shape)
    assert abs(bx - x) <= 1 and abs(by - y) <= 1


def test_cameras_are_tiled_and_odd_sizes_padded(tmp_path: Path) -> None:
    head = np.full((9, 8, 3), 200, np.uint8)
    wrist = np.full((7, 5, 3), 50, np.uint8)
    tiled = tile_frames({"head": head, "wrist": wrist}, ["head", "wrist"])
    assert tiled.shape == (9, 13, 3) and tiled[8, 12].tolist() == [0, 0, 0]
    write_video(tmp_path / "v.mp4", [tiled] * 5, fps=10)
    frames = decode(tmp_path / "v.mp4")
    assert len(frames) == 5 and frames[0].shape == (10, 14, 3)
    assert (
        abs(int(frames[2][4, 3].mean()) - 200) < 12
    )  # lossy, but the head is still bright
    with pytest.raises(DataError, match="none of the cameras"):
        tile_frames({"head": head}, ["left_wrist"])


# --- kept-patch overlay, captions, numbering ------------------------------------------------


def test_overlay_darkens_unkept_patches_and_outlines_the_kept_region() -> None:
    frame = np.full((96, 96, 3), 200, np.uint8)
    keep = np.zeros((12, 12), bool)  # 8-pixel patches
    keep[2:5, 3:6] = True  # rows 16..39, cols 24..47
    out = overlay_keep(frame, keep, dim=0.35, outline=(255, 0, 0))
    assert out.shape == frame.shape and out.dtype == np.uint8
    assert (out[20:36, 28:44] == 200).all()  # inside the kept region: unchanged
    assert (
        (out[:16] == 70).all() and (out[40:] == 70).all() and (out[:, 48:] == 70).all()
    )  # outside: 35%
    assert out[16, 30].tolist() == [255, 0, 0] and out[30, 47].tolist() == [
        255,
        0,
        0,
    ]  # the inner edge
    assert out[15, 30].tolist() == [
        70,
        70,
        70,
    ]  # the edge is drawn inside the kept patches
    np.testing.assert_array_equal(
        overlay_keep(frame, np.ones((12, 12), bool)), frame
    )  # all kept: as it was
    # a mask of another grid is stretched to the frame (here 4 x 4 patches of 24 pixels)
    assert (overlay_keep(frame, np.eye(4, dtype=bool))[30:40, 30:40] == 200).all()
    with pytest.raises(DataError, match="2-D"):
        overlay_keep(frame, np.ones(12, bool))


def test_an_executors_kept_patches_darken_the_video(registry, tmp_path: Path) -> None:
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
        assert (
            abs(frame[2:30, 2:12].mean() - 200) < 8
        )  # kept (away from the point and the outline)
        assert abs(frame[2:30, 18:30].mean() - 70) < 8  # darkened to 35%


def test_captions_show_the_goal_and_subtask_under_upscaled_frames(
    registry, tmp_path: Path
) -> None:
    pipeline = validate_pipeline(
        {
            "robot": {"name": "point", "image_size": 16, "background": 0},
            "planner": {"name": "waypoints"},
            "executor": {"name": "seek"},
            "runtime": {"episodes": 1, "max_steps": 5},
        }
    )
    plain, captioned = (
        VideoRecorder(tmp_path / "plain"),
        VideoRecorder(tmp_path / "cap", caption=True, min_height=40),
    )
    build_runtime(pipeline, registry, [plain, captioned]).run()
    frame = decode(captioned.written[0])[0]
    assert decode(plain.written[0])[0].shape == (16, 16, 3)
    assert (
        frame.shape[1] == 48 and frame.shape[0] > 48
    )  # 16 px upscaled 3x, a band below
    assert frame[48:].max() > 150  # text in the band
