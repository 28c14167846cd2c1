"""Robot ``txg2``: an AgiBot G2-compatible wheeled dual-arm humanoid, simulated in MuJoCo.

The kinematic structure and the arm and gripper limits are the G2's: a
wheeled base (virtual planar joints odom_x, odom_y, odom_t), a 5-joint waist
(pitch, pitch, pitch, roll, yaw), a 3-joint head (yaw, roll, pitch) with the
RGB camera (role ``head``), two 7-DoF arms (J1, J3, J5 ±3.07; J2 ±2.06; J4
−2.50…1.01; J6 ±1.01; J7 ±1.54) and two parallel grippers (0 closed …
0.785 open), each hand with a camera. Role ``wrist`` is the active arm's
camera; both are also available as ``wrist_left`` and ``wrist_right``.
The waist and head limits are not published; ours are documented in the
joint table below.

``ee_delta`` moves the active arm's hand by IK over that arm, the waist yaw
and the upper waist pitch (leaning in to reach).

``backend: ros2`` drives the real robot through AgiBot's GDK ROS 2 bridge:
joint states on ``/gdk/joint_state``, joint position targets (a
sensor_msgs/JointState with names and positions) on
``/gdk/joint_pos_request``, the three cameras and a velocity topic for the
base; every name is configurable. There is no ROS 1 driver (the GDK is
ROS 2 only).
"""

from __future__ import annotations

from pydantic import Field, field_validator

from s2kit import hookimpl
from s2kit.core.config import PluginConfig
from s2kit.core.interfaces import Robot
from s2kit.core.types import JointSpec
from s2kit.plugins.robots.ros import CommandGroup, RosLayout, RosSettings
from s2kit.plugins.robots.sim.base import BASE_JOINTS, Embodiment, SimConfig, SimRobot
from s2kit.plugins.robots.sim.world import hand_xml, planar_base_xml

ARM_LIMITS = {1: (-3.07, 3.07), 2: (-2.06, 2.06), 3: (-3.07, 3.07), 4: (-2.50, 1.01), 5: (-3.07, 3.07), 6: (-1.01, 1.01), 7: (-1.54, 1.54)}

JOINTS = (
    *BASE_JOINTS,
    JointSpec(name="waist_pitch_1", lower=-0.5, upper=1.0),
    JointSpec(name="waist_pitch_2", lower=-1.0, upper=1.0),
    JointSpec(name="waist_pitch_3", lower=-1.0, upper=1.0),
    JointSpec(name="waist_roll", lower=-0.5, upper=0.5),
    JointSpec(name="waist_yaw", lower=-3.0, upper=3.0),
    JointSpec(name="head_yaw", lower=-1.5, upper=1.5),
    JointSpec(name="head_roll", lower=-0.5, upper=0.5),
    JointSpec(name="head_pitch", lower=-0.6, upper=1.0),
    *(JointSpec(name=f"left_arm_j{i}", lower=lo, upper=hi) for i, (lo, hi) in ARM_LIMITS.items()),
    *(JointSpec(name=f"right_arm_j{i}", lower=lo, upper=hi) for i, (lo, hi) in ARM_LIMITS.items()),
    JointSpec(name="left_gripper", lower=0.0, upper=0.785),
    JointSpec(name="right_gripper", lower=0.0, upper=0.785),
)

# Both hands pointing down over the table, the head looking at it.
HOME = {
    "head_pitch": 0.75,
    **{f"{side}_arm_j1": -1.1 for side in ("left", "right")},
    **{f"{side}_arm_j4": 0.0 for side in ("left", "right")},
    **{f"{side}_arm_j6": 1.0 for side in ("left", "right")},
    "left_arm_j2": 0.15,
    "right_arm_j2": -0.15,
    "left_gripper": 0.785,
    "right_gripper": 0.785,
}


