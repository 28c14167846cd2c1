"""Diagnostic: how many pixels of the current subtask's focus item each camera sees.

Runs the scripted expert with the oracle planner (as `s2kit collect` does) and,
at every step, renders MuJoCo's segmentation of each camera and counts the
pixels of the item ``privileged.focus`` points at (the object until it is held,
then its destination). It tells whether what a policy must localize is in view
at all, or hidden by the arm or outside the frame.

    python scripts/diagnostics/focus_visibility.py [EPISODES] [SEED] [--robot hsr] [--set K=V ...]
"""

from __future__ import annotations

import argparse
from typing import Any

import mujoco
import numpy as np

from s2kit.core.config import compose_pipeline
from s2kit.core.interfaces import Subscriber
from s2kit.core.registry import get_registry
from s2kit.core.runtime import build_runtime


class FocusPixels(Subscriber):
    """Counts, per step and camera, the pixels of the focus item (reads the simulator's internals)."""

    def __init__(self) -> None:
        self.robot: Any = None
        self.renderer: Any = None
        self.model: Any = None
        self.pixels: dict[str, list[int]] = {}
        self.distance: list[float] = []

    def on_step(self, step: Any) -> None:
        sim = step.previous.privileged
        name = sim.focus_item
        if name is None:
            return
        robot = self.robot
        if self.model is not robot.model:  # a new episode compiles a new model
            self.model = robot.model
            self.renderer = mujoco.Renderer(robot.model, robot.config.image_height, robot.config.image_width)
            self.renderer.enable_segmentation_rendering()
        geoms = robot.item_geoms(name)
        for role, camera in robot._cam_ids.items():
            self.renderer.update_scene(robot.data, camera=camera)
            ids = self.renderer.render()[..., 0]  # geom id per pixel
            self.pixels.setdefault(role, []).append(int(np.isin(ids, geoms).sum()))
        self.distance.append(float(np.linalg.norm(sim.focus[:2])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("episodes", type=int, nargs="?", default=10)
    parser.add_argument("seed", type=int, nargs="?", default=0)
    parser.add_argument("--robot", default="hsr")
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    args = parser.parse_args()
    counter = FocusPixels()
    config = compose_pipeline(
        components={"robot": args.robot, "planner": "oracle", "executor": "scripted"},
        runtime={"episodes": args.episodes, "seed": args.seed},
        overrides=args.overrides,
    )
    runtime = build_runtime(config, get_registry(), [counter])
    counter.robot = runtime.robot
    for i in range(args.episodes):
        runtime.run_episode(i, args.seed + i)
    far = np.array(counter.distance) > 0.15
    hidden = {}
    for role, pixels in counter.pixels.items():
        p = np.array(pixels)
        hidden[role] = p == 0
        print(f"{role}: {len(p)} steps; focus item out of sight in {100 * hidden[role].mean():.0f}% "
              f"({100 * hidden[role][far].mean():.0f}% with it over 15 cm away); median {np.median(p):.0f} px")  # fmt: skip
    both = np.logical_and.reduce(list(hidden.values()))
    print(f"out of sight of every camera: {100 * both.mean():.0f}% of steps")


if __name__ == "__main__":
    main()
