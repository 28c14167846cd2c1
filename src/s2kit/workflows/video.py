"""Episode videos: a subscriber that writes one MP4 per episode.

Frames are the cameras' images side by side (in the order asked for, all of
them by default), at the robot's control rate. They are buffered during the
episode and encoded when it ends, so the control loop pays only for keeping
a reference to each frame. Files are written under a temporary name and
renamed into place.

Optionally (`VideoRecorder` options): small frames are upscaled; plugins
draw on each camera's frame what their model reported in the step's chunk
``info`` (``s2kit_video_overlays``: a model with a visual evidence budget
darkens the patches it left out); a caption band under the frames shows the
goal and the current subtask.

PyAV (FFmpeg) and Pillow (captions) are imported when the first video is
written, not before: the core stays light for processes that never record
video.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from s2kit.core.errors import DataError
from s2kit.core.hookspecs import VideoOverlay
from s2kit.core.interfaces import Subscriber
from s2kit.core.registry import Registry, get_registry
from s2kit.core.types import EpisodeInfo, EpisodeResult, Guidance, Step

__all__ = ["VideoRecorder", "tile_frames", "video_overlays", "write_video"]


def video_overlays(registry: Registry | None = None) -> list[VideoOverlay]:
    """Every overlay the plugins of ``registry`` (default: the process's) draw, in plugin order."""
    registry = registry if registry is not None else get_registry()
    return [overlay for _, overlays in registry.call_each("s2kit_video_overlays") for overlay in overlays]


def tile_frames(images: dict[str, np.ndarray], cameras: Sequence[str]) -> np.ndarray:
    """The named cameras' images side by side, padded to the tallest (uint8, H x W x 3)."""
    frames = [images[c] for c in cameras if c in images]
    if not frames:
        raise DataError(
            f"none of the cameras {list(cameras)} is in the observation (it has {list(images)})"
        )
    height = max(f.shape[0] for f in frames)
    padded = [
        np.pad(f, ((0, height - f.shape[0]), (0, 0), (0, 0)))
        if f.shape[0] < height
        else f
        for f in frames
    ]
    return np.concatenate(padded, axis=1)


class VideoRecorder(Subscriber):
    """Writes ``episode_NNNNNN.mp4`` (H.264) into ``root`` for every episode.

    ``start`` numbers the first file (default: after the files already
    there; parallel writers into one folder give each its own range).
    ``overlay`` applies ``overlays`` (default: every plugin's, `video_overlays`)
    to each camera's frame with the step's ``info``. ``caption``
    adds a band with the goal and the current subtask under the frames.
    ``min_height`` upscales smaller frames by the least integer factor that
    reaches it (nearest neighbour, so patches stay sharp).
    """

    def __init__(
        self,
        root: str | Path,
        cameras: Sequence[str] | None = None,
        codec: str = "libx264",
        *,
        start: int | None = None,
        overlay: bool = True,
        overlays: Sequence[VideoOverlay] | None = None,
        caption: bool = False,
        min_height: int = 0,
    ) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.cameras = list(cameras) if cameras else None
        self.codec = codec
        self.overlays = (list(video_overlays() if overlays is None else overlays)) if overlay else []
        self.caption = caption
        self.min_height = min_height
        self._next = (
            len(list(self.root.glob("episode_*.mp4"))) if start is None else start
        )
        # per step: the images, the chunk's info (None without overlays) and the guidance, all references
        self._frames: list[
            tuple[dict[str, np.ndarray], dict[str, Any] | None, Guidance]
        ] = []
        self._fps = 10.0
        self.written: list[Path] = []

    def on_episode_start(self, info: EpisodeInfo) -> None:
        self._frames = []
        self._fps = info.robot.control_hz
        if self.cameras is None:
            self.cameras = [c.role for c in info.robot.cameras]

    def on_step(self, step: Step) -> None:
        info = step.info if self.overlays else None
        self._frames.append((step.observation.images, info, step.guidance))

    def on_episode_end(self, result: EpisodeResult) -> None:
        if not self._frames:
            return
        path = self.root / f"episode_{self._next:06d}.mp4"
        cameras = self.cameras or sorted(self._frames[0][0])
        height = max(
            self._frames[0][0][c].shape[0] for c in cameras if c in self._frames[0][0]
        )
        scale = max(1, -(-self.min_height // height))  # ceil
        captions = _Captions() if self.caption else None
        frames = []
        for images, info, guidance in self._frames:
            if scale > 1:
                images = {c: _upscale(images[c], scale) for c in cameras if c in images}
            if info:
                images = {c: self._draw(image, c, info) for c, image in images.items()}
            frame = tile_frames(images, cameras)
            if captions is not None:
                frame = np.concatenate(
                    [frame, captions.band(guidance, frame.shape[1])], axis=0
                )
            frames.append(frame)
        write_video(path, frames, self._fps, self.codec)
        self._next += 1
        self._frames = []
        self.written.append(path)

    def _draw(self, image: np.ndarray, camera: str, info: dict[str, Any]) -> np.ndarray:
        for overlay in self.overlays:
            drawn = overlay(image, camera, info)
            if drawn is not None:
                image = drawn
        return image


def _upscale(image: np.ndarray, factor: int) -> np.ndarray:
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


class _Captions:
    """Caption bands (goal, then ``k/n subtask``), rendered once per distinct text."""

    def __init__(self) -> None:
        self._bands: dict[tuple[str, str, int], np.ndarray] = {}

    def band(self, guidance: Guidance, width: int) -> np.ndarray:
        subtask = (
            f"{guidance.current + 1}/{len(guidance.subtasks)}: {guidance.subtask}"
            if guidance.subtasks
            else ""
        )
        key = (guidance.goal, subtask, width)
        if key not in self._bands:
            self._bands[key] = _render_caption(guidance.goal, subtask, width)
        return self._bands[key]


def _render_caption(goal: str, subtask: str, width: int) -> np.ndarray:
    """A black band ``width`` pixels wide: the goal in grey, the current subtask in white."""
    from PIL import Image, ImageDraw, ImageFont  # deferred, like PyAV

    size = max(10, min(18, width // 24))
    font = ImageFont.load_default(size=size)
    line = size + 4
    image = Image.new("RGB", (width, 2 * line + 4))
    draw = ImageDraw.Draw(image)
    for y, text, colour in (
        (2, goal, (170, 170, 170)),
        (2 + line, subtask, (255, 255, 255)),
    ):
        draw.text((4, y), _fit(draw, text, font, width - 8), fill=colour, font=font)
    return np.asarray(image, dtype=np.uint8)


def _fit(draw: Any, text: str, font: Any, width: int) -> str:
    """``text``, cut with an ellipsis to fit ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def write_video(
    path: Path, frames: Sequence[np.ndarray], fps: float, codec: str = "libx264"
) -> None:
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
            for packet in stream.encode(
                av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            ):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    os.replace(tmp, path)
