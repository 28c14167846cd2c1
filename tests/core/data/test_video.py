from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from s2kit.core.config import validate_pipeline
from s2kit.core.data import VideoRecorder
from s2kit.core.data.video import tile_frames, write_video
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
    assert [p.name for p in video.written] == ["episode_000000.mp4", "episode_000001.mp4"]
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
    assert abs(int(frames[2][4, 3].mean()) - 200) < 12  # lossy, but the head is still bright
    with pytest.raises(DataError, match="none of the cameras"):
        tile_frames({"head": head}, ["left_wrist"])
