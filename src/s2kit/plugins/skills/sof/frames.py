"""Frames of action-free video, whatever holds them: a LeRobot dataset's camera, a video file, a folder of images."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from s2kit.core.errors import DataError

if TYPE_CHECKING:
    from s2kit.datasets.lerobot import LeRobotDatasetReader

__all__ = ["IMAGE_SUFFIXES", "Clip", "dataset_camera", "read_frames"]

#: Still images a folder of frames may hold (read in name order).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
#: The frame rate assumed for a folder of images.
FOLDER_FPS = 10.0
#: A dataset camera named by its role is stored under this prefix.
CAMERA_PREFIX = "observation.images."


@dataclass(frozen=True)
class Clip:
    """uint8 RGB frames (T, H, W, 3), their rate, and where they came from (for messages)."""

    frames: np.ndarray
    fps: float
    name: str


def read_frames(source: str | Path, *, episode: int | None = None, camera: str | None = None) -> Clip:
    """The frames of ``source``: a LeRobot v3 dataset (``episode``, default 0, of ``camera``, default
    ``head``: a role or a feature key), a video file, or a folder of images.

    ``episode`` and ``camera`` name a dataset's frames; for a file or a folder
    they are an error. Anything missing or unreadable is a `DataError` naming it.
    """
    source = Path(source)
    if (source / "meta" / "info.json").is_file():
        return _dataset_frames(source, 0 if episode is None else episode, camera or "head")
    if episode is not None or camera is not None:
        raise DataError(f"{source} is not a LeRobot dataset (no meta/info.json): episode and camera name a dataset's frames")
    if source.is_file():
        return _video_frames(source)
    if source.is_dir():
        return _folder_frames(source)
    raise DataError(f"{source} does not exist")


def _dataset_frames(root: Path, episode: int, camera: str) -> Clip:
    from s2kit.datasets.lerobot import LeRobotDatasetReader

    reader = LeRobotDatasetReader(root)
    key = dataset_camera(reader, camera)
    if not 0 <= episode < reader.num_episodes:
        raise DataError(f"{root} has no episode {episode} (it has {reader.num_episodes})")
    frames = np.asarray(reader.episode(episode, keys=[key])[key])
    return Clip(frames, float(reader.fps), f"{root} episode {episode} {key.removeprefix(CAMERA_PREFIX)}")


def dataset_camera(reader: LeRobotDatasetReader, camera: str) -> str:
    """The feature key of a dataset's camera named by its role (``head``) or its key; a `DataError` naming the
    cameras it has where it has no such video."""
    cameras = [key for key, ft in reader.features.items() if ft["dtype"] in ("video", "image")]
    key = camera if camera in cameras else CAMERA_PREFIX + camera
    if key not in cameras:
        roles = [k.removeprefix(CAMERA_PREFIX) for k in cameras]
        raise DataError(f"{reader.root} has no camera {camera!r} (it has {', '.join(roles) or 'none'})")
    return key


def _video_frames(path: Path) -> Clip:
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    except (av.FFmpegError, IndexError, OSError) as err:
        raise DataError(f"{path} is not a video FFmpeg can read: {err}") from None
    if not frames:
        raise DataError(f"{path} holds no video frames")
    return Clip(np.stack(frames), float(rate) if rate else FOLDER_FPS, str(path))


def _folder_frames(folder: Path) -> Clip:
    from s2kit.datasets.images import read_image

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)}) and is not a LeRobot dataset")
    frames = [read_image(p) for p in files]
    for path, frame in zip(files, frames):
        if frame.shape != frames[0].shape:
            raise DataError(f"{path} is {frame.shape[1]}x{frame.shape[0]}, {files[0].name} is {frames[0].shape[1]}x{frames[0].shape[0]}: frames must be one size")
    return Clip(np.stack(frames), FOLDER_FPS, str(folder))
