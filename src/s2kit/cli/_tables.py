"""Result tables every command that runs episodes shares (rich)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.table import Table

from s2kit.core.metrics import Estimate, summarize
from s2kit.core.types import EpisodeResult

__all__ = ["results_table", "suites_table"]

CI_CAPTION = "95% CI: Student t for subtask success, Wilson for task success"

_STATUS_STYLE = {
    "done": "green", "max_steps": "yellow", "aborted": "red", "unsafe": "bold red", "interrupted": "yellow", "error": "bold red",
}  # fmt: skip


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _interval(est: Estimate | None) -> str:
    return "-" if est is None else f"[{100 * est.low:.0f}, {100 * est.high:.0f}]"


def _table(title: str, columns: Sequence[str]) -> Table:
    table = Table(title=title, caption=CI_CAPTION)
    for column in columns:
        table.add_column(column, no_wrap=True)
    return table


def results_table(results: list[EpisodeResult], title: str) -> Table:
    """Per-episode rows and a mean row with 95% intervals (messages are printed below it)."""
    columns = (
        "ep",
        "seed",
        "status",
        "steps",
        "subtasks",
        "subtask",
        "task",
        "ms/step",
    )
    table = _table(title, columns)
    for r in results:
        subtasks = (
            "-"
            if r.subtasks_total is None
            else f"{r.subtasks_completed}/{r.subtasks_total}"
        )
        task = "-" if r.task_success is None else ("yes" if r.task_success else "no")
        step = r.timings.get("step")
        style = _STATUS_STYLE.get(r.status, "")
        table.add_row(
            str(r.index),
            str(r.seed),
            f"[{style}]{r.status}[/]",
            str(r.steps),
            subtasks,
            _pct(r.subtask_success),
            task,
            f"{step.mean_ms:.2f}" if step else "-",
        )
    summary = summarize(results)
    sub, task = summary.subtask_success, summary.task_success
    table.add_section()
    table.add_row(
        "mean", "", "", f"{summary.mean_steps:.1f}", "", _pct(sub and sub.mean), _pct(task and task.mean),
        f"{summary.step_ms_mean:.2f}" if summary.step_ms_mean is not None else "-",
    )  # fmt: skip
    table.add_row("95% CI", "", "", "", "", _interval(sub), _interval(task), "")
    return table


def suites_table(
    per_suite: Mapping[str, Sequence[EpisodeResult]],
    totals: Mapping[str, Sequence[EpisodeResult]] | None = None,
    title: str = "per suite",
) -> Table:
    """Per-suite mean subtask and task success with 95% intervals.

    ``totals`` are rows over pooled episodes (e.g. the mean over the shift
    suites), shown below a line.
    """
    columns = (
        "suite",
        "episodes",
        "subtask success",
        "95% CI",
        "task success",
        "95% CI ",
    )
    table = _table(title, columns)

    def row(name: str, results: Sequence[EpisodeResult]) -> None:
        summary = summarize(results)
        sub, task = summary.subtask_success, summary.task_success
        table.add_row(
            name,
            str(len(results)),
            _pct(sub and sub.mean),
            _interval(sub),
            _pct(task and task.mean),
            _interval(task),
        )

    for name, results in per_suite.items():
        row(name, results)
    if totals:
        table.add_section()
        for name, results in totals.items():
            row(name, results)
    return table
