"""The example third-party package, installed by pip and used through the CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_s2kit

EXAMPLE = ROOT / "examples" / "s2kit-example-plugin"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pip-install the example into a private folder (the test environment stays as it was)."""
    work = tmp_path_factory.mktemp("example")
    source = work / "src"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = work / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(source)],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert list(target.glob("s2kit_example_plugin-0.1.0.dist-info"))
    return target


def s2kit(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_s2kit(*args, env={"PYTHONPATH": str(site)})


def test_installed_plugin_is_listed_with_its_distribution(site: Path) -> None:
    result = s2kit(site, "plugins", "list", "--json")
    assert result.returncode == 0, result.stderr
    rows = {(r["kind"], r["name"]): r for r in json.loads(result.stdout)}
    for key in [("robot", "planar"), ("planner", "then-splitter"), ("executor", "colour-seeker"), ("skill", "reach-colour")]:
        assert rows[key]["distribution"] == "s2kit-example-plugin" and rows[key]["version"] == "0.1.0"
        assert rows[key]["status"] == "ok"
    assert rows[("planner", "instruction")]["distribution"] == "s2kit"  # built-ins beside it


def test_installed_plugin_shows_its_options(site: Path) -> None:
    result = s2kit(site, "plugins", "show", "robot", "planar", "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert {o["option"] for o in info["options"]} == {"squares", "targets", "image_size", "half_size"}
    assert "red" in info["details"]["colours"]


def test_installed_plugin_runs_through_the_cli(site: Path) -> None:
    result = s2kit(
        site, "run", "--robot", "planar", "--planner", "then-splitter", "--executor", "colour-seeker",
        "--episodes", "5", "--set", "runtime.max_steps=100", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)["summary"]
    assert summary["task_success"]["mean"] == 1.0  # it reads colours from pixels and visits them in order
    # Without refined subtasks (the coarse instruction only) the same executor cannot follow the order.
    coarse = s2kit(
        site, "run", "--robot", "planar", "--planner", "instruction", "--executor", "colour-seeker",
        "--episodes", "5", "--set", "runtime.max_steps=60", "--json",
    )  # fmt: skip
    assert json.loads(coarse.stdout)["summary"]["task_success"]["mean"] < 1.0


def test_installed_skill_acts_in_the_loop(site: Path) -> None:
    # The pipeline names the skill and no executor: it acts alone, on each refined subtask.
    result = s2kit(
        site, "run", "--robot", "planar", "--planner", "then-splitter", "--skill", "reach-colour",
        "--episodes", "5", "--set", "runtime.max_steps=100", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["pipeline"]["executor"] is None and out["pipeline"]["skill"] == {"name": "reach-colour"}
    assert out["summary"]["task_success"]["mean"] == 1.0  # as the colour-seeker executor does
    assert all(e["actors"] == {"skill": e["chunks"]} for e in out["episodes"])
    # The coarse instruction names two colours: the skill declines it, and with no executor that is one line.
    coarse = s2kit(site, "run", "--robot", "planar", "--planner", "instruction", "--skill", "reach-colour")
    assert coarse.returncode == 2 and coarse.stderr.startswith("Error: skill 'reach-colour' does not accept the guidance")
    shown = json.loads(s2kit(site, "plugins", "show", "skill", "reach-colour", "--json").stdout)
    assert {o["option"] for o in shown["options"]} == {"horizon", "speed", "tolerance"}


def test_installed_plugin_adds_its_command_group(site: Path) -> None:
    result = s2kit(site, "planar", "scene", "--seed", "3")
    assert result.returncode == 0, result.stderr
    instruction, scene = result.stdout.strip().splitlines()
    assert instruction.startswith("touch the ") and ", then the " in instruction
    assert scene.count("square at") == 3
    assert "planar" in s2kit(site, "--help").stdout


#: A tiny baseline network on the planar robot's data: its one camera, its whole (x, y) state.
TINY = ["--set", "model.dim=16", "--set", "model.encoder_layers=1", "--set", "model.decoder_layers=1",
        "--set", "batch_size=4", "--set", "state=all", "--set", "model.cameras=[head]"]  # fmt: skip


def test_a_robot_without_suites_gets_collect_train_and_eval(site: Path, tmp_path: Path) -> None:
    data, run = tmp_path / "data", tmp_path / "run"
    collected = s2kit(site, "collect", "--robot", "planar", "--executor", "colour-seeker", "--episodes", "3",
                      "--out", str(data), "--json")  # fmt: skip
    assert collected.returncode == 0, collected.stderr
    report = json.loads(collected.stdout)
    # the default planner (oracle) handed the robot's own subtask texts on: the executor followed them
    assert report["saved"] == 3
    from s2kit.datasets.lerobot import LeRobotDatasetReader

    episode = LeRobotDatasetReader(data).episode(0)
    first, second = report["episodes"][0]["instruction"].removeprefix("touch ").split(", then ")
    assert list(dict.fromkeys(episode["annotation.subtask"])) == [f"touch {first}", f"touch {second}"]

    trained = s2kit(site, "train", "--executor", "baseline", "--data", str(data), "--out", str(run), "--steps", "2", *TINY)
    assert trained.returncode == 0, trained.stderr

    evaluated = s2kit(site, "eval", str(run), "--robot", "planar", "--episodes", "2", "--workers", "1",
                      "--set", "runtime.max_steps=10", "--json")  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr
    result = json.loads(evaluated.stdout)
    assert result["pipeline"]["robot"] == {"name": "planar"} and result["pipeline"]["planner"]["name"] == "oracle"
    assert [s["summary"]["episodes"] for s in result["suites"].values()] == [2] and result["shift_mean"] is None

    wrong = s2kit(site, "eval", str(run), "--robot", "planar", "--suites", "id")
    assert wrong.returncode == 2 and wrong.stderr.strip() == (
        "Error: robot 'planar' declares no task suites, so it takes no suite ('id' given)"
    )


def test_its_learned_executor_gets_train_eval_export_and_serve(site: Path, tmp_path: Path) -> None:
    """``colour-mlp`` is only a configuration and a network on the learning kit: every command handles it unchanged."""
    import os

    from tests.cli.test_serve import serve_process

    data, run, graph = tmp_path / "data", tmp_path / "run", tmp_path / "colour.onnx"
    assert s2kit(site, "collect", "--robot", "planar", "--executor", "colour-seeker", "--episodes", "3", "--out", str(data)).returncode == 0
    trained = s2kit(site, "train", "--executor", "colour-mlp", "--data", str(data), "--out", str(run), "--steps", "3",
                    "--set", "batch_size=8", "--set", "state=all", "--set", "threads=1")  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    config = json.loads(next(run.glob("checkpoints/step_*/config.json")).read_text())
    assert config["executor"] == "colour-mlp" and config["embodiment"]["robots"] == ["planar"]

    evaluated = s2kit(site, "eval", str(run), "--robot", "planar", "--episodes", "1", "--workers", "1",
                      "--set", "runtime.max_steps=5", "--json")  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["pipeline"]["executor"]["name"] == "colour-mlp"

    exported = s2kit(site, "export", str(run), "--out", str(graph), "--set", "episodes=1", "--set", "steps=3",
                     "--set", "expert=colour-seeker", "--json")  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    report = json.loads(exported.stdout)
    assert report["check"].startswith("2 observations of robot 'planar'") and report["max_abs_actions"] <= 1e-4

    with serve_process(str(run), "--image", "observation/image=head", env={"PYTHONPATH": f"{site}{os.pathsep}{ROOT}"}) as (port, _):
        remote = s2kit(site, "run", "--robot", "planar", "--planner", "then-splitter", "--executor", "remote",
                       "--set", f"executor.port={port}", "--set", 'executor.images={"observation/image": "head"}',
                       "--set", "runtime.max_steps=5", "--json")  # fmt: skip
    assert remote.returncode == 0, remote.stderr
