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


def rows(*values) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def test_incremental_dims_are_bounded_by_limits_and_step() -> None:
    f = SafetyFilter(ee_delta_space(max_translation=0.05, max_rotation=0.25))
    out, changed = f.filter_chunk(rows([1.0, -1.0, 0.01, 0.5, 0, 0, 2.0], [0.01, 0, 0, 0, 0, 0, 1.0]))
    np.testing.assert_allclose(out[0], [0.05, -0.05, 0.01, 0.25, 0, 0, 1.0])
    np.testing.assert_allclose(out[1], [0.01, 0, 0, 0, 0, 0, 1.0])
    assert changed.tolist() == [True, False]


def test_absolute_dims_move_at_most_max_step_from_the_measured_state() -> None:
    f = SafetyFilter(JOINTS, state_names=("flex", "lift"))
    f.reset(rows(-1.0, 0.2))  # flex=-1.0, lift=0.2
    out, _ = f.filter_chunk(rows([0.69, 0.0], [0.69, 0.0]))
    np.testing.assert_allclose(out, [[0.25, -0.9], [0.30, -0.8]], rtol=1e-6)
    # the next chunk continues from the last command executed, not the last filtered
    out, _ = f.filter_chunk(rows([0.69, 0.0]), previous=out[0])
    np.testing.assert_allclose(out, [[0.30, -0.8]], rtol=1e-6)
    f.reset(rows(-1.0, 0.2))  # a new episode starts from the state again
    out, _ = f.filter_chunk(rows([0.69, 0.0]))
    np.testing.assert_allclose(out, [[0.25, -0.9]], rtol=1e-6)


def test_unknown_start_is_bounded_by_limits_only_then_rate_limited() -> None:
    f = SafetyFilter(JOINTS)  # no state names: nothing known about the start
    f.reset(None)
    out, _ = f.filter_chunk(rows([5.0, -5.0], [0.0, 0.0]))
    np.testing.assert_allclose(out, [[0.69, -2.62], [0.64, -2.52]], rtol=1e-6)


def test_a_start_outside_the_limits_still_yields_commands_inside_them() -> None:
    f = SafetyFilter(JOINTS, state_names=("lift", "flex"))
    f.reset(rows(-3.0, 2.0))
    out, _ = f.filter(rows(0.3, -1.0))
    assert JOINTS.low[0] <= out[0] <= JOINTS.high[0] and JOINTS.low[1] <= out[1] <= JOINTS.high[1]


def test_scale_only_tightens_the_step() -> None:
    f = SafetyFilter(ee_delta_space(max_translation=0.05), scale=0.5)
    out, _ = f.filter(rows(1.0, 0, 0, 0, 0, 0, 1))
    assert out[0] == pytest.approx(0.025)
    with pytest.raises(ValueError):
        SafetyFilter(ee_delta_space(), scale=2.0)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_commands_are_refused_naming_row_and_dimension(bad: float) -> None:
    f = SafetyFilter(ee_delta_space())
    actions = np.zeros((3, 7), np.float32)
    actions[2, 2] = bad
    with pytest.raises(UnsafeAction, match=r"non-finite action \(chunk row 2\) in dz"):
        f.filter_chunk(actions)


def test_wrong_shape_is_refused() -> None:
    with pytest.raises(UnsafeAction, match="shape"):
        SafetyFilter(ee_delta_space()).filter_chunk(np.zeros((2, 6), np.float32))


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, width=32)


@settings(max_examples=200, deadline=None)
@given(
    start=st.lists(finite, min_size=2, max_size=2),
    chunks=st.lists(st.lists(st.lists(finite, min_size=2, max_size=2), min_size=1, max_size=6), min_size=1, max_size=5),
    executed=st.integers(min_value=1, max_value=6),
)
def test_every_executed_command_is_within_limits_and_step(start, chunks, executed) -> None:
    # As the runtime uses it: each chunk is filtered from the last executed
    # command, and only its first `executed` rows run.
    f = SafetyFilter(JOINTS, state_names=("lift", "flex"))
    f.reset(np.array(start, np.float32))
    low, high, step = np.array(JOINTS.low), np.array(JOINTS.high), np.array(JOINTS.max_step)
    previous = None
    for chunk in chunks:
        out, _ = f.filter_chunk(np.array(chunk, np.float32), previous)
        for command in out[:executed]:
            assert np.all(command >= low - 1e-6) and np.all(command <= high + 1e-6)
            if previous is not None:
                assert np.all(np.abs(command - previous) <= step + 1e-5)
            previous = command
