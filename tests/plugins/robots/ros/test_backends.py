"""Choosing a robot's backend: the config, the registry's ``create``, and what is refused."""

from __future__ import annotations

import pytest

from s2kit.core.errors import ConfigError
from s2kit.core.registry import Registry
from s2kit.plugins.robots.hsr import HSRRobot
from s2kit.plugins.robots.txg2 import TXG2Robot
from tests.plugins.robots.ros.conftest import RosNetwork, free_port, missing, s2kit


def test_txg2_refuses_ros1_with_the_reason(registry: Registry) -> None:
    with pytest.raises(ConfigError, match="txg2 has no ROS 1 driver .*use backend ros2"):
        registry.config("robot", "txg2", {"backend": "ros1"})


def test_unknown_backend_and_misspelled_ros_options_name_the_allowed_ones(registry: Registry) -> None:
    with pytest.raises(ConfigError, match="'sim', 'ros1' or 'ros2'"):
        registry.config("robot", "hsr", {"backend": "ros3"})
    with pytest.raises(ConfigError, match=r"unknown option 'ros.topics.arms' \(allowed: namespace, joint_states, .*base, odometry\)"):
        registry.config("robot", "hsr", {"ros": {"topics": {"arms": "/x"}}})
    with pytest.raises(ConfigError, match=r"unknown option 'ros.watchdog' \(allowed: master_uri, .*watchdog_s"):
        registry.config("robot", "hsr", {"ros": {"watchdog": 1}})


def test_the_simulator_class_refuses_a_ros_config() -> None:
    config = HSRRobot.Config(backend="ros1")
    with pytest.raises(ConfigError, match="HSRRobot.create"):
        HSRRobot(config)


def test_hsr_topics_are_under_hsrb_on_ros1_and_at_the_root_on_ros2() -> None:
    config = HSRRobot.Config(backend="ros1")
    ros1, ros2 = HSRRobot.ros_layout(config, "ros1"), HSRRobot.ros_layout(config, "ros2")
    assert ros1.joint_states == "/hsrb/joint_states" and ros2.joint_states == "/joint_states"
    assert ros1.odometry == "/hsrb/odom" and ros2.odometry == "/odom"  # the base pose, as on the real HSR
    assert ros1.cameras == {
        "head": "/hsrb/head_rgbd_sensor/rgb/image_rect_color",
        "wrist": "/hsrb/hand_camera/image_raw",
    }
    assert {g.name: (g.topic, g.kind) for g in ros1.commands} == {
        "arm": ("/hsrb/arm_trajectory_controller/command", "trajectory"),
        "head": ("/hsrb/head_trajectory_controller/command", "trajectory"),
        "gripper": ("/hsrb/gripper_controller/command", "trajectory"),
        "base": ("/hsrb/command_velocity", "twist"),
    }
    arm = next(g for g in ros1.commands if g.name == "arm")
    assert arm.joints == ("arm_lift_joint", "arm_flex_joint", "arm_roll_joint", "wrist_flex_joint", "wrist_roll_joint")


def test_every_topic_name_is_configurable() -> None:
    config = HSRRobot.Config(
        backend="ros1", ros={"topics": {"namespace": "/site", "hand_camera": "/cams/hand", "base": "cmd_vel"}}
    )
    layout = HSRRobot.ros_layout(config, "ros1")
    assert layout.joint_states == "/site/joint_states"
    assert layout.cameras["wrist"] == "/cams/hand"  # absolute names are kept
    assert next(g for g in layout.commands if g.name == "base").topic == "/site/cmd_vel"


def test_txg2_uses_the_gdk_topics_and_the_active_arms_camera_as_wrist() -> None:
    config = TXG2Robot.Config(backend="ros2", arm="left")
    layout = TXG2Robot.ros_layout(config, "ros2")
    assert layout.joint_states == "/gdk/joint_state"
    assert layout.cameras["wrist"] == layout.cameras["wrist_left"] == "/gdk/camera/hand_left/color/image_raw"
    joints = next(g for g in layout.commands if g.name == "joints")
    assert joints.topic == "/gdk/joint_pos_request" and joints.kind == "joint_state"
    assert "left_arm_j1" in joints.joints and "odom_x" not in joints.joints
    # every joint of the spec is commanded by exactly one group
    commanded = [j for g in layout.commands for j in g.joints]
    assert sorted(commanded) == sorted(j.name for j in TXG2Robot.embodiment.joints)


def test_plugins_show_lists_the_backends(registry: Registry) -> None:
    assert registry.get("robot", "hsr").cls.details()["backends"] == "sim, ros1, ros2"
    assert registry.get("robot", "txg2").cls.details()["backends"] == "sim, ros2"


def test_plugins_show_lists_the_ros_options_as_set_spells_them() -> None:
    from s2kit.cli.plugins import config_options

    options = {o["option"]: o for o in config_options(HSRRobot.Config)}
    assert "ros" not in options
    assert options["ros.watchdog_s"]["default"] == 0.5 and options["ros.watchdog_s"]["help"]
    assert options["ros.topics.arm"]["default"] == "arm_trajectory_controller/command"


def test_no_roscore_is_one_clear_error_after_retries() -> None:
    reason = missing("ros1")
    if reason:
        pytest.skip(reason)
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    result = s2kit(
        RosNetwork("ros1", {}),
        "run", "--robot", "hsr", "--executor", "scripted", "--planner", "oracle",
        "--set", "robot.backend=ros1", "--set", f"robot.ros.master_uri={uri}", "--set", "robot.ros.connect_timeout_s=1.5",
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"Error: no ROS 1 master at {uri} after") and "is roscore running?" in last
    assert "retrying" in result.stderr  # each attempt is reported
    assert "Traceback" not in result.stderr
