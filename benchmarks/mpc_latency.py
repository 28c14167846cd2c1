"""Milliseconds of one ``mpc`` chunk against the candidate count K, on the simulated robot.

One ``mpc`` chunk is: the inner executor's chunk (or its samples), the
candidates filled up by perturbations and kept windows, every candidate
through the safety layer, every candidate's window scored, the best chosen.
This times `MpcExecutor.act` on observations of real episodes (the
simulated HSR, the oracle planner's guidance), next to the inner alone, and
splits the time into the inner's part and the scoring (``mpc.score_ms``).

    .venv/bin/python benchmarks/mpc_latency.py [--inner s2] [--scorer sim] [--k 1,4,8,16,32] [--window 5]
        [--calls 30] [--robot hsr] [--set executor.K=V ...] [--json]

The runtime asks for a chunk every ``execute_horizon`` steps (5 by
default), so a chunk computed within one control period (100 ms at 10 Hz)
keeps the loop at its rate in async mode. ``--scorer sim`` is the privileged
upper bound (every candidate rolled out in MuJoCo, ``window`` control
periods of 20 physics steps each, one after the other).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

os.environ.setdefault("MUJOCO_GL", "osmesa")

from s2kit.core.config import apply_overrides  # noqa: E402
from s2kit.core.registry import get_registry  # noqa: E402


def measure(inner: dict, scorer: str, k: int, window: int, calls: int, robot_name: str, overrides: list[str]) -> dict:
    registry = get_registry()
    robot = registry.create("robot", {"name": robot_name, "suite": "id", "render": True})
    oracle = registry.create("planner", {"name": "oracle"})
    section = apply_overrides({"name": "mpc", "inner": inner, "scorer": scorer, "candidates": k, "window": window, "robot": robot_name}, overrides)
    executor = registry.create("executor", section)
    executor.setup(robot.spec)
    total, inner_ms, score_ms = [], [], []
    try:
        obs = robot.reset(seed=0)
        executor.reset()
        guidance = oracle.plan(robot.instruction, obs)
        for call in range(calls + 3):  # three warm-up calls
            t = time.perf_counter()
            executor.inner.act(obs, guidance)
            alone = time.perf_counter() - t
            t = time.perf_counter()
            chunk = executor.act(obs, guidance)
            spent = time.perf_counter() - t
            if call >= 3:
                total.append(1000 * spent)
                inner_ms.append(1000 * alone)
                score_ms.append(chunk.info["mpc"].get("score_ms", float("nan")))
            for action in chunk.actions[:5]:
                robot.apply(action, chunk.space)
            obs = robot.observe()
    finally:
        executor.close()
        robot.close()
    return {
        "k": k,
        "chunk_ms_median": statistics.median(total),
        "chunk_ms_p90": sorted(total)[int(0.9 * (len(total) - 1))],
        "inner_ms_median": statistics.median(inner_ms),
        "score_ms_median": statistics.median(score_ms),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inner", default="s2", help="The inner executor's name (its shipped checkpoint).")
    parser.add_argument("--scorer", default="sim")
    parser.add_argument("--k", default="1,4,8,16,32")
    parser.add_argument("--window", type=int, default=5)
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--robot", default="hsr")
    parser.add_argument("--set", action="append", default=[], dest="overrides", metavar="K=V", help="An mpc option, e.g. iterations=2.")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = [measure({"name": args.inner}, args.scorer, int(k), args.window, args.calls, args.robot, args.overrides) for k in args.k.split(",")]
    if args.json:
        print(json.dumps({"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "rows": rows}, indent=2))
        return
    print(f"mpc around {args.inner}, scorer {args.scorer}, window {args.window}, {args.robot}, {args.calls} calls, {os.cpu_count()} CPUs")
    print(f"{'K':>4} {'chunk ms (median)':>18} {'p90':>7} {'inner ms':>9} {'scoring ms':>11}")
    for r in rows:
        print(f"{r['k']:>4} {r['chunk_ms_median']:>18.1f} {r['chunk_ms_p90']:>7.1f} {r['inner_ms_median']:>9.1f} {r['score_ms_median']:>11.1f}")


if __name__ == "__main__":
    main()
