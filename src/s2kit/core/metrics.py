"""Aggregating episode results: means with 95% confidence intervals.

Subtask success of an episode is the number of subtasks completed in the
required order divided by the number of subtasks; task success is all of
them. Over episodes we report the mean with a 95% interval: Student's t for
subtask success (a bounded mean), Wilson's score interval for task success
(a proportion, where t collapses to zero width at 0% and 100%).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from s2kit.core.interfaces import Subscriber
from s2kit.core.types import EpisodeResult

__all__ = ["Estimate", "MetricsLog", "Summary", "mean_ci", "read_metrics", "summarize", "wilson_ci"]

# Two-sided 95% quantiles of Student's t for 1..30 degrees of freedom.
_T95 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip
_Z95 = 1.959964


def _t95(df: int) -> float:
    if df <= len(_T95):
        return _T95[df - 1]
    # Cornish-Fisher first-order correction; within 0.002 of the exact value past df 30.
    return _Z95 + (_Z95**3 + _Z95) / (4 * df)


class Estimate(BaseModel):
    """A mean and its 95% interval [low, high]; n is the number of episodes."""

    model_config = ConfigDict(extra="forbid")

    mean: float
    low: float
    high: float
    n: int


def mean_ci(values: Sequence[float]) -> Estimate | None:
    """Mean with a Student-t 95% interval, clipped to [0, 1]; None for no values."""
    n = len(values)
    if n == 0:
        return None
    mean = sum(values) / n
    if n == 1:
        return Estimate(mean=mean, low=0.0, high=1.0, n=1)  # one episode says little
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    half = _t95(n - 1) * math.sqrt(var / n)
    return Estimate(mean=mean, low=max(0.0, mean - half), high=min(1.0, mean + half), n=n)


def wilson_ci(successes: int, n: int) -> Estimate | None:
    """A proportion with Wilson's 95% score interval; None for n = 0."""
    if n == 0:
        return None
    p = successes / n
    z2 = _Z95**2
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = _Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return Estimate(mean=p, low=max(0.0, centre - half), high=min(1.0, centre + half), n=n)


class Summary(BaseModel):
    """What a set of episodes adds up to."""

    model_config = ConfigDict(extra="forbid")

    episodes: int
    subtask_success: Estimate | None
    task_success: Estimate | None
    statuses: dict[str, int]
    mean_steps: float
    step_ms_mean: float | None


def summarize(results: Sequence[EpisodeResult]) -> Summary:
    """Means and intervals over ``results`` (episodes the robot could not score are left out)."""
    scored = [r.subtask_success for r in results if r.subtask_success is not None]
    tasks = [r.task_success for r in results if r.task_success is not None]
    statuses: dict[str, int] = {}
    for r in results:
        statuses[r.status] = statuses.get(r.status, 0) + 1
    step_times = [r.timings["step"] for r in results if "step" in r.timings]
    total_steps = sum(t.count for t in step_times)
    return Summary(
        episodes=len(results),
        subtask_success=mean_ci(scored),
        task_success=wilson_ci(sum(tasks), len(tasks)),
        statuses=statuses,
        mean_steps=sum(r.steps for r in results) / len(results) if results else 0.0,
        step_ms_mean=sum(t.total_ms for t in step_times) / total_steps if total_steps else None,
    )


class MetricsLog(Subscriber):
    """Appends each episode's result (outcome, safety events, stage timings) to a JSONL file.

    One line per episode, written and fsynced as the episode ends, so a long
    evaluation that dies keeps the results of every finished episode.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def on_episode_end(self, result: EpisodeResult) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(result.model_dump(mode="json")) + "\n")
            f.flush()
            os.fsync(f.fileno())


def read_metrics(path: str | Path) -> list[EpisodeResult]:
    """The episode results a `MetricsLog` wrote."""
    with open(path) as f:
        return [EpisodeResult.model_validate_json(line) for line in f if line.strip()]
