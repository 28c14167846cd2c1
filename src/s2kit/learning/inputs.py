"""What training and inference feed a policy alike: the state it reads, normalization, square images.

A policy sees the same inputs in ``s2kit train`` and in the executor: the
chosen state entries (angles as sine and cosine, `StateEncoder`), normalized
by the statistics of its training data (`Normalizer`, saved in every
checkpoint), and each camera's image letterboxed to a square (`square_frames`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from s2kit.core.errors import DataError
from s2kit.core.types import EE_STATE
from s2kit.datasets.images import resize

__all__ = ["EE_STATE", "Normalizer", "StateEncoder", "camera_images", "square_frames"]


def square_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """(T, H, W, 3) uint8 frames as (T, size, size, 3): scaled so the longer side fits, then centred on black."""
    T, H, W = frames.shape[:3]
    if H == W == size:
        return frames
    out = np.zeros((T, size, size, 3), dtype=np.uint8)
    for t in range(T):
        image = resize(frames[t], size)
        h, w = image.shape[:2]
        y, x = (size - h) // 2, (size - w) // 2
        out[t, y : y + h, x : x + w] = image
    return out


def camera_images(images: Mapping[str, np.ndarray], cameras: Sequence[str], size: int) -> np.ndarray:
    """One observation's images (role -> H x W x 3 uint8) as a policy's ``images`` input: (1, cameras, 3, size, size)
    uint8, each letterboxed (`square_frames`), in the order of ``cameras``."""
    stacked = np.stack([square_frames(images[c][None], size)[0] for c in cameras])  # (cameras, S, S, 3)
    return stacked.transpose(0, 3, 1, 2)[None]


class StateEncoder:
    """The model's state input from a robot's state vector: the chosen entries, angles as (sin, cos).

    The hand's roll and yaw sit at +-pi when it points down, so they are fed as
    sine and cosine: a wrap from pi to -pi is no jump. ``names`` are the
    chosen entries of the robot's state, in order; ``dim`` the input size.
    """

    def __init__(self, robot_names: Sequence[str], wanted: Sequence[str] | None) -> None:
        robot_names = list(robot_names)
        names = robot_names if wanted is None else list(wanted)
        missing = [n for n in names if n not in robot_names]
        if missing:
            raise DataError(f"the state has no entries {missing} (it has {robot_names})")
        self.names = names
        self.index = np.array([robot_names.index(n) for n in names], dtype=np.int64)
        self.angle = np.array([n.endswith(("_roll", "_pitch", "_yaw")) for n in names])
        self.dim = len(names) + int(self.angle.sum())

    def __call__(self, state: np.ndarray) -> np.ndarray:
        x = np.asarray(state, dtype=np.float32)[..., self.index]
        angles = x[..., self.angle]
        return np.concatenate([x[..., ~self.angle], np.sin(angles), np.cos(angles)], axis=-1).astype(np.float32)


@dataclass
class Normalizer:
    """Per-dimension mean and standard deviation of the state and the actions."""

    state_mean: np.ndarray
    state_std: np.ndarray
    action_mean: np.ndarray
    action_std: np.ndarray

    @classmethod
    def fit(cls, state: np.ndarray, actions: np.ndarray, state_floor: float = 1e-2, action_floor: float = 1e-3) -> Normalizer:
        """Mean and std per dimension, the std no smaller than a floor.

        A dimension that barely moves (HSR's hand x and y in its base frame, which the
        base's motion takes over; a wrist roll increment of 0.3 mrad) is IK jitter:
        divided by its own tiny std it would become inputs and targets of full size
        made of noise. Floors of 1 cm (or 0.01 of a sine) for the state and 1 mm
        (1 mrad) per step for actions keep such dimensions small.
        """
        return cls(
            state.mean(0).astype(np.float32), np.maximum(state.std(0), state_floor).astype(np.float32),
            actions.mean(0).astype(np.float32), np.maximum(actions.std(0), action_floor).astype(np.float32),
        )  # fmt: skip

    def to_dict(self) -> dict[str, list[float]]:
        return {k: [float(v) for v in getattr(self, k)] for k in ("state_mean", "state_std", "action_mean", "action_std")}

    @classmethod
    def from_dict(cls, data: dict[str, list[float]]) -> Normalizer:
        return cls(**{k: np.asarray(data[k], dtype=np.float32) for k in ("state_mean", "state_std", "action_mean", "action_std")})

    def state(self, x: np.ndarray) -> np.ndarray:
        return (x - self.state_mean) / self.state_std

    def action(self, x: np.ndarray) -> np.ndarray:
        return (x - self.action_mean) / self.action_std

    def unaction(self, x: np.ndarray) -> np.ndarray:
        return x * self.action_std + self.action_mean
