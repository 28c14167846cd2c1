"""``s2kit eval``: per-suite results with CIs, outputs, workers, errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import av
import numpy as np
import pytest

from s2kit.core.metrics import summarize
from s2kit.core.types import EpisodeResult
from tests.conftest import BIN, ROOT, run_s2kit

HSR = ["eval", "--executor", "scripted", "--planner", "oracle", "--robot", "hsr", "--suites", "id,distractor",
       "--episodes", "2", "--set", "runtime.max_steps=60"]  # fmt: skip
POINT = ["eval", "--robot", "point", "--planner", "waypoints", "--suites", "a,b", "--episodes", "2"]  # fmt: skip


def outcome(episodes: list[dict]) -> list[dict]:
    """What an episode's result is, without its wall-clock timings."""
    return [
        {k: v for k, v in e.items() if k not in ("timings", "duration_s")}
        for e in episodes
    ]


def test_eval_reports_each_suite_and_the_shift_mean_and_writes_json_and_chart(
    invoke, tmp_path: Path
) -> None:
    result = invoke(*HSR, "--workers", "1", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    for text in (
        "hsr · oracle · scripted",
        "id",
        "distractor",
        "shift mean",
        "95% CI",
        f"wrote {tmp_path / 'eval.json'}",
    ):
        assert text in result.output
    report = json.loads((tmp_path / "eval.json").read_text())
    assert list(report["suites"]) == ["id", "distractor"]
    for suite in report["suites"].values():
        episodes = suite["episodes"]
        assert [(e["index"], e["seed"]) for e in episodes] == [
            (0, 100_000),
            (1, 100_001),
        ]  # clear of training seeds
        assert suite["summary"] == summarize(
            [EpisodeResult.model_validate(e) for e in episodes]
        ).model_dump(mode="json")
        assert (
            0 < suite["summary"]["subtask_success"]["mean"] <= 1
            and suite["summary"]["task_success"]["n"] == 2
        )
    shift = report["shift_mean"]
    assert shift["suites"] == ["distractor"]
    assert (
        shift["summary"]["subtask_success"]
        == report["suites"]["distractor"]["summary"]["subtask_success"]
    )
    assert (
        report["pipeline"]["executor"] == {"name": "scripted"}
        and report["pipeline"]["runtime"]["max_steps"] == 60
    )
    assert report["settings"] | {"out": None} == {
        "run": None, "robot": "hsr", "suites": ["id", "distractor"], "episodes": 2, "seed": 100_000,
        "planner": "oracle", "executor": "scripted", "skill": None, "workers": 1, "out": None, "video": False,
        "set": ["runtime.max_steps=60"],
    }  # fmt: skip
    assert report["interrupted"] is False
    assert (tmp_path / "eval.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_two_workers_give_the_same_episodes_as_one(invoke) -> None:
    serial = invoke(*HSR, "--workers", "1", "--json")
    assert serial.exit_code == 0, serial.output
    # the real console script, with two spawned worker processes
    parallel = run_s2kit(*HSR, "--workers", "2", "--json")
    assert parallel.returncode == 0, parallel.stderr
    one, two = json.loads(serial.output), json.loads(parallel.stdout)
    assert two["settings"]["workers"] == 2
    for name in ("id", "distractor"):
        assert outcome(two["suites"][name]["episodes"]) == outcome(
            one["suites"][name]["episodes"]
        )
    statuses = {e["status"] for s in one["suites"].values() for e in s["episodes"]}
    assert statuses <= {"done", "max_steps"}


def test_video_overlays_the_kept_patches_and_numbers_episodes_across_workers(
    invoke, tmp_path: Path
) -> None:
    result = invoke(*POINT, "--executor", "masked", "--suites", "a", "--workers", "2", "--out", str(tmp_path),
                    "--video", "--set", "robot.background=200", "--set", "robot.image_size=32")  # fmt: skip
    assert result.exit_code == 0, result.output
    videos = sorted(
        p.relative_to(tmp_path).as_posix() for p in (tmp_path / "videos").rglob("*.mp4")
    )
    assert videos == ["videos/a/episode_000000.mp4", "videos/a/episode_000001.mp4"]
    with av.open(str(tmp_path / videos[1])) as container:
        frame = next(iter(container.decode(video=0))).to_ndarray(format="rgb24")
    # 32 px upscaled to 384 (12x), then the caption band; the right half is darkened
    assert frame.shape[1] == 384 and frame.shape[0] > 384
    left, right = (
        frame[24:360, 24:144].astype(float),
        frame[24:360, 216:360].astype(float),
    )
    assert abs(np.median(left) - 200) < 8 and abs(np.median(right) - 70) < 8


def test_a_checkpoint_or_a_run_names_the_executor_and_is_given_to_it(
    invoke, tmp_path: Path
) -> None:
    step = tmp_path / "run" / "checkpoints" / "step_0000100"
    step.mkdir(parents=True)
    (step / "config.json").write_text(json.dumps({"executor": "masked"}))
    for where, checkpoint in ((step, step), (tmp_path / "run", tmp_path / "run")):
        result = invoke(*POINT, str(where), "--workers", "1", "--json")
        assert result.exit_code == 0, result.output
        report = json.loads(result.output)
        assert report["pipeline"]["executor"] == {
            "name": "masked",
            "checkpoint": str(checkpoint),
        }
        assert (
            report["settings"]["run"] == str(checkpoint)
            and report["settings"]["executor"] == "masked"
        )
        assert report["suites"]["a"]["summary"]["task_success"]["mean"] == 1.0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--executor", "seek", "RUN"],
            "give RUN (a trained checkpoint or run folder) or --executor NAME (or --skill NAME alone): not both",
        ),
        (
            [],
            "give RUN (a trained checkpoint or run folder) or --executor NAME (or --skill NAME alone): one is needed",
        ),
        (["NOWHERE"], "none does not exist"),
        (
            ["HERE"],
            "is neither a checkpoint (no config.json) nor a run with checkpoints/step_*/config.json",
        ),
        (["--executor", "seek", "--video"], "--video needs --out DIR"),
        (
            ["--executor", "seek", "--set", "robot.suite=c"],
            "set the suites with --suites, not --set robot.suite",
        ),
        (["--executor", "seek", "--suites", " , "], "names no suite"),
        (
            ["--executor", "seek", "--set", "executor.gian=1"],
            "executor 'seek': unknown option 'gian'",
        ),
    ],
)
def test_usage_errors_are_one_line_exit_2(
    invoke, tmp_path: Path, args: list[str], message: str
) -> None:
    args = [
        {
            "RUN": str(tmp_path),
            "HERE": str(tmp_path),
            "NOWHERE": str(tmp_path / "none"),
        }.get(a, a)
        for a in args
    ]
    result = invoke(*POINT, *args)
    assert result.exit_code == 2, result.output
    assert result.output.startswith("Error: ") and message in result.output
    assert (
        "Traceback" not in result.output
        and len(result.output.strip().splitlines()) == 1
    )


