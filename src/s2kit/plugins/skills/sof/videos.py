"""Action-free video for SOF: its frames, their optical flow, and windows of it as training batches.

A source is a LeRobot v3 dataset (one camera's video; its actions, state
and annotations are never read) or a folder of video files (each file one
episode). Every source is checked before anything is cached (`open_sources`):
a dataset without that camera, a folder without videos, an episode shorter
than a window, sources at different frame rates are each one `DataError`.

Frames are letterboxed to the tokenizer's square size and decoded once into
the kit's frame cache (`s2kit.learning.cache`; a dataset shares the file an
executor trained on the same camera and size maps). Their optical flow
(`s2kit.plugins.skills.sof.flow.optical_flow`, between consecutive frames of
an episode) is computed once from those frames and cached beside them as
float16, one row per frame: row t is the flow from frame t to t + 1 (zero on
an episode's last frame, which no window reads).

A window is ``window`` consecutive flow fields of one episode and the frame
they start from; every start that fits in its episode is a sample.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from s2kit.core.errors import DataError
from s2kit.learning.batch import IMAGES
from s2kit.learning.cache import cached_frames
from s2kit.learning.data import Stores, frame_decoder, select_episodes, square_frames
from s2kit.plugins.skills.sof import flow as flow_module
from s2kit.plugins.skills.sof.frames import CAMERA_PREFIX, dataset_camera
from s2kit.plugins.skills.sof.tokenizer import FLOW

__all__ = ["VIDEO_SUFFIXES", "FlowWindows", "Source", "WindowSampler", "load_windows", "open_sources"]

#: Files a folder of videos is read from (any FFmpeg reads), in name order.
VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi", ".webm")
#: Bump when the flow algorithm changes without its parameters changing: cached flow is then recomputed.
FLOW_VERSION = 1
#: The camera name a folder of videos is cached under.
VIDEO_CAMERA = "video"
#: Frame rates of sources within this fraction of each other are one rate.
RATE_TOLERANCE = 0.01


@dataclass(frozen=True)
class Source:
    """One source of action-free video: where, what, its episodes' lengths in frames and its frame rate."""

    path: Path
    kind: str  # "lerobot" or "videos"
    camera: str  # the feature key (dataset) or VIDEO_CAMERA
    lengths: tuple[int, ...]
    fps: float
    files: tuple[Path, ...] = ()  # the video files of a folder, in order

    def record(self) -> dict[str, object]:
        """What a run's record and checkpoint say about it."""
        return {"path": str(self.path), "kind": self.kind, "camera": self.camera, "episodes": len(self.lengths), "frames": sum(self.lengths), "fps": self.fps}


def open_sources(paths: Sequence[str | Path], camera: str, window: int) -> list[Source]:
    """Every source checked and measured before anything is cached (frames are decoded only to count those of a video
    whose container does not record it); one `DataError` naming the first problem.

    ``camera`` is a role (``head``) or a feature key of a dataset's video; each episode must hold a window of
    ``window`` flow fields (``window + 1`` frames)."""
    if not paths:
        raise DataError("no video sources given")
    sources = [_open(Path(p), camera) for p in paths]
    for source in sources:
        short = [(i, n) for i, n in enumerate(source.lengths) if n < window + 1]
        if short:
            i, n = short[0]
            name = source.files[i].name if source.files else f"episode {i}"
            raise DataError(
                f"{source.path}: {name} has {n} frame(s), and a window of {window} flow fields needs {window + 1} "
                f"({len(short)} of its {len(source.lengths)} episodes are that short); choose a shorter window"
            )
    rates = sorted({s.fps for s in sources})
    if rates[-1] > rates[0] * (1 + RATE_TOLERANCE):
        raise DataError(f"the sources have frame rates {', '.join(f'{r:g}' for r in rates)} fps: a window must span one duration, so train on one rate")
    return sources


def _open(path: Path, camera: str) -> Source:
    if (path / "meta" / "info.json").is_file():
        return _dataset(path, camera)
    if path.is_dir():
        return _folder(path)
    if path.is_file():
        raise DataError(f"{path} is a file: give the folder that holds it (a folder of videos is read file by file)")
    raise DataError(f"{path} does not exist")


