"""The fixed inputs of the checkpoint-compatibility test (tests/learning/test_compat.py).

``compat/outputs.json`` holds what the executors gave on these inputs when the
checkpoints in ``compat/`` (and the shipped default) were written, before the
learning kit existed; the test checks that they still load and give the same
chunks. Do not regenerate the outputs with newer code: they are the reference.
"""

from __future__ import annotations

import numpy as np

from s2kit.core.types import CameraSpec, Guidance, Observation, RobotSpec, ee_delta_space

EE_STATE = ("ee_x", "ee_y", "ee_z", "ee_roll", "ee_pitch", "ee_yaw", "gripper")
SPEC = RobotSpec(
    name="compat", cameras=(CameraSpec(role="head", height=72, width=96), CameraSpec(role="wrist", height=96, width=96)),
    state_names=("base_x", *EE_STATE), action_spaces=(ee_delta_space(),), control_hz=10.0,
)  # fmt: skip
GUIDANCE = [
    Guidance(goal="put the red cube in the bowl", trajectory="move the red cube to the bowl",
             subtasks=["pick up the red cube", "place it in the bowl"], current=0),
    Guidance(goal="stack the blue block on the green block", trajectory="", subtasks=["grasp the blue block", "put it on the green one"], current=1),
]  # fmt: skip


def observations() -> list[Observation]:
    """Three observations from a fixed seed: smooth images with coloured squares, plausible states."""
    rng = np.random.default_rng(2026)
    out = []
    for i in range(3):
        images = {}
        for cam in SPEC.cameras:
            image = np.full((cam.height, cam.width, 3), 90 + 30 * i, dtype=np.uint8)
            for _ in range(3):
                y, x = rng.integers(0, cam.height - 16), rng.integers(0, cam.width - 16)
                image[y : y + 16, x : x + 16] = rng.integers(0, 256, 3)
            images[cam.role] = image
        state = np.array([0.1 * i, 0.45, -0.1, 0.5 + 0.05 * i, np.pi - 0.1 * i, 0.05, -np.pi + 0.2, 0.3 * i], dtype=np.float32)
        out.append(Observation(images=images, state=state, timestamp=0.1 * i))
    return out