def test_suites_default_to_the_robots_own_and_its_first_stays_out_of_the_shift_mean(invoke) -> None:
    result = invoke("eval", "--robot", "point", "--planner", "waypoints", "--executor", "seek", "--episodes", "1",
                    "--workers", "1", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert list(report["suites"]) == ["a", "b", "distractor"]  # what the point robot declares
    assert report["shift_mean"]["suites"] == ["b", "distractor"]



def test_the_default_oracle_planner_says_so_on_a_robot_that_gives_no_task_texts(invoke) -> None:
    result = invoke("eval", "--robot", "point", "--executor", "seek", "--suites", "a", "--episodes", "1", "--workers", "1")
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert result.output.startswith("Error: planner 'oracle' needs the robot's own subtask texts")
    assert "--planner" in result.output


def test_a_suite_the_robot_does_not_declare_is_one_error_before_any_episode(invoke) -> None:
    unknown = invoke(*HSR, "--suites", "nope,id", "--workers", "2")
    assert unknown.exit_code == 2
    assert (
        unknown.output.startswith("Error: unknown suite 'nope'")
        and len(unknown.output.strip().splitlines()) == 1
    )
    point = invoke(*POINT, "--executor", "seek", "--suites", "a,zz")
    assert point.exit_code == 2 and point.output.strip() == (
        "Error: unknown suite 'zz' for robot 'point' (it declares: a, b, distractor)"
    )


def test_errors_in_worker_processes_are_one_line(invoke) -> None:
    crash = invoke(
        *POINT,
        "--executor",
        "faulty",
        "--set",
        "executor.fault=raise",
        "--workers",
        "2",
    )
    assert crash.exit_code == 2 and "RuntimeError: model exploded" in crash.output
    assert (
        "Traceback" not in crash.output and len(crash.output.strip().splitlines()) == 1
    )


def test_ctrl_c_stops_every_worker_and_reports_the_episodes_so_far(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "S2KIT_PLUGINS": "tests.doubles"}
    proc = subprocess.Popen(
        [str(BIN / "s2kit"), *POINT, "--executor", "constant", "--set", "executor.delay=0.01",
         "--set", "runtime.max_steps=20", "--episodes", "1000", "--workers", "2", "--json",
         "--out", str(tmp_path), "--video"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any((tmp_path / "videos").rglob("*.mp4")):
        time.sleep(0.05)  # until the workers have finished an episode
    proc.send_signal(
        signal.SIGINT
    )  # to the parent only: it must stop the workers itself
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    report = json.loads(stdout)
    assert report["interrupted"] is True
    assert (
        json.loads((tmp_path / "eval.json").read_text()) == report
    )  # written all the same
    episodes = report["suites"]["a"]["episodes"]
    # each worker ran the first episodes of its block of suite a (seeds 0.., 500..); b never started
    assert 0 < len(episodes) < 1000
    assert all(e["seed"] == 100_000 + e["index"] for e in episodes)
    assert {e["status"] for e in episodes} <= {"max_steps", "interrupted"}
    assert report["suites"]["b"]["episodes"] == []


def test_episodes_cut_short_by_ctrl_c_are_left_out_of_the_means(invoke, monkeypatch) -> None:
    from tests.doubles import PointRobot, SeekExecutor

    seeds: list[int | None] = []
    reset, act = PointRobot.reset, SeekExecutor.act

    def reset_and_note(self, *, seed=None):
        seeds.append(seed)
        return reset(self, seed=seed)

    def act_or_ctrl_c(self, observation, guidance):
        if seeds[-1] == 1:  # Ctrl-C during the second episode
            raise KeyboardInterrupt
        return act(self, observation, guidance)

    monkeypatch.setattr(PointRobot, "reset", reset_and_note)
    monkeypatch.setattr(SeekExecutor, "act", act_or_ctrl_c)
    result = invoke(*POINT, "--executor", "seek", "--workers", "1", "--seed", "0", "--json")
    assert result.exit_code == 130, result.output
    report = json.loads(result.output)
    a = report["suites"]["a"]
    assert [e["seed"] for e in a["episodes"]] == [0] and a["summary"]["task_success"]["n"] == 1
    assert [e["status"] for e in a["interrupted_episodes"]] == ["interrupted"]
    assert report["left_out_interrupted"] == 1
    seeds.clear()
    table = invoke(*POINT, "--executor", "seek", "--workers", "1", "--seed", "0")
    assert "1 episode(s) cut short by Ctrl-C are left out of the means" in table.output
