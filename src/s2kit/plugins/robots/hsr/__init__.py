"""Robot ``hsr``: Toyota Human Support Robot (HSR-B), simulated in MuJoCo.

The kinematic structure and joint limits are the real robot's: an
omnidirectional base (virtual joints odom_x, odom_y, odom_t), a prismatic
arm lift (torso_lift_joint follows it at half the travel), arm flex and roll,
wrist flex and roll, a parallel gripper driven by hand_motor_joint, and a
pan/tilt head with the RGB camera (role ``head``); the hand camera has role
``wrist``. Geometry is primitive shapes at roughly the real link lengths.

``ee_delta`` moves the hand by IK over the base and the arm (whole-body, as
HSR's own planner does; the base is weighted down so the arm does most of
the work).

``backend: ros1`` or ``ros2`` drives the real HSR (or ``s2kit bridge``) on
Toyota's topics: joint_states, the head RGB-D camera's
``head_rgbd_sensor/rgb/image_rect_color`` and ``hand_camera/image_raw``, the
arm, head and gripper trajectory controllers, and ``command_velocity`` for
the omni base; under ``/hsrb/`` on ROS 1, at the root on ROS 2. The base
pose (the virtual joints odom_x, odom_y, odom_t of HSR's whole-body
controller) comes from ``odom`` (nav_msgs/Odometry), since the real robot's
joint_states do not carry it.
"""

from __future__ import annotations

from pydantic import Field

from s2kit import hookimpl
from s2kit.core.config import PluginConfig
from s2kit.core.interfaces import Robot
from s2kit.core.types import JointSpec
from s2kit.plugins.robots.ros import CommandGroup, RosLayout, RosSettings, topic_name
from s2kit.plugins.robots.sim.base import BASE_JOINTS, Embodiment, SimConfig, SimRobot
from s2kit.plugins.robots.sim.world import hand_xml, planar_base_xml

JOINTS = (
    *BASE_JOINTS,
    JointSpec(name="arm_lift_joint", lower=0.0, upper=0.69),
    JointSpec(name="arm_flex_joint", lower=-2.62, upper=0.0),
    JointSpec(name="arm_roll_joint", lower=-2.09, upper=3.84),
    JointSpec(name="wrist_flex_joint", lower=-1.92, upper=1.22),
    JointSpec(name="wrist_roll_joint", lower=-1.92, upper=3.67),
    JointSpec(name="head_pan_joint", lower=-3.84, upper=1.75),
    JointSpec(name="head_tilt_joint", lower=-1.57, upper=0.52),
    JointSpec(name="hand_motor_joint", lower=-0.798, upper=1.24),
)

# Hand pointing down over the table, head looking at it.
HOME = {
    "arm_lift_joint": 0.2,
    "arm_flex_joint": -1.25,
    "arm_roll_joint": 0.0,
    "wrist_flex_joint": -1.89,  # arm_flex + wrist_flex = -pi: the hand points straight down
    "wrist_roll_joint": 0.0,
    "head_pan_joint": 0.0,
    "head_tilt_joint": -0.75,
    "hand_motor_joint": 1.0,
}

