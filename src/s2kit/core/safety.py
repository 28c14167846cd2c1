"""The safety layer between executor and robot.

Every command reaches a robot through `SafetyFilter.filter_chunk`:
non-finite commands are refused (the runtime then stops the episode with the
robot holding position), every dimension is clamped to the action space's
bounds, and to a maximum per-step change: for an absolute dimension (a
position target) the distance from the previous command, for an incremental
dimension (a delta) the increment itself.

The filter works on the part of a chunk about to be executed, once, when the
chunk arrives, rather than on every step: the per-step cost of the control
loop stays near zero, and a chunk with a non-finite action anywhere in it is
refused before any of it moves the robot. The rate limit of absolute
dimensions is a recurrence over the chunk's rows, started from the last
command actually executed (which the runtime passes in), so dropping the
unexecuted rest of a chunk never skews it.
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
    """Clamps commands in one action space."""

    def __init__(self, space: ActionSpace, state_names: Sequence[str] = (), scale: float = 1.0) -> None:
        if not 0.0 < scale <= 1.0:
            raise ValueError(f"safety scale must be in (0, 1], got {scale}")
        self.space = space
        absolute = np.asarray(space.absolute_mask, dtype=bool)
        low = np.asarray(space.low, dtype=np.float32)
        high = np.asarray(space.high, dtype=np.float32)
        if space.max_step is None:
            step = np.full(space.dim, np.inf, dtype=np.float32)
        else:
            step = np.asarray(space.max_step, dtype=np.float32) * np.float32(scale)
        # One vectorized clamp serves every dimension: increments are bounded
        # by the limits and the step, position targets by the limits (their
        # step limit depends on the previous command; see _rate_limit).
        self._lo = np.where(absolute, low, np.maximum(low, -step)).astype(np.float32)
        self._hi = np.where(absolute, high, np.minimum(high, step)).astype(np.float32)
        self._abs = np.flatnonzero(absolute & np.isfinite(step))
        self._abs_low = low[self._abs].tolist()
        self._abs_high = high[self._abs].tolist()
        self._abs_step = step[self._abs].tolist()
        # An absolute dimension starts from the robot's measured value of the
        # same name, where the state has one; otherwise its first command is
        # bounded by the limits alone.
        names = list(state_names)
        self._state_index = [names.index(space.names[i]) if space.names[i] in names else -1 for i in self._abs]
        self._start: list[float | None] = [None] * len(self._abs)

    @property
    def dim(self) -> int:
        return self.space.dim

    def reset(self, state: np.ndarray | None = None) -> None:
        """Start an episode; ``state`` gives absolute dimensions their starting point."""
        self._start = [
            float(state[j]) if state is not None and 0 <= j < state.shape[0] else None for j in self._state_index
        ]

    def filter_chunk(
        self, actions: np.ndarray, previous: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Safe commands for ``actions`` ``(N, D)``, executed in order after ``previous``.

        ``previous`` is the last command executed this episode (None before
        the first). Returns the commands and a per-row flag saying which had
        to be changed. Raises `UnsafeAction` on a non-finite or mis-shaped
        action, naming the row and the dimensions.
        """
        a = np.asarray(actions, dtype=np.float32)
        if a.ndim != 2 or a.shape[1] != self.dim:
            raise UnsafeAction(f"actions of shape {a.shape} for space {self.space.name!r}, which needs (N, {self.dim})")
        finite = np.isfinite(a)
        if not finite.all():
            row = int(np.flatnonzero(~finite.all(axis=1))[0])
            bad = [self.space.names[i] for i in np.flatnonzero(~finite[row])]
            values = ", ".join(f"{v:.4g}" for v in a[row].tolist())
            raise UnsafeAction(f"non-finite action (chunk row {row}) in {', '.join(bad)}: [{values}]")
        out = np.minimum(np.maximum(a, self._lo), self._hi)
        if self._abs.size:
            self._rate_limit(out, previous)
        return out, (out != a).any(axis=1)

    def filter(self, action: np.ndarray, previous: np.ndarray | None = None) -> tuple[np.ndarray, bool]:
        """One command: `filter_chunk` of a single row."""
        out, changed = self.filter_chunk(np.asarray(action, dtype=np.float32)[None], previous)
        return out[0], bool(changed[0])

    def _rate_limit(self, out: np.ndarray, previous: np.ndarray | None) -> None:
        # A recurrence over rows (each bound depends on the previous command),
        # so it runs on Python floats: for chunks of tens of rows that is
        # cheaper than a numpy call per row.
        cols = out[:, self._abs].tolist()
        prev: list[float | None] = self._start if previous is None else previous[self._abs].tolist()
        prev = list(prev)
        for row in cols:
            for k, value in enumerate(row):
                low, high, p = self._abs_low[k], self._abs_high[k], prev[k]
                if p is not None:
                    value = min(max(value, p - self._abs_step[k]), p + self._abs_step[k])
                # The limits win over the step (a robot that started out of bounds).
                value = min(max(value, low), high)
                row[k] = prev[k] = value
        out[:, self._abs] = cols
