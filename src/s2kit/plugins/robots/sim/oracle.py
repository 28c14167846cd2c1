"""Planner ``oracle``: S2 guidance from what the robot knows of its own task.

The goal is the instruction, verbatim. The subtasks are the robot's own
subtask texts (`Observation.task`, which any robot that sets its task can
give), and the current one is the robot's progress. On the simulated robots
(hsr, txg2), whose observations carry the simulator's state
(`Observation.privileged`), each subtask's text is refined further with what
the scene says: where the object is, from which side to approach it, where to
put it; and the trajectory-level text makes the execution mode explicit: which
arm, which objects in which order. This is the privileged upper bound that a
VLM planner (in-context, retrieval) is measured against.

A robot that gives neither its task nor simulator state cannot be planned for
by this planner: that is one clear error naming the robot's choices.
"""

from __future__ import annotations

from collections.abc import Sequence

from s2kit import hookimpl
from s2kit.core.config import PluginConfig
from s2kit.core.errors import PluginError
from s2kit.core.interfaces import Planner
from s2kit.core.types import Guidance, Observation, RobotStatus, TaskText
from s2kit.plugins.robots.sim.base import SimState
from s2kit.plugins.robots.sim.world import where_on_table


class OraclePlanner(Planner):
    """Privileged planner: the robot's own subtasks (refined from simulator state where there is one)."""

    name = "oracle"
    Config = PluginConfig
    events = ("start", "subtask")

    def plan(
        self,
        instruction: str,
        observation: Observation,
        *,
        event: str = "start",
        history: Sequence[Guidance] = (),
        status: RobotStatus | None = None,
    ) -> Guidance:
        sim = observation.privileged if isinstance(observation.privileged, SimState) else None
        task = observation.task
        if task is None and sim is not None:  # a simulated robot over ROS: its state, not its task, is relayed
            completed = min(sim.completed, len(sim.task.subtasks) - 1)
            task = TaskText(sim.task.instruction, tuple(sim.task.subtask_texts), max(completed, 0))
        if task is None or not task.subtasks:
            raise PluginError(
                "planner 'oracle' needs the robot's own subtask texts (Robot.task, in Observation.task), "
                "which this robot does not give; choose a planner that reads the instruction "
                "(--planner instruction, retrieval or incontext)"
            )
        if sim is not None:
            trajectory, subtasks = _refined(sim)
        else:
            trajectory, subtasks = "; then ".join(task.subtasks), list(task.subtasks)
        done = status.subtasks_completed if status is not None else None
        current = min(task.current if done is None else done, len(subtasks) - 1)
        return Guidance(goal=instruction, trajectory=trajectory, subtasks=subtasks, current=current)


def _refined(sim: SimState) -> tuple[str, list[str]]:
    """The trajectory text and each subtask's text, refined with where things are in the scene."""
    scene, task = sim.scene, sim.task
    centre_x = sim.table_x
    subtasks = []
    for sub in task.subtasks:
        obj = scene.item(sub.obj)
        # an object with a twin: either will do, so the text does not say which
        at = " (either of the two)" if sub.alternatives else f" at the {where_on_table(sim.positions[sub.obj], centre_x)}"
        if sub.kind == "pick":
            text = f"pick up the {obj.label}{at}, grasping it from above"
        elif sub.kind == "push":
            region = scene.item(sub.target)
            side = "behind" if sim.positions[sub.target][0] < sim.positions[sub.obj][0] else "in front of"
            text = f"push the {obj.label}{at} into the {region.label}, with the closed gripper {side} it"
        else:
            target = scene.item(sub.target)
            where = where_on_table(sim.positions[sub.target], centre_x)
            if sub.kind == "stack":
                text = f"carry the {obj.label} to the {target.label} at the {where} and set it on top"
            else:
                prep = "onto" if target.kind == "plate" else "into"
                if task.family == "pick_place":  # the pick was its own subtask
                    text = f"lower the {obj.label} {prep} the {target.label} at the {where} and release it"
                else:
                    text = f"pick up the {obj.label}{at} and put it {prep} the {target.label} at the {where}"
        subtasks.append(text)
    order = ", then ".join(scene.item(s.obj).label for s in task.subtasks if s.kind != "pick")
    return f"use the {sim.arm} arm; {task.family.replace('_', ' ')}: {order}", subtasks


@hookimpl
def s2kit_planners() -> list[type[Planner]]:
    return [OraclePlanner]