_ROBOT_XML = """
<body name="base_footprint" pos="0 0 0">
  BASE_JOINTS_XML
  <geom name="base" type="cylinder" size="0.2 0.12" pos="0 0 0.12" rgba="0.2 0.2 0.22 1" contype="0" conaffinity="0" mass="30"/>
  <body name="torso" pos="0 0 0.24" gravcomp="1">
    <geom type="box" size="0.07 0.09 0.2" pos="-0.08 0 0.2" rgba="0.85 0.85 0.85 1" contype="0" conaffinity="0" mass="5"/>
    <body name="torso_lift_link" pos="-0.08 0 0.45" gravcomp="1">
      <joint name="torso_lift_joint" type="slide" axis="0 0 1" range="0 0.345" damping="20"/>
      <geom type="box" size="0.06 0.08 0.05" rgba="0.85 0.85 0.85 1" contype="0" conaffinity="0" mass="1"/>
      <body name="head_pan_link" pos="0.02 0 0.12" gravcomp="1">
        <joint name="head_pan_joint" axis="0 0 1" range="-3.84 1.75"/>
        <body name="head_tilt_link" pos="0.02 0 0.05" gravcomp="1">
          <joint name="head_tilt_joint" axis="0 -1 0" range="-1.57 0.52"/>
          <geom type="box" size="0.05 0.1 0.05" rgba="0.1 0.1 0.1 1" contype="0" conaffinity="0" mass="0.5"/>
          <camera name="head_rgbd" pos="0.06 0 0.0" xyaxes="0 -1 0 0 0 1" fovy="60"/>
        </body>
      </body>
    </body>
    <body name="arm_lift_link" pos="0.08 -0.1 0.1" gravcomp="1">
      <joint name="arm_lift_joint" type="slide" axis="0 0 1" range="0 0.69" damping="30"/>
      <geom type="box" size="0.04 0.06 0.04" rgba="0.85 0.85 0.85 1" contype="0" conaffinity="0" mass="1"/>
      <body name="arm_flex_link" pos="0 0 0" gravcomp="1">
        <joint name="arm_flex_joint" axis="0 -1 0" range="-2.62 0" damping="5"/>
        <geom type="capsule" fromto="0 0 0 0 0 0.345" size="0.035" rgba="0.9 0.9 0.9 1" contype="0" conaffinity="0" mass="1"/>
        <body name="arm_roll_link" pos="0 0 0.345" gravcomp="1">
          <joint name="arm_roll_joint" axis="0 0 1" range="-2.09 3.84"/>
          <geom type="cylinder" size="0.03 0.02" rgba="0.3 0.3 0.3 1" contype="0" conaffinity="0" mass="0.3"/>
          <body name="wrist_flex_link" pos="0 0 0.02" gravcomp="1">
            <joint name="wrist_flex_joint" axis="0 -1 0" range="-1.92 1.22"/>
            <geom type="cylinder" size="0.025 0.02" pos="0 0 0.02" rgba="0.3 0.3 0.3 1" contype="0" conaffinity="0" mass="0.2"/>
            <body name="wrist_roll_link" pos="0 0 0.04" gravcomp="1">
              <joint name="wrist_roll_joint" axis="0 0 1" range="-1.92 3.67"/>
              HAND
            </body>
          </body>
        </body>
      </body>
    </body>
  </body>
</body>
<!-- tail -->
<equality>
  <joint joint1="torso_lift_joint" joint2="arm_lift_joint" polycoef="0 0.5 0 0 0"/>
  <joint joint1="hand_r_joint" joint2="hand_motor_joint" polycoef="0 1 0 0 0"/>
</equality>
<actuator>
  BASE_ACTUATORS_XML
  <position name="arm_lift_joint" joint="arm_lift_joint" kp="12000" kv="600" forcerange="-6000 6000"/>
  <position name="arm_flex_joint" joint="arm_flex_joint" kp="2000" kv="80" forcerange="-1000 1000"/>
  <position name="arm_roll_joint" joint="arm_roll_joint" kp="1000" kv="30" forcerange="-1000 1000"/>
  <position name="wrist_flex_joint" joint="wrist_flex_joint" kp="1000" kv="20" forcerange="-1000 1000"/>
  <position name="wrist_roll_joint" joint="wrist_roll_joint" kp="600" kv="10" forcerange="-1000 1000"/>
  <position name="head_pan_joint" joint="head_pan_joint" kp="100" kv="5"/>
  <position name="head_tilt_joint" joint="head_tilt_joint" kp="100" kv="5"/>
  <position name="hand_motor_joint" joint="hand_motor_joint" kp="20" kv="1"/>
</actuator>
"""

_BASE_JOINTS, _BASE_ACTUATORS = planar_base_xml(kp=(20000, 8000), force=(8000, 4000))
ROBOT_XML = _ROBOT_XML.replace("BASE_JOINTS_XML", _BASE_JOINTS).replace("BASE_ACTUATORS_XML", _BASE_ACTUATORS).replace(
    "HAND",
    hand_xml(
        body="hand_palm_link", z=0.03, camera="hand_camera", camera_xyaxes="0 -1 0 -1 0 0", site="grasp",
        joint="hand_motor_joint", mimic="hand_r_joint", joint_range=(-0.798, 1.24), direction=1,
    ),
)  # fmt: skip

