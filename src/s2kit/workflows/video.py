"""Episode videos: a subscriber that writes one MP4 per episode.

Frames are the cameras' images side by side (in the order asked for, all of
them by default), at the robot's control rate, made for a person to watch:

* each camera is upscaled (nearest neighbour, so pixels and patches stay
  sharp) by the least integer factor that makes it at least `MIN_HEIGHT`
  (384) pixels tall; cameras already that tall are left as they are;
* plugins draw on each camera's image what their model reported in the
  step's chunk ``info`` (``s2kit_video_overlays``: a model with a visual
  evidence budget darkens the patches it left out). They draw at the
  camera's own resolution, the one the model saw, before the upscaling, so
  a patch grid lands on the pixels it covered whatever the factor;
* a caption band under the frames shows the instruction (the guidance's
  goal) and the current subtask, ``k/n: text``, wrapped onto two lines each
  rather than cut, in Pillow's built-in scalable font (no system font
  needed) at 14 px or more.

Frames are buffered during the episode (references only: the control loop
pays nothing else) and encoded when it ends, one frame at a time, with
H.264 tuned for rendered images (about 380 KiB for 30 seconds of two
96-pixel cameras; docs/runtime.md has the figures). Files are written under a temporary name and renamed into place.

PyAV (FFmpeg) and Pillow (captions) are imported when the first video is
written, not before: the core stays light for processes that never record
video.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from s2kit.core.errors import DataError
from s2kit.core.hookspecs import VideoOverlay
from s2kit.core.interfaces import Subscriber
from s2kit.core.registry import Registry, get_registry
from s2kit.core.types import EpisodeInfo, EpisodeResult, Guidance, Step

__all__ = [
    "MIN_HEIGHT",
    "VideoRecorder",
    "caption_bands",
    "tile_frames",
    "upscale_factor",
    "video_overlays",
    "write_video",
]

#: Each camera is upscaled to at least this many pixels tall in episode videos.
MIN_HEIGHT = 384


def video_overlays(registry: Registry | None = None) -> list[VideoOverlay]:
    """Every overlay the plugins of ``registry`` (default: the process's) draw, in plugin order."""
    registry = registry if registry is not None else get_registry()
    return [overlay for _, overlays in registry.call_each("s2kit_video_overlays") for overlay in overlays]


def tile_frames(
    images: dict[str, np.ndarray],
    cameras: Sequence[str],
    factors: dict[str, int] | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """The named cameras' images side by side, padded (black) to the tallest (uint8, H x W x 3).

    ``factors`` upscales cameras by an integer factor each (nearest
    neighbour); ``out``, a zeroed array of the tiled shape, is filled and
    returned instead of a new one (a video reuses one frame buffer).
    """
    frames = [(images[c], (factors or {}).get(c, 1)) for c in cameras if c in images]
    if not frames:
        raise DataError(
            f"none of the cameras {list(cameras)} is in the observation (it has {list(images)})"
        )
    height = max(f.shape[0] * k for f, k in frames)
    width = sum(f.shape[1] * k for f, k in frames)
    if out is None:
        out = np.zeros((height, width, 3), dtype=np.uint8)
    x = 0
    for frame, k in frames:
        h, w = frame.shape[:2]
        # one broadcast copy per camera: pixel (i, j) fills the k x k block at (i*k, x + j*k)
        out[: h * k, x : x + w * k].reshape(h, k, w, k, 3)[...] = frame[:, None, :, None, :]  # (rows, k, cols, k, rgb)
        x += w * k
    return out


class VideoRecorder(Subscriber):
    """Writes ``episode_NNNNNN.mp4`` (H.264) into ``root`` for every episode.

    ``start`` numbers the first file (default: after the files already
    there; parallel writers into one folder give each its own range).
    ``overlay`` applies ``overlays`` (default: every plugin's, `video_overlays`)
    to each camera's image with the step's ``info``. ``caption`` adds the
    band with the instruction and the current subtask. ``min_height``: each
    camera is upscaled by the least integer factor that makes it at least
    this tall (0: the cameras' own size).
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
        caption: bool = True,
        min_height: int = MIN_HEIGHT,
    ) -> None:
        if min_height < 0:
            raise ValueError(f"min_height must be >= 0, got {min_height}")
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
        buffered, self._frames = self._frames, []
        first = buffered[0][0]
        cameras = self.cameras or sorted(first)
        factors = {c: upscale_factor(first[c].shape[0], self.min_height) for c in cameras if c in first}
        tiled = tile_frames(first, cameras, factors)
        bands = caption_bands([g for _, _, g in buffered], tiled.shape[1]) if self.caption else None
        height = tiled.shape[0]
        buffer = np.zeros((height + (bands[0].shape[0] if bands else 0), tiled.shape[1], 3), dtype=np.uint8)

        def frames() -> Iterator[np.ndarray]:  # one buffer, refilled: an upscaled episode never sits in memory
            for k, (images, info, _) in enumerate(buffered):
                if info:
                    images = {c: self._draw(image, c, info) for c, image in images.items()}
                tile_frames(images, cameras, factors, out=buffer[:height])
                if bands is not None:
                    buffer[height:] = bands[k]
                yield buffer

        write_video(path, frames(), self._fps, self.codec)
        self._next += 1
        self.written.append(path)

    def _draw(self, image: np.ndarray, camera: str, info: dict[str, Any]) -> np.ndarray:
        for overlay in self.overlays:
            drawn = overlay(image, camera, info)
            if drawn is not None:
                image = drawn
        return image


def upscale_factor(height: int, min_height: int) -> int:
    """The least integer factor that makes ``height`` at least ``min_height`` (1 where it already is)."""
    return max(1, -(-min_height // height))  # ceil


# --- captions ------------------------------------------------------------------------------------

#: Caption text colours: the instruction, and the current subtask.
_GOAL_RGB, _SUBTASK_RGB = (200, 200, 200), (255, 255, 255)
#: Lines each of the two texts may wrap onto; the rest is cut with an ellipsis.
_MAX_LINES = 2
#: Pixels around the caption's text.
_MARGIN = 6


def caption_bands(guidances: Sequence[Guidance], width: int) -> list[np.ndarray]:
    """One caption band per step, ``width`` pixels wide, all as tall as the episode's longest caption.

    A band holds the instruction (the goal, light grey) and the current
    subtask (``k/n: text``, white), each wrapped onto at most two lines.
    Steps with the same texts share one band (rendered once).
    """
    from PIL import Image, ImageDraw  # deferred, like PyAV

    font, size = _font(width)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    wrapped: dict[tuple[str, str], list[tuple[str, tuple[int, int, int]]]] = {}
    keys = []
    for guidance in guidances:
        key = (guidance.goal, _subtask_text(guidance))
        if key not in wrapped:
            wrapped[key] = [
                (line, colour)
                for text, colour in zip(key, (_GOAL_RGB, _SUBTASK_RGB))
                for line in _wrap(measure, text, font, width - 2 * _MARGIN)
            ]
        keys.append(key)
    line = round(size * 1.3)
    height = max(len(lines) for lines in wrapped.values()) * line + 2 * _MARGIN
    bands = {}
    for key, lines in wrapped.items():
        image = Image.new("RGB", (width, height))
        draw = ImageDraw.Draw(image)
        for row, (text, colour) in enumerate(lines):
            draw.text((_MARGIN, _MARGIN + row * line), text, fill=colour, font=font)
        bands[key] = np.asarray(image, dtype=np.uint8)
    return [bands[key] for key in keys]


def _font(width: int) -> tuple[Any, int]:
    """Pillow's built-in scalable font (Pillow >= 10.1 with FreeType) at a size for ``width``, and the size."""
    from PIL import ImageFont

    size = min(22, max(14, width // 40))
    return ImageFont.load_default(size=size), size


def _subtask_text(guidance: Guidance) -> str:
    if not guidance.subtasks:
        return ""
    return f"{guidance.current + 1}/{len(guidance.subtasks)}: {guidance.subtask}"


def _wrap(draw: Any, text: str, font: Any, width: int) -> list[str]:
    """``text`` in at most `_MAX_LINES` lines of ``width`` pixels, broken between words; the last cut with an ellipsis."""
    if not text:
        return []
    lines: list[str] = []
    words = text.split()
    while words and len(lines) < _MAX_LINES:
        line = words.pop(0)
        while words and draw.textlength(f"{line} {words[0]}", font=font) <= width:
            line = f"{line} {words.pop(0)}"
        lines.append(line)
    if words:  # what did not fit: the last line ends with an ellipsis
        lines[-1] = _fit(draw, f"{lines[-1]} {' '.join(words)}", font, width)
    else:
        lines[-1] = _fit(draw, lines[-1], font, width)  # a single word longer than the line
    return lines


def _fit(draw: Any, text: str, font: Any, width: int) -> str:
    """``text``, cut with an ellipsis to fit ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


# --- encoding ----------------------------------------------------------------------------------

#: libx264 settings: "veryfast" encodes about twice as fast as the default ("medium") at the
#: same size on these frames; "animation" suits rendered, upscaled images (flat areas, sharp edges).
_X264_OPTIONS = {"preset": "veryfast", "tune": "animation"}


def write_video(
    path: Path, frames: Iterable[np.ndarray], fps: float, codec: str = "libx264"
) -> None:
    """Encode uint8 RGB frames (all of one size) to ``path`` (atomically).

    Each frame is copied into the encoder before the next is drawn, so
    ``frames`` may yield one buffer refilled each time.
    """
    import av  # deferred: FFmpeg is only needed when a video is written

    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise DataError(f"{path}: a video needs at least one frame")
    height, width = first.shape[:2]
    # H.264 with 4:2:0 chroma needs even sides; pad by one pixel where odd.
    pad_h, pad_w = height % 2, width % 2
    tmp = path.with_name(f".{path.name}.tmp")
    with av.open(str(tmp), mode="w", format="mp4") as container:
        stream = container.add_stream(codec, rate=max(1, round(fps)))
        stream.width, stream.height = width + pad_w, height + pad_h
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = dict(_X264_OPTIONS)
        for frame in itertools.chain([first], frames):
            if pad_h or pad_w:
                frame = np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)))
            for packet in stream.encode(
                av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            ):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    os.replace(tmp, path)
