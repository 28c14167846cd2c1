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
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from s2kit.core.config import PluginConfig
from s2kit.core.errors import EpisodeAborted, RobotError
from s2kit.core.interfaces import Robot
from s2kit.core.types import (
    EE_DELTA,
    ActionSpace,
    CameraSpec,
    JointSpec,
    Observation,
    RobotSpec,
    RobotStatus,
    ee_delta_space,
)
from s2kit.plugins.robots.sim.tasks import Progress, Scene, Task, WorldState, load_suite, sample_episode
from s2kit.plugins.robots.sim.world import scene_xml

__all__ = ["BASE_JOINTS", "JOINT_POS", "Embodiment", "SimConfig", "SimRobot", "SimState"]

JOINT_POS = "joint_pos"
EE_STATE = ("ee_x", "ee_y", "ee_z", "ee_roll", "ee_pitch", "ee_yaw", "gripper")
#: The virtual planar joints of a mobile base (see world.planar_base_xml).
BASE_JOINTS = (
    JointSpec(name="odom_x", lower=-1.0, upper=1.0),
    JointSpec(name="odom_y", lower=-1.0, upper=1.0),
    JointSpec(name="odom_t", lower=-3.14, upper=3.14),
)
_MAX_LEAD = 0.035  # metres the commanded hand position may run ahead of the hand


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
    """Simulated robot: backend, task suite, cameras, rate."""

    # which robot
    backend: Literal["sim"] = Field("sim", description="sim: MuJoCo (real-robot backends come with the ROS drivers).")
    arm: Literal["right", "left"] = Field("right", description="Active arm, for robots with two.")
    # tasks
    suite: str = Field("id", description="A built-in suite (id, distractor, appearance, semantic, paraphrase) or a YAML file.")
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


def _quat_from_rpy(r: float, p: float, y: float) -> np.ndarray:
    cr, sr, cp, sp, cy, sy = np.cos(r / 2), np.sin(r / 2), np.cos(p / 2), np.sin(p / 2), np.cos(y / 2), np.sin(y / 2)
    return np.array([cr * cp * cy + sr * sp * sy, sr * cp * cy - cr * sp * sy,
                     cr * sp * cy + sr * cp * sy, cr * cp * sy - sr * sp * cy])  # fmt: skip


def _rpy_from_mat(m: np.ndarray) -> tuple[float, float, float]:
    pitch = float(np.arcsin(np.clip(-m[2, 0], -1.0, 1.0)))
    return float(np.arctan2(m[2, 1], m[2, 2])), pitch, float(np.arctan2(m[1, 0], m[0, 0]))


