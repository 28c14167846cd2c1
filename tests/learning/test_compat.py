"""Checkpoints written before the learning kit (format 1) still load and give the same chunks.

``compat/outputs.json`` was written by the pre-kit executors on the inputs of
`tests.learning.compat_inputs`, for two tiny checkpoints kept in ``compat/``
(a flow-head S2 with registers, and a regression-head baseline): any change to loading, input preparation, the network or the heads
that alters an action shows here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from s2kit.core.registry import get_registry
from tests.learning.compat_inputs import GUIDANCE, SPEC, observations

HERE = Path(__file__).parent / "compat"
EXPECTED = json.loads((HERE / "outputs.json").read_text())
SECTIONS = {
    "flow_s2": {"name": "s2", "checkpoint": str(HERE / "flow_s2")},
    "flow_s2_rho": {"name": "s2", "checkpoint": str(HERE / "flow_s2"), "rho": 0.5, "seed": 3},
    "baseline_regression": {"name": "baseline", "checkpoint": str(HERE / "baseline_regression")},
}


@pytest.mark.parametrize("name", list(SECTIONS))
def test_pre_kit_checkpoint_gives_the_chunks_it_gave(name: str) -> None:
    executor = get_registry().create("executor", SECTIONS[name])
    executor.setup(SPEC)
    executor.reset()
    rows = iter(EXPECTED[name])
    try:
        for observation in observations():
            for guidance in GUIDANCE:
                chunk, want = executor.act(observation, guidance), next(rows)
                np.testing.assert_allclose(chunk.actions, np.asarray(want["actions"], dtype=np.float32), rtol=1e-4, atol=1e-6)
                assert chunk.info["done_probability"] == pytest.approx(want["done_probability"], abs=1e-5)
                assert chunk.subtask_done == want["subtask_done"]
                if "keep" in want:
                    assert {r: np.flatnonzero(m).tolist() for r, m in chunk.info["keep"].items()} == want["keep"]
    finally:
        executor.close()
