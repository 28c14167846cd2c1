"""What ``mpc``'s critic learns from, as recorded data: the subtasks done after each command, and its labels.

``progress.subtasks_done`` (int64) is declared through ``s2kit_dataset_columns``
(re-exported by the plugin module, ``executor.py``), so ``s2kit collect``
records it for every robot: a simulated robot's count of subtasks done after
the frame's command (its progress, read from the observation the command led
to), -1 where the robot cannot say (a real robot's dataset takes an
annotator's marks instead). Nothing here imports torch.
"""

from __future__ import annotations

import numpy as np

from s2kit import hookimpl
from s2kit.core.hookspecs import DatasetColumn
from s2kit.core.types import Observation, RobotSpec

__all__ = ["CANDIDATES", "PROGRESS", "STEPS", "VALUE", "s2kit_dataset_columns", "steps_to_done"]

#: The dataset column: subtasks done after each frame's command (-1 where unknown).
PROGRESS = "progress.subtasks_done"
#: Batch keys: commands until the frame's subtask is done (label); candidate chunks (B, K, chunk, A); their value (B, K).
STEPS, CANDIDATES, VALUE = "steps_to_done", "candidates", "value"


def _subtasks_done(observation: Observation) -> np.ndarray:
    completed = getattr(observation.privileged, "completed", None)
    return np.array([-1 if completed is None else int(completed)], dtype=np.int64)


@hookimpl
def s2kit_dataset_columns(spec: RobotSpec) -> dict[str, DatasetColumn]:
    return {PROGRESS: DatasetColumn({"dtype": "int64", "shape": [1], "names": ["subtasks_done"]}, _subtasks_done, after=True)}


def steps_to_done(done_after: np.ndarray) -> np.ndarray:
    """Per frame, how many commands from it (1: its own) until the subtask it is in is done; -1 where the episode never
    completes it (a failed rollout); NaN for an episode whose count is unknown (-1 anywhere).

    ``done_after`` (T,): subtasks done after each frame's command, never decreasing. The frame's subtask is done by
    the first command at or after it that raises the count.
    """
    done = np.asarray(done_after, dtype=np.int64).reshape(-1)
    if len(done) == 0 or (done < 0).any():
        return np.full(len(done), np.nan, dtype=np.float32)
    raised = done > np.concatenate([[0], done[:-1]])  # this frame's command completed a subtask
    out = np.full(len(done), -1.0, dtype=np.float32)
    upcoming = -1
    for t in range(len(done) - 1, -1, -1):
        if raised[t]:
            upcoming = t
        if upcoming >= 0:
            out[t] = upcoming - t + 1
    return out