class SimRobot(Robot):
    """A MuJoCo robot at the shared table; subclasses name the embodiment."""

    embodiment: ClassVar[Embodiment]
    Config = SimConfig

    def __init__(self, config: SimConfig | None = None) -> None:
        super().__init__(config)
        os.environ.setdefault("MUJOCO_GL", "osmesa")  # off-screen on the CPU unless told otherwise
        import mujoco

        self._mj = mujoco
        cfg: SimConfig = self.config  # type: ignore[assignment]
        self.suite = load_suite(cfg.suite)
        emb = self.embodiment
        self._cams = emb.cameras(cfg.arm)
        self._spec = self._make_spec()
        self.model: Any = None
        self.data: Any = None
        self._renderer: Any = None
        self.reset(seed=0)

    # --- spec --------------------------------------------------------------------------------

    def _make_spec(self) -> RobotSpec:
        cfg: SimConfig = self.config  # type: ignore[assignment]
        emb = self.embodiment
        names = tuple(j.name for j in emb.joints)
        joint_space = ActionSpace(
            name=JOINT_POS,
            names=names,
            low=tuple(j.lower for j in emb.joints),
            high=tuple(j.upper for j in emb.joints),
            max_step=tuple(emb.max_joint_step.get(n, 0.15) for n in names),
            absolute=True,
        )
        return RobotSpec(
            name=emb.name,
            joints=emb.joints,
            cameras=tuple(CameraSpec(role=r, height=cfg.image_height, width=cfg.image_width) for r in self._cams),
            state_names=(*names, *EE_STATE),
            action_spaces=(ee_delta_space(max_translation=0.05, max_rotation=0.25), joint_space),
            control_hz=cfg.control_hz,
            realtime=False,
        )

    @property
    def spec(self) -> RobotSpec:
        return self._spec

    @classmethod
    def details(cls) -> dict[str, Any]:
        from s2kit.plugins.robots.sim.tasks import builtin_suites

        return {"suites": ", ".join(builtin_suites()), "backends": "sim"}

    @property
    def instruction(self) -> str:
        return self.task.instruction

    # --- episodes --------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None) -> Observation:
        mj = self._mj
        cfg: SimConfig = self.config  # type: ignore[assignment]
        emb = self.embodiment
        self.seed = 0 if seed is None else int(seed)
        self.scene, self.task = sample_episode(self.suite, self.seed, table_x=emb.table_x)
        xml = scene_xml(self.scene, emb.xml(), table_x=emb.table_x, table_height=emb.table_height, model_name=emb.name)
        try:
            self.model = mj.MjModel.from_xml_string(xml)
        except ValueError as err:  # a bug in the world or a user's suite, never silently ignored
            raise RobotError(f"{emb.name}: the scene of seed {self.seed} does not compile: {err}") from err
        self.data = mj.MjData(self.model)
        self._scratch = mj.MjData(self.model)
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
        self._target_pos = self._site_pos().copy()
        self._target_quat = self._site_quat().copy()
        self._q_des = np.array([self.data.qpos[self._qadr[n]] for n in self._ik], dtype=np.float64)
        self._gripper_cmd = self._previous_gripper_cmd = 1.0
        self.held: str | None = None
        self._held_rel: tuple[np.ndarray, np.ndarray] | None = None
        self.steps = 0
        self.progress = Progress(self.task)
        # let objects settle on the table before the first observation
        for _ in range(10):
            mj.mj_step(self.model, self.data)
        self._make_renderer()
        return self.observe()

    def _index(self) -> None:
        mj, m = self._mj, self.model
        emb = self.embodiment
        arm = self.config.arm  # type: ignore[attr-defined]
        self._qadr = {j.name: int(m.jnt_qposadr[mj.mj_name2id(m, mj.mjtObj.mjOBJ_JOINT, j.name)]) for j in emb.joints}
        self._act = {}
        for j in emb.joints:
            aid = mj.mj_name2id(m, mj.mjtObj.mjOBJ_ACTUATOR, j.name)
            if aid >= 0:
                self._act[j.name] = aid
        self._ik = emb.ik_joints(arm)
        self._ik_dof = [int(m.jnt_dofadr[mj.mj_name2id(m, mj.mjtObj.mjOBJ_JOINT, n)]) for n in self._ik]
        limits = {j.name: (j.lower, j.upper) for j in emb.joints}
        self._ik_low = np.array([limits[n][0] for n in self._ik])
        self._ik_high = np.array([limits[n][1] for n in self._ik])
        self._ik_w = np.array([emb.ik_weights.get(n, 1.0) for n in self._ik])
        self._q_home = np.array([emb.home.get(n, 0.0) for n in self._ik])
        w = emb.orientation_weight  # position first; orientation as far as the arm allows
        self._task_w = np.array([1.0, 1.0, 1.0, w, w, w])
        self._site = mj.mj_name2id(m, mj.mjtObj.mjOBJ_SITE, emb.grasp_site(arm))
        self._hand = mj.mj_name2id(m, mj.mjtObj.mjOBJ_BODY, emb.hand_body(arm))
        self._base = mj.mj_name2id(m, mj.mjtObj.mjOBJ_BODY, emb.base_body)
        self._gripper = emb.gripper_joint(arm)
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
        return self.data.site_xpos[self._site]

    def _site_quat(self) -> np.ndarray:
        q = np.empty(4)
        self._mj.mju_mat2Quat(q, self.data.site_xmat[self._site])
        return q

    def _base_rot(self) -> np.ndarray:
        return self.data.xmat[self._base].reshape(3, 3)

    def _render(self) -> dict[str, np.ndarray]:
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

    def gripper_opening(self) -> float:
        lo, hi = self.embodiment.gripper_range
        return float(np.clip((self.data.qpos[self._qadr[self._gripper]] - lo) / (hi - lo), 0.0, 1.0))

    def observe(self) -> Observation:
        emb = self.embodiment
        joints = [self.data.qpos[self._qadr[j.name]] for j in emb.joints]
        base = self._base_rot()
        base_pos = self.data.xpos[self._base]
        ee = base.T @ (self._site_pos() - base_pos)
        rpy = _rpy_from_mat(base.T @ self.data.site_xmat[self._site].reshape(3, 3))
        state = np.array([*joints, *ee, *rpy, self.gripper_opening()], dtype=np.float32)
        positions = self.positions()
        privileged = SimState(
            scene=self.scene,
            task=self.task,
            completed=self.progress.completed,
            positions=positions,
            held=self.held,
            ee_pos=self._site_pos().copy(),
            ee_yaw=rpy[2],
            gripper=self.gripper_opening(),
            table_height=emb.table_height,
            table_x=emb.table_x,
            arm=self.config.arm,  # type: ignore[attr-defined]
        )
        return Observation(
            images=self._render(),
            state=state,
            timestamp=self.steps / self._spec.control_hz,
            scene=self.scene.describe(emb.table_x, positions),
            privileged=privileged,
        )

    # --- acting ---------------------------------------------------------------------------

    def apply(self, action: np.ndarray, space: str) -> None:
        emb = self.embodiment
        if space == EE_DELTA:
            # Deltas move the commanded pose, so every commanded centimetre is
            # eventually executed even though the arm lags within a step; the
            # commanded pose stays within _MAX_LEAD of the hand, so an
            # unreachable command cannot wind up.
            base = self._base_rot()
            target = self._target_pos + base @ np.asarray(action[:3], dtype=np.float64)
            lead = target - self._site_pos()
            norm = float(np.linalg.norm(lead))
            if norm > _MAX_LEAD:
                target = self._site_pos() + lead * (_MAX_LEAD / norm)
            self._target_pos = target
            dq = _quat_from_rpy(*(base @ np.asarray(action[3:6], dtype=np.float64)))
            q = np.empty(4)
            self._mj.mju_mulQuat(q, dq, self._target_quat)
            self._target_quat = q / np.linalg.norm(q)
            self._solve_ik()
            for name, value in zip(self._ik, self._q_des):
                self.data.ctrl[self._act[name]] = value
            self._gripper_cmd = float(action[6])
            lo, hi = emb.gripper_range
            self.data.ctrl[self._act[self._gripper]] = lo + self._gripper_cmd * (hi - lo)
        elif space == JOINT_POS:
            for j, value in zip(emb.joints, action):
                if j.name in self._act:
                    self.data.ctrl[self._act[j.name]] = value
            lo, hi = emb.gripper_range
            self._gripper_cmd = float((action[[j.name for j in emb.joints].index(self._gripper)] - lo) / (hi - lo))
            # keep the IK target where the hand will be, so switching spaces is smooth
            self._q_des = np.array([self.data.ctrl[self._act[n]] for n in self._ik])
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
            self._target_pos = self._site_pos().copy()
            self._target_quat = self._site_quat().copy()
        self.steps += 1
        positions = self.positions()
        self.progress.update(WorldState(positions, self.held, emb.table_height), self.scene)
        remaining = self.task.subtasks[self.progress.completed :]
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
        n = len(self.task.subtasks)
        return RobotStatus(done=self.progress.done, subtasks_completed=self.progress.completed, subtasks_total=n)

    # --- IK and grasping ---------------------------------------------------------------------

    def _solve_ik(self) -> None:
        mj, m, s = self._mj, self.model, self._scratch
        s.qpos[:] = self.data.qpos
        qadr = [self._qadr[n] for n in self._ik]
        q = self._q_des.copy()
        jacp = np.zeros((3, m.nv))
        jacr = np.zeros((3, m.nv))
        err = np.zeros(6)
        lam2 = 1e-3
        for _ in range(self.config.ik_iterations):  # type: ignore[attr-defined]
            s.qpos[qadr] = q
            mj.mj_kinematics(m, s)
            mj.mj_comPos(m, s)
            err[:3] = self._target_pos - s.site_xpos[self._site]
            cur = np.empty(4)
            mj.mju_mat2Quat(cur, s.site_xmat[self._site])
            local = np.empty(3)
            mj.mju_subQuat(local, self._target_quat, cur)  # in the site's frame
            err[3:] = s.site_xmat[self._site].reshape(3, 3) @ local
            if np.linalg.norm(err[:3]) < 1e-4 and np.linalg.norm(err[3:]) < 1e-3:
                break
            mj.mj_jacSite(m, s, jacp, jacr, self._site)
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
        self._q_des = q

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
