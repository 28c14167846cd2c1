"""Milliseconds of one ``mpc`` chunk against the candidate count K, on the simulated robot.

One ``mpc`` chunk is: the inner executor's chunk (or its samples), the
candidates filled up by perturbations and kept windows, every candidate
through the safety layer, every candidate's window scored, the best chosen.
This times `MpcExecutor.act` on observations of real episodes (the
simulated HSR, the oracle planner's guidance), next to the inner alone, and
splits the time into the inner's part and the scoring (``mpc.score_ms``).

    .venv/bin/python benchmarks/mpc_latency.py [--inner s2] [--scorer sim|critic] [--critic RUN] [--backend torch|onnxruntime]
        [--k 1,4,8,16,32] [--window 5] [--calls 30] [--robot hsr] [--set K=V ...] [--json]

The runtime asks for a chunk every ``execute_horizon`` steps (5 by
default), so a chunk computed within one control period (100 ms at 10 Hz)
keeps the loop at its rate in async mode. ``--scorer sim`` is the privileged
upper bound (every candidate rolled out in MuJoCo, ``window`` control
periods of 20 physics steps each, one after the other). ``--scorer critic``
times the learned critic (``--critic RUN``; without it, the default critic
network freshly initialized: timing does not depend on the weights), on
torch or on onnxruntime (``--backend``; the graph is exported with K
candidates a call, one graph per K, parity-checked).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "osmesa")

from s2kit.core.config import apply_overrides  # noqa: E402
from s2kit.core.registry import get_registry  # noqa: E402


def untrained_critic(folder: Path, window: int, candidates: int) -> Path:
    """The default critic network, freshly initialized, as a checkpoint for a robot with the canonical hand state."""
    import torch

    from s2kit.core.types import EE_STATE
    from s2kit.learning.checkpoints import CheckpointInfo, save_checkpoint
    from s2kit.learning.inputs import StateEncoder
    from s2kit.plugins.executors.mpc.critic import CriticConfig, ProgressCritic

    torch.manual_seed(0)
    config = CriticConfig(chunk=window, candidates=candidates, state_dim=StateEncoder(EE_STATE, None).dim)
    info = CheckpointInfo(
        executor="mpc-critic", model=config, state_names=list(EE_STATE), action_names=[f"a{i}" for i in range(config.action_dim)],
        normalization={"state_mean": [0.0] * config.state_dim, "state_std": [1.0] * config.state_dim,
                       "action_mean": [0.0] * config.action_dim, "action_std": [1.0] * config.action_dim},
        control_hz=10.0,
    )  # fmt: skip
    return save_checkpoint(folder, ProgressCritic(config).eval(), info)


def critic_options(critic: str | None, backend: str, k: int, window: int, scratch: Path) -> dict:
    """The mpc options that make it score with a critic: the given run, or an untrained one; an ONNX graph of K a call."""
    from s2kit.learning.export import export_onnx

    path = Path(critic) if critic else untrained_critic(scratch / f"critic_{k}", window, k)
    options: dict = {"critic": str(path), "critic_backend": backend}
    if backend == "onnxruntime":
        if critic:  # a trained run: a graph with its own candidate count is exported for each K
            raise SystemExit("--backend onnxruntime times untrained critics only (one graph per K); export yours and pass --set critic_onnx=")
        export_onnx(path, scratch / f"critic_{k}.onnx", check=False)
        options["critic_onnx"] = str(scratch / f"critic_{k}.onnx")
    return options


def measure(inner: dict, scorer: str, k: int, window: int, calls: int, robot_name: str, overrides: list[str], extra: dict) -> dict:
    registry = get_registry()
    robot = registry.create("robot", {"name": robot_name, "suite": "id", "render": True})
    oracle = registry.create("planner", {"name": "oracle"})
    section = {"name": "mpc", "inner": inner, "scorer": scorer, "candidates": k, "window": window, "robot": robot_name, **extra}
    section = apply_overrides(section, overrides)
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
    parser.add_argument("--scorer", default="sim", choices=["sim", "critic"])
    parser.add_argument("--critic", default=None, help="A trained critic run (default: an untrained one per K).")
    parser.add_argument("--backend", default="torch", choices=["torch", "onnxruntime"], help="The critic's backend.")
    parser.add_argument("--k", default="1,4,8,16,32")
    parser.add_argument("--window", type=int, default=5)
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--robot", default="hsr")
    parser.add_argument("--set", action="append", default=[], dest="overrides", metavar="K=V", help="An mpc option, e.g. iterations=2.")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for k in map(int, args.k.split(",")):
            extra = critic_options(args.critic, args.backend, k, args.window, Path(scratch)) if args.scorer == "critic" else {}
            rows.append(measure({"name": args.inner}, args.scorer, k, args.window, args.calls, args.robot, args.overrides, extra))
    if args.json:
        print(json.dumps({"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "rows": rows}, indent=2))
        return
    scorer = args.scorer + (f" on {args.backend}" if args.scorer == "critic" else "")
    print(f"mpc around {args.inner}, scorer {scorer}, window {args.window}, {args.robot}, {args.calls} calls, {os.cpu_count()} CPUs")
    print(f"{'K':>4} {'chunk ms (median)':>18} {'p90':>7} {'inner ms':>9} {'scoring ms':>11}")
    for r in rows:
        print(f"{r['k']:>4} {r['chunk_ms_median']:>18.1f} {r['chunk_ms_p90']:>7.1f} {r['inner_ms_median']:>9.1f} {r['score_ms_median']:>11.1f}")


if __name__ == "__main__":
    main()
