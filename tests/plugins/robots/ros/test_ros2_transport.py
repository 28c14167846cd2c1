"""The ROS 2 transport over real rclpy nodes (Fast DDS) on loopback.

Every node here discovers on localhost only and lives in a domain of its own
for this test process, so parallel runs and other ROS 2 users do not meet it.
As everywhere in these tests, ROS code runs in a child process (see
conftest: a process speaks one middleware); each ``_check_*`` function is
one child's work. Messages are published until the other side has them: DDS
discovery takes a moment, and a sample sent before the peers matched is not
delivered.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.plugins.robots.ros.conftest import in_child, missing

DEADLINE_S = 15.0  # generous: discovery on a loaded 2-core machine


@pytest.fixture(scope="module")
def domain_id() -> int:
    """A domain for this module, from the process id; neighbours use ``domain_id + 1``.

    100 and above: the other ROS tests' domains (conftest) stay below.
    """
    reason = missing("ros2")
    if reason:
        pytest.skip(reason)
    return 100 + os.getpid() % 60 * 2


# --- helpers for the children ------------------------------------------------------------------


@contextlib.contextmanager
def transports(domain_id: int) -> Iterator[Callable[..., Any]]:
    """``make(name, **settings)`` opens localhost-only transports in ``domain_id``; all closed at the end."""
    from s2kit.plugins.robots.ros.ros2 import Ros2Transport

    opened: list[Ros2Transport] = []

    def make(name: str, **settings: Any) -> Ros2Transport:
        settings.setdefault("domain_id", domain_id)
        settings.setdefault("localhost_only", True)
        transport = Ros2Transport(name, **settings)
        opened.append(transport)
        return transport

    try:
        yield make
    finally:
        for transport in opened:
            transport.close()


class Inbox:
    """Messages a subscription received, in order, safe to read from the test thread."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self._lock = threading.Lock()

    def __call__(self, msg: Any) -> None:
        with self._lock:
            self.messages.append(msg)

    def __len__(self) -> int:
        with self._lock:
            return len(self.messages)


def wait_for(condition: Callable[[], bool], what: str, *, tick: Callable[[], None] = lambda: None) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        tick()
        time.sleep(0.05)


def exchange(sender: Any, receiver: Any, topic: str, type_name: str, msg: Any) -> Any:
    """Publish ``msg`` from ``sender`` until ``receiver`` has one; return what arrived."""
    inbox = Inbox()
    receiver.subscribe(topic, type_name, inbox)
    publish = sender.publisher(topic, type_name)
    wait_for(lambda: len(inbox) > 0, f"{type_name} on {topic}", tick=lambda: publish(msg))
    return inbox.messages[0]


# --- round trips of the message types the driver and the bridge use ------------------------------


