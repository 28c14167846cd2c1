"""Whoever builds a pipeline's components closes each of them exactly once: ``s2kit run``, ``eval`` and ``collect``.

`Runtime.close` closes only its subscribers; the components (robot included)
belong to whoever built them, and a robot left open keeps its connection,
simulator or driver process alive.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.closing import count_closes

COMMANDS = {
    "run": ["run", "--episodes", "2"],
    "eval": ["eval", "--suites", "a,b", "--episodes", "2", "--workers", "1"],  # in this process, to count
    "collect": ["collect", "--episodes", "2", "--out", "{tmp}/ds"],
}


@pytest.fixture
def built(monkeypatch) -> list:
    return count_closes(monkeypatch)


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("fails", [False, True], ids=["ok", "executor-raises"])
def test_every_component_is_closed_once_robot_included(invoke, built, tmp_path: Path, command: str, fails: bool) -> None:
    executor = ["--executor", "faulty", "--set", "executor.fault=raise", "--set", "executor.after=1"] if fails else [
        "--executor", "seek"]  # fmt: skip
    args = [a.format(tmp=tmp_path) for a in COMMANDS[command]]
    result = invoke(*args, "--robot", "point", "--planner", "waypoints", *executor, "--json")
    assert (result.exit_code != 0) == fails, result.output
    if fails:
        assert "model exploded" in result.output
    kinds = Counter(c.kind for c in built)
    assert kinds["robot"] >= 1 and kinds["robot"] == kinds["planner"] == kinds["executor"]  # one set per block
    assert [c.closes_seen for c in built] == [1] * len(built), [(c.kind, c.name, c.closes_seen) for c in built]
