"""The small core: roles, data contracts, plugins, configuration, the control loop.

Nothing here imports torch, a simulator or a plugin, so a robot-side process that
only needs the contracts and the loop stays light.
"""

from __future__ import annotations

from s2kit.core.config import PipelineConfig, PluginConfig, RuntimeConfig
from s2kit.core.errors import (
    ConfigError,
    DataError,
    PluginConflictError,
    PluginError,
    RobotError,
    S2kitError,
    UnknownPluginError,
)
from s2kit.core.hookspecs import hookimpl
from s2kit.core.interfaces import Executor, Planner, Robot, Skill, Subscriber
from s2kit.core.registry import Registry, get_registry, load_registry
from s2kit.core.runtime import Runtime, build_runtime
from s2kit.core.safety import SafetyFilter, UnsafeAction
from s2kit.core.types import (
    EE_DELTA,
    ActionChunk,
    ActionSpace,
    CameraSpec,
    EpisodeInfo,
    EpisodeResult,
    Guidance,
    JointSpec,
    Observation,
    RobotSpec,
    RobotStatus,
    Step,
    ee_delta_space,
)

__all__ = [
    "EE_DELTA",
    "ActionChunk",
    "ActionSpace",
    "CameraSpec",
    "ConfigError",
    "DataError",
    "EpisodeInfo",
    "EpisodeResult",
    "Executor",
    "Guidance",
    "JointSpec",
    "Observation",
    "PipelineConfig",
    "Planner",
    "PluginConfig",
    "PluginConflictError",
    "PluginError",
    "Registry",
    "Robot",
    "RobotError",
    "RobotSpec",
    "RobotStatus",
    "Runtime",
    "RuntimeConfig",
    "S2kitError",
    "SafetyFilter",
    "Skill",
    "Step",
    "Subscriber",
    "UnknownPluginError",
    "UnsafeAction",
    "build_runtime",
    "ee_delta_space",
    "get_registry",
    "hookimpl",
    "load_registry",
]
