"""Every command refuses bad input before any work: one line, ``Error: ...``, exit code 2, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

POINT = ["--robot", "point", "--planner", "waypoints", "--executor", "seek"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["collect", *POINT, "--out", "TMP/afile/ds"], "--out TMP/afile/ds: TMP/afile is a file, not a folder"),
        (["collect", *POINT, "--out", "TMP/ds", "--suite", "a,"], "suites 'a,': an empty name in the comma-separated list"),
        (["collect", *POINT, "--out", "TMP/ds", "--suite", ""], "suites '' names no suite"),
        (["eval", *POINT, "--workers", "1", "--out", "TMP/afile/x"], "--out TMP/afile/x: TMP/afile is a file, not a folder"),
        (["eval", *POINT, "--workers", "1", "--suites", "a,,b"], "suites 'a,,b': an empty name in the comma-separated list"),
        (["eval", *POINT, "--workers", "1", "--suites", "", "--json"], "suites '' names no suite"),
        (["relabel", "TMP/ds", "--out", "TMP/afile/x"], "--out TMP/afile/x: TMP/afile is a file, not a folder"),
        (["relabel", "TMP/afile", "--in-place"], "--in-place TMP/afile: is a file, not a folder"),
        (["train", "--executor", "seek", "--data", "TMP/ds", "--out", "TMP/afile/run"], "--out TMP/afile/run: TMP/afile is a file"),
        (["train", "--executor", "seek", "--data", "TMP/ds,,TMP/ds", "--out", "TMP/run"], "an empty name in the comma-separated list"),
        (["export", "TMP", "--out", "TMP"], "--out TMP: is a folder; give a file path"),
        (["export", "TMP", "--out", "TMP/afile/model.onnx"], "--out TMP/afile/model.onnx: TMP/afile is a file, not a folder"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_before_any_work(invoke, tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "afile").write_text("")
    result = invoke(*(a.replace("TMP", str(tmp_path)) for a in args))
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert lines[0].startswith("Error: ") and message.replace("TMP", str(tmp_path)) in lines[0], result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]  # nothing written


@pytest.mark.parametrize("command", [["collect", *POINT, "--out", "TMP/ds"], ["eval", *POINT, "--workers", "1"]])
def test_a_negative_seed_is_refused_at_parsing(invoke, tmp_path: Path, command: list[str]) -> None:
    result = invoke(*(a.replace("TMP", str(tmp_path)) for a in command), "--seed", "-5")
    assert result.exit_code == 2 and "Invalid value for '--seed'" in result.output
    assert "Traceback" not in result.output and not list(tmp_path.iterdir())
