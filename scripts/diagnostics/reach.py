"""Diagnostic: how close the hand gets to the first subtask's object, for any executor or skill.

Where every network completes no subtask, subtask success cannot rank them;
the closest the hand comes to the object of the episode's first subtask
(while that subtask is pending) still can: a network that reaches for the
right object gets closer than one that wanders.

    python scripts/diagnostics/reach.py [--robot hsr] [--suite SUITE] [--executor NAME] [--skill NAME]
        [--set SECTION.KEY=VALUE ...] [--episodes 20] [--seed 100000] [--max-steps 150]

Prints the per-episode closest distance (cm, 3-D, hand to the object's
centre), its median, the share of episodes within 5 and 10 cm, and the
subtasks completed. The planner is the oracle.
"""

from __future__ import annotations

import argparse

import numpy as np

from s2kit.core.interfaces import Subscriber
from s2kit.core.types import Step


class Closest(Subscriber):
    """Per episode, the closest the hand came to the first subtask's object(s) while that subtask was pending."""

    def __init__(self) -> None:
        self.episodes: list[float] = []

    def on_episode_start(self, info) -> None:  # noqa: ANN001
        self.episodes.append(np.inf)

    def on_step(self, step: Step) -> None:
        sim = step.observation.privileged
        if sim.completed > 0:
            return
        first = sim.task.subtasks[0]
        hand = np.asarray(sim.ee_pos)
        near = min(float(np.linalg.norm(hand - np.asarray(sim.positions[name]))) for name in first.objects)
        self.episodes[-1] = min(self.episodes[-1], near)


def main() -> None:
    from s2kit.core.config import compose_pipeline
    from s2kit.core.registry import get_registry
    from s2kit.core.runtime import build_runtime

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--robot", default="hsr")
    parser.add_argument("--suite", default="id")
    parser.add_argument("--executor")
    parser.add_argument("--skill")
    parser.add_argument("--set", action="append", default=[], dest="sets")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=100000)
    parser.add_argument("--max-steps", type=int, default=150)
    args = parser.parse_args()
    config = compose_pipeline(
        components={"robot": args.robot, "planner": "oracle", "executor": args.executor, "skill": args.skill},
        runtime={"episodes": args.episodes, "seed": args.seed},
        overrides=[f"robot.suite={args.suite}", f"runtime.max_steps={args.max_steps}", *args.sets],
    )
    runtime = build_runtime(config, get_registry())
    closest = Closest()
    runtime.subscribers.append(closest)
    done = [runtime.run_episode(i, args.seed + i).subtasks_completed or 0 for i in range(args.episodes)]
    for component in reversed(runtime.components):
        component.close()
    cm = np.array(closest.episodes) * 100
    print(f"closest to the first subtask's object, cm: {[round(float(x), 1) for x in cm]}")
    print(f"median {np.median(cm):.1f} cm; within 5 cm {np.mean(cm <= 5):.0%}, within 10 cm {np.mean(cm <= 10):.0%}; "
          f"subtasks completed {sum(done)} in {args.episodes} episodes of {args.max_steps} steps")  # fmt: skip


if __name__ == "__main__":
    main()
