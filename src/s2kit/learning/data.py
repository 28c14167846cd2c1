"""Training data for S2: LeRobot datasets read into memory, then batches of frames.

Each sample is one frame: every camera's image, the selected state entries,
the next ``chunk`` actions of its episode (steps past the episode's end are
masked out of the loss), and its three texts (goal = the LeRobot task,
trajectory, current subtask from the ``annotation.*`` columns; see
`s2kit.workflows.collect`), embedded once per distinct string.

Subtask-done labels (the executor's non-privileged progress signal) come from
the subtask boundaries: the runtime asks the executor whether the subtask its
guidance names is finished, on the observation it is about to act on. So a
*stale* sample pairs a frame from the first ``done_window`` frames after a
boundary with the subtask that just ended, labelled done (its actions carry no
loss: no demonstration acts on stale guidance); every ordinary sample is
labelled not done.

Where a dataset has ``privileged.focus`` (simulated collections), each sample
also carries it, in decimetres, as the target of the model's auxiliary focus
head (NaN, and no loss, where it is unknown); with ``privileged.focus_uv``,
where that item is in each camera's (squared) image, the target of the focus
map.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from s2kit.plugins.executors.s2.columns import FOCUS as FOCUS_FEATURE
from s2kit.plugins.executors.s2.columns import FOCUS_UV as FOCUS_UV_FEATURE
from s2kit.datasets.lerobot import LeRobotDatasetReader
from s2kit.core.errors import DataError
from s2kit.learning.inputs import EE_STATE, Normalizer, StateEncoder, square_frames
from s2kit.plugins.executors.s2.modeling import (
    ACTION_MASK,
    ACTIONS,
    DONE,
    FOCUS,
    FOCUS_UV,
    IMAGES,
    STATE,
    TEXT,
)

__all__ = ["EE_STATE", "FrameData", "Normalizer", "StateEncoder", "load_frames", "square_frames"]

TRAJECTORY, SUBTASK, SUBTASK_INDEX = "annotation.trajectory", "annotation.subtask", "annotation.subtask_index"
#: ``privileged.focus`` is in metres; the focus head predicts decimetres, values of order one.
FOCUS_SCALE = 10.0


@dataclass
class FrameData:
    """Every frame of some episodes, in memory, ready to be batched."""

    images: Tensor  # (frames, cameras, 3, S, S) uint8
    state: Tensor  # (frames, state) float32, encoded (`StateEncoder`), not normalized
    actions: Tensor  # (frames, action) float32, raw
    episode: Tensor  # (frames,) int64: which episode (0..episodes-1 over all datasets)
    end: Tensor  # (frames,) int64: one past the last frame of its episode
    text: Tensor  # (frames, 3) int64 into ``strings``: goal, trajectory, subtask
    stale: Tensor  # (frames,) int64 into ``strings``: the subtask that just ended, or -1
    focus: Tensor  # (frames, 3) float32: privileged.focus in metres, NaN where unknown
    focus_uv: Tensor  # (frames, cameras, 2) float32: privileged.focus_uv in the squared images, NaN where unknown
    strings: list[str]
    state_names: list[str]
    action_names: list[str]
    fps: float
    datasets: list[dict[str, object]]  # what each dataset is (for a run's record): path, robot, episodes, frames

    def __len__(self) -> int:
        return len(self.images)

    @property
    def num_episodes(self) -> int:
        return int(self.episode.max()) + 1 if len(self) else 0

    def subset(self, episodes: Tensor) -> FrameData:
        """The frames of some episodes (the episode and end indices are re-based)."""
        keep = torch.isin(self.episode, episodes).nonzero().squeeze(1)
        if not len(keep):
            raise DataError("no frames selected")
        remap = torch.full((self.num_episodes,), -1, dtype=torch.long)
        remap[episodes.sort().values] = torch.arange(len(episodes))
        new_episode = remap[self.episode[keep]]  # increasing along the frames, like the old ids
        new_end = torch.cumsum(torch.bincount(new_episode, minlength=len(episodes)), 0)[new_episode]
        return FrameData(
            self.images[keep], self.state[keep], self.actions[keep], new_episode, new_end,
            self.text[keep], self.stale[keep], self.focus[keep], self.focus_uv[keep], self.strings, self.state_names, self.action_names, self.fps, self.datasets,
        )  # fmt: skip

    def batch(
        self,
        index: Tensor,
        *,
        chunk: int,
        embeddings: Tensor,
        norm: Normalizer,
        stale: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """The samples at frame ``index``; where ``stale`` is True, the stale-guidance version."""
        steps = index[:, None] + torch.arange(chunk)[None]  # (batch, chunk)
        mask = steps < self.end[index][:, None]
        steps = torch.minimum(steps, self.end[index][:, None] - 1)
        actions = norm.action(self.actions[steps].numpy())
        text = self.text[index].clone()  # (batch, 3)
        done = torch.zeros(len(index))
        focus = self.focus[index] * FOCUS_SCALE
        focus_uv = self.focus_uv[index].clone()
        if stale is not None and stale.any():
            text[stale, 2] = self.stale[index[stale]]
            mask[stale] = False  # no demonstration acts on stale guidance
            done[stale] = 1.0
            focus[stale] = float("nan")  # the frame's focus belongs to the next subtask, not the text's
            focus_uv[stale] = float("nan")
        return {
            IMAGES: self.images[index],
            STATE: torch.from_numpy(norm.state(self.state[index].numpy())),
            TEXT: embeddings[text],  # (batch, 3, text_dim)
            ACTIONS: torch.from_numpy(actions),
            ACTION_MASK: mask,
            DONE: done,
            FOCUS: focus,
            FOCUS_UV: focus_uv,
        }


def _annotations(episode: dict, length: int) -> tuple[list[str], list[str], np.ndarray]:
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


def load_frames(
    roots: Sequence[str | Path],
    *,
    cameras: Sequence[str],
    image_size: int,
    state: Sequence[str] | None,
    done_window: int,
) -> FrameData:
    """Read every episode of every dataset into memory, checking that they agree.

    ``state`` names the state entries to keep (None: all, which then must have
    the same names in every dataset); ``state_names`` of the result are those entries. Raises `DataError` naming the dataset
    and what is wrong.
    """
    images, states, actions, episodes, ends, texts, stales, focuses, focus_uvs = [], [], [], [], [], [], [], [], []
    strings: dict[str, int] = {}
    action_names: list[str] | None = None
    state_names: list[str] | None = None
    fps: float | None = None
    total = 0

    def sid(s: str) -> int:
        return strings.setdefault(s, len(strings))

    readers = [LeRobotDatasetReader(root) for root in roots]
    for root, reader in zip(roots, readers, strict=True):
        features = reader.features
        for key in ("observation.state", "action", *(f"observation.images.{c}" for c in cameras)):
            if key not in features:
                raise DataError(f"dataset {root} has no {key!r} (it has {sorted(features)})")
        names = list(features["observation.state"].get("names") or [f"state_{i}" for i in range(features["observation.state"]["shape"][0])])
        encoder = StateEncoder(names, state)
        kept_names = encoder.names
        a_names = list(features["action"].get("names") or [f"action_{i}" for i in range(features["action"]["shape"][0])])
        if action_names is None:
            action_names, state_names, fps = a_names, kept_names, float(reader.fps)
        elif a_names != action_names:
            raise DataError(f"dataset {root} has actions {a_names}, the first dataset {action_names}: one action space per run")
        elif kept_names != state_names:
            raise DataError(f"dataset {root} has state {kept_names}, the first dataset {state_names}: select common entries with --set state=ee")
        if reader.num_episodes == 0:
            raise DataError(f"dataset {root} has no episodes")
        keys = ["observation.state", "action", TRAJECTORY, SUBTASK, SUBTASK_INDEX, FOCUS_FEATURE, FOCUS_UV_FEATURE, *(f"observation.images.{c}" for c in cameras)]
        uv_names = list(features.get(FOCUS_UV_FEATURE, {}).get("names") or [])
        uv_columns = [[uv_names.index(f"{c}.{a}") if f"{c}.{a}" in uv_names else -1 for a in "uv"] for c in cameras]
        shapes = [features[f"observation.images.{c}"]["shape"][:2] for c in cameras]
        uv_scale = np.array([[w / max(h, w), h / max(h, w)] for h, w in shapes], dtype=np.float32)  # square_frames letterboxes
        for e in range(reader.num_episodes):
            ep = reader.episode(e, keys=keys)
            length = len(ep["action"])
            if length == 0:
                continue
            views = [square_frames(np.asarray(ep[f"observation.images.{c}"]), image_size) for c in cameras]  # each (T, S, S, 3)
            images.append(torch.from_numpy(np.stack(views, axis=1)).permute(0, 1, 4, 2, 3).contiguous())  # (T, cameras, 3, S, S)
            st = encoder(np.asarray(ep["observation.state"], dtype=np.float32))
            ac = np.asarray(ep["action"], dtype=np.float32)
            if not (np.isfinite(st).all() and np.isfinite(ac).all()):
                raise DataError(f"dataset {root}, episode {e}: non-finite state or action values")
            states.append(st)
            actions.append(ac)
            traj, sub, sub_index = _annotations(ep, length)
            goal = [str(t) for t in ep["task"]]
            texts.append(np.array([[sid(g), sid(t), sid(s)] for g, t, s in zip(goal, traj, sub, strict=True)], dtype=np.int64))
            stale = np.full(length, -1, dtype=np.int64)
            for b in np.flatnonzero(np.diff(sub_index)) + 1:  # first frame of each new subtask
                stale[b : b + done_window] = sid(sub[b - 1])
            stales.append(stale)
            focus = np.asarray(ep[FOCUS_FEATURE], dtype=np.float32).reshape(length, 3) if FOCUS_FEATURE in ep else np.full((length, 3), np.nan, np.float32)
            if np.isinf(focus).any():
                raise DataError(f"dataset {root}, episode {e}: infinite {FOCUS_FEATURE} values")
            focuses.append(focus)
            uv = np.full((length, len(cameras), 2), np.nan, np.float32)
            if FOCUS_UV_FEATURE in ep:
                recorded = np.asarray(ep[FOCUS_UV_FEATURE], dtype=np.float32).reshape(length, -1)
                for i, columns in enumerate(uv_columns):
                    if min(columns) >= 0:
                        uv[:, i] = recorded[:, columns] * uv_scale[i]
            if np.isinf(uv).any():
                raise DataError(f"dataset {root}, episode {e}: infinite {FOCUS_UV_FEATURE} values")
            focus_uvs.append(uv)
            n_ep = len(ends)
            episodes.append(np.full(length, n_ep, dtype=np.int64))
            ends.append(np.full(length, total + length, dtype=np.int64))
            total += length
    if not images:
        raise DataError(f"no frames in {', '.join(map(str, roots))}")
    assert action_names is not None and state_names is not None and fps is not None
    return FrameData(
        torch.cat(images), torch.from_numpy(np.concatenate(states)), torch.from_numpy(np.concatenate(actions)),
        torch.from_numpy(np.concatenate(episodes)), torch.from_numpy(np.concatenate(ends)),
        torch.from_numpy(np.concatenate(texts)), torch.from_numpy(np.concatenate(stales)), torch.from_numpy(np.concatenate(focuses)),
        torch.from_numpy(np.concatenate(focus_uvs)), list(strings), state_names, action_names, fps,
        [{"path": str(root), "robot_type": r.info.get("robot_type"), "episodes": r.num_episodes, "frames": r.num_frames} for root, r in zip(roots, readers, strict=True)],
    )  # fmt: skip
