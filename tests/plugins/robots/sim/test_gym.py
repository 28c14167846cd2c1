"""The Gymnasium environments over the simulated robots."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from s2kit.core.types import Guidance
from s2kit.plugins.robots.sim.expert import ScriptedExecutor
from s2kit.plugins.robots.sim.gym import S2kitSimEnv, env_id, register_envs
from s2kit.plugins.robots.sim.tasks import builtin_suites

ROBOTS = ("hsr", "txg2")


@pytest.fixture
def hsr() -> Iterator[S2kitSimEnv]:
    env = S2kitSimEnv(robot="hsr", image_size=32)
    yield env
    env.close()


def _equal(a: dict, b: dict) -> bool:
    return all(np.array_equal(a["images"][r], b["images"][r]) for r in a["images"]) and np.array_equal(
        a["state"], b["state"]
    )


@pytest.mark.parametrize("robot", ROBOTS)
def test_env_passes_gymnasiums_checker(robot: str) -> None:
    env = gymnasium.make(env_id(robot, "id"), image_size=32)
    with warnings.catch_warnings():
        # Our state Box is unbounded on purpose (joint and pose values); the checker only warns about it.
        warnings.filterwarnings("ignore", message=".*infinity.*")
        check_env(env.unwrapped, skip_render_check=False)
    env.close()


def test_ids_exist_for_every_robot_and_suite_and_make_works() -> None:
    expected = {
        f"s2kit/{prefix}-{suite.capitalize()}-v0" for prefix in ("HSR", "TXG2") for suite in builtin_suites()
    }
    assert {"s2kit/HSR-Id-v0", "s2kit/TXG2-Distractor-v0"} <= expected
    assert expected <= set(gymnasium.registry)
    assert set(register_envs()) == expected  # idempotent: a second call registers nothing new
    env = gymnasium.make("s2kit/TXG2-Semantic-v0", image_size=32, cameras=["head"], render_mode="rgb_array")
    obs, info = env.reset(seed=0)
    assert set(obs["images"]) == {"head"} and obs["images"]["head"].shape == (32, 32, 3)
    assert obs["state"].shape == (len(env.unwrapped.robot.spec.state_names),)
    assert isinstance(info["instruction"], str) and info["instruction"] == env.unwrapped.robot.instruction
    assert info["subtasks"] and info["subtasks_total"] == len(info["subtasks"])
    assert env.unwrapped.robot.config.suite == "semantic"
    assert np.array_equal(env.render(), obs["images"]["head"])
    assert env.action_space.shape == (7,) and env.action_space.dtype == np.float32
    env.close()


def test_import_does_not_load_mujoco() -> None:
    code = "import sys, s2kit.plugins.robots.sim.gym; assert 'mujoco' not in sys.modules, 'mujoco imported'"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ)
    assert result.returncode == 0, result.stderr


def test_same_seed_same_episode_and_unseeded_resets_reproducible() -> None:
    a, b = S2kitSimEnv(image_size=32), S2kitSimEnv(image_size=32)
    try:
        obs_a, info_a = a.reset(seed=11)
        obs_b, info_b = b.reset(seed=11)
        assert _equal(obs_a, obs_b) and info_a == info_b
        rng = np.random.default_rng(0)
        for _ in range(5):
            action = rng.uniform(a.action_space.low, a.action_space.high).astype(np.float32)
            obs_a, *_ = a.step(action)
            obs_b, *_ = b.step(action)
        assert _equal(obs_a, obs_b)
        assert not np.array_equal(obs_a["state"], a.reset(seed=11)[0]["state"])  # the actions did move the robot
        # A different seed is a different scene; an unseeded reset follows the last seed.
        _, info_c = b.reset(seed=12)
        assert info_c["scene_seed"] == 12 and not _equal(b.reset(seed=12)[0], a.reset(seed=11)[0])
        a.reset(seed=11)
        b.reset(seed=11)
        obs_a, info_a = a.reset()
        obs_b, info_b = b.reset()
        assert info_a["scene_seed"] == info_b["scene_seed"] != 11 and _equal(obs_a, obs_b)
        assert a.reset()[1]["scene_seed"] != info_a["scene_seed"]  # unseeded resets still vary
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("robot", ROBOTS)
def test_scripted_expert_through_the_env_completes_a_pick_and_place(robot: str) -> None:
    env = gymnasium.make(env_id(robot, "id"), image_size=32, max_steps=200)
    robot = env.unwrapped.robot
    seed = next(s for s in range(30) if env.reset(seed=s) and robot.sim_task.family == "pick_place")
    _, info = env.reset(seed=seed)
    expert = ScriptedExecutor()
    expert.setup(robot.spec)
    expert.reset()
    guidance = Guidance(goal=info["instruction"], subtasks=[info["instruction"]])
    total, steps, terminated, truncated = 0.0, 0, False, False
    while not (terminated or truncated):
        action = expert.act(env.unwrapped.last_observation, guidance).actions[0]
        _, reward, terminated, truncated, info = env.step(action)
        total += reward
        steps += 1
    progress = f"seed {seed}: {info['subtasks_completed']}/{info['subtasks_total']} subtasks in {steps} steps"
    assert terminated and info["is_success"], progress
    assert total == info["subtasks_total"] == info["subtasks_completed"] >= 1
    assert info["subtask_success"] == 1.0
    env.close()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_action_raises_and_never_reaches_the_robot(hsr: S2kitSimEnv, bad: float) -> None:
    hsr.reset(seed=0)
    hsr.step(np.array([0.01, 0, 0, 0, 0, 0, 1], dtype=np.float32))
    steps, ctrl, qpos = hsr.robot.steps, hsr.robot.data.ctrl.copy(), hsr.robot.data.qpos.copy()
    action = np.array([0.01, 0, 0, 0, bad, 0, 1], dtype=np.float32)
    with pytest.raises(ValueError, match="dpitch"):
        hsr.step(action)
    assert hsr.robot.steps == steps
    assert np.array_equal(hsr.robot.data.ctrl, ctrl) and np.array_equal(hsr.robot.data.qpos, qpos)


def test_wrong_shape_and_bad_arguments_are_refused(hsr: S2kitSimEnv) -> None:
    hsr.reset(seed=0)
    with pytest.raises(ValueError, match=r"\(7,\)"):
        hsr.step(np.zeros(6))
    with pytest.raises(ValueError, match="'nose'"):
        S2kitSimEnv(image_size=32, cameras=["head", "nose"])
    with pytest.raises(ValueError, match="'walle'"):
        S2kitSimEnv(robot="walle")
    with pytest.raises(ValueError, match="render_mode"):
        S2kitSimEnv(render_mode="human")
    with pytest.raises(TypeError, match="image_size"):
        S2kitSimEnv(image_height=32)


@pytest.mark.parametrize("robot", ROBOTS)
def test_out_of_bounds_actions_are_clamped(robot: str) -> None:
    wild, bound = S2kitSimEnv(robot=robot, image_size=32), S2kitSimEnv(robot=robot, image_size=32)
    try:
        wild.reset(seed=0)
        bound.reset(seed=0)
        start = wild.last_observation.privileged.ee_pos.copy()  # the hand, in world coordinates
        obs, _, _, _, info = wild.step(np.full(7, 10.0, dtype=np.float32))
        # The command that reached the robot is the action space's bound, not 10 m and 10 rad...
        assert info["clamped"] and np.array_equal(info["command"], wild.action_space.high)
        assert _equal(obs, bound.step(wild.action_space.high)[0])
        # ...so the hand moved by at most one step's translation limit along each axis.
        moved = np.abs(wild.last_observation.privileged.ee_pos - start)
        max_t = float(wild.action_space.high[0])
        assert 0.1 * max_t < moved.max() <= max_t, moved
        _, _, _, _, info = wild.step(wild.action_space.high * 0.5)
        assert not info["clamped"]
    finally:
        wild.close()
        bound.close()


def test_reward_and_truncation_follow_the_step_count() -> None:
    env = S2kitSimEnv(image_size=32, max_steps=3)
    try:
        env.reset(seed=0)
        hold = np.array([0, 0, 0, 0, 0, 0, 1], dtype=np.float32)
        flags = [env.step(hold)[1:4] for _ in range(3)]
        assert flags == [(0.0, False, False), (0.0, False, False), (0.0, False, True)]
    finally:
        env.close()


def test_registered_ids_truncate_at_the_s2kit_episode_length_through_gymnasium() -> None:
    name = env_id("hsr", "id")
    direct = inspect.signature(S2kitSimEnv).parameters["max_steps"].default
    assert gymnasium.spec(name).max_episode_steps == 300 == direct  # made or built directly, the same length
    env = gymnasium.make(name, image_size=16)
    assert env.spec.max_episode_steps == 300 and env.unwrapped.max_steps is None  # one limit: Gymnasium's
    env.close()
    env = gymnasium.make(name, image_size=16, max_episode_steps=2)  # the Gymnasium way to change it
    try:
        env.reset(seed=0)
        hold = np.array([0, 0, 0, 0, 0, 0, 1], dtype=np.float32)
        assert [env.step(hold)[3] for _ in range(2)] == [False, True]
    finally:
        env.close()


def test_an_episode_the_robot_cannot_go_on_with_terminates_with_the_reason(hsr: S2kitSimEnv) -> None:
    hsr.reset(seed=0)
    hsr.robot.data.qvel[0] = np.nan  # the simulation diverges; MuJoCo resets it
    _, reward, terminated, truncated, info = hsr.step(np.array([0, 0, 0, 0, 0, 0, 1], dtype=np.float32))
    assert terminated and not truncated and reward == 0.0 and not info["is_success"]
    assert "mjWARN_BADQVEL" in info["aborted"]
