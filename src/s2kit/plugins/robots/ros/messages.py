"""Message conversions, written once for ROS 1 and ROS 2.

The message classes of both middlewares have the same fields; the caller
passes the class (from `Transport.message`), and the few places where they
differ are handled here by duck typing, in one helper each:

* time stamps and durations: ROS 1 ``secs``/``nsecs``, ROS 2 ``sec``/``nanosec``
  (`set_time`, `time_seconds`);
* byte and float arrays: ROS 1 wants ``bytes`` / lists, ROS 2's generated
  setters take ``array.array`` without checking every element (`_bytes_field`).

Every reader validates what arrived and raises `MalformedMessage` naming the
problem (a wrong encoding or data length, names and positions of different
lengths, a non-finite value); the driver and the bridge report it
(`Complaints`) and drop the message. The simulator's privileged state
crosses as JSON, encoded and decoded here (`sim_state_json`,
`sim_state_from_json`), for the driver and the bridge alike.
"""

from __future__ import annotations

import array
import dataclasses
import json
import logging
import math
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from s2kit.core.errors import RobotError
from s2kit.plugins.robots.sim.state import SimState
from s2kit.plugins.robots.sim.tasks import Subtask, Task
from s2kit.plugins.robots.sim.world import Item, Scene

__all__ = [
    "ENCODINGS",
    "MESSAGE_TYPES",
    "Complaints",
    "MalformedMessage",
    "image_to_array",
    "joint_state_positions",
    "json_message",
    "make_image",
    "make_joint_state",
    "make_odometry",
    "make_trajectory",
    "make_twist",
    "odometry_pose",
    "parse_json",
    "set_time",
    "sim_state_from_json",
    "sim_state_json",
    "stamp_seconds",
    "time_seconds",
    "trajectory_targets",
    "twist_velocity",
]

#: Image encodings the driver accepts (8-bit colour; bgr8 is what many ROS cameras send).
ENCODINGS = ("rgb8", "bgr8")


class MalformedMessage(RobotError):
    """A message that cannot be used as it is (wrong encoding, length, non-finite values)."""


# --- time -------------------------------------------------------------------------------


def time_seconds(value: Any) -> float:
    """Seconds of a ROS 1 ``Time``/``Duration`` (secs, nsecs) or a ROS 2 one (sec, nanosec)."""
    if hasattr(value, "nanosec"):
        return float(value.sec) + float(value.nanosec) * 1e-9
    return float(value.secs) + float(value.nsecs) * 1e-9


def set_time(value: Any, seconds: float) -> None:
    """Set a ``Time``/``Duration`` message field in place to ``seconds`` (either middleware)."""
    sec = math.floor(seconds)
    nsec = min(int(round((seconds - sec) * 1e9)), 999_999_999)
    if hasattr(value, "nanosec"):
        value.sec, value.nanosec = int(sec), nsec
    else:
        value.secs, value.nsecs = int(sec), nsec


def stamp_seconds(msg: Any) -> float:
    """The header stamp of ``msg`` in seconds."""
    return time_seconds(msg.header.stamp)


def _bytes_field(template: Any, data: bytes) -> Any:
    # ROS 2 stores uint8[] as array('B'); assigning bytes would make its setter
    # check every element in Python. ROS 1 serializes bytes directly.
    return array.array("B", data) if isinstance(template, array.array) else data


def _floats_field(template: Any, values: Sequence[float]) -> Any:
    floats = [float(v) for v in values]
    return array.array("d", floats) if isinstance(template, array.array) else floats


def _check_finite(values: Sequence[float], what: str) -> None:
    bad = [i for i, v in enumerate(values) if not math.isfinite(v)]
    if bad:
        raise MalformedMessage(f"{what}: non-finite value at index {bad[0]} ({values[bad[0]]})")


# --- sensor_msgs/Image ---------------------------------------------------------------------


def image_to_array(msg: Any) -> np.ndarray:
    """A uint8 ``(H, W, 3)`` RGB array from a sensor_msgs/Image in rgb8 or bgr8.

    Rows may be padded (``step`` > width * 3). Raises `MalformedMessage` on
    another encoding or a data length that does not match the header.
    """
    encoding = str(msg.encoding)
    if encoding not in ENCODINGS:
        raise MalformedMessage(f"image encoding {encoding!r} is not supported (use {' or '.join(ENCODINGS)})")
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if h <= 0 or w <= 0:
        raise MalformedMessage(f"image of size {w}x{h}")
    if step < w * 3:
        raise MalformedMessage(f"image step {step} is less than width * 3 = {w * 3}")
    data = msg.data
    size = len(data)
    if size != step * h:
        raise MalformedMessage(f"image data has {size} bytes; {w}x{h} {encoding} with step {step} needs {step * h}")
    flat = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, list) else np.asarray(data, dtype=np.uint8)
    rows = flat.reshape(h, step)[:, : w * 3].reshape(h, w, 3)
    out = rows[:, :, ::-1] if encoding == "bgr8" else rows
    return np.ascontiguousarray(out)


