"""Write the default planner exemplars from the oracle on the simulated HSR.

    .venv/bin/python scripts/make_exemplars.py > src/s2kit/plugins/planners/exemplars.yaml

Seeds start at 10000, away from every evaluation seed, and each instruction
structure (family and phrasing) gets ``--per-frame`` exemplars.
"""

from __future__ import annotations

import argparse

import yaml

from s2kit.core.registry import get_registry
from s2kit.plugins.planners._language import Vocabulary, frame

HEADER = """\
# Few-shot exemplars for the `incontext` and `retrieval` planners: an instruction,
# what was on the table, and the guidance a good planner gives for it. Edit or
# replace this file and point a planner at yours:
#   --set planner.exemplars=path/to/exemplars.yaml
# Written by the oracle on the simulated HSR: python scripts/make_exemplars.py
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--per-frame", type=int, default=2)
    parser.add_argument("--first-seed", type=int, default=10000)
    args = parser.parse_args()
    registry = get_registry()
    robot = registry.create("robot", {"name": "hsr", "render": False})
    oracle = registry.create("planner", {"name": "oracle"})
    vocabulary, counts, exemplars = Vocabulary(), {}, []
    for seed in range(args.first_seed, args.first_seed + 400):
        obs = robot.reset(seed=seed)
        key = frame(robot.instruction, vocabulary)
        if counts.get(key, 0) >= args.per_frame:
            continue
        counts[key] = counts.get(key, 0) + 1
        g = oracle.plan(robot.instruction, obs)
        exemplars.append({"instruction": g.goal, "scene": obs.scene, "trajectory": g.trajectory, "subtasks": g.subtasks})
    robot.close()
    print(HEADER + yaml.safe_dump({"exemplars": exemplars}, sort_keys=False, width=200), end="")


if __name__ == "__main__":
    main()
