"""The CLI through typer's CliRunner, and through the real console script."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from s2kit import __version__
from s2kit.cli.main import build_app
from s2kit.core.data import list_episodes, read_episode
from tests.conftest import BIN, ROOT, run_s2kit

runner = CliRunner()


POINT = ["run", "--robot", "point", "--planner", "waypoints", "--executor", "seek"]


def test_version(invoke) -> None:
    result = invoke("--version")
    assert result.exit_code == 0 and result.output.strip() == f"s2kit {__version__}"


def test_plugins_list_json_has_every_column(invoke) -> None:
    result = invoke("plugins", "list", "--json")
    assert result.exit_code == 0
    rows = json.loads(result.output)
    by_name = {(r["kind"], r["name"]): r for r in rows}
    assert by_name[("planner", "instruction")]["distribution"] == "s2kit"
    assert by_name[("robot", "point")]["module"] == "tests.doubles"
    assert set(rows[0]) >= {"kind", "name", "module", "distribution", "version", "status", "error"}
    assert all(r["status"] == "ok" for r in rows)


def test_plugins_list_table(invoke) -> None:
    result = invoke("plugins", "list")
    assert result.exit_code == 0
    assert "instruction" in result.output and "replay" in result.output and "point" in result.output


def test_plugins_list_names_the_entry_point_that_s2kit_disable_plugins_takes(invoke) -> None:
    rows = {(r["kind"], r["name"]): r for r in json.loads(invoke("plugins", "list", "--json").output)}
    assert rows[("executor", "baseline")]["entry_point"] == "s2"  # baseline comes with the s2 entry point
    assert rows[("robot", "point")]["entry_point"] is None  # loaded through S2KIT_PLUGINS, not an entry point
    table = invoke("plugins", "list")
    assert "entry point" in table.output


def test_plugins_show_gives_options_with_defaults_and_help(invoke) -> None:
    result = invoke("plugins", "show", "executor", "seek", "--json")
    assert result.exit_code == 0
    info = json.loads(result.output)
    options = {o["option"]: o for o in info["options"]}
    assert options["horizon"]["default"] == 8 and options["horizon"]["type"] == "int"
    assert options["signal_done"]["help"].startswith("Say subtask_done")
    assert info["schema"]["additionalProperties"] is False
    table = invoke("plugins", "show", "executor", "replay")
    assert table.exit_code == 0 and "(required)" in table.output and "A recording folder" in table.output


def test_plugins_list_and_show_cover_skills(invoke) -> None:
    rows = {(r["kind"], r["name"]): r for r in json.loads(invoke("plugins", "list", "--json").output)}
    assert rows[("skill", "reach")]["module"] == "tests.doubles" and rows[("skill", "reach")]["status"] == "ok"
    info = json.loads(invoke("plugins", "show", "skill", "reach", "--json").output)
    assert info["kind"] == "skill" and {o["option"] for o in info["options"]} == {"horizon", "token", "value"}
    table = invoke("plugins", "show", "skill", "reach")
    assert table.exit_code == 0 and "skill reach" in table.output
    assert "list[float] | None" in table.output  # a type's brackets are text, not rich markup


def test_run_with_a_skill_acting_alone(invoke) -> None:
    # --skill without --executor: the default pipeline's executor is left out and the skill acts alone
    result = invoke("run", "--robot", "point", "--planner", "waypoints", "--skill", "reach", "--set", "skill.horizon=4", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["pipeline"]["executor"] is None and out["pipeline"]["skill"] == {"name": "reach", "horizon": 4}
    episode = out["episodes"][0]
    assert episode["task_success"] is True and episode["actors"] == {"skill": episode["chunks"]}
    table = invoke("run", "--robot", "point", "--planner", "waypoints", "--executor", "seek", "--skill", "reach")
    assert table.exit_code == 0 and "point · waypoints · seek · reach" in table.output


def test_unknown_plugin_is_one_line_exit_2(invoke) -> None:
    result = invoke("plugins", "show", "executor", "nope")
    assert result.exit_code == 2
    assert result.output.strip().startswith("Error: unknown executor 'nope' (available: ")
    assert "Traceback" not in result.output


def test_run_prints_per_episode_and_mean_success(invoke) -> None:
    result = invoke(*POINT, "--episodes", "2")
    assert result.exit_code == 0, result.output
    assert "point · waypoints · seek" in result.output
    assert "95% CI" in result.output and "100.0%" in result.output and "[100, 100]" in result.output


def test_run_json_and_record(invoke, tmp_path: Path) -> None:
    result = invoke(*POINT, "--episodes", "3", "--seed", "5", "--record", str(tmp_path), "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert [e["seed"] for e in out["episodes"]] == [5, 6, 7]
    assert out["summary"]["subtask_success"]["mean"] == 1.0
    assert out["summary"]["task_success"]["n"] == 3
    assert out["pipeline"]["robot"] == {"name": "point"}
    assert "step" in out["episodes"][0]["timings"]
    assert len(list_episodes(tmp_path)) == 3


def test_several_suites_report_per_suite_means(invoke, tmp_path: Path) -> None:
    result = invoke(*POINT, "--suite", "a,b", "--episodes", "2", "--metrics", str(tmp_path / "m.jsonl"), "--json")
    assert result.exit_code == 0, result.output
    suites = json.loads(result.output)["suites"]
    assert set(suites) == {"a", "b"} and all(len(s["episodes"]) == 2 for s in suites.values())
    assert suites["a"]["summary"]["subtask_success"]["mean"] == 1.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.a.jsonl", "m.b.jsonl"]  # one file per suite
    table = invoke(*POINT, "--suite", "a,b", "--episodes", "2")
    assert "per suite" in table.output


def test_set_overrides_reach_the_plugins(invoke) -> None:
    result = invoke(*POINT, "--set", "runtime.max_steps=7", "--set", "executor.gain=0.01", "--json")
    assert result.exit_code == 0, result.output
    episode = json.loads(result.output)["episodes"][0]
    assert episode["steps"] == 7 and episode["status"] == "max_steps"


def test_suite_is_passed_to_the_robot(invoke) -> None:
    result = invoke(*POINT, "--suite", "distractor", "--json")
    assert result.exit_code == 0 and json.loads(result.output)["pipeline"]["robot"]["suite"] == "distractor"
    result = invoke("run", "--robot", "point", "--executor", "seek", "--planner", "waypoints", "--set",
                    "robot.suite=x", "--set", "robot.tolerance=wide")  # fmt: skip
    assert result.exit_code == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "executor.horizn=3"], "Error: executor 'seek': unknown option 'horizn' (allowed: horizon, gain, signal_done)"),
        (["--set", "executor.horizon=lots"], "Error: executor 'seek': option 'horizon' = 'lots': Input should be a valid integer"),
        (["--set", "runtime.mode=fast"], "Error: runtime: option 'mode' = 'fast'"),
        (["--set", "robots.x=1"], "Error: --set robots.x: unknown section 'robots'"),
        (["--executor", "nope"], "Error: unknown executor 'nope' (available: "),  # the list grows with every executor
    ],
)  # fmt: skip
def test_config_errors_are_one_line_exit_2(invoke, args: list[str], message: str) -> None:
    result = invoke(*POINT, *args)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), result.output


def test_missing_pipeline_file(invoke, tmp_path: Path) -> None:
    result = invoke("run", str(tmp_path / "nope.yaml"))
    assert result.exit_code == 2 and "does not exist" in result.output


def test_pipeline_file(invoke, tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "robot: {name: point, task: 'reach 0.1,0,0'}\nplanner: {name: waypoints}\n"
        "executor: {name: seek}\nruntime: {episodes: 2, max_steps: 50}\n"
    )
    result = invoke("run", str(path), "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert len(out["episodes"]) == 2 and out["episodes"][0]["instruction"] == "reach 0.1,0,0"


def test_an_unsafe_stop_is_reported(invoke) -> None:
    result = invoke(*POINT, "--executor", "faulty", "--json")
    assert result.exit_code == 0
    episode = json.loads(result.output)["episodes"][0]
    assert episode["status"] == "unsafe" and "non-finite" in episode["message"]


def test_a_crash_is_one_line_unless_debug(invoke) -> None:
    result = invoke(*POINT, "--executor", "faulty", "--set", "executor.fault=raise")
    assert result.exit_code == 2
    assert "RuntimeError: model exploded" in result.output and "Traceback" not in result.output
    app = build_app()
    debug = runner.invoke(app, ["--debug", *POINT, "--executor", "faulty", "--set", "executor.fault=raise"])
    assert debug.exit_code == 2 and "Traceback" in debug.output


# --- through the installed console script -----------------------------------------------


def test_console_script_is_installed_and_lists_builtins() -> None:
    result = run_s2kit("plugins", "list", "--json")
    assert result.returncode == 0, result.stderr
    names = {(r["kind"], r["name"]) for r in json.loads(result.stdout)}
    assert {("planner", "instruction"), ("executor", "replay")} <= names


def test_console_script_runs_a_pipeline_and_reports_errors() -> None:
    env = {"S2KIT_PLUGINS": "tests.doubles"}
    ok = run_s2kit(*POINT, "--episodes", "2", "--json", env=env)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["summary"]["task_success"]["mean"] == 1.0
    bad = run_s2kit(*POINT, "--set", "executor.horizn=3", env=env)
    assert bad.returncode == 2
    assert bad.stderr.strip() == (
        "Error: executor 'seek': unknown option 'horizn' (allowed: horizon, gain, signal_done)"
    )
    assert bad.stdout == ""


def test_console_script_reports_a_conflict_naming_both_plugins(tmp_path: Path) -> None:
    (tmp_path / "clash_plugin.py").write_text(
        "from s2kit import hookimpl\nfrom tests.doubles import SeekExecutor\n"
        "class Seek(SeekExecutor):\n    name = 'seek'\n"
        "@hookimpl\ndef s2kit_executors():\n    return [Seek]\n"
    )
    env = {"S2KIT_PLUGINS": "tests.doubles,clash_plugin", "PYTHONPATH": f"{ROOT}{os.pathsep}{tmp_path}"}
    result = run_s2kit(*POINT, env=env)
    assert result.returncode == 2
    assert "executor 'seek' is registered by plugin 'tests.doubles'" in result.stderr
    assert "plugin 'clash_plugin'" in result.stderr
    listing = run_s2kit("plugins", "list", "--json", env=env)
    assert listing.returncode == 0  # listing still works and shows the conflict
    statuses = {r["module"]: r["status"] for r in json.loads(listing.stdout) if r["name"] == "seek"}
    assert set(statuses.values()) == {"conflict"}


def test_console_script_advises_disabling_the_third_party_not_the_builtin(tmp_path: Path) -> None:
    (tmp_path / "impostor_plugin.py").write_text(
        "from s2kit import hookimpl\nfrom tests.doubles import SeekExecutor\n"
        "class Impostor(SeekExecutor):\n    name = 's2'\n"
        "@hookimpl\ndef s2kit_executors():\n    return [Impostor]\n"
    )
    info = tmp_path / "impostor_dist-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: impostor-dist\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[s2kit]\nimpostor = impostor_plugin\n")
    env = {"PYTHONPATH": f"{ROOT}{os.pathsep}{tmp_path}"}
    result = run_s2kit("run", "--robot", "hsr", "--planner", "oracle", "--executor", "s2", env=env)
    assert result.returncode == 2
    advice = result.stderr.strip().rsplit(" with ", 1)[1]
    assert advice == "S2KIT_DISABLE_PLUGINS=impostor or uninstall impostor-dist"
    listing = run_s2kit("plugins", "list", "--json", env={**env, "S2KIT_DISABLE_PLUGINS": "impostor"})
    rows = {(r["kind"], r["name"]): r for r in json.loads(listing.stdout)}
    assert rows[("executor", "s2")]["status"] == rows[("executor", "baseline")]["status"] == "ok"
    assert rows[("executor", "s2")]["distribution"] == "s2kit"


def test_a_broken_plugin_does_not_take_the_cli_down(tmp_path: Path) -> None:
    (tmp_path / "broken_plugin.py").write_text("import not_a_module_anywhere\n")
    env = {"S2KIT_PLUGINS": "broken_plugin,tests.doubles", "PYTHONPATH": f"{ROOT}{os.pathsep}{tmp_path}"}
    listing = run_s2kit("plugins", "list", "--json", env=env)
    assert listing.returncode == 0
    broken = next(r for r in json.loads(listing.stdout) if r["name"] == "broken_plugin")
    assert broken["status"] == "error" and "ModuleNotFoundError" in broken["error"]
    assert run_s2kit(*POINT, env=env).returncode == 0


def test_ctrl_c_ends_the_run_cleanly_and_keeps_the_recording(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "S2KIT_PLUGINS": "tests.doubles"}
    proc = subprocess.Popen(
        [str(BIN / "s2kit"), "run", "--robot", "point", "--planner", "waypoints", "--executor", "constant",
         "--set", "executor.delay=0.01", "--set", "runtime.max_steps=50", "--episodes", "100",
         "--record", str(tmp_path), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (tmp_path / "episodes.jsonl").exists():
        time.sleep(0.05)
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    out = json.loads(stdout)
    assert out["interrupted"] and len(out["episodes"]) < 100
    # the signal lands inside an episode (then marked interrupted) or between two
    assert {e["status"] for e in out["episodes"][:-1]} <= {"max_steps"}
    assert out["episodes"][-1]["status"] in {"max_steps", "interrupted"}
    entries = list_episodes(tmp_path)
    assert len(entries) == len(out["episodes"]) >= 1
    for entry in entries:  # every recorded episode is complete and readable
        assert len(read_episode(tmp_path / entry["file"])["action"]) == entry["length"]


def test_a_recorder_that_cannot_write_is_reported(invoke, tmp_path: Path) -> None:
    blocked = tmp_path / "rec"
    blocked.mkdir()
    (blocked / "episodes.jsonl").write_text("not json\n")  # a corrupt recording: appending would be unsafe
    result = invoke(*POINT, "--record", str(blocked))
    assert result.exit_code == 2 and "line 1 is not a valid episode entry" in result.output
    assert (blocked / "episodes.jsonl").read_text() == "not json\n"  # left as it was


def test_a_full_disk_during_the_run_fails_it_naming_the_episodes_kept(invoke, tmp_path, monkeypatch) -> None:
    from s2kit.core.data import recorder

    calls = {"n": 0}
    real_fsync = os.fsync

    def fsync(fd: int) -> None:  # meta.json, then each episode's file and its index line
        calls["n"] += 1
        if calls["n"] == 6:  # the third episode's file: the disk is full
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(recorder.os, "fsync", fsync)
    result = invoke(*POINT, "--episodes", "4", "--record", str(tmp_path))
    assert result.exit_code == 1, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith(f"Error: recording into {tmp_path} failed (on_episode_end: OSError: [Errno 28] No space left on device)")
    assert last.endswith("episodes kept: 0 (episode_000000.npz), 1 (episode_000001.npz)")
    entries = list_episodes(tmp_path)
    assert [e["file"] for e in entries] == ["episode_000000.npz", "episode_000001.npz"]
    assert all(read_episode(tmp_path / e["file"])["action"].shape[0] == e["length"] for e in entries)
    assert not list(tmp_path.glob(".*.tmp"))  # no half-written file left behind


# --- refused before any episode -------------------------------------------------------------


def refused(result, message: str) -> None:
    """Exit 2 with one line, ``Error: ...`` containing ``message``, and no traceback."""
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert lines[0].startswith("Error: ") and message in lines[0], result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["TMP/empty.yaml"], "empty.yaml: the pipeline file is empty"),
        (["TMP/twice.yaml"], "duplicate key 'runtime' (first given at line 1)"),
        (["--suite", ""], "suites '' names no suite (e.g. a,b,distractor)"),
        (["--suite", "", "--json"], "suites '' names no suite"),
        (["--suite", "a,,b"], "suites 'a,,b': an empty name in the comma-separated list"),
        (["--suite", "a,nosuch"], "unknown suite 'nosuch' for robot 'point'"),
        (["--metrics", "TMP"], "--metrics TMP: is a folder; give a file path"),
        (["--metrics", "TMP/afile/m.jsonl"], "--metrics TMP/afile/m.jsonl: TMP/afile is a file, not a folder"),
        (["--record", "TMP/afile/rec"], "--record TMP/afile/rec: TMP/afile is a file, not a folder"),
        (["--record", "TMP/afile"], "--record TMP/afile: is a file, not a folder"),
        (["--video", "TMP/afile/deeper/v"], "--video TMP/afile/deeper/v: TMP/afile is a file, not a folder"),
        (["--suite", "a,b", "--record", "TMP/afile"], "--record TMP/afile/a: TMP/afile is a file, not a folder"),
    ],
)  # fmt: skip
def test_bad_input_is_refused_before_any_episode(invoke, tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "empty.yaml").write_text("# nothing yet\n")
    (tmp_path / "twice.yaml").write_text("runtime: {episodes: 1}\nruntime: {episodes: 2}\n")
    (tmp_path / "afile").write_text("")
    args = [a.replace("TMP", str(tmp_path)) for a in args]
    witness = ["--record", str(tmp_path / "witness")] if "--record" not in args else ["--metrics", str(tmp_path / "witness")]
    refused(invoke(*POINT, *args, *witness), message.replace("TMP", str(tmp_path)))
    assert not list(tmp_path.glob("witness*"))  # nothing ran


def test_an_output_in_a_place_that_takes_no_file_is_refused(invoke, tmp_path: Path) -> None:
    try:  # /sys takes no new file, even from root (where a read-only folder would)
        (Path("/sys") / "s2kit-probe").write_text("")
    except OSError:
        pass
    else:
        pytest.skip("/sys is writable here")
    refused(invoke(*POINT, "--metrics", "/sys/m.jsonl", "--record", str(tmp_path / "rec")),
            "--metrics /sys/m.jsonl: cannot write in /sys (")  # fmt: skip
    assert not (tmp_path / "rec").exists()


def test_a_negative_seed_is_refused_at_parsing(invoke, tmp_path: Path) -> None:
    result = invoke(*POINT, "--seed", "-5", "--record", str(tmp_path / "rec"))
    assert result.exit_code == 2 and "Invalid value for '--seed'" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "rec").exists()


def test_recording_into_another_robots_recording_is_refused(invoke, tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    assert invoke(*POINT, "--record", str(rec)).exit_code == 0
    meta = json.loads((rec / "meta.json").read_text())
    meta["robot"]["name"] = "txg2"  # as if a TX-G2 had made it
    (rec / "meta.json").write_text(json.dumps(meta))
    before = (rec / "episodes.jsonl").read_text()
    refused(invoke(*POINT, "--record", str(rec)),
            f"{rec} is a recording of robot 'txg2': episodes of robot 'point' cannot be appended to it")  # fmt: skip
    assert (rec / "episodes.jsonl").read_text() == before
    # the same robot with other cameras is another robot too
    meta["robot"]["name"] = "point"
    (rec / "meta.json").write_text(json.dumps(meta))
    refused(invoke(*POINT, "--record", str(rec), "--set", "robot.image_size=8"),
            "is a recording of another 'point': its spec's 'cameras' does not match this robot's")  # fmt: skip
    assert invoke(*POINT, "--record", str(rec)).exit_code == 0
    assert len(list_episodes(rec)) == 2
