"""The dataset columns S2 trains its research switches on (``model.focus_*``, ``keep_prior``).

They are privileged simulator labels, recorded by ``s2kit collect`` where the
robot's privileged state has them: ``privileged.focus`` (where the subtask
needs the hand, relative to it, metres) and ``privileged.focus_uv`` (where
that item is in each camera's image, (u, v) in [-1, 1]). A robot without
privileged state (a real one) records NaN. They are training-time targets
only (S2's auxiliary losses): the network never reads them as inputs.

S2 declares them through ``s2kit_dataset_columns`` (re-exported by the
plugin module, ``executor.py``), so the dataset writer records them without
knowing S2.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from s2kit import hookimpl
from s2kit.core.hookspecs import DatasetColumn
from s2kit.core.types import Observation, RobotSpec

__all__ = ["FOCUS", "FOCUS_UV", "s2kit_dataset_columns"]

FOCUS = "privileged.focus"
FOCUS_UV = "privileged.focus_uv"

_UNKNOWN_UV = np.full(2, np.nan, dtype=np.float32)


def _focus(observation: Observation) -> np.ndarray:
    """The privileged state's ``focus`` (3,), NaN where it has none."""
    focus = getattr(observation.privileged, "focus", None)
    if focus is None:
        return np.full(3, np.nan, dtype=np.float32)
    return np.asarray(focus, dtype=np.float32).reshape(3)


def _focus_uv(roles: list[str]) -> Callable[[Observation], np.ndarray]:
    def read(observation: Observation) -> np.ndarray:
        """The privileged state's ``focus_uv`` per camera, (u, v) each, NaN where unknown."""
        uv = getattr(observation.privileged, "focus_uv", None) or {}
        return np.concatenate([np.asarray(uv.get(role, _UNKNOWN_UV), dtype=np.float32) for role in roles])

    return read


@hookimpl
def s2kit_dataset_columns(spec: RobotSpec) -> dict[str, DatasetColumn]:
    roles = [cam.role for cam in spec.cameras]
    uv_names = [f"{role}.{axis}" for role in roles for axis in "uv"]
    return {
        FOCUS: DatasetColumn({"dtype": "float32", "shape": [3], "names": ["dx", "dy", "dz"]}, _focus),
        FOCUS_UV: DatasetColumn({"dtype": "float32", "shape": [len(uv_names)], "names": uv_names}, _focus_uv(roles)),
    }
