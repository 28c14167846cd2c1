"""The simulation bridge: a simulated robot as a ROS node on the real robot's topics.

`SimBridge` runs a `SimRobot` in real time and speaks the real robot's
topics (the robot's `RosLayout`): it publishes joint states (and the base
pose as odometry, where the layout has an odometry topic) every tick and
camera images at the camera rate, and applies incoming commands to the
simulation as joint position targets: JointTrajectory and JointState
commands set the targets of their joints (a trajectory's last point), a
Twist moves the base targets by the velocity over one command period.
Physics advances one tick of ``1 / rate`` seconds at a time, paced to the
wall clock.

For tests and evaluation the bridge also speaks two s2kit-only topics
(std_msgs/String, JSON), which a real robot does not have:

* ``{prefix}/reset`` (in): ``{"id": str, "seed": int, "suite": str | null,
  "privileged": bool}`` starts a new episode of that seed (and suite);
* ``{prefix}/status`` (out, every tick): ``{"bridge", "id", "seed", "suite",
  "instruction", "completed", "total", "done", "error"}`` and, when the
  reset asked for it, ``"sim"``: the privileged simulator state
  (`messages.sim_state_json`), which the driver turns back into a `SimState` so the
  scripted executor and the oracle planner work through ROS.

A malformed message (wrong joint names, non-finite values, bad JSON) is
reported on the log, naming the topic and the problem, and dropped: the
robot keeps its previous targets.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import numpy as np

from s2kit.core.errors import ConfigError, EpisodeAborted, S2kitError
from s2kit.plugins.robots.ros import CommandGroup, RosLayout
from s2kit.plugins.robots.ros.messages import (
    MESSAGE_TYPES,
    Complaints,
    MalformedMessage,
    joint_state_positions,
    json_message,
    make_image,
    make_joint_state,
    make_odometry,
    parse_json,
    sim_state_json,
    trajectory_targets,
    twist_velocity,
)
from s2kit.plugins.robots.ros.transport import Transport
from s2kit.plugins.robots.sim.base import JOINT_POS, SimRobot
from s2kit.plugins.robots.sim.tasks import load_suite

__all__ = ["SimBridge"]

log = logging.getLogger(__name__)

# --- the bridge -------------------------------------------------------------------------------------


class SimBridge:
    """Runs ``robot`` as a ROS node on ``layout``'s topics through ``transport``.

    ``rate_hz``: physics ticks and joint states per second; ``camera_hz``:
    images per second; ``command_period``: how long one Twist moves the base
    (the driver's control period). ``announce`` is told of each new episode.
    """

    def __init__(
        self,
        robot: SimRobot,
        transport: Transport,
        layout: RosLayout,
        *,
        rate_hz: float = 50.0,
        camera_hz: float = 10.0,
        command_period: float = 0.1,
        sim_prefix: str = "/s2kit/sim",
        suite: str | None = None,
        announce: Callable[[str], None] = log.info,
    ) -> None:
        if abs(robot.spec.control_hz - rate_hz) > 1e-9:
            raise ConfigError(f"the bridge's robot must step at the bridge rate {rate_hz} Hz, not {robot.spec.control_hz}")
        self.robot = robot
        self.transport = transport
        self.layout = layout
        self.rate_hz = rate_hz
        self.camera_every = max(1, round(rate_hz / camera_hz))
        self.command_period = command_period
        self.suite = suite
        self.announce = announce
        self.instance = uuid.uuid4().hex[:12]  # tells the driver when two bridges share a network
        self.joints = [j.name for j in robot.embodiment.joints]
        self._index = {name: i for i, name in enumerate(self.joints)}
        self._low = np.array([j.lower for j in robot.embodiment.joints])
        self._high = np.array([j.upper for j in robot.embodiment.joints])
        self.complaints = Complaints(log)
        self.ticks = 0
        self.overruns = 0
        # what the callbacks hand to the loop
        self._lock = threading.Lock()
        self._pending: dict[str, float] = {}  # joint -> target
        self._twist: tuple[float, float, float] | None = None
        self._reset: dict[str, Any] | None = None
        # the episode
        self.episode_id: str | None = None
        self.seed = robot.seed
        self.privileged = False
        self.error: str | None = None
        self.targets = robot.joint_positions()

        msg = transport.message
        self._joint_state_cls = msg("sensor_msgs/JointState")
        self._image_cls = msg("sensor_msgs/Image")
        self._string_cls = msg("std_msgs/String")
        self._publish_joints = transport.publisher(layout.joint_states, "sensor_msgs/JointState")
        # Where the base pose goes out as odometry, joint states leave it out, as on the real robot.
        self._publish_odometry = transport.publisher(layout.odometry, "nav_msgs/Odometry") if layout.odometry else None
        self._odometry_cls = msg("nav_msgs/Odometry") if layout.odometry else None
        base = {"odom_x", "odom_y", "odom_t"}
        self._reported = [i for i, name in enumerate(self.joints) if not (layout.odometry and name in base)]
        # One publisher per camera topic; roles that share a topic (TX-G2's 'wrist' and its side) share it.
        self._cameras: dict[str, tuple[str, Callable[[Any], None]]] = {}
        for role, topic in layout.cameras.items():
            if topic not in {t for t, _ in self._cameras.values()}:
                self._cameras[role] = (topic, transport.publisher(topic, "sensor_msgs/Image"))
        self._publish_status = transport.publisher(f"{sim_prefix}/status", "std_msgs/String")
        for group in layout.commands:
            self._check_group(group)
            transport.subscribe(group.topic, MESSAGE_TYPES[group.kind], self._command_callback(group))
        transport.subscribe(f"{sim_prefix}/reset", "std_msgs/String", self._on_reset)

    def _check_group(self, group: CommandGroup) -> None:
        unknown = [j for j in group.joints if j not in self._index]
        if unknown:
            raise ConfigError(f"command topic {group.topic}: unknown joints {unknown} (robot joints: {', '.join(self.joints)})")

    # --- callbacks (middleware threads): validate, store, return -------------------------------

    def _command_callback(self, group: CommandGroup) -> Callable[[Any], None]:
        def on_message(msg: Any) -> None:
            try:
                if group.kind == "twist":
                    velocity = twist_velocity(msg)
                    with self._lock:
                        self._twist = velocity
                    return
                targets = trajectory_targets(msg) if group.kind == "trajectory" else joint_state_positions(msg)
                unknown = sorted(set(targets) - set(group.joints))
                if unknown:
                    raise MalformedMessage(f"joints {unknown} are not on this topic (it takes {', '.join(group.joints)})")
            except MalformedMessage as err:
                self.complaints(group.topic, str(err))
                return
            with self._lock:
                self._pending.update(targets)

        return on_message

    def _on_reset(self, msg: Any) -> None:
        try:
            request = parse_json(msg)
            if not isinstance(request.get("id"), str) or not isinstance(request.get("seed"), int):
                raise MalformedMessage("a reset needs 'id' (a string) and 'seed' (an integer)")
        except MalformedMessage as err:
            self.complaints("reset", str(err))
            return
        with self._lock:
            self._reset = request

    # --- the loop -----------------------------------------------------------------------------------

    def run(self, stop: threading.Event, on_ready: Callable[[], None] | None = None) -> None:
        """Tick in real time until ``stop`` is set; ``on_ready`` after the first tick's messages are out."""
        period = 1.0 / self.rate_hz
        next_tick = time.perf_counter()
        while not stop.is_set():
            reset = self.tick()
            if self.ticks == 1 and on_ready is not None:
                on_ready()
            next_tick += period
            delay = next_tick - time.perf_counter()
            if delay > 0:
                stop.wait(delay)
            elif delay < -period:  # more than a tick behind: start afresh, do not race to catch up
                self.overruns += 0 if reset else 1  # building a new episode's scene is not falling behind
                next_tick = time.perf_counter()

    def tick(self) -> bool:
        """One tick: take the commands that arrived, advance physics, publish; whether a new episode began."""
        with self._lock:
            reset, self._reset = self._reset, None
            pending, self._pending = self._pending, {}
            twist, self._twist = self._twist, None
        started = reset is not None and reset["id"] != self.episode_id
        if started:
            self._start_episode(reset)  # type: ignore[arg-type]
            pending, twist = {}, None  # commands meant for the previous episode
        for name, value in pending.items():
            i = self._index[name]
            self.targets[i] = min(max(value, self._low[i]), self._high[i])
        if twist is not None:
            self._move_base(twist)
        robot = self.robot
        if self.error is None:
            try:
                robot.apply(self.targets, JOINT_POS)
            except EpisodeAborted as err:
                self.error = str(err)
                log.warning("episode %s (seed %s) aborted: %s", self.episode_id, self.seed, err)
        else:
            robot.hold()
        self.ticks += 1
        self._publish()
        return started

    def _start_episode(self, request: dict[str, Any]) -> None:
        suite = request.get("suite")
        try:
            if suite and suite != self.robot.suite.name and suite != self.suite:
                self.robot.suite = load_suite(suite)
                self.suite = suite
            self.robot.reset(seed=request["seed"])
            self.error = None
        except S2kitError as err:
            self.error = f"reset failed: {err}"
            log.warning("reset to seed %s failed: %s", request["seed"], err)
        self.episode_id = request["id"]
        self.seed = request["seed"]
        self.privileged = bool(request.get("privileged", False))
        self.targets = self.robot.joint_positions()
        self.announce(f"episode {self.episode_id}: seed {self.seed}: {self.error or self.robot.instruction}")

    def _move_base(self, twist: tuple[float, float, float]) -> None:
        """The base targets: where the velocity (base frame) takes the base in one command period."""
        vx, vy, wz = twist
        q = self.robot.joint_positions()
        ix, iy, it = (self._index[n] for n in ("odom_x", "odom_y", "odom_t"))
        c, s = math.cos(q[it]), math.sin(q[it])
        dt = self.command_period
        for i, value in ((ix, q[ix] + (c * vx - s * vy) * dt), (iy, q[iy] + (s * vx + c * vy) * dt), (it, q[it] + wz * dt)):
            self.targets[i] = min(max(value, self._low[i]), self._high[i])

    def _publish(self) -> None:
        robot, now = self.robot, self.transport.now()
        q = robot.joint_positions()
        names = [self.joints[i] for i in self._reported]
        self._publish_joints(make_joint_state(self._joint_state_cls, names, q[self._reported], stamp=now))
        if self._publish_odometry is not None:
            x, y, yaw = (q[self._index[n]] for n in ("odom_x", "odom_y", "odom_t"))
            self._publish_odometry(make_odometry(self._odometry_cls, x, y, yaw, stamp=now))  # type: ignore[arg-type]
        status = robot.status()
        payload: dict[str, Any] = {
            "bridge": self.instance,
            "id": self.episode_id,
            "seed": self.seed,
            "suite": robot.suite.name,
            "instruction": robot.instruction,
            "completed": status.subtasks_completed,
            "total": status.subtasks_total,
            "done": status.done,
            "error": self.error,
        }
        if self.privileged:
            payload["sim"] = sim_state_json(robot.privileged_state())
        self._publish_status(json_message(self._string_cls, payload))
        if (self.ticks - 1) % self.camera_every == 0:
            images = robot.render()
            for role, (_, publish) in self._cameras.items():
                publish(make_image(self._image_cls, images[role], stamp=now, frame_id=role))
