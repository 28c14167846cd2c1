"""What a robot is, for its simulation and for its real counterpart alike.

An `Embodiment` describes a robot's MJCF and what its joints mean; `SimConfig`
is the options every such robot takes (backend, arm, cameras, rate); a
`Kinematics` solves its ``ee_delta`` commands to joint targets by IK, on the
live simulation (`base.SimRobot`) or on a kinematic mirror of the real robot
(the ROS driver); `robot_spec` is the `RobotSpec` both present. Keeping these
here lets the simulator and the driver share them without importing each
other.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import Field

from s2kit.core.config import PluginConfig
from s2kit.core.types import EE_STATE, ActionSpace, CameraSpec, JointSpec, RobotSpec, ee_delta_space
from s2kit.plugins.robots.sim.tasks import SUITES
from s2kit.plugins.robots.sim.world import Scene, scene_xml

__all__ = [
    "BASE_JOINTS",
    "DEFAULT_JOINT_STEP",
    "EE_STATE",
    "JOINT_POS",
    "Embodiment",
    "Kinematics",
    "SimConfig",
    "quat_from_rpy",
    "robot_spec",
]

JOINT_POS = "joint_pos"
#: The virtual planar joints of a mobile base (see world.planar_base_xml).
BASE_JOINTS = (
    JointSpec(name="odom_x", lower=-1.0, upper=1.0),
    JointSpec(name="odom_y", lower=-1.0, upper=1.0),
    JointSpec(name="odom_t", lower=-3.14, upper=3.14),
)
_MAX_LEAD = 0.035  # metres the commanded hand position may run ahead of the hand
#: The largest change of a joint target per control step, where the embodiment names none (rad or m).
DEFAULT_JOINT_STEP = 0.15


@dataclass(frozen=True)
class Embodiment:
    """What a robot is in simulation.

    ``xml(arm)`` returns the robot's MJCF: bodies, then ``<!-- tail -->`` and
    its actuators/equalities. Every joint in ``joints`` has a position
    actuator named after it. ``ik_joints(arm)`` are the joints IK may move for
    the active arm; ``grasp_site(arm)``/``hand_body(arm)`` its grasp point and
    hand; ``gripper_joint(arm)`` with ``gripper_range`` = (closed, open).
    ``cameras`` maps a camera role to a camera name, per active arm.
    """

    name: str
    xml: Callable[[], str]
    joints: tuple[JointSpec, ...]
    home: dict[str, float]
    ik_joints: Callable[[str], tuple[str, ...]]
    grasp_site: Callable[[str], str]
    hand_body: Callable[[str], str]
    gripper_joint: Callable[[str], str]
    gripper_range: tuple[float, float]
    cameras: Callable[[str], dict[str, str]]
    table_x: float
    table_height: float
    base_body: str
    max_joint_step: dict[str, float] = field(default_factory=dict)
    ik_weights: dict[str, float] = field(default_factory=dict)
    orientation_weight: float = 0.5


class SimConfig(PluginConfig):
    """Simulated robot: backend, task suite, cameras, rate.

    A robot with a ROS driver subclasses this with ``ros`` (its
    `RosSettings`, topics included); ``backend`` then picks the simulator or
    the real robot over ``ros1`` / ``ros2``, with the same spec either way
    (cameras at ``image_height`` x ``image_width``, ``control_hz``).
    """

    # which robot
    backend: Literal["sim", "ros1", "ros2"] = Field(
        "sim", description="sim: MuJoCo; ros1 / ros2: the real robot (or `s2kit bridge`) over ROS, settings in 'ros'."
    )
    arm: Literal["right", "left"] = Field("right", description="Active arm, for robots with two.")
    # tasks
    suite: str = Field(SUITES[0], description=f"A built-in suite ({', '.join(SUITES)}) or a YAML file.")
    # sensing
    image_height: int = Field(96, ge=16, le=480, description="Camera image height in pixels.")
    image_width: int = Field(96, ge=16, le=640, description="Camera image width in pixels.")
    render: bool = Field(True, description="Render cameras (off only for physics benchmarks; images are then black).")
    # timing
    control_hz: float = Field(10.0, gt=0, le=100, description="Control rate; physics runs at 200 Hz.")
    # IK
    ik_iterations: int = Field(8, ge=1, le=50, description="Damped least-squares iterations per command.")


def quat_from_rpy(r: float, p: float, y: float) -> np.ndarray:
    cr, sr, cp, sp, cy, sy = np.cos(r / 2), np.sin(r / 2), np.cos(p / 2), np.sin(p / 2), np.cos(y / 2), np.sin(y / 2)
    return np.array([cr * cp * cy + sr * sp * sy, sr * cp * cy - cr * sp * sy,
                     cr * sp * cy + sr * cp * sy, cr * cp * sy - sr * sp * cy])  # fmt: skip


def rpy_from_mat(m: np.ndarray) -> tuple[float, float, float]:
    pitch = float(np.arcsin(np.clip(-m[2, 0], -1.0, 1.0)))
    return float(np.arctan2(m[2, 1], m[2, 2])), pitch, float(np.arctan2(m[1, 0], m[0, 0]))


class Kinematics:
    """The embodiment's kinematics on a MuJoCo model: the hand's pose, and ``ee_delta`` to joint targets by IK.

    One implementation serves both places that need it: `SimRobot` runs it
    on its live simulation, the ROS driver on a kinematic mirror of the real
    robot whose joints it sets from the measured joint states. ``data`` is
    the MjData whose kinematics are current (positions computed).

    Deltas move a commanded pose (``target_pos``, ``target_quat``) rather
    than the measured one, so every commanded centimetre is eventually
    executed even though the arm lags within a step; the commanded pose
    stays within ``_MAX_LEAD`` of the hand, so an unreachable command cannot
    wind up. IK is damped least squares from the previous solution
    (``q_des``), over the embodiment's IK joints.
    """

    def __init__(self, mj: Any, model: Any, embodiment: Embodiment, arm: str, iterations: int) -> None:
        self._mj, self.model, self.iterations = mj, model, iterations
        emb = self.embodiment = embodiment
        self.qadr = {j.name: int(model.jnt_qposadr[mj.mj_name2id(model, mj.mjtObj.mjOBJ_JOINT, j.name)]) for j in emb.joints}
        self.ik = emb.ik_joints(arm)
        self._ik_qadr = [self.qadr[n] for n in self.ik]
        self._ik_dof = [int(model.jnt_dofadr[mj.mj_name2id(model, mj.mjtObj.mjOBJ_JOINT, n)]) for n in self.ik]
        limits = {j.name: (j.lower, j.upper) for j in emb.joints}
        self._ik_low = np.array([limits[n][0] for n in self.ik])
        self._ik_high = np.array([limits[n][1] for n in self.ik])
        self._ik_w = np.array([emb.ik_weights.get(n, 1.0) for n in self.ik])
        self._q_home = np.array([emb.home.get(n, 0.0) for n in self.ik])
        w = emb.orientation_weight  # position first; orientation as far as the arm allows
        self._task_w = np.array([1.0, 1.0, 1.0, w, w, w])
        self.site = mj.mj_name2id(model, mj.mjtObj.mjOBJ_SITE, emb.grasp_site(arm))
        self.base = mj.mj_name2id(model, mj.mjtObj.mjOBJ_BODY, emb.base_body)
        self.gripper = emb.gripper_joint(arm)
        self._scratch = mj.MjData(model)
        self.target_pos = np.zeros(3)
        self.target_quat = np.array([1.0, 0.0, 0.0, 0.0])
        self.q_des = self._q_home.copy()

    @classmethod
    def mirror(cls, embodiment: Embodiment, arm: str, iterations: int) -> tuple[Kinematics, Any]:
        """A kinematic mirror of the robot alone (no scene): its `Kinematics` and the MjData to set joints in."""
        os.environ.setdefault("MUJOCO_GL", "osmesa")
        import mujoco

        xml = scene_xml(Scene(items=[]), embodiment.xml(), table_x=embodiment.table_x,
                        table_height=embodiment.table_height, model_name=f"{embodiment.name}_mirror")  # fmt: skip
        model = mujoco.MjModel.from_xml_string(xml)
        data = mujoco.MjData(model)
        kinematics = cls(mujoco, model, embodiment, arm, iterations)
        for name, value in embodiment.home.items():
            data.qpos[kinematics.qadr[name]] = value
        mujoco.mj_kinematics(model, data)
        return kinematics, data

    def set_joints(self, data: Any, positions: dict[str, float]) -> None:
        """Put measured joint positions into ``data`` and compute its kinematics (for a mirror)."""
        for name, value in positions.items():
            adr = self.qadr.get(name)
            if adr is not None:
                data.qpos[adr] = value
        self._mj.mj_kinematics(self.model, data)

    # --- the hand, as measured -----------------------------------------------------------------

    def site_pos(self, data: Any) -> np.ndarray:
        return data.site_xpos[self.site]

    def site_quat(self, data: Any) -> np.ndarray:
        q = np.empty(4)
        self._mj.mju_mat2Quat(q, data.site_xmat[self.site])
        return q

    def base_rot(self, data: Any) -> np.ndarray:
        return data.xmat[self.base].reshape(3, 3)

    def ee_pose(self, data: Any) -> tuple[np.ndarray, tuple[float, float, float]]:
        """The grasp site's position and roll/pitch/yaw in the base frame (the state's ee entries)."""
        base = self.base_rot(data)
        ee = base.T @ (self.site_pos(data) - data.xpos[self.base])
        return ee, rpy_from_mat(base.T @ data.site_xmat[self.site].reshape(3, 3))

    def gripper_opening(self, data: Any) -> float:
        """The gripper joint as an opening in [0, 1] (0 closed)."""
        lo, hi = self.embodiment.gripper_range
        return float(np.clip((data.qpos[self.qadr[self.gripper]] - lo) / (hi - lo), 0.0, 1.0))

    def gripper_target(self, opening: float) -> float:
        """The gripper joint's position for an opening command in [0, 1]."""
        lo, hi = self.embodiment.gripper_range
        return lo + opening * (hi - lo)

    def gripper_command(self, position: float) -> float:
        """The opening command in [0, 1] that a gripper joint position target means."""
        lo, hi = self.embodiment.gripper_range
        return float((position - lo) / (hi - lo))

    # --- commanding ---------------------------------------------------------------------------

    def track(self, data: Any) -> None:
        """Make the commanded pose the hand's current pose (after joint-space commands, a hold, a reset)."""
        self.target_pos = self.site_pos(data).copy()
        self.target_quat = self.site_quat(data).copy()

    def start(self, data: Any) -> None:
        """Start from the measured configuration: commanded pose and IK solution where the robot is."""
        self.track(data)
        self.q_des = np.array([data.qpos[a] for a in self._ik_qadr], dtype=np.float64)

    def ee_delta(self, data: Any, action: np.ndarray) -> np.ndarray:
        """Move the commanded pose by ``action[:6]`` (base frame) and solve IK; the IK joints' targets."""
        base = self.base_rot(data)
        target = self.target_pos + base @ np.asarray(action[:3], dtype=np.float64)
        lead = target - self.site_pos(data)
        norm = float(np.linalg.norm(lead))
        if norm > _MAX_LEAD:
            target = self.site_pos(data) + lead * (_MAX_LEAD / norm)
        self.target_pos = target
        dq = quat_from_rpy(*(base @ np.asarray(action[3:6], dtype=np.float64)))
        q = np.empty(4)
        self._mj.mju_mulQuat(q, dq, self.target_quat)
        self.target_quat = q / np.linalg.norm(q)
        self.solve(data)
        return self.q_des

    def solve(self, data: Any) -> None:
        """Damped least squares from ``q_des`` towards the commanded pose, other joints as in ``data``."""
        mj, m, s = self._mj, self.model, self._scratch
        s.qpos[:] = data.qpos
        qadr = self._ik_qadr
        q = self.q_des.copy()
        jacp = np.zeros((3, m.nv))
        jacr = np.zeros((3, m.nv))
        err = np.zeros(6)
        lam2 = 1e-3
        for _ in range(self.iterations):
            s.qpos[qadr] = q
            mj.mj_kinematics(m, s)
            mj.mj_comPos(m, s)
            err[:3] = self.target_pos - s.site_xpos[self.site]
            cur = np.empty(4)
            mj.mju_mat2Quat(cur, s.site_xmat[self.site])
            local = np.empty(3)
            mj.mju_subQuat(local, self.target_quat, cur)  # in the site's frame
            err[3:] = s.site_xmat[self.site].reshape(3, 3) @ local
            if np.linalg.norm(err[:3]) < 1e-4 and np.linalg.norm(err[3:]) < 1e-3:
                break
            mj.mj_jacSite(m, s, jacp, jacr, self.site)
            full = np.vstack([jacp, jacr])[:, self._ik_dof]
            weights = self._ik_w.copy()
            # Joints at a limit and pushed further out are taken out of the
            # solve, so the others do the work instead of the step being clipped away.
            for _ in range(3):
                jac = full * weights
                inv = jac.T @ np.linalg.inv(jac @ jac.T + lam2 * np.eye(6))
                # a gentle pull towards the home posture, in the null space of the task
                posture = (np.eye(len(q)) - inv @ jac) @ (0.1 * (self._q_home - q))
                dq = (inv @ (err * self._task_w) + posture) * weights
                stuck = ((q <= self._ik_low + 1e-6) & (dq < 0)) | ((q >= self._ik_high - 1e-6) & (dq > 0))
                if not stuck.any() or not (weights[stuck] > 0).any():
                    break
                weights[stuck] = 0.0
            q = np.clip(q + dq, self._ik_low, self._ik_high)
        self.q_des = q


def robot_spec(emb: Embodiment, cfg: SimConfig, *, realtime: bool = False) -> RobotSpec:
    """The spec of an embodiment under a config: the simulator's, and the ROS driver's (``realtime``)."""
    names = tuple(j.name for j in emb.joints)
    joint_space = ActionSpace(
        name=JOINT_POS,
        names=names,
        low=tuple(j.lower for j in emb.joints),
        high=tuple(j.upper for j in emb.joints),
        max_step=tuple(emb.max_joint_step.get(n, DEFAULT_JOINT_STEP) for n in names),
        absolute=True,
    )
    return RobotSpec(
        name=emb.name,
        joints=emb.joints,
        cameras=tuple(CameraSpec(role=r, height=cfg.image_height, width=cfg.image_width) for r in emb.cameras(cfg.arm)),
        state_names=(*names, *EE_STATE),
        action_spaces=(ee_delta_space(max_translation=0.05, max_rotation=0.25), joint_space),
        control_hz=cfg.control_hz,
        realtime=realtime,
    )
