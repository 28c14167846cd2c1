"""Contracts every registered component must keep, checked for each one installed.

Parametrized over the registry (built-ins, installed plugins, and the test
doubles), so a new plugin is checked the moment it is registered.
"""

from __future__ import annotations

import numpy as np
import pytest

from s2kit.core.config import validate_pipeline
from s2kit.core.registry import load_registry
from s2kit.core.runtime import build_runtime
from s2kit.core.types import EE_DELTA, Observation

REGISTRY = load_registry(modules=["tests.doubles"], env={})
COMPONENTS = [c for c in REGISTRY.components() if c.status == "ok"]
ROBOTS = [c.name for c in COMPONENTS if c.kind == "robot"]


def ids(component) -> str:
    return f"{component.kind}:{component.name}"


@pytest.mark.parametrize("component", COMPONENTS, ids=ids)
def test_config_schema_is_documented_and_closed(component) -> None:
    config = component.cls.Config
    schema = config.model_json_schema()
    assert schema.get("additionalProperties") is False, "unknown keys must be errors"
    assert component.summary, "the class docstring's first line is the summary users see"
    assert isinstance(component.cls.details(), dict)


@pytest.mark.parametrize("component", COMPONENTS, ids=ids)
def test_config_round_trips_through_json(component) -> None:
    config = component.cls.Config
    required = [name for name, field in config.model_fields.items() if field.is_required()]
    if required:
        pytest.skip(f"needs {required}")
    default = config()
    assert config.model_validate_json(default.model_dump_json()) == default


@pytest.mark.parametrize("name", ROBOTS)
def test_every_robot_accepts_the_canonical_action_space(name: str) -> None:
    robot = REGISTRY.create("robot", {"name": name})
    try:
        space = robot.spec.action_space(EE_DELTA)
        assert space.dim == 7
        obs = robot.reset(seed=0)
        assert isinstance(obs, Observation) and obs.state.dtype == np.float32
        assert obs.state.shape == (len(robot.spec.state_names),)
        for camera in robot.spec.cameras:
            image = obs.images[camera.role]
            assert image.dtype == np.uint8 and image.shape == (camera.height, camera.width, 3)
    finally:
        robot.close()


@pytest.mark.parametrize("name", ROBOTS)
def test_one_episode_on_each_robot_with_a_still_executor(name: str) -> None:
    # Zero motion in ee_delta, gripper open: every robot must run it safely.
    pipeline = validate_pipeline(
        {
            "robot": {"name": name},
            "planner": {"name": "instruction"},
            "executor": {"name": "constant", "value": [0, 0, 0, 0, 0, 0, 1]},
            "runtime": {"max_steps": 10, "instruction": "stay still"},
        }
    )
    rt = build_runtime(pipeline, REGISTRY)
    try:
        result = rt.run_episode()
        assert result.status in {"done", "max_steps"} and result.steps >= 1
        assert result.clamped_steps == 0
    finally:
        rt.robot.close()

