from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from s2kit.core.config import validate_pipeline
from s2kit.workflows.video import VideoRecorder, tile_frames, video_overlays, write_video
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


# --- overlays, captions, numbering ------------------------------------------------------


def test_plugin_overlays_draw_on_each_camera_with_the_steps_info(registry, tmp_path: Path) -> None:
    pipeline = validate_pipeline(
        {
            "robot": {"name": "point", "image_size": 16, "background": 200},
            "planner": {"name": "waypoints"},
            "executor": {"name": "masked", "grid": 4},  # its chunks' info carries "keep"
            "runtime": {"episodes": 1, "max_steps": 5},
        }
    )
    seen: list[tuple[str, bool]] = []

    def blacken(image: np.ndarray, camera: str, info: dict) -> np.ndarray | None:
        seen.append((camera, "keep" in info))
        return np.zeros_like(image) if "keep" in info else None

    drawn, plain = VideoRecorder(tmp_path / "drawn", overlays=[blacken]), VideoRecorder(tmp_path / "plain", overlay=False)
    (result,) = build_runtime(pipeline, registry, [drawn, plain]).run()
    assert seen == [("head", True)] * result.steps
    assert decode(drawn.written[0])[0].max() < 20 and decode(plain.written[0])[0].mean() > 150


def test_the_installed_plugins_overlays_are_the_default() -> None:
    from s2kit.plugins.executors.s2.overlay import draw_kept_patches

    assert draw_kept_patches in video_overlays()


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
