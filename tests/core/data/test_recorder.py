from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from s2kit.core.config import validate_pipeline
from s2kit.core.data import FORMAT, Recorder, list_episodes, read_episode
from s2kit.core.errors import DataError
from s2kit.core.runtime import build_runtime
from s2kit.core.types import RobotSpec


def record(registry, root: Path, episodes: int = 2, **executor) -> list:
    pipeline = validate_pipeline(
        {
            "robot": {"name": "point"},
            "planner": {"name": "waypoints"},
            "executor": {"name": "seek", **executor},
            "runtime": {"episodes": episodes, "max_steps": 200},
        }
    )
    rt = build_runtime(pipeline, registry, [Recorder(root)])
    return rt.run()


def test_recording_round_trips_every_step(registry, tmp_path: Path) -> None:
    results = record(registry, tmp_path)
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["format"] == FORMAT and meta["action_space"] == "ee_delta" and meta["robot"]["name"] == "point"
    assert meta["pipeline"]["executor"]["name"] == "seek"
    entries = list_episodes(tmp_path)
    assert [e["length"] for e in entries] == [r.steps for r in results]
    assert [e["status"] for e in entries] == ["done", "done"]
    ep = read_episode(tmp_path / entries[0]["file"])
    n = results[0].steps
    assert ep["action"].shape == (n, 7) and ep["state"].shape == (n, 4) and ep["image.head"].shape == (n, 16, 16, 3)
    assert ep["image.head"].dtype == np.uint8
    # the guidance each step saw: subtasks advance 0 → 1 → 2 and the goal is kept
    currents = [ep["guidance"][i].current for i in ep["guidance_index"]]
    assert currents[0] == 0 and currents[-1] == 2 and currents == sorted(currents)
    assert {g.goal for g in ep["guidance"]} == {results[0].instruction}
    # the state after each command is the running sum of the commands (the point robot integrates)
    np.testing.assert_allclose(np.cumsum(ep["action"][:, :3], axis=0), ep["state"][:, :3], atol=1e-5)


def test_appending_continues_the_numbering(registry, tmp_path: Path) -> None:
    record(registry, tmp_path, episodes=1)
    record(registry, tmp_path, episodes=2)
    assert [e["file"] for e in list_episodes(tmp_path)] == [f"episode_{i:06d}.npz" for i in range(3)]


def test_corrupt_or_missing_data_gets_a_clear_error(registry, tmp_path: Path) -> None:
    record(registry, tmp_path, episodes=1)
    path = tmp_path / "episode_000000.npz"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataError, match="episode_000000.npz is corrupt"):
        read_episode(path)
    with pytest.raises(DataError, match="does not exist"):
        read_episode(tmp_path / "episode_000009.npz")
    (tmp_path / "episodes.jsonl").write_text('{"file": "a.npz", "length": 3}\nnot json\n')
    with pytest.raises(DataError, match="line 2 is not a valid episode entry"):
        list_episodes(tmp_path)
    with pytest.raises(DataError, match="not an s2kit recording"):
        list_episodes(tmp_path / "nothing")


def test_a_leftover_temporary_file_is_not_an_episode(registry, tmp_path: Path) -> None:
    record(registry, tmp_path, episodes=1)
    (tmp_path / ".episode_000001.npz.tmp").write_bytes(b"half written")
    assert len(list_episodes(tmp_path)) == 1


def test_only_episodes_of_the_same_robot_may_be_appended(registry, tmp_path: Path) -> None:
    from s2kit.core.data.recorder import check_recording
    from s2kit.core.types import EpisodeInfo

    record(registry, tmp_path, episodes=1)
    spec = RobotSpec.model_validate(json.loads((tmp_path / "meta.json").read_text())["robot"])
    check_recording(tmp_path, spec, "ee_delta")  # the robot that made it
    check_recording(tmp_path / "new", spec.model_copy(update={"name": "other"}), "ee_delta")  # a new recording
    with pytest.raises(DataError, match="is a recording of robot 'point': episodes of robot 'txg2' cannot be appended"):
        check_recording(tmp_path, spec.model_copy(update={"name": "txg2"}), "ee_delta")
    with pytest.raises(DataError, match="its spec's 'control_hz' does not match"):
        check_recording(tmp_path, spec.model_copy(update={"control_hz": 7.0}), "ee_delta")
    with pytest.raises(DataError, match="in action space 'ee_delta', not 'joint'"):
        check_recording(tmp_path, spec, "joint")
    # a recorder made without the CLI's check refuses at the first episode, before writing anything
    info = EpisodeInfo(index=0, seed=0, instruction="x", robot=spec.model_copy(update={"name": "txg2"}), action_space="ee_delta")
    with pytest.raises(DataError, match="robot 'point'"):
        Recorder(tmp_path).on_episode_start(info)
    assert len(list_episodes(tmp_path)) == 1


def test_a_write_that_fails_leaves_no_temporary_file(tmp_path: Path, monkeypatch) -> None:
    from s2kit.core.data import recorder

    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(recorder.os, "fsync", full)
    with pytest.raises(OSError, match="No space left"):
        recorder._atomic_write(tmp_path / "episode_000000.npz", b"x" * 100)
    assert list(tmp_path.iterdir()) == []
