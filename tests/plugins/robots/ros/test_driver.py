"""The driver's safety and the bridge's input checks, on real middleware.

A listener node watches what the driver actually publishes (the commands a
real robot would receive) and the joint states the bridge reports. Each
check runs in a child process speaking one middleware (see conftest).
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import numpy as np
import pytest

from tests.plugins.robots.ros.conftest import (
    Bridge,
    RosNetwork,
    in_child,
    s2kit,
    wait_until,
)

WATCHDOG_S = 0.4


class Inbox:
    """Messages from one topic with their arrival times (monotonic)."""

    def __init__(self) -> None:
        self.items: list[tuple[float, Any]] = []
        self._lock = threading.Lock()

    def __call__(self, msg: Any) -> None:
        with self._lock:
            self.items.append((time.monotonic(), msg))

    def __len__(self) -> int:
        with self._lock:
            return len(self.items)

    def last(self) -> tuple[float, Any]:
        with self._lock:
            return self.items[-1]

    def wait(self, count: int, what: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self) < count:
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.01)


def transport_settings(middleware: str, settings: dict[str, Any]) -> dict[str, Any]:
    from s2kit.plugins.robots.ros import RosSettings

    return RosSettings(**settings).transport_settings(middleware)


def check_driver_safety(middleware: str, settings: dict[str, Any]) -> None:
    from s2kit.core.errors import RobotError
    from s2kit.core.registry import get_registry
    from s2kit.plugins.robots.hsr import HSRRobot
    from s2kit.plugins.robots.ros.messages import (
        joint_state_positions,
        trajectory_targets,
        twist_velocity,
    )
    from s2kit.plugins.robots.ros.transport import open_transport

    options = {"backend": middleware, "ros": {**settings, "sim_bridge": True, "watchdog_s": WATCHDOG_S}}
    robot: Any = get_registry().create("robot", {"name": "hsr", **options})
    listener = open_transport(middleware, "test_listener", **transport_settings(middleware, settings))
    try:
        topics = {g.name: g.topic for g in robot.layout.commands}
        arm, base, joints = Inbox(), Inbox(), Inbox()
        listener.subscribe(topics["arm"], "trajectory_msgs/JointTrajectory", arm)
        listener.subscribe(topics["base"], "geometry_msgs/Twist", base)
        listener.subscribe(robot.layout.joint_states, "sensor_msgs/JointState", joints)

        # the same spec as the simulator, but paced in real time
        simulator = HSRRobot()
        assert robot.spec == simulator.spec.model_copy(update={"realtime": True})
        simulator.close()

        obs = robot.reset(seed=0)
        assert obs.state.shape == (len(robot.spec.state_names),) and obs.privileged is not None
        names = list(robot.joints)
        deadline = time.monotonic() + 15
        while not (len(arm) and len(base) and len(joints)):  # until the listener is connected: holds are harmless
            assert time.monotonic() < deadline, "the listener never received the driver's commands"
            robot.hold()
            time.sleep(0.1)

        # non-finite: refused, nothing published
        sent = len(arm)
        with pytest.raises(RobotError, match="refused a non-finite command in ee_delta"):
            robot.apply(np.array([math.nan, 0, 0, 0, 0, 0, 1.0]), "ee_delta")
        time.sleep(0.3)
        assert len(arm) == sent

        # clamping: to the joint's limit, and to the largest change per step from the previous target
        q = robot.observe().state[: len(names)].astype(np.float64)
        far = q.copy()
        far[names.index("arm_flex_joint")] = -2.6  # 1.35 rad away: at most 0.15 per step
        far[names.index("arm_lift_joint")] = 5.0  # beyond the limit 0.69: at most 0.05 per step
        far[names.index("odom_x")] = 1.0  # the base: at most 0.05 m per step, i.e. 0.5 m/s at 10 Hz
        clamped = robot.clamped
        robot.apply(far, "joint_pos")
        t_command = time.monotonic()
        arm.wait(sent + 1, "the clamped arm command")
        targets = trajectory_targets(arm.last()[1])
        assert targets["arm_flex_joint"] == pytest.approx(q[names.index("arm_flex_joint")] - 0.15, abs=1e-6)
        assert targets["arm_lift_joint"] == pytest.approx(q[names.index("arm_lift_joint")] + 0.05, abs=1e-6)
        assert targets["arm_roll_joint"] == pytest.approx(q[names.index("arm_roll_joint")], abs=1e-6)
        deadline = time.monotonic() + 5
        while twist_velocity(base.last()[1])[0] == 0.0:
            assert time.monotonic() < deadline, "no base command"
            time.sleep(0.01)
        assert 0.0 < twist_velocity(base.last()[1])[0] <= 0.05 / robot.period + 1e-6
        assert robot.clamped == clamped + 1

        # the watchdog: no new action within watchdog_s -> one hold at the measured positions, base stopped
        arm.wait(sent + 2, "the watchdog's hold", timeout=5 * WATCHDOG_S)
        t_hold, hold = arm.last()
        assert t_hold - t_command >= 0.9 * WATCHDOG_S
        measured = joint_state_positions(joints.last()[1])
        for name, value in trajectory_targets(hold).items():
            assert value == pytest.approx(measured[name], abs=0.03), name
        time.sleep(0.1)
        assert twist_velocity(base.last()[1]) == (0.0, 0.0, 0.0)
        wait_until(lambda: robot.watchdog_holds == 1, "the watchdog's count")  # it counts once the hold is out
        time.sleep(3 * WATCHDOG_S)  # holding is not repeated while nothing new is commanded
        assert robot.watchdog_holds == 1 and len(arm) == sent + 2

        # a new command re-arms it
        robot.apply(np.array([0, 0, 0.01, 0, 0, 0, 1.0]), "ee_delta")
        arm.wait(sent + 4, "the next command and its watchdog hold", timeout=5 * WATCHDOG_S)
        wait_until(lambda: robot.watchdog_holds == 2, "the watchdog's second hold")
    finally:
        robot.close()
        listener.close()


def test_commands_are_clamped_non_finite_refused_and_the_watchdog_holds(network: RosNetwork) -> None:
    with Bridge(network, "hsr"):
        in_child(check_driver_safety, network.middleware, network.settings)


def check_bridge_ignores_malformed_commands(middleware: str, settings: dict[str, Any]) -> None:
    from s2kit.plugins.robots.hsr import HSRRobot
    from s2kit.plugins.robots.ros.messages import joint_state_positions, make_trajectory
    from s2kit.plugins.robots.ros.transport import open_transport

    layout = HSRRobot.ros_layout(HSRRobot.Config(), middleware)
    arm_topic = next(g.topic for g in layout.commands if g.name == "arm")
    node = open_transport(middleware, "test_commander", **transport_settings(middleware, settings))
    try:
        joints = Inbox()
        node.subscribe(layout.joint_states, "sensor_msgs/JointState", joints)
        publish = node.publisher(arm_topic, "trajectory_msgs/JointTrajectory")
        cls, point = node.message("trajectory_msgs/JointTrajectory"), node.message("trajectory_msgs/JointTrajectoryPoint")
        joints.wait(1, "joint states")

        def lift() -> float:
            return joint_state_positions(joints.last()[1])["arm_lift_joint"]

        start = lift()
        malformed = [
            make_trajectory(cls, point, ["arm_lift_joint"], [math.nan], period=0.1, stamp=node.now()),
            make_trajectory(cls, point, ["arm_lift_joint", "elbow_joint"], [0.5, 0.1], period=0.1, stamp=node.now()),
            make_trajectory(cls, point, ["arm_lift_joint", "arm_flex_joint"], [0.5], period=0.1, stamp=node.now()),
        ]
        for _ in range(15):  # over a second and a half, repeatedly
            for msg in malformed:
                publish(msg)
            time.sleep(0.1)
        assert lift() == pytest.approx(start, abs=0.005)  # none of them moved the arm

        deadline = time.monotonic() + 10
        while lift() < start + 0.08:  # a valid command is taken
            assert time.monotonic() < deadline, f"the valid command was not applied (lift {lift():.3f})"
            publish(make_trajectory(cls, point, ["arm_lift_joint"], [start + 0.1], period=0.1, stamp=node.now()))
            time.sleep(0.1)
    finally:
        node.close()


def test_the_bridge_reports_and_drops_malformed_commands(network: RosNetwork) -> None:
    with Bridge(network, "hsr") as bridge:
        in_child(check_bridge_ignores_malformed_commands, network.middleware, network.settings)
        bridge.wait_for("dropped a malformed message on ", timeout=10)
    line = bridge.wait_for("dropped a malformed message on ")
    assert "arm_trajectory_controller/command: " in line and "so far" in line


def test_two_bridges_on_one_network_are_refused(network: RosNetwork) -> None:
    with Bridge(network, "hsr"), Bridge(network, "hsr"):
        result = s2kit(
            network, "run", "--robot", "hsr", "--executor", "scripted", "--planner", "oracle",
            "--set", f"robot.backend={network.middleware}", "--set", "robot.ros.sim_bridge=true", *network.overrides(),
        )  # fmt: skip
    assert result.returncode == 1
    assert "Error: hsr: 2 simulation bridges answer on /s2kit/sim/status; stop all but one" in result.stderr