def _check_round_trips(domain_id: int) -> None:
    with transports(domain_id) as make:
        a, b = make("robot"), make("driver")

        image = a.message("sensor_msgs/Image")(height=2, width=3, encoding="rgb8", step=9, data=bytes(range(18)))
        image.header.frame_id = "head_rgbd_sensor"
        image.header.stamp.sec, image.header.stamp.nanosec = 12, 345
        got = exchange(a, b, "/head_rgbd_sensor/rgb/image_raw", "sensor_msgs/Image", image)
        assert (got.height, got.width, got.encoding, got.step) == (2, 3, "rgb8", 9)
        assert bytes(got.data) == bytes(range(18))
        assert got.header.frame_id == "head_rgbd_sensor"
        assert (got.header.stamp.sec, got.header.stamp.nanosec) == (12, 345)

        state = a.message("sensor_msgs/JointState")(
            name=["arm_lift_joint", "arm_flex_joint"], position=[0.25, -1.5], velocity=[0.0, 0.1]
        )
        got = exchange(a, b, "/joint_states", "sensor_msgs/JointState", state)
        assert dict(zip(got.name, got.position, strict=True)) == {"arm_lift_joint": 0.25, "arm_flex_joint": -1.5}
        assert list(got.velocity) == [0.0, 0.1]

        point = b.message("trajectory_msgs/JointTrajectoryPoint")(positions=[0.1, 0.2, 0.3])
        point.time_from_start.sec, point.time_from_start.nanosec = 0, 100_000_000
        command = b.message("trajectory_msgs/JointTrajectory")(joint_names=["a", "b", "c"], points=[point])
        got = exchange(b, a, "/gdk/joint_pos_request", "trajectory_msgs/JointTrajectory", command)
        assert list(got.joint_names) == ["a", "b", "c"]
        assert len(got.points) == 1
        assert list(got.points[0].positions) == pytest.approx([0.1, 0.2, 0.3])
        assert got.points[0].time_from_start.nanosec == 100_000_000

        twist = b.message("geometry_msgs/Twist")()
        twist.linear.x, twist.linear.y, twist.angular.z = 0.1, -0.05, 0.3
        got = exchange(b, a, "/command_velocity", "geometry_msgs/Twist", twist)
        assert (got.linear.x, got.linear.y, got.linear.z, got.angular.z) == (0.1, -0.05, 0.0, 0.3)

        text = '{"instruction": "put the red cube in the bowl", "seed": 3}'
        got = exchange(a, b, "/s2kit/sim/status", "std_msgs/String", a.message("std_msgs/String")(data=text))
        assert got.data == text

        from sensor_msgs.msg import Image

        assert a.message("sensor_msgs/Image") is Image  # the ROS 2 classes, as messages.py expects
        assert a.middleware == "ros2"


def test_image_joint_state_trajectory_twist_and_string_round_trips(domain_id: int) -> None:
    in_child(_check_round_trips, domain_id)


# --- quality of service ------------------------------------------------------------------------------


def _raw_node(domain_id: int, name: str) -> tuple[Any, Any]:
    """A plain rclpy node in its own context (as another vendor's driver would be), localhost only."""
    from rclpy.context import Context
    from rclpy.node import Node

    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"  # this child's own environment
    context = Context()
    context.init([], initialize_logging=False, domain_id=domain_id)
    return context, Node(name, context=context)


def _check_qos(domain_id: int) -> None:
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import Image

    with transports(domain_id) as make:
        driver, bridge = make("driver"), make("bridge")
        context, node = _raw_node(domain_id, "vendor")
        try:
            # Camera drivers often publish best effort (SensorDataQoS): the image subscription must match it.
            inbox = Inbox()
            driver.subscribe("/camera/image", "sensor_msgs/Image", inbox)
            camera = node.create_publisher(Image, "/camera/image", qos_profile_sensor_data)
            image = Image(height=1, width=1, encoding="rgb8", step=3, data=b"\x01\x02\x03")
            wait_for(lambda: len(inbox) > 0, "a best-effort image", tick=lambda: camera.publish(image))
            assert bytes(inbox.messages[0].data) == b"\x01\x02\x03"

            # Images are published reliably (REP 2003), so a reliable reader such as rviz connects too.
            viewer = Inbox()
            reliable = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
            driver._node.create_subscription(Image, "/bridge/image", viewer, reliable)  # spun by the driver's thread
            publish = bridge.publisher("/bridge/image", "sensor_msgs/Image")
            image = Image(height=1, width=1, encoding="bgr8", step=3, data=b"\x03\x02\x01")
            wait_for(lambda: len(viewer) > 0, "an image on a reliable subscription", tick=lambda: publish(image))
            assert viewer.messages[0].encoding == "bgr8"
        finally:
            node.destroy_node()
            context.try_shutdown()
            context.destroy()


def test_images_match_best_effort_drivers_and_reliable_viewers(domain_id: int) -> None:
    in_child(_check_qos, domain_id)


# --- isolation, silence and connection state ------------------------------------------------------


