"""The robots over ROS: one driver and one simulation bridge for ROS 1 and ROS 2.

A robot plugin (``hsr``, ``txg2``) runs its MuJoCo simulation with
``backend: sim`` and the real robot with ``backend: ros1`` or ``ros2``: its
``create`` returns a `driver.RosRobot`, which has the same `RobotSpec` and
the same observation and action contract as the simulator. ``s2kit bridge``
(`bridge.SimBridge`) runs the simulator as a ROS node on the real robot's
topics, the stand-in robot the driver is tested against.

Everything middleware-specific sits behind `transport.Transport`
(``ros1.py``: rospy; ``ros2.py``: rclpy); message conversions are written
once in ``messages.py``. This module holds what a robot's config needs and
stays light: no ROS client is imported here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field

from s2kit.core.config import PluginConfig

__all__ = ["MIDDLEWARE_NAMES", "CommandGroup", "RosLayout", "RosSettings", "topic_name"]

#: ``backend`` values that mean a ROS middleware (the transport's name).
MIDDLEWARE_NAMES = ("ros1", "ros2")


class RosSettings(PluginConfig):
    """How the driver reaches a robot over ROS, and its safety limits.

    Each robot adds ``topics`` (its own model: every topic name configurable).
    """

    # connection
    master_uri: str | None = Field(
        None, description="ROS 1 master, e.g. http://hsrb.local:11311 (None: $ROS_MASTER_URI, else http://127.0.0.1:11311)."
    )
    ip: str | None = Field(None, description="ROS 1: this machine's address as the robot sees it (None: $ROS_IP).")
    domain_id: int | None = Field(None, ge=0, le=232, description="ROS 2 domain id (None: $ROS_DOMAIN_ID, else 0).")
    localhost_only: bool = Field(False, description="ROS 2: discover nodes on this machine only.")
    node_name: str = Field("s2kit_driver", description="The driver's ROS node name.")
    # timing
    connect_timeout_s: float = Field(
        15.0, gt=0, description="How long to wait for the middleware, and at each reset for the first joint states and images."
    )
    max_age_s: float = Field(
        0.5, gt=0, description="A camera image older than this stops the episode (stale observation)."
    )
    reconnect_s: float = Field(
        3.0, ge=0, description="When joint states stop arriving: how long to retry, with backoff, before the run stops with an error."
    )
    watchdog_s: float = Field(0.5, gt=0, description="Command a hold when no new action arrives within this time.")
    # safety
    joint_step_scale: float = Field(
        1.0, gt=0, le=1, description="Scales the largest joint-target change per control step (the base's too); start real hardware low, e.g. 0.3."
    )
    # the simulation bridge (s2kit bridge); a real robot has none of these topics
    sim_bridge: bool = Field(
        False, description="The other end is `s2kit bridge`: reset episodes by seed, read the task and subtask progress."
    )
    privileged: bool = Field(
        True, description="With sim_bridge: also receive the simulator's privileged state (the scripted executor and oracle planner need it)."
    )
    sim_prefix: str = Field("/s2kit/sim", description="Namespace of the bridge's s2kit-only topics (reset, status).")

    def transport_settings(self, middleware: str) -> dict[str, Any]:
        """The keywords `transport.open_transport` takes for ``middleware`` (driver and bridge alike)."""
        if middleware == "ros1":
            return {"master_uri": self.master_uri, "ip": self.ip, "connect_timeout_s": self.connect_timeout_s}
        return {"domain_id": self.domain_id, "localhost_only": self.localhost_only}


@dataclass(frozen=True)
class CommandGroup:
    """One command topic and the joints it carries.

    ``kind``: ``trajectory`` (trajectory_msgs/JointTrajectory, one point),
    ``joint_state`` (sensor_msgs/JointState with positions, e.g. AgiBot's
    joint_pos_request) or ``twist`` (geometry_msgs/Twist for a mobile base;
    ``joints`` are its x, y and yaw joints).
    """

    name: str
    topic: str
    kind: Literal["trajectory", "joint_state", "twist"]
    joints: tuple[str, ...]


@dataclass(frozen=True)
class RosLayout:
    """Where a robot's data lives on ROS: joint states, camera topics by role, command groups.

    ``odometry`` (nav_msgs/Odometry), where set, gives the base joints
    (odom_x, odom_y, odom_t) when joint_states do not carry them, as on the
    real HSR.
    """

    joint_states: str
    cameras: dict[str, str]
    commands: tuple[CommandGroup, ...]
    odometry: str | None = None


def topic_name(name: str, namespace: str) -> str:
    """``name`` under ``namespace`` unless it is absolute (starts with ``/``)."""
    if name.startswith("/"):
        return name
    namespace = namespace.rstrip("/")
    return f"{namespace}/{name}" if namespace else f"/{name}"
