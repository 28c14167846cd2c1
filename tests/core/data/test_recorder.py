from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from s2kit.core.config import validate_pipeline
from s2kit.core.data import FORMAT, Recorder, list_episodes, read_episode
from s2kit.core.errors import DataError
from s2kit.core.runtime import build_runtime


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