def _check_silence_and_domains(domain_id: int) -> None:
    with transports(domain_id) as make:
        sender, receiver = make("sender"), make("receiver")
        neighbour = make("neighbour", domain_id=domain_id + 1)
        heard, silent, other_domain = Inbox(), Inbox(), Inbox()
        receiver.subscribe("/joint_states", "sensor_msgs/JointState", heard)
        receiver.subscribe("/silent", "sensor_msgs/JointState", silent)
        neighbour.subscribe("/joint_states", "sensor_msgs/JointState", other_domain)
        publish = sender.publisher("/joint_states", "sensor_msgs/JointState")
        state = sender.message("sensor_msgs/JointState")(name=["j"], position=[1.0])

        wait_for(lambda: len(heard) >= 5, "five joint states", tick=lambda: publish(state))

        assert len(silent) == 0
        assert len(other_domain) == 0
        assert receiver.publisher_count("/silent") == 0
        assert not neighbour.connected()  # nobody in its domain publishes what it listens to


def test_silent_topic_and_other_domain_receive_nothing(domain_id: int) -> None:
    in_child(_check_silence_and_domains, domain_id)


def _check_connected(domain_id: int) -> None:
    with transports(domain_id) as make:
        listener = make("listener")
        assert listener.connected()  # nothing expected yet
        listener.subscribe("/joint_states", "sensor_msgs/JointState", lambda msg: None)
        assert not listener.connected()  # expects joint states, nobody publishes them

        talker = make("talker")
        talker.publisher("/joint_states", "sensor_msgs/JointState")
        wait_for(listener.connected, "the publisher to be discovered")

        talker.close()
        wait_for(lambda: not listener.connected(), "the closed publisher to be gone")


def test_connected_follows_the_publishers(domain_id: int) -> None:
    in_child(_check_connected, domain_id)


def _check_close(domain_id: int) -> None:
    from s2kit.core.errors import RobotError
    from s2kit.plugins.robots.ros.transport import open_transport

    with transports(domain_id) as make:
        transport = make("closing")
        publish = transport.publisher("/command_velocity", "geometry_msgs/Twist")
        twist = transport.message("geometry_msgs/Twist")()
        publish(twist)
        assert abs(transport.now() - time.time()) < 1.0  # the wall clock, as stamps on real robots' messages

        transport.close()
        transport.close()

        assert not transport.connected()
        with pytest.raises(RobotError, match="closed"):
            publish(twist)
        with pytest.raises(RobotError, match="closed"):
            transport.now()
        with pytest.raises(RobotError, match="closed"):
            transport.subscribe("/x", "std_msgs/String", lambda msg: None)

    with open_transport("ros2", "scoped", domain_id=domain_id, localhost_only=True) as scoped:
        assert scoped.middleware == "ros2"
        assert scoped.connected()
    assert not scoped.connected()


def test_close_twice_then_use_is_a_clear_error(domain_id: int) -> None:
    in_child(_check_close, domain_id)


def _check_failing_callback(domain_id: int) -> None:
    with transports(domain_id) as make:
        sender, receiver = make("sender"), make("receiver")
        calls = Inbox()

        def flaky(msg: Any) -> None:
            calls(msg)
            if len(calls) == 1:
                raise ValueError("malformed message")

        receiver.subscribe("/status", "std_msgs/String", flaky)
        publish = sender.publisher("/status", "std_msgs/String")
        message = sender.message("std_msgs/String")(data="ok")
        wait_for(lambda: len(calls) >= 3, "messages after a failing callback", tick=lambda: publish(message))


def test_a_failing_callback_does_not_stop_the_node(domain_id: int) -> None:
    in_child(_check_failing_callback, domain_id)


# --- bad input ------------------------------------------------------------------------------------------


def _check_bad_input(domain_id: int) -> None:
    from s2kit.core.errors import ConfigError, PluginError

    with transports(domain_id) as make:
        transport = make("types")
        with pytest.raises(PluginError, match="no message 'Nope'"):
            transport.message("sensor_msgs/Nope")
        with pytest.raises(PluginError, match="ros-no-such-msgs"):
            transport.message("no_such_msgs/Thing")
        with pytest.raises(PluginError, match="package/Type"):
            transport.message("JointState")

        with pytest.raises(ConfigError, match="topic name 'bad topic'"):
            transport.publisher("bad topic", "std_msgs/String")
        with pytest.raises(ConfigError, match="topic name '/1bad'"):
            transport.subscribe("/1bad", "std_msgs/String", lambda msg: None)
        with pytest.raises(ConfigError, match="node name 'no-dashes'"):
            make("no-dashes")

        for bad, match in ((300, "domain_id 300"), (-1, "domain_id -1")):
            with pytest.raises(ConfigError, match=match):
                make("domain", domain_id=bad)
        for env, match in (("robot", "ROS_DOMAIN_ID='robot'"), ("999", "ROS_DOMAIN_ID 999")):
            os.environ["ROS_DOMAIN_ID"] = env
            with pytest.raises(ConfigError, match=match):
                make("domain", domain_id=None)
        os.environ["ROS_DOMAIN_ID"] = str(domain_id + 1)
        assert make("env_domain", domain_id=None).domain_id == domain_id + 1


