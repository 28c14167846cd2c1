"""The safety layer between executor and robot.

Every command passes through `SafetyFilter.filter` before it reaches a robot:
non-finite commands are refused (the runtime then stops the episode with the
robot holding position), every dimension is clamped to the action space's
bounds, and to a maximum per-step change: for an absolute dimension (a
position target) the distance from the previous command, for an incremental
dimension (a delta) the increment itself.

This runs every control step, so it is a handful of numpy operations on
preallocated arrays.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from s2kit.core.errors import S2kitError
from s2kit.core.types import ActionSpace

__all__ = ["SafetyFilter", "UnsafeAction"]


class UnsafeAction(S2kitError):
    """The executor produced a command that must never reach a robot."""


class SafetyFilter:
    """Clamps commands in one action space; stateful across one episode."""

    def __init__(self, space: ActionSpace, state_names: Sequence[str] = (), scale: float = 1.0) -> None:
        if not 0.0 < scale <= 1.0:
            raise ValueError(f"safety scale must be in (0, 1], got {scale}")
        self.space = space
        dim = space.dim
        self._low = np.asarray(space.low, dtype=np.float32)
        self._high = np.asarray(space.high, dtype=np.float32)
        self._absolute = np.asarray(space.absolute_mask, dtype=bool)
        if space.max_step is None:
            self._step = np.full(dim, np.inf, dtype=np.float32)
        else:
            self._step = np.asarray(space.max_step, dtype=np.float32) * np.float32(scale)
        # An absolute dimension starts from the robot's measured value of the
        # same name, where the state has one; otherwise its first command is
        # bounded by the limits alone.
        names = list(state_names)
        self._state_index = [
            names.index(n) if (a and n in names) else -1 for n, a in zip(space.names, self._absolute)
        ]
        # anchor: 0 for incremental dims (the step bounds the delta itself),
        # the previous command for absolute dims (NaN until known).
        self._anchor = np.zeros(dim, dtype=np.float32)
        self._lo = np.empty(dim, dtype=np.float32)
        self._hi = np.empty(dim, dtype=np.float32)
        self.reset()

    def reset(self, state: np.ndarray | None = None) -> None:
        """Start an episode; ``state`` gives absolute dimensions their starting point."""
        self._anchor[:] = 0.0
        self._anchor[self._absolute] = np.nan
        if state is not None:
            for i, j in enumerate(self._state_index):
                if j >= 0 and j < state.shape[0]:
                    self._anchor[i] = state[j]

    def filter(self, action: np.ndarray) -> tuple[np.ndarray, bool]:
        """The safe command for ``action`` and whether it had to be changed.

        Raises `UnsafeAction` on a non-finite or mis-shaped action.
        """
        a = np.asarray(action, dtype=np.float32)
        if a.shape != self._low.shape:
            raise UnsafeAction(
                f"action of shape {a.shape} for space {self.space.name!r}, which needs {self._low.shape}"
            )
        if not np.isfinite(a).all():
            bad = [self.space.names[i] for i in np.flatnonzero(~np.isfinite(a))]
            values = ", ".join(f"{v:.4g}" for v in a.tolist())
            raise UnsafeAction(f"non-finite action in {', '.join(bad)}: [{values}]")
        lo, hi = self._lo, self._hi
        np.subtract(self._anchor, self._step, out=lo)
        np.add(self._anchor, self._step, out=hi)
        # NaN anchors (absolute dim, nothing known yet) leave only the bounds.
        np.fmax(lo, self._low, out=lo)
        np.fmin(hi, self._high, out=hi)
        out = np.minimum(np.maximum(a, lo), hi)
        # hi <= high always; an anchor far below the limits (a robot that
        # started out of bounds) can leave hi < low: the limits win.
        np.maximum(out, self._low, out=out)
        np.copyto(self._anchor, out, where=self._absolute)
        return out, not np.array_equal(out, a)