def _dataset(root: Path, camera: str) -> Source:
    from s2kit.datasets.lerobot import LeRobotDatasetReader

    reader = LeRobotDatasetReader(root)
    key = dataset_camera(reader, camera)
    if reader.num_episodes == 0:
        raise DataError(f"dataset {root} has no episodes")
    lengths = tuple(len(reader.episode(e, keys=[])["frame_index"]) for e in range(reader.num_episodes))  # index columns only
    return Source(root, "lerobot", key, lengths, float(reader.fps))


def _folder(folder: Path) -> Source:
    import av

    files = tuple(sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES and not p.name.startswith(".")))
    if not files:
        raise DataError(f"{folder} holds no video files ({', '.join(VIDEO_SUFFIXES)}) and is not a LeRobot dataset")
    lengths, rates = [], []
    for file in files:
        try:
            with av.open(str(file)) as container:
                stream = container.streams.video[0]
                rate = stream.average_rate or stream.guessed_rate
                count = stream.frames or sum(1 for _ in container.decode(stream))  # a container may not say
        except (av.FFmpegError, IndexError, OSError) as err:
            raise DataError(f"{file} is not a video FFmpeg can read: {err}") from None
        lengths.append(int(count))
        rates.append(float(rate) if rate else 0.0)
    if len({round(r, 3) for r in rates}) > 1:
        raise DataError(f"{folder}: its videos have frame rates {sorted(set(rates))}; one rate per folder")
    if not rates[0]:
        raise DataError(f"{folder}: {files[0].name} has no frame rate")
    return Source(folder, "videos", VIDEO_CAMERA, tuple(lengths), rates[0], files)


# --- frames and flow, cached -----------------------------------------------------------------------


def flow_name() -> str:
    """The cache name of flow: `FLOW_VERSION` and the flow parameters, so that other flow is another cache."""
    parameters = (FLOW_VERSION, flow_module.DEFAULT_LEVELS, flow_module.DEFAULT_ITERATIONS, flow_module.DEFAULT_RADIUS, flow_module.DEFAULT_REGULARIZATION)
    return f"flow{FLOW_VERSION}-" + hashlib.sha256(repr(parameters).encode()).hexdigest()[:8]


def _video_decoder(source: Source, size: int) -> Callable[[], Iterator[np.ndarray]]:
    from s2kit.plugins.skills.sof.frames import read_frames

    def decode() -> Iterator[np.ndarray]:
        for file, length in zip(source.files, source.lengths, strict=True):
            frames = square_frames(read_frames(file).frames, size)  # (T, S, S, 3)
            if len(frames) != length:
                raise DataError(f"{file} gave {len(frames)} frames, its header {length}: it changed while it was read")
            yield frames[:, None].transpose(0, 1, 4, 2, 3)  # (T, 1, 3, S, S)

    return decode


def _flow_decoder(frames: np.ndarray, lengths: Sequence[int]) -> Callable[[], Iterator[np.ndarray]]:
    """Flow of each episode of cached ``frames`` (rows, 1, 3, S, S): (T, 1, 2, S, S) float16, the last row zero."""

    def decode() -> Iterator[np.ndarray]:
        start = 0
        for length in lengths:
            clip = frames[start : start + length, 0].transpose(0, 2, 3, 1)  # (T, S, S, 3)
            out = np.zeros((length, 1, 2, *clip.shape[1:3]), np.float16)
            out[:-1, 0] = flow_module.optical_flow(clip).transpose(0, 3, 1, 2)  # (T - 1, 2, S, S)
            start += length
            yield out

    return decode


