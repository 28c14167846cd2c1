"""Planner ``then-splitter``: "do A, then B" becomes the ordered subtasks A and B."""

from __future__ import annotations

import re
from collections.abc import Sequence

from s2kit.core import Guidance, Observation, Planner, PluginConfig, RobotStatus

_THEN = re.compile(r",?\s*\bthen\b\s*", flags=re.IGNORECASE)


class ThenSplitterPlanner(Planner):
    """Splits the instruction at 'then'; moves to the next subtask when one ends."""

    name = "then-splitter"
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
        parts = [p.strip() for p in _THEN.split(instruction) if p.strip()]
        verb = parts[0].split()[0] if parts else ""
        # "touch the red square, then the blue square": the verb carries over.
        subtasks = [parts[0], *[p if p.split()[0] == verb else f"{verb} {p}" for p in parts[1:]]]
        current = 0
        if status is not None and status.subtasks_completed is not None:
            current = status.subtasks_completed
        elif event == "subtask" and history:
            current = history[-1].current + 1
        current = min(current, len(subtasks) - 1)
        return Guidance(
            goal=instruction,
            trajectory=f"{len(subtasks)} steps, in order",
            subtasks=subtasks,
            current=current,
        )
