from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from s2kit.core.config import validate_pipeline
from s2kit.core.data import Recorder
from s2kit.core.errors import ConfigError, DataError
from s2kit.core.runtime import build_runtime


def run(registry, executor: dict, subscribers=(), max_steps: int = 200):
    pipeline = validate_pipeline(
        {
            "robot": {"name": "point"},
            "planner": {"name": "waypoints"},
            "executor": executor,
            "runtime": {"max_steps": max_steps},
        }
    )
    rt = build_runtime(pipeline, registry, subscribers)
    return rt, rt.run_episode(0, seed=0)


def test_replaying_a_recording_reproduces_the_episode(registry, tmp_path: Path) -> None:
    original, result = run(registry, {"name": "seek"}, [Recorder(tmp_path)])
    replay, replayed = run(registry, {"name": "replay", "path": str(tmp_path), "chunk": 5})
    assert replayed.status == "done" and replayed.steps == result.steps
    np.testing.assert_allclose(np.array(replay.robot.applied), np.array(original.robot.applied))


def test_past_the_end_it_holds_still(registry, tmp_path: Path) -> None:
    run(registry, {"name": "constant", "value": [0.01, 0, 0, 0, 0, 0, 0.5]}, [Recorder(tmp_path)], max_steps=3)
    replay, _ = run(registry, {"name": "replay", "path": str(tmp_path)}, max_steps=6)
    applied = np.array(replay.robot.applied)
    np.testing.assert_allclose(applied[3:], [[0, 0, 0, 0, 0, 0, 0.5]] * 3)  # no motion, gripper kept


def test_bad_recordings_are_named(registry, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not an s2kit recording"):
        run(registry, {"name": "replay", "path": str(tmp_path)})
    run(registry, {"name": "seek"}, [Recorder(tmp_path)])
    with pytest.raises(ConfigError, match="episode 4 not in"):
        run(registry, {"name": "replay", "path": str(tmp_path), "episode": 4})
