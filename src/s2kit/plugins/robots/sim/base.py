"""The MuJoCo robot both simulated robots are: one class, two embodiments.

`SimRobot` builds a model from the shared tabletop world and an
`Embodiment` (the robot's MJCF and what its joints mean), samples a scene and
task from a suite per episode, maps the canonical ``ee_delta`` action to
joints by damped-least-squares IK, renders the cameras off-screen and tracks
subtask progress from simulator state.

Grasping: when the gripper closes with an object between the fingertips, the
object is attached to the hand (moved with it every physics step) until the
gripper opens; then physics takes over again. This is the usual scripted-
grasp simplification of tabletop suites: it makes grasps depend on where the
gripper is, not on friction tuning of primitive fingers. Pushing, placing,
stacking and dropping are ordinary contact physics.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from s2kit.core.config import PluginConfig
from s2kit.core.errors import ConfigError, EpisodeAborted, RobotError
from s2kit.core.interfaces import Robot
from s2kit.core.types import (
    EE_DELTA,
    ActionSpace,
    CameraSpec,
    JointSpec,
    Observation,
    RobotSpec,
    RobotStatus,
    TaskText,
    ee_delta_space,
)
from s2kit.plugins.robots.sim.tasks import (
    SUITES,
    Progress,
    Task,
    WorldState,
    load_suite,
    sample_episode,
)
from s2kit.plugins.robots.sim.world import Scene, scene_xml

if TYPE_CHECKING:
    from s2kit.plugins.robots.ros import RosLayout

__all__ = [
    "BASE_JOINTS",
    "DEFAULT_JOINT_STEP",
    "EE_STATE",
    "JOINT_POS",
    "Embodiment",
    "Kinematics",
    "SimConfig",
    "SimRobot",
    "SimState",
    "robot_spec",
]

JOINT_POS = "joint_pos"
EE_STATE = ("ee_x", "ee_y", "ee_z", "ee_roll", "ee_pitch", "ee_yaw", "gripper")
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


@dataclass
class SimState:
    """Privileged simulator state, given to the scripted expert and the oracle planner."""

    scene: Scene
    task: Task
    completed: int
    positions: dict[str, np.ndarray]
    held: str | None
    ee_pos: np.ndarray
    ee_yaw: float
    gripper: float
    table_height: float
    table_x: float
    arm: str
    cameras: dict[str, np.ndarray] = field(default_factory=dict)
    """Per camera role, the (3, 4) matrix taking a homogeneous world point to ``(u w, v w, w)``:
    ``(u, v)`` in [-1, 1] across the image (u left to right, v top to bottom), ``w`` the depth."""

    @property
    def focus_item(self) -> str | None:
        """The item the current subtask needs the hand at; None once the task is done.

        The subtask's object until it is held, then its destination (the container or the
        object to stack on; a pick's object itself, a push's object).
        """
        if self.completed >= len(self.task.subtasks):
            return None
        sub = self.task.subtasks[self.completed]
        held = self.held == sub.obj and sub.target is not None and sub.kind in ("put", "stack")
        return sub.target if held else sub.obj  # type: ignore[return-value]

    @property
    def focus(self) -> np.ndarray:
        """Where the current subtask needs the hand next (`focus_item`), relative to the hand (world frame, metres; (3,)).

        NaN once the task is done. `s2kit collect` records it as ``privileged.focus``: a
        training-time target for learned models (S2's auxiliary loss), never an input.
        """
        item = self.focus_item
        if item is None:
            return np.full(3, np.nan, dtype=np.float32)
        return (np.asarray(self.positions[item], dtype=np.float64) - self.ee_pos).astype(np.float32)

    @property
    def focus_uv(self) -> dict[str, np.ndarray]:
        """Where `focus_item`'s centre is in each camera's image: (u, v) in [-1, 1] (see ``cameras``).

        NaN where it falls outside the frame or behind the camera, or once the task is done
        (occlusion is not checked). `s2kit collect` records it as ``privileged.focus_uv``, a
        training-time target like `focus`.
        """
        item = self.focus_item
        out = {}
        for role, projection in self.cameras.items():
            uv = np.full(2, np.nan, dtype=np.float32)
            if item is not None:
                u, v, w = projection @ np.append(np.asarray(self.positions[item], dtype=np.float64), 1.0)
                if w > 1e-6 and abs(u) <= w and abs(v) <= w:
                    uv[:] = (u / w, v / w)
            out[role] = uv
        return out


def _quat_from_rpy(r: float, p: float, y: float) -> np.ndarray:
    cr, sr, cp, sp, cy, sy = np.cos(r / 2), np.sin(r / 2), np.cos(p / 2), np.sin(p / 2), np.cos(y / 2), np.sin(y / 2)
    return np.array([cr * cp * cy + sr * sp * sy, sr * cp * cy - cr * sp * sy,
                     cr * sp * cy + sr * cp * sy, cr * cp * sy - sr * sp * cy])  # fmt: skip


def _rpy_from_mat(m: np.ndarray) -> tuple[float, float, float]:
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
        return ee, _rpy_from_mat(base.T @ data.site_xmat[self.site].reshape(3, 3))

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
        dq = _quat_from_rpy(*(base @ np.asarray(action[3:6], dtype=np.float64)))
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


class SimRobot(Robot):
    """A MuJoCo robot at the shared table; subclasses name the embodiment.

    A subclass with a ROS driver lists its middlewares in ``backends`` and
    says where its data lives on ROS (`ros_layout`); `create` then returns
    the driver for a ROS backend.
    """

    embodiment: ClassVar[Embodiment]
    Config = SimConfig
    #: What ``backend`` may be for this robot.
    backends: ClassVar[tuple[str, ...]] = ("sim",)

    @classmethod
    def create(cls, config: PluginConfig) -> Robot:
        backend = getattr(config, "backend", "sim")
        if backend == "sim":
            return cls(config)  # type: ignore[arg-type]
        if backend not in cls.backends:
            raise ConfigError(f"robot {cls.name!r} has no {backend} backend (it has: {', '.join(cls.backends)})")
        from s2kit.plugins.robots.ros.driver import driver_class

        return driver_class(cls)(config)  # type: ignore[arg-type]

    @classmethod
    def ros_layout(cls, config: SimConfig, middleware: str) -> RosLayout:
        """Where this robot's joint states, cameras and command topics are on ``middleware``."""
        raise ConfigError(f"robot {cls.name!r} has no ROS driver")

    def __init__(self, config: SimConfig | None = None) -> None:
        super().__init__(config)
        if self.config.backend != "sim":  # type: ignore[attr-defined]
            raise ConfigError(
                f"{self.name}: {type(self).__name__} is the simulator; build backend "
                f"{self.config.backend!r} with {type(self).__name__}.create (the registry does)"  # type: ignore[attr-defined]
            )
        os.environ.setdefault("MUJOCO_GL", "osmesa")  # off-screen on the CPU unless told otherwise
        import mujoco

        self._mj = mujoco
        cfg: SimConfig = self.config  # type: ignore[assignment]
        self.suite = load_suite(cfg.suite)
        emb = self.embodiment
        self._cams = emb.cameras(cfg.arm)
        self._spec = robot_spec(emb, cfg)
        self.model: Any = None
        self.data: Any = None
        self._renderer: Any = None
        self.reset(seed=0)

    # --- spec --------------------------------------------------------------------------------

    @property
    def spec(self) -> RobotSpec:
        return self._spec

    @classmethod
    def details(cls) -> dict[str, Any]:
        return {"suites": ", ".join(cls.suites()), "backends": ", ".join(cls.backends)}

    @classmethod
    def suites(cls) -> tuple[str, ...]:
        return SUITES

    @classmethod
    def check_suite(cls, suite: str) -> None:
        load_suite(suite)  # a built-in suite, or a user's suite file: ConfigError otherwise

    @property
    def task(self) -> TaskText:
        texts = tuple(self.sim_task.subtask_texts)
        return TaskText(self.sim_task.instruction, texts, min(self.progress.completed, len(texts) - 1) if texts else 0)

    # --- episodes --------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None) -> Observation:
        mj = self._mj
        cfg: SimConfig = self.config  # type: ignore[assignment]
        emb = self.embodiment
        self.seed = 0 if seed is None else int(seed)
        self.scene, self.sim_task = sample_episode(self.suite, self.seed, table_x=emb.table_x)
        xml = scene_xml(self.scene, emb.xml(), table_x=emb.table_x, table_height=emb.table_height, model_name=emb.name)
        try:
            self.model = mj.MjModel.from_xml_string(xml)
        except ValueError as err:  # a bug in the world or a user's suite, never silently ignored
            raise RobotError(f"{emb.name}: the scene of seed {self.seed} does not compile: {err}") from err
        self.data = mj.MjData(self.model)
        self.kinematics = Kinematics(mj, self.model, emb, cfg.arm, cfg.ik_iterations)
        self._index()
        for name, value in emb.home.items():
            self.data.qpos[self._qadr[name]] = value
        self.data.ctrl[:] = 0
        for name in self._qadr:
            if name in self._act:
                self.data.ctrl[self._act[name]] = self.data.qpos[self._qadr[name]]
        self._jitter_cameras()
        mj.mj_forward(self.model, self.data)
        self._substeps = max(1, round(1.0 / (cfg.control_hz * self.model.opt.timestep)))
        self.kinematics.start(self.data)
        self._gripper_cmd = self._previous_gripper_cmd = 1.0
        self.held: str | None = None
        self._held_rel: tuple[np.ndarray, np.ndarray] | None = None
        self.steps = 0
        self.progress = Progress(self.sim_task)
        # let objects settle on the table before the first observation
        for _ in range(10):
            mj.mj_step(self.model, self.data)
        self._make_renderer()
        return self.observe()

    def _index(self) -> None:
        mj, m = self._mj, self.model
        emb = self.embodiment
        arm = self.config.arm  # type: ignore[attr-defined]
        kin = self.kinematics
        self._qadr = kin.qadr
        self._act = {}
        for j in emb.joints:
            aid = mj.mj_name2id(m, mj.mjtObj.mjOBJ_ACTUATOR, j.name)
            if aid >= 0:
                self._act[j.name] = aid
        self._ik = kin.ik
        self._site = kin.site
        self._hand = mj.mj_name2id(m, mj.mjtObj.mjOBJ_BODY, emb.hand_body(arm))
        self._base = kin.base
        self._gripper = kin.gripper
        self._objects = {it.name: mj.mj_name2id(m, mj.mjtObj.mjOBJ_BODY, it.name) for it in self.scene.items if it.is_object}
        self._obj_qadr = {n: int(m.jnt_qposadr[m.body_jntadr[b]]) for n, b in self._objects.items()}
        self._obj_dof = {n: int(m.jnt_dofadr[m.body_jntadr[b]]) for n, b in self._objects.items()}
        self._fixtures = {}
        for it in self.scene.items:
            if it.is_object:
                continue
            if it.kind == "region":
                self._fixtures[it.name] = ("geom", mj.mj_name2id(m, mj.mjtObj.mjOBJ_GEOM, it.name))
            else:
                self._fixtures[it.name] = ("body", mj.mj_name2id(m, mj.mjtObj.mjOBJ_BODY, it.name))
        self._cam_ids = {role: mj.mj_name2id(m, mj.mjtObj.mjOBJ_CAMERA, cam) for role, cam in self._cams.items()}

    def _jitter_cameras(self) -> None:
        m = self.model
        for role, cid in self._cam_ids.items():
            jitter = self.scene.camera_jitter.get(role)
            if not jitter or not any(jitter):
                continue
            m.cam_pos[cid] += np.array(jitter[:3])
            q = np.empty(4)
            self._mj.mju_mulQuat(q, m.cam_quat[cid].copy(), _quat_from_rpy(*jitter[3:]))
            m.cam_quat[cid] = q

    def _make_renderer(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        cfg: SimConfig = self.config  # type: ignore[assignment]
        if cfg.render:
            self._renderer = self._mj.Renderer(self.model, cfg.image_height, cfg.image_width)
            for flag in (self._mj.mjtRndFlag.mjRND_SHADOW, self._mj.mjtRndFlag.mjRND_REFLECTION):
                self._renderer.scene.flags[flag] = 0

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    # --- sensing --------------------------------------------------------------------------

    def _site_pos(self) -> np.ndarray:
        return self.kinematics.site_pos(self.data)

    def render(self) -> dict[str, np.ndarray]:
        """Every camera's image, by role."""
        cfg: SimConfig = self.config  # type: ignore[assignment]
        images = {}
        for role, cid in self._cam_ids.items():
            if self._renderer is None:
                images[role] = np.zeros((cfg.image_height, cfg.image_width, 3), dtype=np.uint8)
                continue
            self._renderer.update_scene(self.data, camera=cid)
            images[role] = self._renderer.render().copy()
        return images

    def positions(self) -> dict[str, np.ndarray]:
        out = {name: self.data.xpos[b].copy() for name, b in self._objects.items()}
        for name, (kind, idx) in self._fixtures.items():
            out[name] = (self.data.geom_xpos[idx] if kind == "geom" else self.data.xpos[idx]).copy()
        return out

    def item_geoms(self, name: str) -> list[int]:
        """The MuJoCo geom ids an item of the scene is drawn with (what a segmentation render labels it by)."""
        kind, index = self._fixtures.get(name, ("body", self._objects.get(name)))
        if kind == "geom":
            return [index]
        return [g for g in range(self.model.ngeom) if self.model.geom_bodyid[g] == index]

    def gripper_opening(self) -> float:
        return self.kinematics.gripper_opening(self.data)

    def joint_positions(self) -> np.ndarray:
        """The embodiment's joints, in spec order (what a robot's joint_states report)."""
        return np.array([self.data.qpos[self._qadr[j.name]] for j in self.embodiment.joints])

    def privileged_state(self) -> SimState:
        """The simulator state privileged components read (also what the ROS bridge publishes)."""
        emb = self.embodiment
        _, rpy = self.kinematics.ee_pose(self.data)
        return SimState(
            scene=self.scene,
            task=self.sim_task,
            completed=self.progress.completed,
            positions=self.positions(),
            held=self.held,
            ee_pos=self._site_pos().copy(),
            ee_yaw=rpy[2],
            gripper=self.gripper_opening(),
            table_height=emb.table_height,
            table_x=emb.table_x,
            arm=self.config.arm,  # type: ignore[attr-defined]
            cameras={role: self.camera_projection(cid) for role, cid in self._cam_ids.items()},
        )

    def camera_projection(self, camera: int) -> np.ndarray:
        """MuJoCo camera ``camera``'s current (3, 4) world-to-image matrix (`SimState.cameras`)."""
        cfg: SimConfig = self.config  # type: ignore[assignment]
        rotation = self.data.cam_xmat[camera].reshape(3, 3)  # columns: the camera's axes; it looks along -z
        extrinsic = np.hstack([rotation.T, -rotation.T @ self.data.cam_xpos[camera][:, None]])
        tan = np.tan(np.deg2rad(self.model.cam_fovy[camera]) / 2)
        return np.diag([1 / (tan * cfg.image_width / cfg.image_height), -1 / tan, -1.0]) @ extrinsic

    def observe(self) -> Observation:
        ee, rpy = self.kinematics.ee_pose(self.data)
        state = np.array([*self.joint_positions(), *ee, *rpy, self.gripper_opening()], dtype=np.float32)
        privileged = self.privileged_state()
        return Observation(
            images=self.render(),
            state=state,
            timestamp=self.steps / self._spec.control_hz,
            scene=self.scene.describe(self.embodiment.table_x, privileged.positions),
            privileged=privileged,
            task=self.task,
        )

    # --- acting ---------------------------------------------------------------------------

    def apply(self, action: np.ndarray, space: str) -> None:
        emb = self.embodiment
        kin = self.kinematics
        if space == EE_DELTA:
            for name, value in zip(self._ik, kin.ee_delta(self.data, action)):
                self.data.ctrl[self._act[name]] = value
            self._gripper_cmd = float(action[6])
            self.data.ctrl[self._act[self._gripper]] = kin.gripper_target(self._gripper_cmd)
        elif space == JOINT_POS:
            for j, value in zip(emb.joints, action):
                if j.name in self._act:
                    self.data.ctrl[self._act[j.name]] = value
            self._gripper_cmd = kin.gripper_command(float(action[[j.name for j in emb.joints].index(self._gripper)]))
            # keep the IK target where the hand will be, so switching spaces is smooth
            kin.q_des = np.array([self.data.ctrl[self._act[n]] for n in self._ik])
        else:
            raise RobotError(f"{emb.name}: unknown action space {space!r}")
        self._update_grasp()
        mj, m, d = self._mj, self.model, self.data
        unstable = d.warning[mj.mjtWarning.mjWARN_BADQACC].number
        for _ in range(self._substeps):
            mj.mj_step(m, d)
            if self.held is not None:
                self._carry()
        if self.held is not None:
            mj.mj_forward(m, d)
        if d.warning[mj.mjtWarning.mjWARN_BADQACC].number > unstable:
            # MuJoCo has reset the state to recover: the episode cannot be trusted any more
            raise EpisodeAborted(f"{emb.name}: the simulation became unstable (seed {self.seed})")
        if space == JOINT_POS:
            kin.track(self.data)
        self.steps += 1
        positions = self.positions()
        self.progress.update(WorldState(positions, self.held, emb.table_height), self.scene)
        remaining = self.sim_task.subtasks[self.progress.completed :]
        needed = {s.obj for s in remaining} | {s.target for s in remaining if s.kind == "stack"}
        for name in sorted(needed):
            if positions[name][2] < emb.table_height - 0.1:
                raise EpisodeAborted(f"the {self.scene.item(name).label} fell off the table")

    def hold(self) -> None:
        """Hold: joint targets become the current positions, and a few physics steps pass."""
        for name, aid in self._act.items():
            self.data.ctrl[aid] = self.data.qpos[self._qadr[name]]
        for _ in range(self._substeps):
            self._mj.mj_step(self.model, self.data)
            if self.held is not None:
                self._carry()
        self._mj.mj_forward(self.model, self.data)

    def status(self) -> RobotStatus:
        n = len(self.sim_task.subtasks)
        return RobotStatus(done=self.progress.done, subtasks_completed=self.progress.completed, subtasks_total=n)

    # --- grasping ---------------------------------------------------------------------------

    def _update_grasp(self) -> None:
        closing = self._gripper_cmd < 0.5 and self._previous_gripper_cmd >= 0.5
        self._previous_gripper_cmd = self._gripper_cmd
        if self._gripper_cmd >= 0.5:
            self.held, self._held_rel = None, None
            return
        if self.held is not None or not closing:  # a closed gripper pushes, it does not pick up
            return
        # Closing: attach the object whose centre is between the fingertips.
        site_pos = self._site_pos()
        site_mat = self.data.site_xmat[self._site].reshape(3, 3)
        best, best_d = None, 0.035
        for name, b in self._objects.items():
            local = site_mat.T @ (self.data.xpos[b] - site_pos)
            d = float(np.linalg.norm(local))
            if d < best_d:
                best, best_d = name, d
        if best is None:
            return
        b = self._objects[best]
        hand_pos, hand_mat = self.data.xpos[self._hand], self.data.xmat[self._hand].reshape(3, 3)
        rel_pos = hand_mat.T @ (self.data.xpos[b] - hand_pos)
        hand_q = np.empty(4)
        self._mj.mju_mat2Quat(hand_q, self.data.xmat[self._hand])
        inv = np.empty(4)
        self._mj.mju_negQuat(inv, hand_q)
        rel_q = np.empty(4)
        self._mj.mju_mulQuat(rel_q, inv, self.data.xquat[b])
        self.held, self._held_rel = best, (rel_pos, rel_q)

    def _carry(self) -> None:
        assert self.held is not None and self._held_rel is not None
        d = self.data
        rel_pos, rel_q = self._held_rel
        hand_pos, hand_mat = d.xpos[self._hand], d.xmat[self._hand].reshape(3, 3)
        qa = self._obj_qadr[self.held]
        d.qpos[qa : qa + 3] = hand_pos + hand_mat @ rel_pos
        hand_q = np.empty(4)
        self._mj.mju_mat2Quat(hand_q, d.xmat[self._hand])
        q = np.empty(4)
        self._mj.mju_mulQuat(q, hand_q, rel_q)
        d.qpos[qa + 3 : qa + 7] = q
        dof = self._obj_dof[self.held]
        d.qvel[dof : dof + 6] = 0.0
