"""How close a planner's guidance is to the oracle's, on the simulated robot's suites.

    .venv/bin/python benchmarks/planner_accuracy.py [--planner retrieval] [--robot hsr]
        [--suites id,semantic,paraphrase] [--episodes 100] [--seed 0] [--set K=V ...] [--json]

For each suite and seed the robot is reset (no rendering unless the planner
needs images: ``--render``) and both planners are asked at the start. Per suite:

- *sequence accuracy*: episodes whose subtask list has the oracle's
  structure, subtask by subtask: the same verb and the same objects and
  destinations in the same order (wording and locations aside), Wilson 95% CI;
- *exact*: episodes whose subtask texts equal the oracle's word for word;
- *subtask accuracy*: oracle subtasks matched at the same position;
- mean and p95 planning time.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

os.environ.setdefault("MUJOCO_GL", "osmesa")

from s2kit.core.config import apply_overrides  # noqa: E402
from s2kit.core.metrics import wilson_ci  # noqa: E402
from s2kit.core.registry import load_registry  # noqa: E402
from s2kit.plugins.planners._language import Vocabulary, parse_scene, structure  # noqa: E402


def evaluate(planner_cfg: dict, robot: str, suite: str, episodes: int, seed: int, render: bool) -> dict:
    registry = load_registry(env={})
    bot = registry.create("robot", {"name": robot, "suite": suite, "render": render})
    oracle = registry.create("planner", {"name": "oracle"})
    planner = registry.create("planner", planner_cfg)
    seq = exact = sub_ok = sub_n = 0
    times, misses = [], []
    try:
        for s in range(seed, seed + episodes):
            obs = bot.reset(seed=s)
            instruction = bot.instruction
            ref = oracle.plan(instruction, obs)
            t = time.perf_counter()
            got = planner.plan(instruction, obs)
            times.append(time.perf_counter() - t)
            vocab = Vocabulary().with_labels(list(parse_scene(obs.scene)))
            a, b = structure(ref.subtasks, vocab), structure(got.subtasks, vocab)
            seq += a == b
            exact += ref.subtasks == got.subtasks
            sub_ok += sum(x == y for x, y in zip(a, b, strict=False))
            sub_n += len(a)
            if a != b and len(misses) < 5:
                misses.append({"seed": s, "instruction": instruction, "oracle": ref.subtasks, "planner": got.subtasks})
    finally:
        bot.close()
        planner.close()
    ci = wilson_ci(seq, episodes)
    return {
        "suite": suite,
        "episodes": episodes,
        "sequence_accuracy": seq / episodes,
        "sequence_ci": [ci.low, ci.high] if ci else None,
        "exact": exact / episodes,
        "subtask_accuracy": sub_ok / max(sub_n, 1),
        "plan_ms_mean": 1000 * float(np.mean(times[1:] or times)),  # the first call loads the encoder
        "plan_ms_p95": 1000 * float(np.percentile(times[1:] or times, 95)),
        "misses": misses,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--planner", default="retrieval")
    parser.add_argument("--robot", default="hsr")
    parser.add_argument("--suites", default="id,semantic,paraphrase")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--render", action="store_true", help="Render cameras (planners that look at the image).")
    parser.add_argument("--set", action="append", default=[], dest="overrides", metavar="K=V")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    planner_cfg = apply_overrides({"name": args.planner}, args.overrides)
    rows = [evaluate(planner_cfg, args.robot, s, args.episodes, args.seed, args.render) for s in args.suites.split(",")]
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"planner {args.planner} vs oracle on {args.robot}, seeds {args.seed}..{args.seed + args.episodes - 1}")
    print(f"{'suite':<12} {'sequence accuracy (95% CI)':<28} {'exact':>6} {'subtask':>8} {'plan ms':>8} {'p95':>6}")
    for r in rows:
        lo, hi = r["sequence_ci"]
        print(f"{r['suite']:<12} {r['sequence_accuracy']:>6.1%} [{lo:.1%}, {hi:.1%}]{'':<6} {r['exact']:>6.1%} "
              f"{r['subtask_accuracy']:>8.1%} {r['plan_ms_mean']:>8.2f} {r['plan_ms_p95']:>6.2f}")
    for r in rows:
        for m in r["misses"][:2]:
            print(f"  miss ({r['suite']}, seed {m['seed']}): {m['instruction']!r}\n    oracle:  {m['oracle']}\n    planner: {m['planner']}")


if __name__ == "__main__":
    main()