def _arm(side: str, y: float) -> str:
    p = f"{side}_arm"
    joints = [
        f'<joint name="{p}_j{i}" axis="{axis}" range="{lo} {hi}"/>'
        for (i, (lo, hi)), axis in zip(ARM_LIMITS.items(), ("0 1 0", "1 0 0", "0 0 1", "0 1 0", "0 0 1", "0 1 0", "0 0 1"))
    ]
    link = 'contype="0" conaffinity="0"'
    hand = hand_xml(
        body=f"{p}_hand", z=-0.03, camera=f"{p}_camera", camera_xyaxes="0 -1 0 1 0 0", site=f"{p}_grasp",
        joint=f"{side}_gripper", mimic=f"{side}_gripper_mimic", joint_range=(0.0, 0.785), direction=-1,
    )  # fmt: skip
    return f"""
<body name="{p}_link1" pos="0.08 {y} 0.25" gravcomp="1">{joints[0]}
 <geom type="sphere" size="0.05" rgba="0.3 0.3 0.32 1" {link} mass="1"/>
 <body name="{p}_link2" gravcomp="1">{joints[1]}
  <body name="{p}_link3" gravcomp="1">{joints[2]}
   <geom type="capsule" fromto="0 0 0 0 0 -0.32" size="0.04" rgba="0.92 0.92 0.92 1" {link} mass="1.5"/>
   <body name="{p}_link4" pos="0 0 -0.32" gravcomp="1">{joints[3]}
    <geom type="capsule" fromto="0 0 0 0 0 -0.30" size="0.035" rgba="0.92 0.92 0.92 1" {link} mass="1"/>
    <body name="{p}_link5" pos="0 0 -0.30" gravcomp="1">{joints[4]}
     <body name="{p}_link6" gravcomp="1">{joints[5]}
      <geom type="cylinder" size="0.03 0.02" rgba="0.3 0.3 0.32 1" {link} mass="0.3"/>
      <body name="{p}_link7" pos="0 0 -0.04" gravcomp="1">{joints[6]}
       {hand}
      </body>
     </body>
    </body>
   </body>
  </body>
 </body>
</body>"""


def _xml() -> str:
    pos = 'kp="3000" kv="120" forcerange="-2000 2000"'
    arm_act = "".join(
        f'<position name="{side}_arm_j{i}" joint="{side}_arm_j{i}" {pos}/>' for side in ("left", "right") for i in range(1, 8)
    )
    waist_act = "".join(
        f'<position name="{j}" joint="{j}" kp="12000" kv="1000" forcerange="-8000 8000"/>'
        for j in ("waist_pitch_1", "waist_pitch_2", "waist_pitch_3", "waist_roll", "waist_yaw")
    )
    head_act = "".join(f'<position name="{j}" joint="{j}" kp="100" kv="5"/>' for j in ("head_yaw", "head_roll", "head_pitch"))
    grip_act = "".join(f'<position name="{s}_gripper" joint="{s}_gripper" kp="20" kv="1"/>' for s in ("left", "right"))
    grip_eq = "".join(f'<joint joint1="{s}_gripper_mimic" joint2="{s}_gripper" polycoef="0 1 0 0 0"/>' for s in ("left", "right"))
    link = 'contype="0" conaffinity="0"'
    base_joints, base_actuators = planar_base_xml(kp=(3000, 1500), force=(3000, 1500))
    return f"""
<body name="base_link" pos="0 0 0">
 {base_joints}
 <geom type="box" size="0.25 0.22 0.15" pos="-0.05 0 0.15" rgba="0.2 0.2 0.22 1" {link} mass="40"/>
 <body name="waist_link1" pos="-0.05 0 0.3" gravcomp="1">
  <joint name="waist_pitch_1" axis="0 1 0" range="-0.5 1.0"/>
  <geom type="capsule" fromto="0 0 0 0 0 0.22" size="0.07" rgba="0.85 0.85 0.85 1" {link} mass="3"/>
  <body name="waist_link2" pos="0 0 0.22" gravcomp="1">
   <joint name="waist_pitch_2" axis="0 1 0" range="-1 1"/>
   <geom type="capsule" fromto="0 0 0 0 0 0.22" size="0.07" rgba="0.85 0.85 0.85 1" {link} mass="3"/>
   <body name="waist_link3" pos="0 0 0.22" gravcomp="1">
    <joint name="waist_pitch_3" axis="0 1 0" range="-1 1"/>
    <body name="waist_roll_link" pos="0 0 0.15" gravcomp="1">
     <joint name="waist_roll" axis="1 0 0" range="-0.5 0.5"/>
     <body name="torso" pos="0 0 0.1" gravcomp="1">
      <joint name="waist_yaw" axis="0 0 1" range="-3 3"/>
      <geom type="box" size="0.1 0.17 0.17" pos="0 0 0.15" rgba="0.9 0.9 0.9 1" {link} mass="8"/>
      <body name="head_yaw_link" pos="0.02 0 0.38" gravcomp="1">
       <joint name="head_yaw" axis="0 0 1" range="-1.5 1.5"/>
       <body name="head_roll_link" gravcomp="1">
        <joint name="head_roll" axis="1 0 0" range="-0.5 0.5"/>
        <body name="head_pitch_link" gravcomp="1">
         <joint name="head_pitch" axis="0 1 0" range="-0.6 1.0"/>
         <geom type="box" size="0.08 0.1 0.08" rgba="0.1 0.1 0.12 1" {link} mass="1"/>
         <camera name="head_camera" pos="0.09 0 0" xyaxes="0 -1 0 0 0 1" fovy="65"/>
        </body>
       </body>
      </body>
      {_arm("left", 0.22)}
      {_arm("right", -0.22)}
     </body>
    </body>
   </body>
  </body>
 </body>
</body>
<!-- tail -->
<equality>{grip_eq}</equality>
<actuator>
 {base_actuators}
 {waist_act}{head_act}{arm_act}{grip_act}
</actuator>
"""