IK = ("odom_x", "odom_y", "odom_t", "arm_lift_joint", "arm_flex_joint", "arm_roll_joint", "wrist_flex_joint", "wrist_roll_joint")

HSR = Embodiment(
    name="hsr",
    xml=lambda: ROBOT_XML,
    joints=JOINTS,
    home=HOME,
    ik_joints=lambda arm: IK,
    grasp_site=lambda arm: "grasp",
    hand_body=lambda arm: "hand_palm_link",
    gripper_joint=lambda arm: "hand_motor_joint",
    gripper_range=(-0.3, 1.0),
    cameras=lambda arm: {"head": "head_rgbd", "wrist": "hand_camera"},
    table_x=0.62,
    table_height=0.40,
    base_body="base_footprint",
    max_joint_step={"odom_x": 0.05, "odom_y": 0.05, "arm_lift_joint": 0.05, "hand_motor_joint": 1.0},
    ik_weights={"odom_x": 0.4, "odom_y": 0.4, "odom_t": 0.3},
)


class HSRTopics(PluginConfig):
    """HSR's topics: relative names are under ``namespace``, absolute ones (``/...``) used as they are."""

    namespace: str | None = Field(None, description="None: /hsrb on ROS 1, the root on ROS 2.")
    joint_states: str = Field("joint_states", description="sensor_msgs/JointState: arm, head and gripper joints.")
    head_camera: str = Field("head_rgbd_sensor/rgb/image_rect_color", description="sensor_msgs/Image, camera role 'head'.")
    hand_camera: str = Field("hand_camera/image_raw", description="sensor_msgs/Image, camera role 'wrist'.")
    arm: str = Field("arm_trajectory_controller/command", description="trajectory_msgs/JointTrajectory: arm_lift, arm_flex, arm_roll, wrist_flex, wrist_roll.")
    head: str = Field("head_trajectory_controller/command", description="trajectory_msgs/JointTrajectory: head_pan, head_tilt.")
    gripper: str = Field("gripper_controller/command", description="trajectory_msgs/JointTrajectory: hand_motor_joint.")
    base: str = Field("command_velocity", description="geometry_msgs/Twist for the omni base.")
    odometry: str | None = Field("odom", description="nav_msgs/Odometry: the base pose (odom_x, odom_y, odom_t); None: from joint_states.")


class HSRRosSettings(RosSettings):
    """How to reach the HSR over ROS."""

    topics: HSRTopics = Field(default_factory=HSRTopics, description="Topic names (sites differ).")


class HSRConfig(SimConfig):
    """HSR: the simulator, or the real robot over ROS 1 / ROS 2 (settings in 'ros')."""

    ros: HSRRosSettings = Field(default_factory=HSRRosSettings, description="ROS connection, topics and safety limits.")


ARM_JOINTS = ("arm_lift_joint", "arm_flex_joint", "arm_roll_joint", "wrist_flex_joint", "wrist_roll_joint")


class HSRRobot(SimRobot):
    """Toyota HSR-B: omni base, 5-DoF arm with lift, parallel gripper, head and hand cameras."""

    name = "hsr"
    embodiment = HSR
    Config = HSRConfig
    backends = ("sim", "ros1", "ros2")

    @classmethod
    def ros_layout(cls, config: SimConfig, middleware: str) -> RosLayout:
        t: HSRTopics = config.ros.topics  # type: ignore[attr-defined]
        ns = t.namespace if t.namespace is not None else ("/hsrb" if middleware == "ros1" else "")
        return RosLayout(
            joint_states=topic_name(t.joint_states, ns),
            cameras={"head": topic_name(t.head_camera, ns), "wrist": topic_name(t.hand_camera, ns)},
            commands=(
                CommandGroup("arm", topic_name(t.arm, ns), "trajectory", ARM_JOINTS),
                CommandGroup("head", topic_name(t.head, ns), "trajectory", ("head_pan_joint", "head_tilt_joint")),
                CommandGroup("gripper", topic_name(t.gripper, ns), "trajectory", ("hand_motor_joint",)),
                CommandGroup("base", topic_name(t.base, ns), "twist", ("odom_x", "odom_y", "odom_t")),
            ),
            odometry=topic_name(t.odometry, ns) if t.odometry else None,
        )


@hookimpl
def s2kit_robots() -> list[type[Robot]]:
    return [HSRRobot]
