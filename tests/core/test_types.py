from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from s2kit.core.types import (
    EE_DELTA,
    EE_DELTA_NAMES,
    ActionChunk,
    ActionSpace,
    Guidance,
    JointSpec,
    RobotSpec,
    ee_delta_space,
)


def test_guidance_keeps_goal_and_advances_within_subtasks() -> None:
    g = Guidance(goal="tidy the table", trajectory="left arm", subtasks=["pick cup", "place cup"])
    assert g.subtask == "pick cup"
    nxt = g.advanced()
    assert (nxt.goal, nxt.current, nxt.subtask) == ("tidy the table", 1, "place cup")
    assert nxt.advanced() is nxt  # saturates at the last subtask
    assert g.current == 0  # frozen: advancing made a copy


def test_guidance_rejects_out_of_range_current_and_unknown_fields() -> None:
    with pytest.raises(ValidationError, match="out of range"):
        Guidance(goal="g", subtasks=["a"], current=1)
    with pytest.raises(ValidationError):
        Guidance(goal="g", instruction="typo")  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        Guidance()  # type: ignore[call-arg]


def test_guidance_round_trips_through_json() -> None:
    g = Guidance(goal="g", trajectory="t", subtasks=["a", "b"], current=1, latent=[0.5, -1.0], skills=[3, 4])
    assert Guidance.model_validate_json(g.model_dump_json()) == g


def test_ee_delta_is_the_canonical_7d_space() -> None:
    space = ee_delta_space(max_translation=0.02, max_rotation=0.1)
    assert space.name == EE_DELTA and space.names == EE_DELTA_NAMES and space.dim == 7
    assert space.high[:3] == (0.02, 0.02, 0.02) and space.high[3:6] == (0.1, 0.1, 0.1)
    assert (space.low[6], space.high[6]) == (0.0, 1.0)
    assert space.absolute_mask == (False,) * 6 + (True,)


def test_action_space_checks_its_own_consistency() -> None:
    with pytest.raises(ValidationError, match="low has 2 entries"):
        ActionSpace(name="j", names=("a", "b", "c"), low=(0, 0), high=(1, 1, 1))
    with pytest.raises(ValidationError, match="low > high"):
        ActionSpace(name="j", names=("a",), low=(1,), high=(0,))
    with pytest.raises(ValidationError, match="max_step"):
        ActionSpace(name="j", names=("a",), low=(0,), high=(1,), max_step=(0,))
    with pytest.raises(ValidationError, match="lower"):
        JointSpec(name="arm_flex_joint", lower=0.0, upper=-2.62)


def test_robot_spec_names_the_spaces_it_accepts() -> None:
    spec = RobotSpec(name="r", action_spaces=(ee_delta_space(),), control_hz=20)
    assert spec.control_period == pytest.approx(0.05)
    assert spec.action_space(EE_DELTA).dim == 7
    with pytest.raises(ValueError, match="accepts: ee_delta"):
        spec.action_space("joint_pos")
    with pytest.raises(ValidationError, match="no action space"):
        RobotSpec(name="r", action_spaces=())


def test_action_chunk_is_a_plain_container() -> None:
    chunk = ActionChunk(actions=np.zeros((5, 7), np.float32))
    assert len(chunk) == 5 and chunk.space == EE_DELTA and not chunk.subtask_done
