"""Message conversions, with each middleware's real message classes.

The same functions serve ROS 1 (genpy classes, secs/nsecs, bytes) and ROS 2
(rosidl classes, sec/nanosec, array fields); each check runs in a child
process speaking one middleware (see conftest).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.plugins.robots.ros.conftest import MIDDLEWARES, in_child, missing


def _classes(middleware: str) -> dict[str, type]:
    if middleware == "ros1":
        from s2kit.plugins.robots.ros.ros1 import _pin, _rospy

        _rospy()
        for package in ("sensor_msgs", "trajectory_msgs", "geometry_msgs", "std_msgs", "nav_msgs"):
            _pin(package)
    else:
        from s2kit.plugins.robots.ros.ros2 import _import_rclpy

        _import_rclpy()
    import geometry_msgs.msg
    import nav_msgs.msg
    import sensor_msgs.msg
    import std_msgs.msg
    import trajectory_msgs.msg

    return {
        "image": sensor_msgs.msg.Image,
        "joints": sensor_msgs.msg.JointState,
        "trajectory": trajectory_msgs.msg.JointTrajectory,
        "point": trajectory_msgs.msg.JointTrajectoryPoint,
        "twist": geometry_msgs.msg.Twist,
        "string": std_msgs.msg.String,
        "odometry": nav_msgs.msg.Odometry,
    }


def _check_conversions(middleware: str) -> None:
    from s2kit.plugins.robots.ros import messages as m

    c = _classes(middleware)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)

    # images: rgb8 and bgr8 both come back as RGB, with the header stamp
    for encoding in ("rgb8", "bgr8"):
        msg = m.make_image(c["image"], image, stamp=12.25, encoding=encoding)
        assert msg.encoding == encoding and msg.step == 21
        assert np.array_equal(m.image_to_array(msg), image)
        assert m.stamp_seconds(msg) == pytest.approx(12.25)
    bgr = m.make_image(c["image"], image, stamp=0.0, encoding="bgr8")
    assert np.array_equal(np.frombuffer(bytes(bgr.data), np.uint8)[:3], image[0, 0, ::-1])

    # padded rows (step > width * 3) are read correctly
    padded = c["image"]()
    padded.height, padded.width, padded.encoding, padded.step = 5, 7, "rgb8", 24
    rows = np.zeros((5, 24), np.uint8)
    rows[:, :21] = image.reshape(5, 21)
    padded.data = m.make_image(c["image"], rows.reshape(5, 8, 3), stamp=0.0).data
    assert np.array_equal(m.image_to_array(padded), image)

    # a wrong encoding or data length is one clear error
    mono = m.make_image(c["image"], image, stamp=0.0)
    mono.encoding = "mono8"
    with pytest.raises(m.MalformedMessage, match="encoding 'mono8' is not supported"):
        m.image_to_array(mono)
    short = m.make_image(c["image"], image, stamp=0.0)
    short.height = 6
    with pytest.raises(m.MalformedMessage, match=r"has 105 bytes; 7x6 rgb8 with step 21 needs 126"):
        m.image_to_array(short)

    # joint states
    js = m.make_joint_state(c["joints"], ["a", "b"], [0.5, -1.0], stamp=3.5)
    assert m.joint_state_positions(js) == {"a": 0.5, "b": -1.0}
    assert m.stamp_seconds(js) == pytest.approx(3.5)
    js.name = ["a", "b", "c"]
    with pytest.raises(m.MalformedMessage, match="3 names but 2 positions"):
        m.joint_state_positions(js)
    bad = m.make_joint_state(c["joints"], ["a"], [math.nan], stamp=0.0)
    with pytest.raises(m.MalformedMessage, match="non-finite"):
        m.joint_state_positions(bad)

    # one-point trajectories: time_from_start is the control period
    traj = m.make_trajectory(c["trajectory"], c["point"], ["a", "b"], [0.1, 0.2], period=0.1, stamp=1.0)
    assert m.trajectory_targets(traj) == pytest.approx({"a": 0.1, "b": 0.2})
    assert m.time_seconds(traj.points[0].time_from_start) == pytest.approx(0.1)
    traj.points = []
    with pytest.raises(m.MalformedMessage, match="no points"):
        m.trajectory_targets(traj)

    # twists
    twist = m.make_twist(c["twist"], 0.1, -0.2, 0.3)
    assert m.twist_velocity(twist) == pytest.approx((0.1, -0.2, 0.3))
    twist.linear.x = math.inf
    with pytest.raises(m.MalformedMessage, match="non-finite"):
        m.twist_velocity(twist)

    # odometry: the planar pose of the base
    odom = m.make_odometry(c["odometry"], 0.3, -0.2, 2.5, stamp=1.0)
    assert m.odometry_pose(odom) == pytest.approx((0.3, -0.2, 2.5))
    odom.pose.pose.orientation.w = 3.0
    with pytest.raises(m.MalformedMessage, match="not a unit quaternion"):
        m.odometry_pose(odom)

    # the bridge's JSON strings
    assert m.parse_json(m.json_message(c["string"], {"seed": 3})) == {"seed": 3}
    not_json = c["string"]()
    not_json.data = "{seed"
    with pytest.raises(m.MalformedMessage, match="not JSON"):
        m.parse_json(not_json)


@pytest.mark.parametrize("middleware", MIDDLEWARES)
def test_conversions_on_each_middleware(middleware: str) -> None:
    reason = missing(middleware)
    if reason:
        pytest.skip(reason)
    in_child(_check_conversions, middleware)


def test_stamps_split_into_seconds_and_nanoseconds() -> None:
    from s2kit.plugins.robots.ros.messages import set_time, time_seconds

    class Ros1Time:
        secs = nsecs = 0

    class Ros2Time:
        sec = nanosec = 0

    for cls, fields in ((Ros1Time, ("secs", "nsecs")), (Ros2Time, ("sec", "nanosec"))):
        t = cls()
        set_time(t, 1234.5678)
        assert (getattr(t, fields[0]), getattr(t, fields[1])) == (1234, 567800000)
        assert time_seconds(t) == pytest.approx(1234.5678)


@pytest.mark.parametrize("suite", ["id", "twins"])  # twins: subtasks with alternatives
def test_privileged_state_survives_json(suite: str) -> None:
    import json

    from s2kit.plugins.robots.hsr import HSRRobot
    from s2kit.plugins.robots.ros.messages import sim_state_from_json, sim_state_json

    robot = HSRRobot(HSRRobot.Config(suite=suite))
    try:
        robot.reset(seed=3)
        state = robot.privileged_state()
        back = sim_state_from_json(json.loads(json.dumps(sim_state_json(state))))
    finally:
        robot.close()
    assert back.scene == state.scene and back.task == state.task
    assert back.positions.keys() == state.positions.keys()
    assert all(np.allclose(back.positions[k], state.positions[k]) for k in state.positions)
    assert np.allclose(back.ee_pos, state.ee_pos) and back.held == state.held and back.arm == state.arm
