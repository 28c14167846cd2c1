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

What the simulator shares with the real robot's driver (`Embodiment`,
`SimConfig`, `Kinematics`, `robot_spec`) lives in ``embodiment.py``, the
privileged `SimState` in ``state.py``; both are re-exported here.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from s2kit.core.config import PluginConfig
from s2kit.core.errors import ConfigError, EpisodeAborted, RobotError
from s2kit.core.interfaces import Robot
from s2kit.core.types import EE_DELTA, Observation, RobotSpec, RobotStatus, TaskText
from s2kit.plugins.robots.sim.embodiment import (
    BASE_JOINTS,
    DEFAULT_JOINT_STEP,
    EE_STATE,
    JOINT_POS,
    Embodiment,
    Kinematics,
    SimConfig,
    quat_from_rpy,
    robot_spec,
)
from s2kit.plugins.robots.sim.state import SimState, subtask_focus
from s2kit.plugins.robots.sim.tasks import SUITES, VARIANTS, Progress, WorldState, load_suite, sample_episode
from s2kit.plugins.robots.sim.world import scene_xml

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
        #: per action space: the bounds a command is clamped to, and the dimensions' names
        self._bounds = {
            space.name: (np.asarray(space.low, np.float64), np.asarray(space.high, np.float64), space.names)
            for space in self._spec.action_spaces
        }
        warning = mujoco.mjtWarning
        #: the warnings with which mj_step gives up on the physics (see _advance)
        self._diverged = (warning.mjWARN_BADQPOS, warning.mjWARN_BADQVEL, warning.mjWARN_BADQACC, warning.mjWARN_BADCTRL)
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
        return {"suites": ", ".join(cls.suites()), "variants": ", ".join(VARIANTS), "backends": ", ".join(cls.backends)}

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
            self._mj.mju_mulQuat(q, m.cam_quat[cid].copy(), quat_from_rpy(*jitter[3:]))
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
            rollout=self.rollout,
        )

    # --- what-if (privileged) ---------------------------------------------------------------

    def progress_potential(self) -> float:
        """How far the task has come, as a number that grows along the expert's way (privileged).

        3 per subtask completed, -3 per subtask spoiled (done out of order),
        +1 while the current subtask's object is held where it must be carried,
        minus the hand's distance (metres) to where it must go next (the object,
        or the destination while carrying) and the object's distance to its
        destination.
        """
        progress = self.progress
        value = 3.0 * progress.completed - 3.0 * len(progress.spoiled)
        focus = subtask_focus(self.sim_task, progress.completed, self.held)
        if focus is None:
            return value
        positions = self.positions()
        value += float(focus.carrying) - float(np.linalg.norm(self._site_pos() - positions[focus.item]))
        target = self.sim_task.subtasks[progress.completed].target
        if target is not None:
            value -= float(np.linalg.norm(positions[focus.obj][:2] - positions[target][:2]))
        return value

    def rollout(self, candidates: np.ndarray, space: str) -> np.ndarray:
        """Each candidate's `progress_potential` after running its commands ``(K, W, D)`` from now; -inf where the
        physics broke or an object fell. The simulation is restored after each (privileged: `SimState.rollout`).
        Nothing is rendered."""
        import copy

        kin = self.kinematics
        saved = (self.data, self._gripper_cmd, self._previous_gripper_cmd, self.held, self._held_rel, self.steps,
                 self.progress, kin.q_des.copy(), kin.target_pos.copy(), kin.target_quat.copy())  # fmt: skip
        scores = np.full(len(candidates), -np.inf)
        try:
            for k, commands in enumerate(np.asarray(candidates, dtype=np.float64)):
                self.data = copy.copy(saved[0])
                self._gripper_cmd, self._previous_gripper_cmd, self.held, self._held_rel, self.steps = saved[1:6]
                self.progress = Progress(saved[6].task, saved[6].completed, set(saved[6].spoiled))
                kin.q_des, kin.target_pos, kin.target_quat = saved[7].copy(), saved[8].copy(), saved[9].copy()
                try:
                    for command in commands:
                        self.apply(command, space)
                except (EpisodeAborted, RobotError):
                    continue
                scores[k] = self.progress_potential()
        finally:
            (self.data, self._gripper_cmd, self._previous_gripper_cmd, self.held, self._held_rel, self.steps,
             self.progress, kin.q_des, kin.target_pos, kin.target_quat) = saved  # fmt: skip
        return scores

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
        """Execute one command in ``space`` for one control period (20 physics steps at 10 Hz).

        The command is checked before anything moves, as a real robot's
        controller would, whoever calls (the runtime, a gym env, a custom
        loop): it must have the space's ``(D,)`` shape and finite entries,
        else `RobotError` and MuJoCo never sees it; each entry is then
        clamped to the space's bounds (`RobotSpec.action_space`: per-step
        deltas and the gripper opening for ``ee_delta``, joint limits for
        ``joint_pos``). Rate limits across commands are the safety layer's
        (`SafetyFilter`), not the robot's.

        Raises `EpisodeAborted` when MuJoCo gives up on the physics (see
        `_advance`) or an object the task needs falls off the table.
        """
        emb = self.embodiment
        kin = self.kinematics
        action = self._checked(action, space)
        if space == EE_DELTA:
            for name, value in zip(self._ik, kin.ee_delta(self.data, action)):
                self.data.ctrl[self._act[name]] = value
            self._gripper_cmd = float(action[6])
            self.data.ctrl[self._act[self._gripper]] = kin.gripper_target(self._gripper_cmd)
        else:
            for j, value in zip(emb.joints, action):
                if j.name in self._act:
                    self.data.ctrl[self._act[j.name]] = value
            self._gripper_cmd = kin.gripper_command(float(action[[j.name for j in emb.joints].index(self._gripper)]))
            # keep the IK target where the hand will be, so switching spaces is smooth
            kin.q_des = np.array([self.data.ctrl[self._act[n]] for n in self._ik])
        self._update_grasp()
        failure = self._advance()
        if failure is not None:
            # MuJoCo has reset the state (or dropped the command) to recover: the episode cannot be trusted any more
            raise EpisodeAborted(f"{emb.name}: the simulation became unstable: {failure} (seed {self.seed})")
        if space == JOINT_POS:
            kin.track(self.data)
        self.steps += 1
        positions = self.positions()
        self.progress.update(WorldState(positions, self.held, emb.table_height), self.scene)
        remaining = self.sim_task.subtasks[self.progress.completed :]
        # each remaining subtask needs one of its objects (and a stack its base) on the table
        needed = [s.objects for s in remaining] + [(s.target,) for s in remaining if s.kind == "stack"]
        for names in sorted(set(needed)):
            if all(positions[name][2] < emb.table_height - 0.1 for name in names):
                raise EpisodeAborted(f"the {self.scene.item(names[0]).label} fell off the table")

    def _checked(self, action: np.ndarray, space: str) -> np.ndarray:
        """``action`` as float64, clamped to ``space``'s bounds; `RobotError` for a wrong shape or a non-finite entry."""
        name = self.embodiment.name
        bounds = self._bounds.get(space)
        if bounds is None:
            raise RobotError(f"{name}: unknown action space {space!r} (it has: {', '.join(self._bounds)})")
        low, high, names = bounds
        try:
            command = np.asarray(action, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise RobotError(f"{name}: a {space} command must be numbers, got {action!r}") from err
        if command.shape != low.shape:
            raise RobotError(f"{name}: a {space} command has shape {low.shape}, got {command.shape}")
        finite = np.isfinite(command)
        if not finite.all():
            bad = ", ".join(names[i] for i in np.flatnonzero(~finite))
            raise RobotError(f"{name}: refused a non-finite {space} command ({bad}): {command.tolist()}")
        return np.clip(command, low, high)

    def _advance(self) -> str | None:
        """One control period of physics (carrying a held object); what went wrong, or None.

        MuJoCo's ``mj_step`` checks the state it integrates: a NaN, infinite
        or huge (> 1e10) number in ``qpos``, ``qvel`` or ``qacc`` (a diverging
        simulation) raises ``mjWARN_BADQPOS``/``BADQVEL``/``BADQACC`` and
        *resets the whole simulation* to the model's initial state; a bad
        ``ctrl`` raises ``mjWARN_BADCTRL`` and the step runs without the
        command. Either way the episode no longer follows the commands. Any
        of these warnings, or simulated time running backwards (which is what
        a reset does, whatever its cause), is reported.
        """
        mj, m, d = self._mj, self.model, self.data
        before = [d.warning[w].number for w in self._diverged]
        expected = d.time + (self._substeps - 0.5) * m.opt.timestep
        for _ in range(self._substeps):
            mj.mj_step(m, d)
            if self.held is not None:
                self._carry()
        if self.held is not None:
            mj.mj_forward(m, d)
        for w, count in zip(self._diverged, before):
            if d.warning[w].number > count:
                return f"MuJoCo's {w.name} (bad number at index {d.warning[w].lastinfo})"
        if d.time < expected:
            return "MuJoCo reset the simulation"
        return None

    def hold(self) -> None:
        """Hold: joint targets become the current positions, and one control period passes.

        Called when an episode stops (whatever stopped it), so a physics
        failure here is not raised again.
        """
        for name, aid in self._act.items():
            self.data.ctrl[aid] = self.data.qpos[self._qadr[name]]
        self._advance()
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
