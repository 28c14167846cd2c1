"""Planner ``instruction``: the coarse instruction alone, no refinement.

This is what a pi0.5-style policy sees: the goal and nothing else (one
subtask, the instruction itself). It needs no model and no server, and is the
baseline every refining planner is measured against.
"""

from __future__ import annotations

from collections.abc import Sequence

from s2kit import hookimpl
from s2kit.core.config import PluginConfig
from s2kit.core.interfaces import Planner
from s2kit.core.types import Guidance, Observation, RobotStatus


class InstructionPlanner(Planner):
    """The instruction as the goal and the only subtask; asked only at the start."""

    name = "instruction"
    Config = PluginConfig
    events = ("start",)

    def plan(
        self,
        instruction: str,
        observation: Observation,
        *,
        event: str = "start",
        history: Sequence[Guidance] = (),
        status: RobotStatus | None = None,
    ) -> Guidance:
        return Guidance(goal=instruction, trajectory="", subtasks=[instruction], current=0)


@hookimpl
def s2kit_planners() -> list[type[Planner]]:
    return [InstructionPlanner]
