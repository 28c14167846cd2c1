"""s2kit plan: a planner's guidance for an instruction, by hand."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from s2kit.cli._common import state
from s2kit.cli.main import build_app
from s2kit.datasets.images import png_encode
from tests.conftest import run_s2kit

runner = CliRunner()


def invoke(*args: str):
    state.debug = False
    return runner.invoke(build_app(), list(args))


def test_plan_prints_the_guidance_as_a_table_and_as_json(cli_registry) -> None:
    scene = "on the table: bowl at the back right, red cube at the front left"
    table = invoke("plan", "put the red cube in the bowl", "--scene", scene)
    assert table.exit_code == 0, table.output
    assert "pick up the red cube at the front left" in table.output and "goal" in table.output
    result = invoke("plan", "put the red cube in the bowl", "--scene", scene, "--json")
    guidance = json.loads(result.output)
    assert guidance["goal"] == "put the red cube in the bowl" and len(guidance["subtasks"]) == 2


def test_plan_options_and_errors_are_one_line(cli_registry, tmp_path: Path) -> None:
    bad = invoke("plan", "x", "--set", "top_k=0")
    assert bad.exit_code == 2 and "top_k" in bad.output
    missing = invoke("plan", "x", "--image", str(tmp_path / "none.png"))
    assert missing.exit_code == 2 and "does not exist" in missing.output
    unknown = invoke("plan", "x", "--planner", "nope")
    assert unknown.exit_code == 2 and "nope" in unknown.output


def test_plan_sends_the_image_through_the_real_console_script(tmp_path: Path) -> None:
    image = tmp_path / "head.png"
    image.write_bytes(png_encode(np.full((1, 40, 60, 3), 128, np.uint8))[0])
    log = tmp_path / "audit.jsonl"
    # no server listens there: the planner reports it, falls back, and the command still answers
    result = run_s2kit("plan", "put the red cube in the bowl", "--planner", "incontext", "--image", str(image),
                       "--set", "base_url=http://127.0.0.1:9/v1", "--set", "retries=0", "--set", f"log={log}",
                       "--set", "image_size=30", "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["subtasks"] == ["put the red cube in the bowl"]
    assert result.stderr.startswith("Warning: planner incontext: cannot reach http://127.0.0.1:9/v1")
    (record,) = [json.loads(line) for line in log.read_text().splitlines()]
    assert re.fullmatch(r"image/png, \d+ bytes, sha256 [0-9a-f]{16}", record["request"]["messages"][-1]["content"][1]["image"])
