from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s2kit.core.safety import SafetyFilter, UnsafeAction
from s2kit.core.types import ActionSpace, ee_delta_space

JOINTS = ActionSpace(
    name="joint",
    names=("lift", "flex"),
    low=(0.0, -2.62),
    high=(0.69, 0.0),
    max_step=(0.05, 0.1),
    absolute=True,
)


def test_incremental_dims_are_bounded_by_limits_and_step() -> None:
    f = SafetyFilter(ee_delta_space(max_translation=0.05, max_rotation=0.25))
    out, changed = f.filter(np.array([1.0, -1.0, 0.01, 0.5, 0, 0, 2.0], np.float32))
    np.testing.assert_allclose(out, [0.05, -0.05, 0.01, 0.25, 0, 0, 1.0])
    assert changed
    out, changed = f.filter(np.array([0.01, 0, 0, 0, 0, 0, 1.0], np.float32))
    assert not changed


def test_absolute_dims_move_at_most_max_step_from_the_measured_state() -> None:
    f = SafetyFilter(JOINTS, state_names=("flex", "lift"))
    f.reset(np.array([-1.0, 0.2], np.float32))  # flex=-1.0, lift=0.2
    out, _ = f.filter(np.array([0.69, 0.0], np.float32))
    np.testing.assert_allclose(out, [0.25, -0.9], rtol=1e-6)
    out, _ = f.filter(np.array([0.69, 0.0], np.float32))  # from the previous command
    np.testing.assert_allclose(out, [0.30, -0.8], rtol=1e-6)
    f.reset(np.array([-1.0, 0.2], np.float32))  # a new episode starts from the state again
    out, _ = f.filter(np.array([0.69, 0.0], np.float32))
    np.testing.assert_allclose(out, [0.25, -0.9], rtol=1e-6)


def test_unknown_start_is_bounded_by_limits_only_then_rate_limited() -> None:
    f = SafetyFilter(JOINTS)  # no state names: nothing known about the start
    f.reset(None)
    out, _ = f.filter(np.array([5.0, -5.0], np.float32))
    np.testing.assert_allclose(out, [0.69, -2.62])
    out, _ = f.filter(np.array([0.0, 0.0], np.float32))
    np.testing.assert_allclose(out, [0.64, -2.52], rtol=1e-6)


def test_a_start_outside_the_limits_still_yields_commands_inside_them() -> None:
    f = SafetyFilter(JOINTS, state_names=("lift", "flex"))
    f.reset(np.array([-3.0, 2.0], np.float32))
    out, _ = f.filter(np.array([0.3, -1.0], np.float32))
    assert JOINTS.low[0] <= out[0] <= JOINTS.high[0] and JOINTS.low[1] <= out[1] <= JOINTS.high[1]


def test_scale_only_tightens_the_step() -> None:
    f = SafetyFilter(ee_delta_space(max_translation=0.05), scale=0.5)
    out, _ = f.filter(np.array([1.0, 0, 0, 0, 0, 0, 1], np.float32))
    assert out[0] == pytest.approx(0.025)
    with pytest.raises(ValueError):
        SafetyFilter(ee_delta_space(), scale=2.0)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_commands_are_refused_naming_the_dimension(bad: float) -> None:
    f = SafetyFilter(ee_delta_space())
    action = np.zeros(7, np.float32)
    action[2] = bad
    with pytest.raises(UnsafeAction, match="non-finite action in dz"):
        f.filter(action)


def test_wrong_shape_is_refused() -> None:
    with pytest.raises(UnsafeAction, match="shape"):
        SafetyFilter(ee_delta_space()).filter(np.zeros(6, np.float32))


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, width=32)


@settings(max_examples=200, deadline=None)
@given(
    start=st.lists(finite, min_size=2, max_size=2),
    commands=st.lists(st.lists(finite, min_size=2, max_size=2), min_size=1, max_size=20),
)
def test_every_command_that_passes_is_within_limits_and_step(start, commands) -> None:
    f = SafetyFilter(JOINTS, state_names=("lift", "flex"))
    f.reset(np.array(start, np.float32))
    low, high, step = np.array(JOINTS.low), np.array(JOINTS.high), np.array(JOINTS.max_step)
    previous = None
    for command in commands:
        out, _ = f.filter(np.array(command, np.float32))
        assert np.all(out >= low - 1e-6) and np.all(out <= high + 1e-6)
        if previous is not None:
            assert np.all(np.abs(out - previous) <= step + 1e-5)
        previous = out