def test_bad_names_types_and_domains_name_the_problem(domain_id: int) -> None:
    in_child(_check_bad_input, domain_id)


def _check_ros1_messages_refused() -> None:
    """A process that loaded ROS 1's message packages cannot use them for ROS 2: one clear error."""
    from s2kit.core.errors import PluginError
    from s2kit.plugins.robots.ros.ros2 import Ros2Transport

    sys.modules["std_msgs"] = std_msgs = type(sys)("std_msgs")  # stands in for ROS 1's genpy package
    std_msgs.msg = msg = type(sys)("std_msgs.msg")  # type: ignore[attr-defined]
    sys.modules["std_msgs.msg"] = msg
    msg.String = type("String", (), {"__slots__": ["data"], "_type": "std_msgs/String"})  # type: ignore[attr-defined]
    with Ros2Transport("mixed", localhost_only=True) as transport, pytest.raises(PluginError, match="ROS 1"):
        transport.message("std_msgs/String")


def test_ros1_message_classes_are_refused(domain_id: int) -> None:
    in_child(_check_ros1_messages_refused)


# --- another process ----------------------------------------------------------------------------------

PUBLISHER = textwrap.dedent(
    """
    import sys
    import time

    from s2kit.plugins.robots.ros.ros2 import Ros2Transport

    transport = Ros2Transport("other_process", domain_id=int(sys.argv[1]), localhost_only=True)
    publish = transport.publisher("/joint_states", "sensor_msgs/JointState")
    State = transport.message("sensor_msgs/JointState")
    print("ready", flush=True)
    count = 0
    while transport.subscriber_count("/done") == 0 and count < 2000:  # the test says when to stop
        publish(State(name=["j"], position=[float(count)]))
        count += 1
        time.sleep(0.02)
    transport.close()
    transport.close()
    print("closed", flush=True)
    """
)


def _check_other_process(domain_id: int, bootstrapped: bool) -> None:
    env = dict(os.environ)
    if not bootstrapped:
        env.pop("LD_LIBRARY_PATH", None)
        env["_ROS_WHEELS_BOOTSTRAP_COMPLETE"] = "1"
    with transports(domain_id) as make:
        listener = make("listener")
        inbox = Inbox()
        listener.subscribe("/joint_states", "sensor_msgs/JointState", inbox)
        process = subprocess.Popen(
            [sys.executable, "-c", PUBLISHER, str(domain_id)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_for(lambda: len(inbox) >= 3 or process.poll() is not None, "joint states from another process")
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert listener.connected()
            assert inbox.messages[-1].name == ["j"]

            make("stopper").subscribe("/done", "std_msgs/String", lambda msg: None)
            out, err = process.communicate(timeout=DEADLINE_S)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
        assert process.returncode == 0, err
        assert out.split() == ["ready", "closed"]
        wait_for(lambda: not listener.connected(), "the other process's publisher to be gone")


@pytest.mark.parametrize(
    "bootstrapped",
    [
        pytest.param(True, id="bootstrapped"),
        # As under `python -S`: ros_wheels_bootstrapper's .pth did not put the wheels'
        # libraries on LD_LIBRARY_PATH, so the transport loads them itself.
        pytest.param(False, id="no-library-path"),
    ],
)
def test_another_process_publishes_then_leaves(domain_id: int, bootstrapped: bool) -> None:
    in_child(_check_other_process, domain_id, bootstrapped)
