"""Episode videos: a subscriber that writes one MP4 per episode.

Frames are the cameras' images side by side (in the order asked for, all of
them by default), at the robot's control rate. They are buffered during the
episode and encoded when it ends, so the control loop pays only for keeping
a reference to each frame. Files are written under a temporary name and
renamed into place.

PyAV (FFmpeg) is imported when the first video is written, not before: the
core stays light for processes that never record video.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from s2kit.core.errors import DataError
from s2kit.core.interfaces import Subscriber
from s2kit.core.types import EpisodeInfo, EpisodeResult, Step

__all__ = ["VideoRecorder", "tile_frames"]


def tile_frames(images: dict[str, np.ndarray], cameras: Sequence[str]) -> np.ndarray:
    """The named cameras' images side by side, padded to the tallest (uint8, H x W x 3)."""
    frames = [images[c] for c in cameras if c in images]
    if not frames:
        raise DataError(f"none of the cameras {list(cameras)} is in the observation (it has {list(images)})")
    height = max(f.shape[0] for f in frames)
    padded = [np.pad(f, ((0, height - f.shape[0]), (0, 0), (0, 0))) if f.shape[0] < height else f for f in frames]
    return np.concatenate(padded, axis=1)


class VideoRecorder(Subscriber):
    """Writes ``episode_NNNNNN.mp4`` (H.264) into ``root`` for every episode."""

    def __init__(self, root: str | Path, cameras: Sequence[str] | None = None, codec: str = "libx264") -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.cameras = list(cameras) if cameras else None
        self.codec = codec
        self._next = len(list(self.root.glob("episode_*.mp4")))
        self._frames: list[dict[str, np.ndarray]] = []
        self._fps = 10.0
        self.written: list[Path] = []

    def on_episode_start(self, info: EpisodeInfo) -> None:
        self._frames = []
        self._fps = info.robot.control_hz
        if self.cameras is None:
            self.cameras = [c.role for c in info.robot.cameras]

    def on_step(self, step: Step) -> None:
        self._frames.append(step.observation.images)

    def on_episode_end(self, result: EpisodeResult) -> None:
        if not self._frames:
            return
        path = self.root / f"episode_{self._next:06d}.mp4"
        cameras = self.cameras or sorted(self._frames[0])
        write_video(path, [tile_frames(images, cameras) for images in self._frames], self._fps, self.codec)
        self._next += 1
        self._frames = []
        self.written.append(path)


def write_video(path: Path, frames: Sequence[np.ndarray], fps: float, codec: str = "libx264") -> None:
    """Encode uint8 RGB frames to ``path`` (atomically)."""
    import av  # deferred: FFmpeg is only needed when a video is written

    height, width = frames[0].shape[:2]
    # H.264 with 4:2:0 chroma needs even sides; pad by one pixel where odd.
    pad_h, pad_w = height % 2, width % 2
    tmp = path.with_name(f".{path.name}.tmp")
    with av.open(str(tmp), mode="w", format="mp4") as container:
        stream = container.add_stream(codec, rate=max(1, round(fps)))
        stream.width, stream.height = width + pad_w, height + pad_h
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            if pad_h or pad_w:
                frame = np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)))
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    os.replace(tmp, path)
