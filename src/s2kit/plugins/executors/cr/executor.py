"""Executor ``cr``: a trained Continuous Reasoning network driving a robot, its thought codes in every chunk.

A `PolicyExecutor` of the learning kit, as ``s2`` is (checkpoints, torch or
ONNX Runtime, training and export come from there), with S2's inference
option ``rho`` where the network has the evidence budget, and its own:
``zero_codes``, decoding from the prior's mean instead of the thoughts (the
ablation of the thoughts at test time; an exported graph fixes it). Every
chunk's info carries the codes it was decoded from, ``info["codes"]``
(K, c) float32, which ``s2kit serve`` sends with the actions.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import Field

from s2kit import hookimpl
from s2kit.core.interfaces import Executor
from s2kit.plugins.executors.s2.executor import S2Config, S2Executor, S2ExportConfig

if TYPE_CHECKING:
    from s2kit.learning.checkpoints import CheckpointInfo
    from s2kit.plugins.executors.cr.modeling import CrPolicy

__all__ = ["CrConfig", "CrExecutor", "CrExportConfig"]

_ZERO = "Decode from zeroed codes (the prior's mean) instead of the thoughts: the ablation of the thoughts at test time."


class CrConfig(S2Config):
    """Which checkpoint (one is required), how to run it, ``rho`` and ``zero_codes``."""

    zero_codes: bool = Field(False, description=_ZERO)


class CrExportConfig(S2ExportConfig):
    """Options of ``s2kit export`` for cr: ``rho`` and ``zero_codes`` baked into the graph."""

    zero_codes: bool = Field(False, description=_ZERO)


class CrExecutor(S2Executor):
    """Continuous Reasoning: K Gaussian thought codes between what the robot sees and the flow head."""

    name = "cr"
    Config = CrConfig
    ExportConfig = CrExportConfig

    @classmethod
    def policy_class(cls) -> type[CrPolicy]:
        from s2kit.plugins.executors.cr.modeling import CrPolicy

        return CrPolicy

    @classmethod
    def sample_options(cls, info: CheckpointInfo, settings: Mapping[str, Any], where: str) -> dict[str, Any]:
        """S2's ``rho``, and ``zero_codes``."""
        return {**super().sample_options(info, settings, where), "zero_codes": bool(settings.get("zero_codes", False))}

    def shipped_checkpoint(self) -> Path | None:
        return None  # none ships: train one (s2kit train --executor cr)

    def chunk_info(self, outputs: dict[str, np.ndarray]) -> dict[str, Any]:
        from s2kit.plugins.executors.cr.modeling import CODES

        return {**super().chunk_info(outputs), CODES: np.asarray(outputs[CODES][0], dtype=np.float32)}

    @classmethod
    def details(cls) -> dict[str, Any]:
        return {"default checkpoints": "none (executor.checkpoint required)"}


@hookimpl
def s2kit_executors() -> list[type[Executor]]:
    return [CrExecutor]