@dataclass
class FlowWindows:
    """Windows of flow over the episodes of some sources: what the tokenizer trains and is evaluated on."""

    frames: Stores  # (rows, 1, 3, S, S) uint8
    flows: Stores  # (rows, 1, 2, S, S) float16: row t is the flow from frame t to t + 1
    starts: Tensor  # (windows,) int64: the row each window starts at
    episode: Tensor  # (windows,) int64: its episode, 0 .. episodes - 1 over all sources
    window: int

    def __len__(self) -> int:
        return len(self.starts)

    @property
    def num_episodes(self) -> int:
        return int(self.episode.max()) + 1 if len(self) else 0

    def subset(self, episodes: Tensor) -> FlowWindows:
        """The windows of some episodes (renumbered in order; nothing is copied)."""
        keep, episode = select_episodes(self.episode, episodes)
        return replace(self, starts=self.starts[keep], episode=episode)

    def batch(self, index: Tensor) -> dict[str, Tensor]:
        """Windows ``index``: ``flow`` (B, window, 2, S, S) float16 in pixels and ``images`` (B, 1, 3, S, S) uint8, the
        frame each starts from."""
        starts = self.starts[index]
        rows = (starts[:, None] + torch.arange(self.window)).flatten()  # (batch * window,)
        flow = self.flows[rows].view(len(index), self.window, *self.flows.stores[0].shape[2:])  # (batch, window, 2, S, S)
        return {FLOW: flow, IMAGES: self.frames[starts]}

    def statistics(self, limit: int = 4096, seed: int = 0) -> tuple[float, Tensor]:
        """(RMS flow length in pixels, mean flow per step and pixel (window, 2, S, S)) over up to ``limit`` windows."""
        g = torch.Generator().manual_seed(seed)
        pick = torch.randperm(len(self), generator=g)[:limit]
        total, squares, count = None, 0.0, 0
        for part in pick.split(256):
            flow = self.batch(part)[FLOW].double()
            total = flow.sum(0) if total is None else total + flow.sum(0)
            squares += float((flow**2).sum(2).mean((1, 2, 3)).sum())
            count += len(part)
        assert total is not None
        return max((squares / count) ** 0.5, 1e-3), (total / count).float()


def load_windows(
    sources: Sequence[Source], *, image_size: int, window: int, cache: str = "auto", log: Callable[[str], None] | None = None
) -> FlowWindows:
    """Every window of every source's episodes, frames and flow from the cache (built first where missing)."""
    frame_stores, flow_stores, starts, episodes = [], [], [], []
    offset, episode = 0, 0
    for source in sources:
        shape = (1, 3, image_size, image_size)
        if source.kind == "lerobot":
            from s2kit.datasets.lerobot import LeRobotDatasetReader

            decode = frame_decoder(LeRobotDatasetReader(source.path), [source.camera.removeprefix(CAMERA_PREFIX)], image_size)
        else:
            decode = _video_decoder(source, image_size)
        cameras = [source.camera.removeprefix(CAMERA_PREFIX)]
        frames = cached_frames(source.path, shape, cameras, cache, decode, log)
        if len(frames) != sum(source.lengths):
            raise DataError(f"{source.path} has {sum(source.lengths)} frames but its videos give {len(frames)}: it changed while it was read")
        flows = cached_frames(
            source.path, (1, 2, image_size, image_size), cameras, cache, _flow_decoder(frames, source.lengths), log,
            what=flow_name(), dtype=np.float16,
        )  # fmt: skip
        frame_stores.append(torch.from_numpy(frames))
        flow_stores.append(torch.from_numpy(flows))
        row = offset
        for length in source.lengths:
            count = length - window  # starts t with flows t .. t + window - 1 inside the episode (rows up to length - 2)
            starts.append(torch.arange(row, row + count))
            episodes.append(torch.full((count,), episode))
            row += length
            episode += 1
        offset += len(frames)
    return FlowWindows(Stores(frame_stores), Stores(flow_stores), torch.cat(starts), torch.cat(episodes), window)


class WindowSampler:
    """Random training windows, drawn from its own generator (the kit's `BatchSource`)."""

    def __init__(self, data: FlowWindows, seed: int) -> None:
        self.data = data
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, size: int) -> dict[str, Tensor]:
        return self.data.batch(torch.randint(0, len(self.data), (size,), generator=self.generator))
