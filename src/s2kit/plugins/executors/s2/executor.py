"""Executors ``s2`` and ``baseline``: a trained S2 network driving a robot.

``s2`` reads the goal, the trajectory text and the current subtask and sees
``rho`` of each camera's patches; ``baseline`` is the same network trained
with the budget off and the goal only (the pi0.5-style stand-in). Both are
`PolicyExecutor`s of the learning kit (checkpoints, torch or ONNX Runtime,
inputs, training and export come from there); what is S2's own is here:
``rho`` (a run-time inference option, fixed in an exported graph), the
kept patches in ``info["keep"]`` (role -> (grid, grid) bool) for overlay
videos, the baseline's check that its checkpoint is a baseline network, and
the small checkpoint shipped with s2kit that ``s2`` loads without one.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from pydantic import Field

from s2kit import hookimpl
from s2kit.core.errors import ConfigError
from s2kit.core.interfaces import Executor
from s2kit.learning.executor import PolicyExecutor, PolicyExecutorConfig
from s2kit.learning.export import ExportConfig
from s2kit.plugins.executors.s2.columns import s2kit_dataset_columns  # noqa: F401 - a hook of this plugin
from s2kit.plugins.executors.s2.overlay import s2kit_video_overlays  # noqa: F401 - a hook of this plugin

if TYPE_CHECKING:
    from s2kit.learning.checkpoints import CheckpointInfo
    from s2kit.plugins.executors.s2.modeling import S2Policy

__all__ = ["BaselineExecutor", "S2Config", "S2ExportConfig", "S2Executor", "default_checkpoint", "shipped_robots"]

_RHO = "Keep-fraction of each camera's patches; default: the checkpoint's."


def default_checkpoint(robot: str) -> Path:
    """The small S2 checkpoint shipped inside the package for ``robot`` (rebuilt by scripts/build_default_checkpoint.sh)."""
    return shipped_root() / robot


def shipped_root() -> Path:
    """The folder of the shipped checkpoints, one per robot."""
    return Path(str(resources.files("s2kit.plugins.executors.s2") / "default"))


def shipped_robots() -> list[str]:
    """The robots an S2 checkpoint ships for."""
    root = shipped_root()
    return sorted(p.name for p in root.iterdir() if (p / "config.json").is_file()) if root.is_dir() else []


class S2Config(PolicyExecutorConfig):
    """Which checkpoint (default: the S2 checkpoint s2kit ships for the robot, s2 only), how to run it."""

    rho: float | None = Field(None, gt=0.0, le=1.0, description=_RHO)


class S2ExportConfig(ExportConfig):
    """Options of ``s2kit export`` for S2: the keep-fraction baked into the graph too."""

    rho: float | None = Field(None, gt=0.0, le=1.0, description=_RHO.replace("patches", "patches in the graph"))


class S2Executor(PolicyExecutor):
    """S2: goal + refined guidance, an evidence budget of rho per camera."""

    name = "s2"
    Config = S2Config
    ExportConfig = S2ExportConfig
    #: What the network must have been trained as, for this executor name (None: anything).
    requires: ClassVar[dict[str, Any] | None] = None

    @classmethod
    def policy_class(cls) -> type[S2Policy]:
        from s2kit.plugins.executors.s2.modeling import S2Policy

        return S2Policy

    @classmethod
    def sample_options(cls, info: CheckpointInfo, settings: Mapping[str, Any], where: str) -> dict[str, Any]:
        """``rho``: the setting, else the checkpoint's; only for a network trained with the budget."""
        rho, model = settings.get("rho"), info.model
        if rho is not None and not model.budget:
            raise ConfigError(f"{where} was trained without an evidence budget; rho does not apply")
        return {"rho": rho if rho is not None else (model.rho if model.budget else None)}

    def shipped_checkpoint(self) -> Path | None:
        if self.requires is not None:
            return None
        robot, robots = self.config.robot, shipped_robots()  # type: ignore[attr-defined]
        if robot not in robots:
            which = f"for robot {robot!r}" if robot is not None else "without a robot (--set executor.robot=NAME)"
            shipped = f"ships them for {', '.join(robots)}" if robots else "ships none yet"
            raise ConfigError(
                f"executor {self.name!r}: no trained S2 checkpoint {which}; s2kit {shipped}. Train one "
                "(s2kit train --executor s2 ..., docs/executors.md) and --set executor.checkpoint=RUN"
            )
        return default_checkpoint(robot)

    def check_checkpoint(self, info: CheckpointInfo, path: Path) -> None:
        if self.requires is not None:
            wrong = {k: getattr(info.model, k) for k, v in self.requires.items() if getattr(info.model, k) != v}
            if wrong:
                raise ConfigError(f"executor {self.name!r}: {path} is not a {self.name} network ({wrong}); use executor s2")

    @property
    def rho(self) -> float | None:
        return self.options["rho"]

    def chunk_info(self, outputs: dict[str, np.ndarray]) -> dict[str, Any]:
        model = self.info.model
        if not model.budget:
            return {}
        return {"keep": {role: _mask(outputs["keep_index"][0, i], model.grid) for i, role in enumerate(model.cameras)}}

    @classmethod
    def details(cls) -> dict[str, Any]:
        robots = shipped_robots() if cls.requires is None else []
        return {"default checkpoints": f"{shipped_root()}/<robot> for {', '.join(robots)}" if robots else "none (executor.checkpoint required)"}


class BaselineExecutor(S2Executor):
    """The pi0.5-style stand-in: the same network, every patch, the coarse instruction only."""

    name = "baseline"
    preset = "baseline"  # what `s2kit train --executor baseline` trains, whatever --set variant says
    requires: ClassVar[dict[str, Any] | None] = {"budget": False, "guidance": "goal"}


def _mask(index: np.ndarray, grid: int) -> np.ndarray:
    mask = np.zeros(grid * grid, dtype=bool)
    mask[index] = True
    return mask.reshape(grid, grid)


@hookimpl
def s2kit_executors() -> list[type[Executor]]:
    return [S2Executor, BaselineExecutor]
