from __future__ import annotations

from pathlib import Path

import pytest

from s2kit.core.config import validate_pipeline
from s2kit.core.metrics import MetricsLog, mean_ci, read_metrics, summarize, wilson_ci
from s2kit.core.runtime import build_runtime
from s2kit.core.types import EpisodeResult


def test_mean_ci_uses_student_t() -> None:
    est = mean_ci([0.0, 0.5, 1.0, 0.5])
    assert est.mean == pytest.approx(0.5)
    # sd = 0.408, se = 0.204, t(3) = 3.182 → half-width 0.65, clipped to [0, 1]
    assert (est.low, est.high) == (0.0, 1.0)
    est = mean_ci([0.4, 0.5, 0.6] * 10)
    half = 2.045 * (0.0830454798 / 30**0.5)  # t(29)
    assert est.low == pytest.approx(0.5 - half, abs=1e-4) and est.high == pytest.approx(0.5 + half, abs=1e-4)
    assert mean_ci([]) is None


def test_wilson_interval_is_not_degenerate_at_the_extremes() -> None:
    est = wilson_ci(10, 10)
    assert est.mean == 1.0 and est.high == pytest.approx(1.0) and est.low == pytest.approx(0.7225, abs=1e-3)
    est = wilson_ci(0, 10)
    assert est.low == 0.0 and est.high == pytest.approx(0.2775, abs=1e-3)
    assert wilson_ci(0, 0) is None


def test_summary_leaves_out_episodes_that_cannot_be_scored() -> None:
    results = [
        EpisodeResult(index=0, seed=0, instruction="i", status="done", steps=10, subtask_success=1.0, task_success=True),
        EpisodeResult(index=1, seed=1, instruction="i", status="max_steps", steps=30, subtask_success=0.5, task_success=False),
        EpisodeResult(index=2, seed=2, instruction="i", status="done", steps=20),
    ]
    summary = summarize(results)
    assert summary.episodes == 3 and summary.subtask_success.n == 2 and summary.subtask_success.mean == 0.75
    assert summary.task_success.mean == 0.5 and summary.statuses == {"done": 2, "max_steps": 1}
    assert summary.mean_steps == 20


def test_metrics_log_keeps_every_finished_episode(registry, tmp_path: Path) -> None:
    pipeline = validate_pipeline(
        {"robot": {"name": "point"}, "planner": {"name": "waypoints"}, "executor": {"name": "seek"},
         "runtime": {"episodes": 3}}
    )  # fmt: skip
    path = tmp_path / "m" / "metrics.jsonl"
    results = build_runtime(pipeline, registry, [MetricsLog(path)]).run()
    assert read_metrics(path) == results
