from __future__ import annotations

import numpy as np

from s2kit.core.types import Observation
from s2kit.plugins.planners.instruction import InstructionPlanner


def test_the_instruction_is_the_goal_and_the_only_subtask() -> None:
    obs = Observation(images={}, state=np.zeros(1, np.float32))
    g = InstructionPlanner().plan("put the green block in the basket", obs)
    assert g.goal == "put the green block in the basket"
    assert g.subtasks == ["put the green block in the basket"] and g.current == 0 and g.trajectory == ""
