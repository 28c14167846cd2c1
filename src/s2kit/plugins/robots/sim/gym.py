"""Gymnasium environments for the simulated tasks: one per (robot, suite).

Reinforcement- and imitation-learning code written against Gymnasium can use
the s2kit tasks unchanged::

    import gymnasium
    import s2kit.plugins.robots.sim.gym  # registers the ids below

    env = gymnasium.make("s2kit/HSR-Id-v0")  # or S2kitSimEnv(robot="hsr", suite="id")
    obs, info = env.reset(seed=0)
    print(info["instruction"])  # e.g. "put the red cube in the bowl"
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())

Ids are ``s2kit/<ROBOT>-<Suite>-v0`` for ``ROBOT`` in ``HSR``, ``TXG2`` and
every built-in suite (``Id``, ``Distractor``, ``Appearance``, ``Semantic``,
``Paraphrase``); keyword arguments of `gymnasium.make` go to `S2kitSimEnv`
(``image_size=48``, ``cameras=["head"]``, and robot options such as
``arm="left"``), except ``max_episode_steps``, Gymnasium's own episode limit.

Design choices, and why:

* Observations are ``{"images": {role: uint8 (H, W, 3)}, "state": float32
  (n,)}``. The instruction is language: a Gymnasium space for free text
  (``spaces.Text``) has a fixed charset and length and most RL libraries
  cannot batch it, so the instruction and the subtask texts are in ``info``
  (``info["instruction"]``, ``info["subtasks"]``) instead. It is fixed for an
  episode, so reading it from the ``reset`` info is enough.
* Actions are the canonical 7-D ``ee_delta`` (dx, dy, dz, droll, dpitch,
  dyaw per step in the robot's base frame, gripper opening in [0, 1]), with
  the robot's own limits as the Box bounds. There is no s2kit runtime in
  between, so the env applies its safety layer itself: out-of-bounds actions
  are clamped (``info["clamped"]`` says when), and a non-finite action raises
  ``ValueError`` before anything reaches the robot.
* The reward is the number of subtasks newly completed, in the required
  order, at this step; the return of an episode is therefore the number of
  subtasks completed, and ``info["subtask_success"]`` is that divided by
  their number. The signal is sparse on purpose: it is the benchmark's own
  success measure, not a shaped proxy a policy could exploit.
* ``terminated`` when every subtask is done, or when the episode cannot go
  on (an object the task needs fell off the table, or MuJoCo reset a
  diverging simulation): ``info["aborted"]`` then says why, the s2kit
  runtime's ``aborted`` status. ``truncated`` after 300 steps, the length
  of an s2kit episode: the registered ids set ``max_episode_steps=300``, so
  `gymnasium.make` wraps the env in Gymnasium's ``TimeLimit`` (change it
  with ``gymnasium.make(id, max_episode_steps=N)``; ``gymnasium.spec(id)``
  shows it), and `S2kitSimEnv` built directly counts its own ``max_steps``
  (default 300; ``max_steps`` below the limit also shortens a made env).
* Seeding: ``reset(seed=s)`` samples the scene and task of seed ``s`` (the
  same episode ``s2kit run --seed s`` gives); ``reset()`` draws a scene seed
  from ``self.np_random``, so it varies, yet is reproducible after one seeded
  reset. ``info["scene_seed"]`` names the scene either way.

Privileged components (the scripted expert) may read `S2kitSimEnv.last_observation`,
the full s2kit `Observation` with simulator state; learned policies must not.

Importing this module registers the ids and imports Gymnasium and numpy, not
MuJoCo: the robot classes import it when an env is built.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Sequence
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

from s2kit.core.errors import EpisodeAborted
from s2kit.core.safety import SafetyFilter, UnsafeAction
from s2kit.core.types import EE_DELTA, Observation
from s2kit.plugins.robots.sim.tasks import SUITES, builtin_suites

__all__ = ["MAX_EPISODE_STEPS", "ROBOTS", "S2kitSimEnv", "env_id", "register_envs"]

#: Steps before an episode is truncated: an s2kit episode's length (``s2kit run``'s ``runtime.max_steps``).
MAX_EPISODE_STEPS = 300

#: Simulated robots by name: where their class lives, and the name in env ids.
#: Classes are imported when an env is built, so importing this module stays light.
ROBOTS: dict[str, tuple[str, str]] = {
    "hsr": ("s2kit.plugins.robots.hsr:HSRRobot", "HSR"),
    "txg2": ("s2kit.plugins.robots.txg2:TXG2Robot", "TXG2"),
}

ENTRY_POINT = f"{__name__}:S2kitSimEnv"


def _robot_class(name: str) -> type[Any]:
    if not isinstance(name, str):
        raise TypeError(f"robot must be a name ({', '.join(ROBOTS)}), got {name!r}")
    if name not in ROBOTS:
        raise ValueError(f"unknown simulated robot {name!r} (known: {', '.join(ROBOTS)})")
    module, cls = ROBOTS[name][0].split(":")
    robot_cls: type[Any] = getattr(importlib.import_module(module), cls)
    return robot_cls


def _image_shape(image_size: int | Sequence[int]) -> tuple[int, int]:
    """``(height, width)`` from a side length or a ``(height, width)`` pair."""
    if isinstance(image_size, (int, np.integer)) and not isinstance(image_size, bool):
        return int(image_size), int(image_size)
    if (
        isinstance(image_size, Sequence)
        and len(image_size) == 2
        and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in image_size)
    ):
        return int(image_size[0]), int(image_size[1])
    raise TypeError(f"image_size must be an int or a (height, width) pair of ints, got {image_size!r}")


class S2kitSimEnv(gymnasium.Env[dict[str, Any], np.ndarray]):
    """One simulated s2kit robot at its table, with tasks from one suite.

    ``robot`` is ``hsr`` or ``txg2``; ``suite`` a built-in suite or a suite
    YAML file; ``image_size`` the side (or ``(height, width)``) of every
    camera image; ``cameras`` the camera roles in the observation (default:
    all of the robot's); ``robot_options`` go to the robot's config (``arm``,
    ``control_hz``, ``render``, ``ik_iterations``). See the module docstring
    for spaces, reward and seeding.
    """

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        robot: str = "hsr",
        suite: str = SUITES[0],
        image_size: int | Sequence[int] = 96,
        max_steps: int | None = MAX_EPISODE_STEPS,
        cameras: Sequence[str] | None = None,
        render_mode: str | None = None,
        **robot_options: Any,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        if max_steps is not None and (isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer))):
            raise TypeError(f"max_steps must be an int or None, got {max_steps!r}")
        if max_steps is not None and max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps}")
        clash = sorted({"image_height", "image_width"} & set(robot_options))
        if clash:
            raise TypeError(f"pass image_size=(height, width) instead of {', '.join(clash)}")
        height, width = _image_shape(image_size)
        cls = _robot_class(robot)
        # The robot validates its own options (unknown keys, sizes, the suite) and raises ValueError.
        self.robot = cls(cls.Config(suite=suite, image_height=height, image_width=width, **robot_options))
        spec = self.robot.spec
        roles = [c.role for c in spec.cameras]
        if cameras is None:
            self.cameras: tuple[str, ...] = tuple(roles)
        else:
            if isinstance(cameras, str):  # a lone "head" would otherwise be read as four roles
                raise TypeError(f"cameras must be a sequence of camera roles, got the string {cameras!r}")
            self.cameras = tuple(cameras)
            unknown = [c for c in self.cameras if c not in roles]
            # Gymnasium refuses an empty Dict space, so at least one camera is needed.
            if not self.cameras or unknown or len(set(self.cameras)) != len(self.cameras):
                self.robot.close()
                raise ValueError(f"cameras {list(cameras)!r}: give one or more of {roles}, each once")
        # Rendered frames show the head camera, the one looking at the whole table.
        self._render_role = "head" if "head" in roles else roles[0]
        self.render_mode = render_mode
        #: Steps after which the env truncates by itself (None: only a wrapper's limit, as from `gymnasium.make`).
        self.max_steps = None if max_steps is None else int(max_steps)
        self.metadata = {**self.metadata, "render_fps": spec.control_hz}

        space = spec.action_space(EE_DELTA)
        self._safety = SafetyFilter(space, spec.state_names)
        self.action_space = spaces.Box(
            low=np.asarray(space.low, dtype=np.float32),
            high=np.asarray(space.high, dtype=np.float32),
            shape=(space.dim,),
            dtype=np.float32,
        )
        images = spaces.Dict(
            {role: spaces.Box(0, 255, (height, width, 3), dtype=np.uint8) for role in self.cameras}
        )
        state = spaces.Box(-np.inf, np.inf, (len(spec.state_names),), dtype=np.float32)
        self.observation_space = spaces.Dict({"images": images, "state": state})

        self.scene_seed: int | None = None
        self.last_observation: Observation | None = None
        self._last_command: np.ndarray | None = None
        self._steps = 0
        self._completed = 0

    # --- episodes ------------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Sample a new scene and task; see the module docstring for how seeds choose it."""
        super().reset(seed=seed)
        # An explicit seed is the scene seed itself, so env and `s2kit run --seed` agree.
        self.scene_seed = int(seed) if seed is not None else int(self.np_random.integers(0, 2**31 - 1))
        obs = self.robot.reset(seed=self.scene_seed)
        self._safety.reset(obs.state)
        self._last_command = None
        self._steps = 0
        self._completed = 0
        self.last_observation = obs
        return self._obs(obs), self._info()

    def step(self, action: Any) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        """Clamp ``action`` to the robot's limits, execute it for one control period, observe.

        Raises ValueError for an action of the wrong shape or with a
        non-finite entry; the robot then receives nothing. An episode the
        robot cannot go on with ends here: ``terminated``, with
        ``info["aborted"]`` saying why.
        """
        if self.last_observation is None:
            raise gymnasium.error.ResetNeeded("call reset() before step()")
        a = np.asarray(action, dtype=np.float32)
        if a.shape != self.action_space.shape:
            raise ValueError(f"action must have shape {self.action_space.shape}, got {a.shape}: {action!r}")
        try:
            command, clamped = self._safety.filter(a, previous=self._last_command)
        except UnsafeAction as err:
            raise ValueError(f"refusing action {action!r}: {err}") from err
        aborted = None
        try:
            self.robot.apply(command, EE_DELTA)
        except EpisodeAborted as err:
            aborted = str(err)
        self._last_command = command
        self._steps += 1
        obs = self.robot.observe()
        self.last_observation = obs
        status = self.robot.status()
        completed = int(status.subtasks_completed or 0)
        reward = float(completed - self._completed)
        self._completed = completed
        terminated = bool(status.done) or aborted is not None
        truncated = self.max_steps is not None and self._steps >= self.max_steps
        info = self._info()
        if aborted is not None:
            info["aborted"] = aborted
        info["clamped"] = clamped
        info["command"] = command.copy()
        return self._obs(obs), reward, terminated, truncated, info

    def _obs(self, obs: Observation) -> dict[str, Any]:
        return {"images": {role: obs.images[role] for role in self.cameras}, "state": obs.state}

    def _info(self) -> dict[str, Any]:
        status = self.robot.status()
        completed = int(status.subtasks_completed or 0)
        total = int(status.subtasks_total or 0)
        return {
            "instruction": self.robot.instruction,
            "subtasks": list(self.robot.task.subtasks),
            "subtasks_completed": completed,
            "subtasks_total": total,
            "subtask_success": completed / total if total else 0.0,
            "is_success": bool(status.done),
            "scene_seed": self.scene_seed,
        }

    # --- rendering and lifecycle ---------------------------------------------------------------

    def render(self) -> np.ndarray | None:
        """The head camera's latest image with ``render_mode="rgb_array"``; None (with a warning) without."""
        if self.render_mode is None:
            gymnasium.logger.warn(
                "render() was called without a render_mode; pass render_mode='rgb_array' to the constructor "
                "or to gymnasium.make"
            )
            return None
        obs = self.last_observation if self.last_observation is not None else self.robot.observe()
        return obs.images[self._render_role].copy()

    def close(self) -> None:
        """Release the robot's renderer. Safe to call twice."""
        self.robot.close()
        super().close()


# --- registration ------------------------------------------------------------------------


def env_id(robot: str, suite: str) -> str:
    """The Gymnasium id of ``robot`` with ``suite``, e.g. ``s2kit/HSR-Id-v0``."""
    if robot not in ROBOTS:
        raise ValueError(f"unknown simulated robot {robot!r} (known: {', '.join(ROBOTS)})")
    title = "".join(part.capitalize() for part in re.split(r"[_\-\s]+", suite) if part)
    return f"s2kit/{ROBOTS[robot][1]}-{title}-v0"


def register_envs() -> list[str]:
    """Register an id for every (robot, built-in suite) with Gymnasium; return the ids.

    Each id truncates episodes after `MAX_EPISODE_STEPS` (its spec's
    ``max_episode_steps``; the env's own ``max_steps`` is off, so
    ``gymnasium.make(id, max_episode_steps=N)`` alone sets the limit).
    Idempotent: ids already registered are left alone, so importing this
    module twice (or reloading it) neither warns nor overrides a user's own
    registration.
    """
    ids = []
    for robot in ROBOTS:
        for suite in builtin_suites():
            name = env_id(robot, suite)
            if name not in gymnasium.registry:
                gymnasium.register(
                    id=name,
                    entry_point=ENTRY_POINT,
                    max_episode_steps=MAX_EPISODE_STEPS,
                    kwargs={"robot": robot, "suite": suite, "max_steps": None},
                )
            ids.append(name)
    return ids


register_envs()
