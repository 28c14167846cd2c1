"""The built-in subscribers plugin: recorder, videos and metrics come from ``options``, not from the caller."""

from __future__ import annotations

from pathlib import Path

import pytest

from s2kit.core.config import validate_pipeline
from s2kit.core.data import Recorder, list_episodes
from s2kit.core.errors import DataError
from s2kit.core.metrics import MetricsLog, read_metrics
from s2kit.core.runtime import build_runtime
from s2kit.workflows.video import VideoRecorder

PIPELINE = {
    "robot": {"name": "point", "image_size": 16},
    "planner": {"name": "waypoints"},
    "executor": {"name": "seek"},
    "runtime": {"episodes": 2, "max_steps": 10},
}


def test_options_ask_for_the_recorder_video_and_metrics(registry, tmp_path: Path) -> None:
    pipeline = validate_pipeline(PIPELINE)
    options = {"record": str(tmp_path / "rec"), "video": str(tmp_path / "vid"), "video_start": 3, "metrics": str(tmp_path / "m.jsonl")}
    runtime = build_runtime(pipeline, registry, options=options)
    assert [type(s) for s in runtime.subscribers] == [Recorder, VideoRecorder, MetricsLog]
    results = runtime.run()
    assert len(list_episodes(tmp_path / "rec")) == 2
    assert sorted(p.name for p in (tmp_path / "vid").iterdir()) == ["episode_000003.mp4", "episode_000004.mp4"]
    assert [r.seed for r in read_metrics(tmp_path / "m.jsonl")] == [r.seed for r in results]
    assert build_runtime(pipeline, registry).subscribers == []  # nothing asked for, nothing attached


def test_an_output_that_cannot_be_opened_is_the_callers_error(registry, tmp_path: Path) -> None:
    (tmp_path / "episodes.jsonl").write_text("not json\n")
    with pytest.raises(DataError, match="line 1 is not a valid episode entry"):
        build_runtime(validate_pipeline(PIPELINE), registry, options={"record": str(tmp_path)})
    assert all(p.status == "ok" for p in registry.plugins)  # the plugin is not to blame
