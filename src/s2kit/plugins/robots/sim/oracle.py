"""Planner ``oracle``: S2 guidance written from simulator state.

The goal is the instruction, verbatim. The trajectory-level text makes the
execution mode explicit: which arm, which objects in which order, where they
are and where they go. Each subtask's text refines the task's subtask with
what the scene says: where the object is, from which side to approach it,
where to put it. This is the privileged upper bound that a VLM planner
(in-context, retrieval) is measured against.
"""

from __future__ import annotations

from collections.abc import Sequence

from s2kit import hookimpl
from s2kit.core.config import PluginConfig
from s2kit.core.errors import PluginError
from s2kit.core.interfaces import Planner
from s2kit.core.types import Guidance, Observation, RobotStatus
from s2kit.plugins.robots.sim.base import SimState
from s2kit.plugins.robots.sim.world import where_on_table


class OraclePlanner(Planner):
    """Privileged planner: S2 guidance (goal, trajectory, refined subtasks) from simulator state."""

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
        sim = observation.privileged
        if not isinstance(sim, SimState):
            raise PluginError("planner 'oracle' is privileged: it needs a simulated robot (hsr or txg2 with backend sim)")
        scene, task = sim.scene, sim.task
        centre_x = sim.table_x
        subtasks = []
        for sub in task.subtasks:
            obj = scene.item(sub.obj)
            at = where_on_table(sim.positions[sub.obj], centre_x)
            if sub.kind == "pick":
                text = f"pick up the {obj.label} at the {at}, grasping it from above"
            elif sub.kind == "push":
                region = scene.item(sub.target)
                side = "behind" if sim.positions[sub.target][0] < sim.positions[sub.obj][0] else "in front of"
                text = f"push the {obj.label} at the {at} into the {region.label}, with the closed gripper {side} it"
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
                        text = f"pick up the {obj.label} at the {at} and put it {prep} the {target.label} at the {where}"
            subtasks.append(text)
        order = ", then ".join(scene.item(s.obj).label for s in task.subtasks if s.kind != "pick")
        trajectory = f"use the {sim.arm} arm; {task.family.replace('_', ' ')}: {order}"
        current = min(status.subtasks_completed if status and status.subtasks_completed is not None else sim.completed,
                      len(subtasks) - 1)  # fmt: skip
        return Guidance(goal=instruction, trajectory=trajectory, subtasks=subtasks, current=current)


@hookimpl
def s2kit_planners() -> list[type[Planner]]:
    return [OraclePlanner]
