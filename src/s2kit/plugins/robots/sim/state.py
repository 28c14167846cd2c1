"""The simulator's privileged state: what the scripted expert, the oracle planner and dataset labels read.

`SimRobot` puts a `SimState` in ``Observation.privileged`` every step; the
ROS bridge sends it to the driver as JSON (``ros/messages.py``). A real
robot has none.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from s2kit.plugins.robots.sim.tasks import Task
from s2kit.plugins.robots.sim.world import Scene

__all__ = ["SimState", "SubtaskFocus", "subtask_focus"]


@dataclass(frozen=True)
class SubtaskFocus:
    """What the current subtask needs next: the object it works on, the item the hand must go to, and whether the hand
    carries the object there (held, on its way to a container or a base)."""

    obj: str
    item: str
    carrying: bool


def subtask_focus(task: Task, completed: int, held: str | None) -> SubtaskFocus | None:
    """What the current subtask needs next (None once the task is done): its object until it is held, then its destination
    (the container or the object to stack on; a pick's object itself, a push's object)."""
    if completed >= len(task.subtasks):
        return None
    sub = task.subtasks[completed]
    obj = sub.object_for(held)
    carrying = held == obj and sub.target is not None and sub.kind in ("put", "stack")
    return SubtaskFocus(obj, sub.target if carrying else obj, carrying)  # type: ignore[arg-type]


@dataclass
class SimState:
    """Privileged simulator state, given to the scripted expert and the oracle planner."""

    scene: Scene
    task: Task
    completed: int
    positions: dict[str, np.ndarray]
    held: str | None
    ee_pos: np.ndarray
    ee_yaw: float
    gripper: float
    table_height: float
    table_x: float
    arm: str
    cameras: dict[str, np.ndarray] = field(default_factory=dict)
    """Per camera role, the (3, 4) matrix taking a homogeneous world point to ``(u w, v w, w)``:
    ``(u, v)`` in [-1, 1] across the image (u left to right, v top to bottom), ``w`` the depth."""
    rollout: Callable[[np.ndarray, str], np.ndarray] | None = field(default=None, repr=False, compare=False)
    """What-if (`SimRobot.rollout`): candidate commands ``(K, W, D)`` in an action space run from this moment, the
    simulation restored after; each candidate's task progress (`SimRobot.progress_potential`). The simulator's
    own robot only: a state sent over ROS has none."""

    @property
    def focus_item(self) -> str | None:
        """The item the current subtask needs the hand at; None once the task is done.

        The subtask's object until it is held, then its destination (the container or the
        object to stack on; a pick's object itself, a push's object).
        """
        focus = subtask_focus(self.task, self.completed, self.held)
        return None if focus is None else focus.item

    @property
    def focus(self) -> np.ndarray:
        """Where the current subtask needs the hand next (`focus_item`), relative to the hand (world frame, metres; (3,)).

        NaN once the task is done. `s2kit collect` records it as ``privileged.focus``: a
        training-time target for learned models (S2's auxiliary loss), never an input.
        """
        item = self.focus_item
        if item is None:
            return np.full(3, np.nan, dtype=np.float32)
        return (np.asarray(self.positions[item], dtype=np.float64) - self.ee_pos).astype(np.float32)

    @property
    def focus_uv(self) -> dict[str, np.ndarray]:
        """Where `focus_item`'s centre is in each camera's image: (u, v) in [-1, 1] (see ``cameras``).

        NaN where it falls outside the frame or behind the camera, or once the task is done
        (occlusion is not checked). `s2kit collect` records it as ``privileged.focus_uv``, a
        training-time target like `focus`.
        """
        item = self.focus_item
        out = {}
        for role, projection in self.cameras.items():
            uv = np.full(2, np.nan, dtype=np.float32)
            if item is not None:
                u, v, w = projection @ np.append(np.asarray(self.positions[item], dtype=np.float64), 1.0)
                if w > 1e-6 and abs(u) <= w and abs(v) <= w:
                    uv[:] = (u / w, v / w)
            out[role] = uv
        return out
