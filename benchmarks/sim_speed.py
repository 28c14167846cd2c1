"""How fast the simulated robots run, and how fast expert datasets are collected.

    .venv/bin/python benchmarks/sim_speed.py [--steps 300] [--episodes 20] [--json]

For each robot: control steps per second with physics only (no rendering)
and with its cameras rendered at 96x96 (off-screen, CPU), each step being one
command (ee_delta, through IK) + 20 physics steps + observe; and the factor
over the robot's 10 Hz control rate (goal: 10x or more with two cameras).
Then expert episodes collected per minute into a LeRobot v3.0 dataset
(oracle planner, scripted expert, videos encoded), and the time a
200-episode dataset takes at that rate (goal: under 15 minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

import numpy as np

os.environ.setdefault("MUJOCO_GL", "osmesa")

from s2kit.core.config import validate_pipeline  # noqa: E402
from s2kit.workflows.collect import LeRobotRecorder  # noqa: E402
from s2kit.core.registry import load_registry  # noqa: E402
from s2kit.core.runtime import build_runtime  # noqa: E402

REGISTRY = load_registry(env={})


def steps_per_second(robot: str, steps: int, render: bool, cameras: list[str] | None = None) -> tuple[float, int]:
    r = REGISTRY.create("robot", {"name": robot, "render": render})
    r.reset(seed=0)
    if cameras is not None:  # render only these roles (the others are dropped from the robot's camera set)
        r._cam_ids = {k: v for k, v in r._cam_ids.items() if k in cameras}
    action = np.array([0.0, 0.0, 0.0, 0, 0, 0, 1.0], np.float32)
    start = time.perf_counter()
    for i in range(steps):
        action[0] = 0.01 if (i // 20) % 2 == 0 else -0.01
        r.apply(action, "ee_delta")
        r.observe()
    elapsed = time.perf_counter() - start
    n_cams = len(r._cam_ids) if render else 0
    r.close()
    return steps / elapsed, n_cams


def episodes_per_minute(robot: str, episodes: int) -> tuple[float, int, float]:
    pipeline = validate_pipeline(
        {"robot": {"name": robot}, "planner": {"name": "oracle"}, "executor": {"name": "scripted"},
         "runtime": {"episodes": episodes, "max_steps": 400}}
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        rt = build_runtime(pipeline, REGISTRY)
        recorder = LeRobotRecorder(f"{tmp}/ds", rt.spec, rt.space.name)
        rt.subscribers.append(recorder)
        start = time.perf_counter()
        results = rt.run()
        rt.close()
        elapsed = time.perf_counter() - start
        rt.robot.close()
    success = sum(bool(r.task_success) for r in results) / len(results)
    return 60 * episodes / elapsed, recorder.saved, success


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    figures: dict[str, dict[str, float]] = {}
    for robot in ("hsr", "txg2"):
        physics, _ = steps_per_second(robot, args.steps, render=False)
        two, _ = steps_per_second(robot, args.steps, render=True, cameras=["head", "wrist"])
        every, n_cams = steps_per_second(robot, args.steps, render=True)
        per_min, saved, success = episodes_per_minute(robot, args.episodes)
        figures[robot] = {
            "steps_per_s_physics": physics,
            "steps_per_s_two_cameras": two,
            f"steps_per_s_all_{n_cams}_cameras": every,
            "factor_over_10hz_two_cameras": two / 10.0,
            "expert_episodes_per_minute": per_min,
            "minutes_for_200_episodes": 200 / per_min,
            "expert_task_success": success,
        }
    meta = {"steps": args.steps, "episodes": args.episodes, "python": platform.python_version(), "cpus": os.cpu_count()}
    if args.json:
        print(json.dumps({"robots": figures, **meta}, indent=2))
        return
    for robot, f in figures.items():
        print(f"{robot}:")
        for key, value in f.items():
            print(f"  {key:34s} {value:10.2f}")


if __name__ == "__main__":
    main()
