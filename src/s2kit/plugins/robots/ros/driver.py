"""`RosRobot`: a robot over ROS 1 or ROS 2, with the simulator's spec and contract.

The driver subscribes to the robot's joint states and cameras and publishes
its commands (the robot's `RosLayout`), through a `Transport`, so the same
code serves both middlewares. What a policy sees and sends is what the
simulator gives and takes: the same `RobotSpec` (joints, cameras at the
configured size, the state with the hand's pose, the ``ee_delta`` and
``joint_pos`` spaces) and the same observation layout.

``ee_delta`` becomes joint targets by IK on a kinematic mirror: the
embodiment's MuJoCo model, its joints set from the measured joint states,
solved by the simulator's own `Kinematics`. The base's part of the solution
goes out as a Twist (the velocity that reaches it in one control period),
the arm, head and gripper parts as one-point JointTrajectories (or a
JointState of targets, per the layout).

Safety, here as well as in the runtime's safety layer, since this is what
reaches hardware:

* every joint target is clamped to the joint's limits and to a maximum
  change per control step (the embodiment's, times ``joint_step_scale``);
  non-finite commands are refused;
* a watchdog thread commands a hold (targets = measured positions, zero
  base velocity) when no new action arrives within ``watchdog_s``;
* an observation older than ``max_age_s`` stops the episode: a silent camera
  raises `EpisodeAborted`; silent joint states are a dropped connection,
  retried with backoff for ``reconnect_s`` (each attempt reported) and then
  a `RobotError` that stops the run.

Message age is measured on this machine's clock from when a message was
received, so the robot's and this machine's clocks need not agree.

With ``sim_bridge`` the other end is ``s2kit bridge``: `reset` asks it for
the episode of a seed, `status` reports its subtask progress, and with
``privileged`` each observation carries the simulator state, so the
scripted executor and the oracle planner run through ROS.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import threadpoolctl

from s2kit.core.errors import EpisodeAborted, RobotError
from s2kit.core.interfaces import Robot
from s2kit.core.types import EE_DELTA, Observation, RobotSpec, RobotStatus
from s2kit.plugins.robots.ros import RosLayout, RosSettings
from s2kit.plugins.robots.ros.messages import (
    MESSAGE_TYPES,
    Complaints,
    MalformedMessage,
    image_to_array,
    joint_state_positions,
    json_message,
    make_joint_state,
    make_trajectory,
    make_twist,
    odometry_pose,
    parse_json,
    sim_state_from_json,
    stamp_seconds,
)
from s2kit.plugins.robots.ros.transport import Transport, open_transport
from s2kit.plugins.robots.sim.embodiment import DEFAULT_JOINT_STEP, JOINT_POS, Kinematics, SimConfig, robot_spec

if TYPE_CHECKING:  # the simulator class is only named: importing it would close a circle (its create builds this driver)
    from s2kit.plugins.robots.sim.base import SimRobot

__all__ = ["RosRobot", "driver_class", "resize"]

log = logging.getLogger(__name__)

BASE = ("odom_x", "odom_y", "odom_t")


def driver_class(robot: type[SimRobot]) -> type[RosRobot]:
    """The ROS driver class of a simulated robot class (named like it, so errors and results say 'hsr')."""
    return _driver_class(robot)


@functools.cache
def _driver_class(robot: type[SimRobot]) -> type[RosRobot]:
    doc = f"{robot.name} over ROS: {(robot.__doc__ or '').strip().splitlines()[0] if robot.__doc__ else ''}"
    return type(f"{robot.__name__}Ros", (RosRobot,), {"name": robot.name, "robot": robot, "Config": robot.Config, "__doc__": doc})


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize of an ``(H, W, 3)`` image (no copy when the size already fits)."""
    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image
    rows = (np.arange(height) * h // height).astype(np.intp)
    cols = (np.arange(width) * w // width).astype(np.intp)
    return image[rows[:, None], cols[None, :]]


class _Latest:
    """The newest value from one topic and when it arrived (this machine's monotonic clock)."""

    __slots__ = ("at", "stamp", "value")

    def __init__(self) -> None:
        self.value: Any = None
        self.at = -math.inf
        self.stamp = 0.0

    def age(self, now: float) -> float:
        return now - self.at


class RosRobot(Robot):
    """A simulated robot's real counterpart over ROS; built by `SimRobot.create` for a ROS backend."""

    robot: ClassVar[type[SimRobot]]
    Config = SimConfig

    def __init__(self, config: SimConfig | None = None) -> None:
        super().__init__(config)
        cfg: SimConfig = self.config  # type: ignore[assignment]
        self.ros: RosSettings = cfg.ros  # type: ignore[attr-defined]
        self.middleware = cfg.backend
        emb = self.embodiment = self.robot.embodiment
        self.layout: RosLayout = self.robot.ros_layout(cfg, self.middleware)
        self._spec: RobotSpec = robot_spec(emb, cfg, realtime=True)
        self.period = 1.0 / cfg.control_hz
        self.joints = [j.name for j in emb.joints]
        self._low = np.array([j.lower for j in emb.joints])
        self._high = np.array([j.upper for j in emb.joints])
        self._step = np.array([emb.max_joint_step.get(n, DEFAULT_JOINT_STEP) for n in self.joints]) * self.ros.joint_step_scale
        self._base = [self.joints.index(n) for n in BASE] if all(n in self.joints for n in BASE) else None
        self.kinematics, self._mirror = Kinematics.mirror(emb, cfg.arm, cfg.ik_iterations)
        self._ik_index = [self.joints.index(n) for n in self.kinematics.ik]
        self._gripper_index = self.joints.index(self.kinematics.gripper)

        # what arrives (middleware threads write, the control thread reads)
        self._lock = threading.Lock()
        self._joint_states = _Latest()
        self._images = {topic: _Latest() for topic in set(self.layout.cameras.values())}
        self._odometry = _Latest()
        self._status = _Latest()
        self._bridges: dict[str, float] = {}  # simulation bridge instance -> when it last spoke
        self._bridge: str | None = None  # the instance that answered the current episode's reset
        self._pending_reset: str | None = None
        self.complaints = Complaints(log)
        # what was sent
        self._command_lock = threading.RLock()
        self._targets: np.ndarray | None = None  # the last joint targets commanded
        self._last_command = math.inf  # monotonic time of the last action (inf: none since the last hold)
        self._track = True  # the next ee_delta starts from the measured hand
        self.holds = 0  # holds commanded (by the runtime, or by the watchdog)
        self.watchdog_holds = 0
        self.clamped = 0  # commands the driver's own limits changed
        self._episode_id: str | None = None

        # One BLAS thread for the whole process: the IK's small matrices gain nothing from
        # more, and OpenBLAS's idle workers spin between calls, half a core on a robot's computer.
        threadpoolctl.threadpool_limits(limits=1, user_api="blas")
        self.transport: Transport = self._open()
        self._watchdog_stop = threading.Event()
        self._watchdog = threading.Thread(target=self._watch, name=f"s2kit-{self.name}-watchdog", daemon=True)
        self._watchdog.start()

    # --- connecting ------------------------------------------------------------------------------

    def _open(self) -> Transport:
        ros = self.ros
        transport = open_transport(self.middleware, ros.node_name, **ros.transport_settings(self.middleware))
        try:
            msg = transport.message
            self._classes = {
                "joint_state": msg("sensor_msgs/JointState"),
                "trajectory": msg("trajectory_msgs/JointTrajectory"),
                "point": msg("trajectory_msgs/JointTrajectoryPoint"),
                "twist": msg("geometry_msgs/Twist"),
                "string": msg("std_msgs/String"),
            }
            transport.subscribe(self.layout.joint_states, "sensor_msgs/JointState", self._on_joint_state)
            if self.layout.odometry:
                transport.subscribe(self.layout.odometry, "nav_msgs/Odometry", self._on_odometry)
            for topic in self._images:
                transport.subscribe(topic, "sensor_msgs/Image", functools.partial(self._on_image, topic))
            self._publishers = {
                group.name: transport.publisher(group.topic, MESSAGE_TYPES[group.kind]) for group in self.layout.commands
            }
            if ros.sim_bridge:
                transport.subscribe(f"{ros.sim_prefix}/status", "std_msgs/String", self._on_status)
                self._publish_reset = transport.publisher(f"{ros.sim_prefix}/reset", "std_msgs/String")
        except BaseException:
            transport.close()
            raise
        return transport

    # --- callbacks (middleware threads) ------------------------------------------------------------

    def _on_joint_state(self, msg: Any) -> None:
        try:
            positions = joint_state_positions(msg)
        except MalformedMessage as err:
            self.complaints(self.layout.joint_states, str(err))
            return
        now = time.monotonic()
        with self._lock:
            latest = self._joint_states
            # A robot may split its joints over several messages: merge them.
            latest.value = {**(latest.value or {}), **positions}
            latest.at, latest.stamp = now, stamp_seconds(msg)

    def _on_odometry(self, msg: Any) -> None:
        try:
            x, y, yaw = odometry_pose(msg)
        except MalformedMessage as err:
            self.complaints(str(self.layout.odometry), str(err))
            return
        now = time.monotonic()
        with self._lock:
            self._odometry.value, self._odometry.at = {"odom_x": x, "odom_y": y, "odom_t": yaw}, now

    def _joint_positions(self) -> dict[str, float]:
        """The newest measured positions: joint states, and the base from odometry where it comes."""
        with self._lock:
            return {**(self._joint_states.value or {}), **(self._odometry.value or {})}

    def _on_image(self, topic: str, msg: Any) -> None:
        cfg: SimConfig = self.config  # type: ignore[assignment]
        try:
            image = resize(image_to_array(msg), cfg.image_height, cfg.image_width)
        except MalformedMessage as err:
            self.complaints(topic, str(err))
            return
        now = time.monotonic()
        with self._lock:
            latest = self._images[topic]
            latest.value, latest.at, latest.stamp = image, now, stamp_seconds(msg)

    def _on_status(self, msg: Any) -> None:
        try:
            status = parse_json(msg)
        except MalformedMessage as err:
            self.complaints(f"{self.ros.sim_prefix}/status", str(err))
            return
        now = time.monotonic()
        bridge = str(status.get("bridge"))
        with self._lock:
            self._bridges[bridge] = now
            if self._bridge is None and status.get("id") == self._pending_reset:
                self._bridge = bridge  # the bridge that took this episode: listen to it alone
            if self._bridge is None or bridge == self._bridge:
                self._status.value, self._status.at = status, now

    # --- the spec and the episode ------------------------------------------------------------------

    @property
    def spec(self) -> RobotSpec:
        return self._spec

    @property
    def instruction(self) -> str | None:
        if not self.ros.sim_bridge:
            return None
        status = self._status.value
        return status.get("instruction") if status else None

    def reset(self, *, seed: int | None = None) -> Observation:
        if self.ros.sim_bridge:
            self._reset_bridge(0 if seed is None else int(seed))
            since = self._status.at  # the bridge's answer: what came before belongs to the previous episode
        else:
            since = time.monotonic() - self.ros.max_age_s
        self._wait_for_data(since)
        self.hold()
        return self.observe()

    def _reset_bridge(self, seed: int) -> None:
        """Ask the bridge for episode ``seed`` until it answers (a first message may find no subscriber yet)."""
        cfg: SimConfig = self.config  # type: ignore[assignment]
        rid = uuid.uuid4().hex[:12]
        request = {"id": rid, "seed": seed, "suite": cfg.suite, "privileged": self.ros.privileged}
        with self._lock:
            self._bridge, self._pending_reset = None, rid
        deadline = time.monotonic() + self.ros.connect_timeout_s
        while True:
            self._publish_reset(json_message(self._classes["string"], request))
            time.sleep(0.2)
            status = self._status.value
            if status is not None and status.get("id") == rid:
                break
            if time.monotonic() > deadline:
                raise RobotError(
                    f"{self.name}: the simulation bridge did not answer a reset on {self.ros.sim_prefix}/reset within "
                    f"{self.ros.connect_timeout_s:g} s (is `s2kit bridge --robot {self.name}` running on this {self.middleware} network?)"
                )
        if status.get("error"):
            raise RobotError(f"{self.name}: the simulation bridge could not start seed {seed}: {status['error']}")
        self._episode_id = rid

    def _check_one_bridge(self) -> None:
        # Two stand-in robots on one network would both take the commands: nothing would mean anything.
        now = time.monotonic()
        with self._lock:
            others = [b for b, at in self._bridges.items() if b != self._bridge and now - at < 1.0]
        if others:
            raise RobotError(
                f"{self.name}: {len(others) + 1} simulation bridges answer on {self.ros.sim_prefix}/status; stop all "
                f"but one (or give each its own {'ROS master' if self.middleware == 'ros1' else 'ROS domain'})"
            )

    def _wait_for_data(self, since: float) -> None:
        """Wait until joint states and every camera have arrived after ``since`` (monotonic)."""
        deadline = time.monotonic() + self.ros.connect_timeout_s
        while True:
            missing = self._missing(since)
            if not missing:
                return
            if time.monotonic() > deadline:
                raise RobotError(f"{self.name}: no data within {self.ros.connect_timeout_s:g} s from {'; '.join(missing)}")
            time.sleep(0.02)

    def _missing(self, since: float) -> list[str]:
        out = []
        joints = self._joint_positions()
        with self._lock:
            if self._joint_states.value is None or self._joint_states.at <= since:
                out.append(self._describe(self.layout.joint_states, "sensor_msgs/JointState"))
            else:
                absent = [n for n in self.joints if n not in joints]
                if absent:
                    where = f" or {self.layout.odometry} (nav_msgs/Odometry)" if self.layout.odometry else ""
                    out.append(f"{self.layout.joint_states}{where} (no positions of {', '.join(absent)})")
            for topic, latest in self._images.items():
                if latest.at <= since:
                    out.append(self._describe(topic, "sensor_msgs/Image"))
        return out

    def _describe(self, topic: str, type_name: str) -> str:
        problem = self.complaints.latest.get(topic)
        return f"{topic} ({type_name}{'; last message rejected: ' + problem if problem else ''})"

    # --- observing ----------------------------------------------------------------------------------

    def observe(self) -> Observation:
        self._check_fresh()
        joints = self._joint_positions()
        with self._lock:
            stamp = self._joint_states.stamp
            images = {role: self._images[topic].value for role, topic in self.layout.cameras.items()}
            status = self._status.value
        kin, mirror = self.kinematics, self._mirror
        with self._command_lock:
            kin.set_joints(mirror, joints)
            ee, rpy = kin.ee_pose(mirror)
            gripper = kin.gripper_opening(mirror)
        state = np.array([*(joints[n] for n in self.joints), *ee, *rpy, gripper], dtype=np.float32)
        privileged, scene = None, None
        if self.ros.sim_bridge and self.ros.privileged and status is not None and status.get("sim") is not None:
            privileged = sim_state_from_json(status["sim"])
            scene = privileged.scene.describe(privileged.table_x, privileged.positions)
        return Observation(images=images, state=state, timestamp=stamp, scene=scene, privileged=privileged)

    def _check_fresh(self) -> None:
        """Joint states and every camera within ``max_age_s``; otherwise retry or stop (see the module docstring)."""
        max_age = self.ros.max_age_s

        def stale_cameras() -> list[tuple[str, str]]:
            now = time.monotonic()
            return [(role, topic) for role, topic in self.layout.cameras.items() if self._images[topic].age(now) > max_age]

        while True:
            if self._joint_states.age(time.monotonic()) > max_age:
                self._reconnect()
                # the robot is back: give its cameras as long to catch up as an image may be old
                deadline = time.monotonic() + max_age
                while stale_cameras() and time.monotonic() < deadline:
                    time.sleep(0.01)
            stale = stale_cameras()
            if not stale:
                return
            # Cameras publish less often than joint states, so when the whole robot goes
            # quiet a camera looks stale first: it is a silent camera only if joint states go on.
            if not self._joint_states_flowing(max_age):
                continue
            stale = stale_cameras()  # an image may have come while joint states were awaited
            if not stale:
                return
            role, topic = stale[0]
            age = self._images[topic].age(time.monotonic())
            problem = self.complaints.latest.get(topic)
            raise EpisodeAborted(
                f"stale observation: camera {role!r} ({topic}) last sent an image {age:.2f} s ago "
                f"(max_age_s {max_age:g})" + (f"; its last message was rejected: {problem}" if problem else "")
            )

    def _joint_states_flowing(self, within: float) -> bool:
        """Whether a new joint state arrives within ``within`` seconds."""
        mark, deadline = self._joint_states.at, time.monotonic() + within
        while time.monotonic() < deadline:
            if self._joint_states.at > mark:
                return True
            time.sleep(0.005)
        return False

    def _reconnect(self) -> None:
        """Joint states stopped: retry with backoff, report each attempt, give up after ``reconnect_s``."""
        ros, topic = self.ros, self.layout.joint_states
        started = time.monotonic()
        delay, attempt = 0.1, 1
        while True:
            now = time.monotonic()
            age = self._joint_states.age(now)
            if age <= ros.max_age_s:
                log.warning("%s: joint states on %s are back after %.1f s", self.name, topic, now - started)
                return
            where = self._master_state()
            if now - started >= ros.reconnect_s:
                raise RobotError(
                    f"{self.name}: lost the robot: no joint states on {topic} for {age:.1f} s "
                    f"({attempt - 1} retries over {ros.reconnect_s:g} s; {where})"
                )
            log.warning("%s: no joint states on %s for %.1f s (%s); retry %d in %.1f s", self.name, topic, age, where, attempt, delay)
            time.sleep(delay)
            delay, attempt = min(delay * 2, 1.0), attempt + 1

    def _master_state(self) -> str:
        ok = self.transport.connected()
        if self.middleware == "ros1":
            uri = getattr(self.transport, "master_uri", "the ROS master")
            return f"the ROS master at {uri} is {'reachable' if ok else 'NOT reachable'}"
        return "the ROS 2 context is up" if ok else "the ROS 2 context is down"

    def status(self) -> RobotStatus:
        if not self.ros.sim_bridge:
            return RobotStatus()
        self._check_one_bridge()
        status = self._status.value
        if status is None or status.get("id") != self._episode_id:
            return RobotStatus()
        if status.get("error"):
            raise EpisodeAborted(f"simulation bridge: {status['error']}")
        return RobotStatus(done=bool(status["done"]), subtasks_completed=status["completed"], subtasks_total=status["total"])

    # --- acting ----------------------------------------------------------------------------------------

    def apply(self, action: np.ndarray, space: str) -> None:
        command = np.asarray(action, dtype=np.float64)
        if not np.isfinite(command).all():
            raise RobotError(f"{self.name}: refused a non-finite command in {space}: {command.tolist()}")
        with self._command_lock:
            measured = self._measured()
            targets = measured.copy() if self._targets is None else self._targets.copy()
            kin, mirror = self.kinematics, self._mirror
            if space == EE_DELTA:
                if command.shape != (7,):
                    raise RobotError(f"{self.name}: an ee_delta command has 7 values, got shape {command.shape}")
                if self._track:
                    kin.start(mirror)
                    self._track = False
                targets[self._ik_index] = kin.ee_delta(mirror, command)
                targets[self._gripper_index] = kin.gripper_target(min(max(float(command[6]), 0.0), 1.0))
            elif space == JOINT_POS:
                if command.shape != (len(self.joints),):
                    raise RobotError(f"{self.name}: a joint_pos command has {len(self.joints)} values, got shape {command.shape}")
                targets = command.copy()
                self._track = True  # the hand moves by joints: the next ee_delta starts from where it is
            else:
                raise RobotError(f"{self.name}: unknown action space {space!r}")
            safe = self._limit(targets)
            kin.q_des = safe[self._ik_index]  # IK continues from what was actually commanded
            self._send(safe, measured)
            self._targets = safe
            self._last_command = time.monotonic()

    def _measured(self) -> np.ndarray:
        """The latest joint positions (spec order), also set in the mirror."""
        joints = self._joint_positions()
        missing = [n for n in self.joints if n not in joints]
        if missing:
            raise RobotError(f"{self.name}: no measured position for joints {', '.join(missing)} on {self.layout.joint_states}")
        self.kinematics.set_joints(self._mirror, joints)
        return np.array([joints[n] for n in self.joints])

    def _limit(self, targets: np.ndarray) -> np.ndarray:
        """Joint limits, and at most the per-step change from the previous targets."""
        previous = self._targets if self._targets is not None else self._measured()
        safe = np.clip(targets, previous - self._step, previous + self._step)
        safe = np.clip(safe, self._low, self._high)
        if not np.allclose(safe, targets, rtol=0.0, atol=1e-9):
            self.clamped += 1
            changed = [self.joints[i] for i in np.flatnonzero(np.abs(safe - targets) > 1e-9)]
            log.debug("%s: clamped joint targets of %s", self.name, ", ".join(changed))
        return safe

    def _send(self, targets: np.ndarray, measured: np.ndarray) -> None:
        now = self.transport.now()
        cls = self._classes
        for group in self.layout.commands:
            publish = self._publishers[group.name]
            index = [self.joints.index(n) for n in group.joints]
            values = targets[index]
            if group.kind == "twist":
                publish(make_twist(cls["twist"], *self._base_velocity(values, measured[index])))  # x, y, yaw joints
            elif group.kind == "trajectory":
                publish(make_trajectory(cls["trajectory"], cls["point"], group.joints, values, period=self.period, stamp=now))
            else:
                publish(make_joint_state(cls["joint_state"], group.joints, values, stamp=now))

    def _base_velocity(self, target: np.ndarray, measured: np.ndarray) -> tuple[float, float, float]:
        """The base-frame velocity that takes the base from ``measured`` to ``target`` (x, y, yaw) in one period."""
        # At most one step's change from where the base is, whatever the previous targets were.
        step = self._step[self._base] if self._base is not None else np.full(3, np.inf)
        delta = np.array([target[0] - measured[0], target[1] - measured[1], math.remainder(target[2] - measured[2], math.tau)])
        dx, dy, wz = (np.clip(delta, -step, step) / self.period).tolist()
        c, s = math.cos(measured[2]), math.sin(measured[2])
        return c * dx + s * dy, -s * dx + c * dy, wz

    def hold(self) -> None:
        """Targets become the measured positions, the base stops; the next ee_delta starts from here."""
        with self._command_lock:
            if self._joint_states.value is None:
                return  # nothing measured yet: nothing to hold against
            try:
                measured = self._measured()
            except RobotError as err:
                log.warning("%s: cannot hold: %s", self.name, err)
                return
            self._send(measured, measured)
            self._targets = measured
            self._track = True
            self._last_command = math.inf
            self.holds += 1

    # --- the watchdog ------------------------------------------------------------------------------------

    def _watch(self) -> None:
        interval = min(self.ros.watchdog_s / 4, 0.05)
        while not self._watchdog_stop.wait(interval):
            idle = time.monotonic() - self._last_command
            if idle > self.ros.watchdog_s:
                log.warning("%s: no new command for %.2f s (watchdog_s %g): holding position", self.name, idle, self.ros.watchdog_s)
                try:
                    self.hold()
                except Exception as err:  # noqa: BLE001 - the watchdog must keep watching
                    log.error("%s: the watchdog's hold failed: %s", self.name, err)
                self.watchdog_holds += 1

    # --- closing ----------------------------------------------------------------------------------------------

    def close(self) -> None:
        if self._watchdog_stop.is_set():
            return
        self._watchdog_stop.set()
        self._watchdog.join(timeout=1.0)
        try:
            if self._targets is not None and self._last_command != math.inf:
                self.hold()
        finally:
            self.transport.close()