TXG2 = Embodiment(
    name="txg2",
    xml=_xml,
    joints=JOINTS,
    home=HOME,
    ik_joints=lambda arm: ("waist_pitch_3", "waist_yaw", *(f"{arm}_arm_j{i}" for i in range(1, 8))),
    grasp_site=lambda arm: f"{arm}_arm_grasp",
    hand_body=lambda arm: f"{arm}_arm_hand",
    gripper_joint=lambda arm: f"{arm}_gripper",
    gripper_range=(0.0, 0.785),
    cameras=lambda arm: {
        "head": "head_camera",
        "wrist": f"{arm}_arm_camera",
        "wrist_left": "left_arm_camera",
        "wrist_right": "right_arm_camera",
    },
    table_x=0.48,
    table_height=0.75,
    base_body="base_link",
    max_joint_step={"odom_x": 0.05, "odom_y": 0.05, "left_gripper": 0.785, "right_gripper": 0.785},
    ik_weights={"waist_yaw": 0.5, "waist_pitch_3": 0.6},
    # The wrist pitch (J6, ±1.01) cannot keep the hand vertical everywhere on
    # the table: position wins and the hand tilts where it must.
    orientation_weight=0.1,
)


class TXG2Topics(PluginConfig):
    """TX-G2's topics (AgiBot GDK ROS 2 bridge defaults; sites differ)."""

    joint_state: str = Field("/gdk/joint_state", description="sensor_msgs/JointState: every joint (odom_x, odom_y, odom_t too unless 'odometry' is set).")
    joint_pos_request: str = Field("/gdk/joint_pos_request", description="sensor_msgs/JointState position targets: waist, head, arms, grippers.")
    head_camera: str = Field("/gdk/camera/head/color/image_raw", description="sensor_msgs/Image, camera role 'head'.")
    left_camera: str = Field("/gdk/camera/hand_left/color/image_raw", description="sensor_msgs/Image, role 'wrist_left' (and 'wrist' with arm left).")
    right_camera: str = Field("/gdk/camera/hand_right/color/image_raw", description="sensor_msgs/Image, role 'wrist_right' (and 'wrist' with arm right).")
    base: str = Field("/gdk/cmd_vel", description="geometry_msgs/Twist for the wheeled base.")
    odometry: str | None = Field(None, description="nav_msgs/Odometry for the base pose where joint_state lacks odom_x, odom_y, odom_t.")


class TXG2RosSettings(RosSettings):
    """How to reach the TX-G2 over ROS 2."""

    topics: TXG2Topics = Field(default_factory=TXG2Topics, description="Topic names (sites differ).")


class TXG2Config(SimConfig):
    """TX-G2: the simulator, or the real robot over ROS 2 (settings in 'ros')."""

    ros: TXG2RosSettings = Field(default_factory=TXG2RosSettings, description="ROS connection, topics and safety limits.")

    @field_validator("backend")
    @classmethod
    def _no_ros1(cls, value: str) -> str:
        if value == "ros1":
            raise ValueError("txg2 has no ROS 1 driver (AgiBot's GDK bridge is ROS 2 only); use backend ros2")
        return value


class TXG2Robot(SimRobot):
    """AgiBot G2-compatible dual-arm humanoid: wheeled base, 5-joint waist, two 7-DoF arms."""

    name = "txg2"
    embodiment = TXG2
    Config = TXG2Config
    backends = ("sim", "ros2")

    @classmethod
    def ros_layout(cls, config: SimConfig, middleware: str) -> RosLayout:
        t: TXG2Topics = config.ros.topics  # type: ignore[attr-defined]
        sides = {"left": t.left_camera, "right": t.right_camera}
        base = {j.name for j in BASE_JOINTS}
        return RosLayout(
            joint_states=t.joint_state,
            cameras={"head": t.head_camera, "wrist": sides[config.arm], "wrist_left": t.left_camera, "wrist_right": t.right_camera},
            commands=(
                CommandGroup("joints", t.joint_pos_request, "joint_state", tuple(j.name for j in JOINTS if j.name not in base)),
                CommandGroup("base", t.base, "twist", ("odom_x", "odom_y", "odom_t")),
            ),
            odometry=t.odometry,
        )


@hookimpl
def s2kit_robots() -> list[type[Robot]]:
    return [TXG2Robot]
