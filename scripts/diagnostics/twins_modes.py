"""Diagnostic: where an executor's hand goes on the ``twins`` variant, one twin or between the two.

Runs episodes of the simulated ``twins`` suite (HSR unless ROBOT names another)
with the oracle planner and RUN's executor (``scripted`` for the expert), and
follows the hand over the table before the first subtask is done: the closest
it comes, sideways, to each twin and to the point halfway between them. An
episode *went to a twin* if the hand came within RADIUS of one; *between* if
it came within RADIUS of the midpoint and of neither twin; else *neither*.
Averaging two demonstrated modes shows as *between*.

    python scripts/diagnostics/twins_modes.py RUN|scripted [EPISODES] [SEED] [ROBOT]
"""

from __future__ import annotations

import sys

import numpy as np

from s2kit.core.interfaces import Subscriber
from s2kit.core.types import Step

RADIUS = 0.03  # m, sideways


class Closest(Subscriber):
    """Per episode, the closest the hand came (xy) to each twin and to their midpoint while the pick was pending."""

    def __init__(self) -> None:
        self.episodes: list[dict[str, float]] = []

    def on_episode_start(self, info) -> None:  # noqa: ANN001
        self.episodes.append({"twin": np.inf, "other": np.inf, "middle": np.inf})

    def on_step(self, step: Step) -> None:
        sim = step.observation.privileged
        if sim.completed > 0:
            return
        pick = sim.task.subtasks[0]
        a, b = (np.asarray(sim.positions[name][:2]) for name in pick.objects)
        hand = np.asarray(sim.ee_pos[:2])
        row = self.episodes[-1]
        near = sorted((float(np.linalg.norm(hand - a)), float(np.linalg.norm(hand - b))))
        row["twin"] = min(row["twin"], near[0])
        row["other"] = min(row["other"], near[1])
        row["middle"] = min(row["middle"], float(np.linalg.norm(hand - (a + b) / 2)))


def main() -> None:
    from s2kit.core.config import compose_pipeline
    from s2kit.core.registry import get_registry
    from s2kit.core.runtime import build_runtime

    run = sys.argv[1]
    episodes = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 100000
    robot = sys.argv[4] if len(sys.argv) > 4 else "hsr"
    executor = "scripted" if run == "scripted" else "s2"
    overrides = ["robot.suite=twins"] + ([f"executor.checkpoint={run}"] if executor != "scripted" else ["executor.approach=funnel"])
    config = compose_pipeline(components={"robot": robot, "planner": "oracle", "executor": executor},
                              runtime={"episodes": episodes, "seed": seed}, overrides=overrides)  # fmt: skip
    runtime = build_runtime(config, get_registry())
    closest = Closest()
    runtime.subscribers.append(closest)
    success = [runtime.run_episode(i, seed + i).subtask_success for i in range(episodes)]
    runtime.robot.close()
    kinds = []
    for row in closest.episodes:
        if row["twin"] <= RADIUS:
            kinds.append("twin")
        elif row["middle"] <= RADIUS:
            kinds.append("between")
        else:
            kinds.append("neither")
    counts = {k: kinds.count(k) for k in ("twin", "between", "neither")}
    print(f"{run}: {episodes} episodes, subtask success {np.mean(success):.1%}; hand within {RADIUS * 100:.0f} cm of a twin: "
          f"{counts['twin']}, between them only: {counts['between']}, neither: {counts['neither']}")  # fmt: skip
    print("closest to a twin (cm), per episode:", [round(r["twin"] * 100, 1) for r in closest.episodes])
    print("closest to the midpoint (cm), per episode:", [round(r["middle"] * 100, 1) for r in closest.episodes])


if __name__ == "__main__":
    main()
