"""s2kit bridge: what it refuses before it starts a node (the bridge itself runs in tests/plugins/robots/ros)."""

from __future__ import annotations


def test_a_robot_without_that_ros_driver_is_one_line(invoke) -> None:
    result = invoke("bridge", "--robot", "txg2", "--ros", "1")
    assert result.exit_code == 2
    assert result.output.strip() == "Error: robot 'txg2' has no ROS 1 driver (it has: ros2)"


def test_a_robot_with_no_ros_driver_at_all_is_named(invoke) -> None:
    result = invoke("bridge", "--robot", "nope")
    assert result.exit_code == 2 and result.output.startswith("Error: unknown robot 'nope' (available: ")


def test_bad_options_name_the_key_before_any_node_starts(invoke) -> None:
    result = invoke("bridge", "--robot", "hsr", "--ros", "2", "--set", "ros.topics.arms=/x")
    assert result.exit_code == 2
    assert "unknown option 'ros.topics.arms' (allowed: namespace, joint_states" in result.output
    assert "Traceback" not in result.output