def make_image(cls: type, image: np.ndarray, *, stamp: float, frame_id: str = "", encoding: str = "rgb8") -> Any:
    """A sensor_msgs/Image (class ``cls``) of a uint8 ``(H, W, 3)`` RGB array."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a uint8 (H, W, 3) image, got {image.dtype} {image.shape}")
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding {encoding!r} is not one of {ENCODINGS}")
    pixels = image[:, :, ::-1] if encoding == "bgr8" else image
    msg = cls()
    set_time(msg.header.stamp, stamp)
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(image.shape[0]), int(image.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = int(image.shape[1]) * 3
    msg.data = _bytes_field(msg.data, np.ascontiguousarray(pixels).tobytes())
    return msg


# --- sensor_msgs/JointState -------------------------------------------------------------------


def joint_state_positions(msg: Any) -> dict[str, float]:
    """Joint name -> position from a sensor_msgs/JointState (velocities and efforts are ignored)."""
    names = [str(n) for n in msg.name]
    positions = [float(p) for p in msg.position]
    if len(names) != len(positions):
        raise MalformedMessage(f"joint state has {len(names)} names but {len(positions)} positions")
    _check_finite(positions, "joint state")
    return dict(zip(names, positions, strict=True))


def make_joint_state(cls: type, names: Sequence[str], positions: Sequence[float], *, stamp: float) -> Any:
    """A sensor_msgs/JointState (class ``cls``) with names and positions."""
    msg = cls()
    set_time(msg.header.stamp, stamp)
    msg.name = [str(n) for n in names]
    msg.position = _floats_field(msg.position, positions)
    return msg


# --- trajectory_msgs/JointTrajectory ------------------------------------------------------------


def make_trajectory(
    cls: type, point_cls: type, names: Sequence[str], positions: Sequence[float], *, period: float, stamp: float
) -> Any:
    """A one-point trajectory_msgs/JointTrajectory: reach ``positions`` ``period`` seconds from now."""
    point = point_cls()
    point.positions = _floats_field(point.positions, positions)
    set_time(point.time_from_start, period)
    msg = cls()
    set_time(msg.header.stamp, stamp)
    msg.joint_names = [str(n) for n in names]
    msg.points = [point]
    return msg


def trajectory_targets(msg: Any) -> dict[str, float]:
    """Joint name -> target of a JointTrajectory: its last point (where it ends)."""
    names = [str(n) for n in msg.joint_names]
    if not msg.points:
        raise MalformedMessage("trajectory has no points")
    positions = [float(p) for p in msg.points[-1].positions]
    if len(names) != len(positions):
        raise MalformedMessage(f"trajectory has {len(names)} joint names but its last point {len(positions)} positions")
    _check_finite(positions, "trajectory")
    return dict(zip(names, positions, strict=True))


# --- geometry_msgs/Twist ------------------------------------------------------------------------------


def make_twist(cls: type, vx: float, vy: float, wz: float) -> Any:
    """A geometry_msgs/Twist for a planar base: forward, leftward, turn rate (base frame)."""
    msg = cls()
    msg.linear.x, msg.linear.y, msg.angular.z = float(vx), float(vy), float(wz)
    return msg


def twist_velocity(msg: Any) -> tuple[float, float, float]:
    """(vx, vy, wz) of a Twist; the other components are ignored by a planar base."""
    values = (float(msg.linear.x), float(msg.linear.y), float(msg.angular.z))
    _check_finite(values, "twist")
    return values


# --- nav_msgs/Odometry ---------------------------------------------------------------------------------


def make_odometry(cls: type, x: float, y: float, yaw: float, *, stamp: float, frame_id: str = "odom", child: str = "base_footprint") -> Any:
    """A nav_msgs/Odometry with a planar pose (position x, y; heading ``yaw``)."""
    msg = cls()
    set_time(msg.header.stamp, stamp)
    msg.header.frame_id, msg.child_frame_id = frame_id, child
    msg.pose.pose.position.x, msg.pose.pose.position.y = float(x), float(y)
    msg.pose.pose.orientation.z, msg.pose.pose.orientation.w = math.sin(yaw / 2), math.cos(yaw / 2)
    return msg


def odometry_pose(msg: Any) -> tuple[float, float, float]:
    """(x, y, yaw) of a nav_msgs/Odometry: the planar part of its pose."""
    p, q = msg.pose.pose.position, msg.pose.pose.orientation
    values = (float(p.x), float(p.y), float(q.x), float(q.y), float(q.z), float(q.w))
    _check_finite(values, "odometry")
    x, y, qx, qy, qz, qw = values
    if abs(qx * qx + qy * qy + qz * qz + qw * qw - 1.0) > 0.01:
        raise MalformedMessage(f"odometry orientation is not a unit quaternion: {[qx, qy, qz, qw]}")
    return x, y, math.atan2(2 * (qw * qz + qx * qy), 1 - 2 * (qy * qy + qz * qz))


# --- std_msgs/String with JSON (the simulation bridge's s2kit-only topics) -----------------


def json_message(cls: type, payload: Mapping[str, Any]) -> Any:
    """A std_msgs/String carrying ``payload`` as JSON."""
    msg = cls()
    msg.data = json.dumps(payload, separators=(",", ":"))
    return msg


def parse_json(msg: Any) -> dict[str, Any]:
    """The JSON object in a std_msgs/String."""
    try:
        payload = json.loads(msg.data)
    except (TypeError, ValueError) as err:
        raise MalformedMessage(f"not JSON: {err}") from None
    if not isinstance(payload, dict):
        raise MalformedMessage(f"expected a JSON object, got {type(payload).__name__}")
    return payload


# --- command message types, privileged state, complaints ----------------------------------

#: The ROS message type of each kind of command topic (`CommandGroup.kind`).
MESSAGE_TYPES = {
    "trajectory": "trajectory_msgs/JointTrajectory",
    "joint_state": "sensor_msgs/JointState",
    "twist": "geometry_msgs/Twist",
}


# --- privileged state as JSON (one encoder, one decoder) -------------------------------------


def sim_state_json(state: SimState) -> dict[str, Any]:
    """A `SimState` as JSON-able data."""
    return {
        "scene": dataclasses.asdict(state.scene),
        "task": dataclasses.asdict(state.task),
        "completed": state.completed,
        "positions": {name: [float(v) for v in xyz] for name, xyz in state.positions.items()},
        "held": state.held,
        "ee_pos": [float(v) for v in state.ee_pos],
        "ee_yaw": float(state.ee_yaw),
        "gripper": float(state.gripper),
        "table_height": float(state.table_height),
        "table_x": float(state.table_x),
        "arm": state.arm,
        "cameras": {role: projection.tolist() for role, projection in state.cameras.items()},
    }


def sim_state_from_json(data: dict[str, Any]) -> SimState:
    """The `SimState` that `sim_state_json` encoded; `MalformedMessage` when it does not fit."""
    try:
        scene_data = dict(data["scene"])
        items = [Item(**{**it, "xy": tuple(it["xy"])}) for it in scene_data.pop("items")]
        for key in ("table_rgb", "floor_rgb", "wall_rgb", "light_dir"):
            scene_data[key] = tuple(scene_data[key])
        scene = Scene(items=items, **scene_data)
        task_data = dict(data["task"])
        task = Task(
            family=task_data["family"],
            instruction=task_data["instruction"],
            subtasks=[Subtask(**sub) for sub in task_data["subtasks"]],
        )
        return SimState(
            scene=scene,
            task=task,
            completed=int(data["completed"]),
            positions={name: np.asarray(xyz, dtype=np.float64) for name, xyz in data["positions"].items()},
            held=data["held"],
            ee_pos=np.asarray(data["ee_pos"], dtype=np.float64),
            ee_yaw=float(data["ee_yaw"]),
            gripper=float(data["gripper"]),
            table_height=float(data["table_height"]),
            table_x=float(data["table_x"]),
            arm=str(data["arm"]),
            cameras={role: np.asarray(p, dtype=np.float64).reshape(3, 4) for role, p in data.get("cameras", {}).items()},
        )
    except (KeyError, TypeError, ValueError) as err:
        raise MalformedMessage(f"privileged state does not decode: {type(err).__name__}: {err}") from None


# --- reporting bad input without flooding the log ------------------------------------------------


class Complaints:
    """Malformed messages per topic: the latest problem, a count, and a warning at most every few seconds."""

    def __init__(self, logger: logging.Logger, every_s: float = 5.0) -> None:
        self._log = logger
        self._every = every_s
        self._lock = threading.Lock()
        self.latest: dict[str, str] = {}
        self.counts: dict[str, int] = {}
        self._said: dict[str, float] = {}

    def __call__(self, topic: str, problem: str) -> None:
        now = time.monotonic()
        with self._lock:
            self.latest[topic] = problem
            self.counts[topic] = self.counts.get(topic, 0) + 1
            if now - self._said.get(topic, -math.inf) < self._every:
                return
            self._said[topic] = now
            count = self.counts[topic]
        self._log.warning("dropped a malformed message on %s: %s (%d so far)", topic, problem, count)
