"""Executor ``scripted``: a privileged expert for the simulated tabletop tasks.

It reads simulator state (`SimState`, in ``Observation.privileged``) and
acts in the canonical ``ee_delta`` space, so the same expert drives every
simulated robot. Each call looks at the current subtask and the world, picks
the next waypoint (hover over the object, descend, close, lift, carry, lower,
open; or line up behind the object and push), and returns the actions that
reach it — a short chunk that ends at the waypoint, so decisions are always
taken on fresh state.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from s2kit import hookimpl
from s2kit.core.config import PluginConfig
from s2kit.core.errors import PluginError
from s2kit.core.interfaces import Executor
from s2kit.core.types import ActionChunk, Guidance, Observation
from s2kit.plugins.robots.sim.base import SimState
from s2kit.plugins.robots.sim.world import CONTAINERS, object_half_height

OPEN, CLOSED = 1.0, 0.0
#: Picking: the hand closes when within ALIGNED of the object sideways and GRIP_REACH in height.
ALIGNED, GRIP_REACH = 0.012, 0.025
#: ``approach: funnel``: where the cone starts (sideways), and how many cm higher per cm off.
FUNNEL_RADIUS, FUNNEL_SLOPE = 0.05, 3.0


class ScriptedConfig(PluginConfig):
    """Speeds and heights of the scripted expert."""

    speed: float = Field(0.04, gt=0, le=0.05, description="Hand speed, metres per control step.")
    hover: float = Field(0.14, gt=0.05, description="Height above the table to travel at, metres.")
    horizon: int = Field(8, ge=1, le=64, description="Longest chunk.")
    tolerance: float = Field(0.008, gt=0, description="Distance at which a waypoint counts as reached.")
    approach: Literal["gate", "funnel"] = Field(
        "gate",
        description="How the hand comes down on an object to pick. gate: over it at travel height to within 1.2 cm, "
        "then straight down (rising to travel height again whenever it is lower and more than 1.2 cm off); funnel: "
        "within 5 cm sideways, down a cone over it whose height grows with the sideways error, so the height "
        "is a smooth function of how far off the hand is (a policy that cannot see 1.2 cm does not oscillate).",
    )


class ScriptedExecutor(Executor):
    """Privileged scripted expert: solves the simulated tasks from simulator state."""

    name = "scripted"
    Config = ScriptedConfig

    def reset(self) -> None:
        self._yaw0: float | None = None

    def act(self, observation: Observation, guidance: Guidance) -> ActionChunk:
        sim = observation.privileged
        if not isinstance(sim, SimState):
            raise PluginError("executor 'scripted' is privileged: it needs a simulated robot (hsr or txg2 with backend sim)")
        if getattr(self, "_yaw0", None) is None:
            self._yaw0 = float(observation.state[-2])
        waypoint, gripper, *speed = self._next(sim)
        return self._chunk(observation, sim, waypoint, gripper, speed[0] if speed else self.config.speed)  # type: ignore[attr-defined]

    # --- deciding ------------------------------------------------------------------------

    def _next(self, sim: SimState) -> tuple[np.ndarray | None, float]:
        """The next waypoint for the hand (None: stay) and the gripper command.

        Pushing returns a third element, a slower speed.
        """
        cfg: ScriptedConfig = self.config  # type: ignore[assignment]
        if sim.completed >= len(sim.task.subtasks):
            return None, OPEN
        sub = sim.task.subtasks[sim.completed]
        table = sim.table_height
        ee = sim.ee_pos
        name = sub.object_for(sim.held)  # where the subtask has twins, the one in hand counts
        obj = sim.positions[name]
        hover_z = table + cfg.hover
        if sub.kind == "push":
            return self._push(sim, ee, obj, sim.positions[sub.target], table)
        if sim.held not in (None, name):  # holding the wrong thing: let go
            return np.array([ee[0], ee[1], hover_z]), OPEN
        if sim.held != name:
            off = float(np.linalg.norm(ee[:2] - obj[:2]))
            if off <= ALIGNED and abs(ee[2] - obj[2]) <= GRIP_REACH:
                return None, CLOSED
            if cfg.approach == "funnel" and off < FUNNEL_RADIUS:
                cone = obj[2] + FUNNEL_SLOPE * max(0.0, off - ALIGNED)  # the lowest the hand may be, this far off
                return np.array([obj[0], obj[1], min(hover_z, cone)]), OPEN
            if off > ALIGNED:
                if ee[2] < hover_z - 0.03:  # rise before travelling
                    return np.array([ee[0], ee[1], hover_z]), OPEN
                return np.array([obj[0], obj[1], hover_z]), OPEN
            return np.array([obj[0], obj[1], obj[2]]), OPEN  # straight down to the grasp
        # holding the object
        if sub.kind == "pick":
            return np.array([ee[0], ee[1], hover_z]), CLOSED
        target = sim.positions[sub.target]
        half = object_half_height(sim.scene.item(name).kind)
        # heights are for the object's centre; the hand holds it wherever it grasped it
        grip_offset = float(ee[2] - obj[2])
        if sub.kind == "put":
            place_z = table + CONTAINERS[sim.scene.item(sub.target).kind]["wall"] + half + 0.02 + grip_offset
        else:  # stack
            place_z = target[2] + object_half_height(sim.scene.item(sub.target).kind) + half + 0.012 + grip_offset
        carry_z = max(hover_z, place_z + 0.05)
        # a container is forgiving (its inner radius is 5 cm or more), a stack is not
        xy_tolerance = 0.02 if sub.kind == "put" else 0.01
        off = float(np.linalg.norm(ee[:2] - target[:2]))
        if off > xy_tolerance:
            if off < 0.04 and ee[2] >= place_z - 0.005:  # close: correct sideways where it is
                return np.array([target[0], target[1], max(float(ee[2]), place_z)]), CLOSED
            if ee[2] < carry_z - 0.03:
                return np.array([ee[0], ee[1], carry_z]), CLOSED
            return np.array([target[0], target[1], carry_z]), CLOSED
        if ee[2] > place_z + 0.01:
            return np.array([target[0], target[1], place_z]), CLOSED
        return None, OPEN

    def _push(self, sim: SimState, ee: np.ndarray, obj: np.ndarray, region: np.ndarray, table: float):  # type: ignore[no-untyped-def]
        cfg: ScriptedConfig = self.config  # type: ignore[assignment]
        to_goal = region[:2] - obj[:2]
        d = to_goal / max(float(np.linalg.norm(to_goal)), 1e-6)
        push_z = table + 0.015
        behind = obj[:2] - d * 0.055
        rel = ee[:2] - obj[:2]
        along = float(rel @ d)
        lateral = float(rel @ np.array([-d[1], d[0]]))
        engaged = -0.075 < along < -0.02 and abs(lateral) < 0.03 and ee[2] < push_z + 0.02
        if engaged:
            # Steer: aim through the object, along the line
            # to the goal, correcting sideways drift as the object slides.
            aim = obj[:2] + d * 0.03 - np.array([-d[1], d[0]]) * lateral * 0.5
            return np.array([aim[0], aim[1], push_z]), CLOSED, 0.015
        if np.linalg.norm(ee[:2] - behind) > 0.01:
            if ee[2] < table + cfg.hover - 0.03:
                return np.array([ee[0], ee[1], table + cfg.hover]), CLOSED, cfg.speed
            return np.array([behind[0], behind[1], table + cfg.hover]), CLOSED, cfg.speed
        return np.array([behind[0], behind[1], push_z]), CLOSED, cfg.speed

    # --- acting ---------------------------------------------------------------------------

    def _chunk(
        self, observation: Observation, sim: SimState, waypoint: np.ndarray | None, gripper: float, speed: float
    ) -> ActionChunk:
        cfg: ScriptedConfig = self.config  # type: ignore[assignment]
        rot = self._level(observation)
        actions = []
        if waypoint is None:
            # grasp or release in place: a few steps for the fingers
            for _ in range(3):
                actions.append([0, 0, 0, *rot, gripper])
        else:
            ee = sim.ee_pos.astype(np.float64).copy()
            for _ in range(cfg.horizon if speed >= cfg.speed else max(1, cfg.horizon // 2)):
                delta = waypoint - ee
                dist = float(np.linalg.norm(delta))
                if dist < cfg.tolerance:
                    break
                # slow down near the waypoint: the arm still carries some lag
                step = delta * 0.6 if dist <= 1.5 * speed else delta / dist * speed
                ee += step
                actions.append([*self._to_base(observation, step), *rot, gripper])
                rot = (0.0, 0.0, 0.0)
            if not actions:
                actions.append([0, 0, 0, *rot, gripper])
        return ActionChunk(actions=np.asarray(actions, dtype=np.float32), period=self.spec.control_period)

    def _to_base(self, observation: Observation, step: np.ndarray) -> np.ndarray:
        # the simulated robots' bases stay aligned with the world unless the
        # base turns; rotate by the base heading where the state has one
        names = self.spec.state_names
        if "odom_t" in names:
            t = float(observation.state[names.index("odom_t")])
            c, s = np.cos(t), np.sin(t)
            return np.array([c * step[0] + s * step[1], -s * step[0] + c * step[1], step[2]])
        return step

    def _level(self, observation: Observation) -> tuple[float, float, float]:
        """A small rotation (base frame) that keeps the hand pointing down at its starting yaw."""
        roll, pitch, yaw = (float(v) for v in observation.state[-4:-1])
        current = _rz(yaw) @ _ry(pitch) @ _rx(roll)
        desired = _rz(self._yaw0 or 0.0) @ _rx(np.pi)
        omega = _rotvec(desired @ current.T)  # applied on the left, as the robot applies deltas
        return tuple(np.clip(0.5 * omega, -0.1, 0.1).tolist())  # type: ignore[return-value]


def _rx(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _ry(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rz(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def _rotvec(m: np.ndarray) -> np.ndarray:
    """The rotation vector (axis times angle) of a rotation matrix."""
    angle = float(np.arccos(np.clip((np.trace(m) - 1) / 2, -1.0, 1.0)))
    if angle < 1e-6:
        return np.zeros(3)
    axis = np.array([m[2, 1] - m[1, 2], m[0, 2] - m[2, 0], m[1, 0] - m[0, 1]]) / (2 * np.sin(angle))
    return axis * angle


@hookimpl
def s2kit_executors() -> list[type[Executor]]:
    return [ScriptedExecutor]
