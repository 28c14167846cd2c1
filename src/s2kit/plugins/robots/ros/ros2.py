"""The ROS 2 transport: one rclpy node, spun by a background executor thread.

Installation is the PyPI wheels (``pip install 's2kit[ros2]'``: ``ros-rclpy``,
``ros-rmw-fastrtps-cpp`` and the message packages); no ROS is sourced.
What those wheels need from the environment, and who sets it:

* ``LD_LIBRARY_PATH``: the wheels' shared libraries live in
  ``<venv>/lib`` and ``site-packages/ros_*.libs``. ``ros-wheels-bootstrapper``
  (a dependency of ``ros-rclpy``) installs a ``.pth`` file that re-executes
  the interpreter once at start-up with those directories added, so every
  Python process of the venv already has them. The dynamic loader reads the
  variable only when a process starts, so it cannot be set from here; where
  the bootstrap did not run (``python -S``/``-I``, or its guard variable
  inherited without the path), `_import_rclpy` loads the missing libraries by
  their full paths instead, one at a time as the import names them.
* ``RMW_IMPLEMENTATION``: defaults to ``rmw_fastrtps_cpp``, the middleware
  the wheels carry (a user's own setting wins).
* ``ROS_DOMAIN_ID``: the ``domain_id`` argument, else the environment, else 0.
* ``ROS_AUTOMATIC_DISCOVERY_RANGE``: ``LOCALHOST`` when ``localhost_only``
  (Fast DDS then discovers over shared memory and loopback unicast only, no
  multicast); otherwise the environment's, else rcl's default (the subnet),
  which a real robot on the network needs.

Each transport has its own rclpy ``Context``, i.e. its own DDS participant,
so two transports in one process (the bridge and the driver side by side, or
a test) are two independent nodes, and closing one leaves the other running.
rclpy's signal handlers are not installed: Ctrl-C stays the CLI's.

Quality of service follows REP 2003. Sensor streams (images, joint states):
publishers are reliable, keep last 1 (the ROS 2 default reliability, so both
reliable and best-effort readers such as rviz connect), subscriptions are
best effort, keep last 1 (only the newest sample matters; a late image is
dropped, never queued). Everything else (trajectories, twists, the bridge's
JSON strings) is reliable, keep last 10 on both sides: a command is not lost.
QoS follows the message type, not the topic, so a command sent as a
JointState (TX-G2's ``joint_pos_request``) is published reliably, keep last 1:
the newest target is the one that counts.

`Ros2Transport.connected` is true while the node is up and, once it has
subscriptions, while discovery sees a publisher of at least one of them: ROS 2
has no master to ask, so "connected" means some peer is there.
"""

from __future__ import annotations

import atexit
import ctypes
import importlib
import logging
import os
import re
import sys
import threading
import warnings
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from s2kit.core.errors import ConfigError, PluginError, RobotError
from s2kit.plugins.robots.ros.transport import Transport, split_type_name

__all__ = ["STREAM_TYPES", "TRANSPORT", "Ros2Transport"]

log = logging.getLogger(__name__)

#: Message types that are sensor streams: only the newest sample matters (REP 2003).
STREAM_TYPES = frozenset(
    {
        "sensor_msgs/Image",
        "sensor_msgs/CompressedImage",
        "sensor_msgs/CameraInfo",
        "sensor_msgs/JointState",
        "sensor_msgs/Imu",
        "sensor_msgs/LaserScan",
        "sensor_msgs/PointCloud2",
    }
)
_COMMAND_DEPTH = 10
_MAX_DOMAIN_ID = 232  # Fast DDS derives UDP ports from the domain id; above 232 they overflow
_SPIN_PERIOD_S = 0.1  # how often the spin thread looks at its stop flag
_INSTALL_HINT = "pip install 's2kit[ros2]' (the PyPI wheels ros-rclpy, ros-rmw-fastrtps-cpp and the message packages)"
# Held while rclpy is imported (the library loading below is not thread-safe) and while
# a context is initialised: rcl reads the discovery range from the environment then,
# and two transports opening at once must not see each other's setting.
_init_lock = threading.RLock()
# Transports still open at exit are closed then: a DDS participant torn down by the
# interpreter's finalisation, its spin thread frozen mid-wait, can abort the process.
_open_transports: weakref.WeakSet[Ros2Transport] = weakref.WeakSet()


@atexit.register
def _close_open_transports() -> None:
    for transport in list(_open_transports):
        transport.close()


def _library_dirs() -> list[Path]:
    """Where the ROS 2 wheels put their shared libraries: ``<prefix>/lib`` and ``ros_*.libs``."""
    site = Path(sys.prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    return [Path(sys.prefix) / "lib", *sorted(site.glob("ros_*.libs"))]


_MISSING_LIBRARY = re.compile(r"(\S+\.so\S*): cannot open shared object file")


def _load_library(name: str, loaded: set[str]) -> bool:
    """Load ``name`` from the wheels' library directories (its own dependencies first); False if not there.

    The wheels' RPATHs do not point at the ``ros_*.libs`` directories from
    ``<prefix>/lib``, so every dependency is looked up here by name.
    """
    if name in loaded:  # loaded, yet still missing: give up rather than loop
        return False
    path = next((d / name for d in _library_dirs() if (d / name).is_file()), None)
    if path is None:
        return False
    while True:
        try:
            ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
        except OSError as exc:
            missing = _MISSING_LIBRARY.search(str(exc))
            if missing is None or not _load_library(missing.group(1), loaded):
                return False
            continue
        loaded.add(name)
        return True


def _import(module: str, loaded: set[str]) -> Any:
    """Import ``module``; a shared library the loader cannot find is loaded by its full path, then retried."""
    while True:
        try:
            return importlib.import_module(module)
        except ImportError as exc:
            missing = _MISSING_LIBRARY.search(str(exc))
            if missing is None or not _load_library(missing.group(1), loaded):
                raise


_loaded_libraries: set[str] = set()


def _import_rclpy() -> Any:
    """Import rclpy with the environment it needs (see the module docstring); `PluginError` if absent."""
    with _init_lock:
        return _import_rclpy_locked()


def _import_rclpy_locked() -> Any:
    os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    dirs = [str(d) for d in _library_dirs() if d.is_dir()]
    # rmw and the type support libraries are found at run time by searching this
    # variable (rcpputils.find_library_path), which reads the live environment.
    known = os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep)
    os.environ["LD_LIBRARY_PATH"] = os.pathsep.join([*known, *(d for d in dirs if d not in known)]).strip(os.pathsep)
    try:
        rclpy = _import("rclpy", _loaded_libraries)
        with warnings.catch_warnings():
            # rclpy imports this at the first publisher; it imports lark-parser 0.12,
            # which imports the deprecated sre_parse. Nothing a user can act on.
            warnings.simplefilter("ignore", DeprecationWarning)
            _import("rosidl_generator_py", _loaded_libraries)
        if _loaded_libraries:
            # The loader did not know the wheels' directories. rmw also dlopen()s message
            # type support libraries by bare name at run time, and the messages' Python
            # extensions need their generated libraries: both only load when
            # already loaded, so load them all now.
            for path in sorted((Path(sys.prefix) / "lib").glob("lib*__rosidl_*.so")):
                _load_library(path.name, _loaded_libraries)
        return rclpy
    except ModuleNotFoundError as exc:
        if exc.name != "rclpy":
            raise PluginError(f"ROS 2 is incompletely installed ({exc}): {_INSTALL_HINT}") from exc
        raise PluginError(f"ROS 2 (rclpy) is not installed: {_INSTALL_HINT}") from exc
    except ImportError as exc:
        raise PluginError(f"rclpy is installed but does not load: {exc}") from exc


def _resolve_domain_id(domain_id: int | None) -> int:
    """The domain id to use: the argument, else ``ROS_DOMAIN_ID``, else 0; a clear error when out of range."""
    source = "domain_id"
    if domain_id is None:
        raw = os.environ.get("ROS_DOMAIN_ID", "").strip()
        if not raw:
            return 0
        source = "ROS_DOMAIN_ID"
        try:
            domain_id = int(raw)
        except ValueError:
            raise ConfigError(f"ROS_DOMAIN_ID={raw!r} is not an integer (0..{_MAX_DOMAIN_ID})") from None
    if isinstance(domain_id, bool) or not isinstance(domain_id, int) or not 0 <= domain_id <= _MAX_DOMAIN_ID:
        raise ConfigError(f"{source} {domain_id!r} is not a ROS 2 domain id (an integer 0..{_MAX_DOMAIN_ID})")
    return domain_id


class Ros2Transport(Transport):
    """One rclpy node in its own context, spun by a daemon thread.

    ``domain_id``: the ROS domain (None: ``ROS_DOMAIN_ID``, else 0).
    ``localhost_only``: discover peers on this machine only.
    """

    middleware = "ros2"

    def __init__(self, node_name: str, *, domain_id: int | None = None, localhost_only: bool = False) -> None:
        self._rclpy = _import_rclpy()
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node

        self.domain_id = _resolve_domain_id(domain_id)
        self.localhost_only = localhost_only
        self._lock = threading.Lock()
        self._closed = False
        self._stop = threading.Event()
        self._publishers: list[Any] = []
        self._subscriptions: list[Any] = []
        self._subscribed_topics: list[str] = []
        self._messages: dict[str, type] = {}

        self._context = Context()
        with _init_lock:
            saved = os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE")
            if localhost_only:
                os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
            try:
                # args=[]: the s2kit command line is not ROS arguments. No logging set-up:
                # rcl's would open a log file under ~/.ros/log for every process.
                self._context.init([], initialize_logging=False, domain_id=self.domain_id)
            except Exception as exc:
                raise RobotError(f"ROS 2 could not start (domain {self.domain_id}): {exc}") from exc
            finally:
                if localhost_only:
                    if saved is None:
                        os.environ.pop("ROS_AUTOMATIC_DISCOVERY_RANGE", None)
                    else:
                        os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = saved
        try:
            self._node = Node(node_name, context=self._context, start_parameter_services=False)
        except Exception as exc:
            self._context.try_shutdown()
            self._context.destroy()
            if isinstance(exc, self._rclpy.exceptions.InvalidNodeNameException):
                raise ConfigError(f"ROS 2 node name {node_name!r} is not valid: {exc}") from exc
            raise RobotError(f"ROS 2 node {node_name!r} could not be created: {exc}") from exc
        self.node_name = self._node.get_fully_qualified_name()
        self._executor = SingleThreadedExecutor(context=self._context)
        self._executor.add_node(self._node)
        self._spinner = threading.Thread(target=self._spin, name=f"ros2-spin-{node_name}", daemon=True)
        self._spinner.start()
        _open_transports.add(self)

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"domain {self.domain_id}"
        return f"Ros2Transport({self.node_name!r}, {state})"

    def _check_open(self) -> None:
        if self._closed:
            raise RobotError(f"the ROS 2 transport of node {self.node_name} is closed")

    # --- the spin thread -------------------------------------------------

    def _spin(self) -> None:
        while not self._stop.is_set() and self._context.ok():
            try:
                self._executor.spin_once(timeout_sec=_SPIN_PERIOD_S)
            except Exception:  # a failing rcl call must not end the thread silently
                if self._stop.is_set() or not self._context.ok():
                    return
                log.exception("ROS 2 executor of node %s failed; spinning on", self.node_name)

    # --- Transport ---------------------------------------------------------

    def message(self, type_name: str) -> type:
        cls = self._messages.get(type_name)
        if cls is not None:
            return cls
        package, name = split_type_name(type_name)
        try:
            with _init_lock:
                module = _import(f"{package}.msg", _loaded_libraries)
        except ImportError as exc:
            wheel = "ros-" + package.replace("_", "-")
            raise PluginError(f"ROS 2 messages {package!r} are not installed (pip install {wheel}): {exc}") from exc
        cls = getattr(module, name, None)
        if not isinstance(cls, type):
            raise PluginError(f"ROS 2 package {package!r} has no message {name!r} (type {type_name!r})")
        if not callable(getattr(cls, "get_fields_and_field_types", None)):  # not a rosidl class
            raise PluginError(
                f"ROS 2 needs the ROS 2 {package!r}, but this process already imported another one from "
                f"{getattr(module, '__file__', None) or 'elsewhere'} (ROS 1's); run ROS 1 and ROS 2 in separate processes"
            )
        self._messages[type_name] = cls
        return cls

    def _qos(self, type_name: str, *, subscription: bool) -> Any:
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy  # noqa: I001

        if type_name in STREAM_TYPES:
            reliability = ReliabilityPolicy.BEST_EFFORT if subscription else ReliabilityPolicy.RELIABLE
            depth = 1
        else:
            reliability, depth = ReliabilityPolicy.RELIABLE, _COMMAND_DEPTH
        return QoSProfile(
            history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=reliability, durability=DurabilityPolicy.VOLATILE
        )

    def publisher(self, topic: str, type_name: str) -> Callable[[Any], None]:
        cls = self.message(type_name)
        with self._lock:
            self._check_open()
            try:
                pub = self._node.create_publisher(cls, topic, self._qos(type_name, subscription=False))
            except self._rclpy.exceptions.InvalidTopicNameException as exc:
                raise ConfigError(f"ROS 2 topic name {topic!r} is not valid: {exc}") from exc
            self._publishers.append(pub)

        def publish(msg: Any) -> None:
            self._check_open()
            try:
                pub.publish(msg)
            except Exception as exc:
                if self._closed:  # closed while publishing
                    raise RobotError(f"cannot publish on {topic}: the ROS 2 transport is closed") from exc
                raise

        return publish

    def subscribe(self, topic: str, type_name: str, callback: Callable[[Any], None]) -> None:
        cls = self.message(type_name)

        def guarded(msg: Any) -> None:
            # An exception escaping a callback would end up in the spin thread; say which topic it was.
            try:
                callback(msg)
            except Exception:
                log.exception("callback for %s (%s) failed", topic, type_name)

        with self._lock:
            self._check_open()
            try:
                sub = self._node.create_subscription(cls, topic, guarded, self._qos(type_name, subscription=True))
            except self._rclpy.exceptions.InvalidTopicNameException as exc:
                raise ConfigError(f"ROS 2 topic name {topic!r} is not valid: {exc}") from exc
            self._subscriptions.append(sub)
            self._subscribed_topics.append(sub.topic_name)

    def now(self) -> float:
        self._check_open()
        return self._node.get_clock().now().nanoseconds * 1e-9

    def connected(self) -> bool:
        """The node is up and, once it subscribes to anything, at least one of those topics has a publisher.

        ROS 2 has no master to ask: a peer is "there" when discovery has matched
        its publisher. A peer that dies without saying goodbye is dropped when
        its DDS lease runs out (Fast DDS: 20 s), so a silent peer is noticed
        sooner from the age of its messages than from here.
        """
        if self._closed or not self._context.ok() or not self._spinner.is_alive():
            return False
        with self._lock:
            topics = list(self._subscribed_topics)
        try:
            return not topics or any(self._node.count_publishers(topic) > 0 for topic in topics)
        except Exception:  # noqa: BLE001 - the context went away between the checks
            return False

    def publisher_count(self, topic: str) -> int:
        """How many publishers of ``topic`` discovery has found (0 once closed)."""
        if self._closed:
            return 0
        return self._node.count_publishers(topic)

    def subscriber_count(self, topic: str) -> int:
        """How many subscriptions to ``topic`` discovery has found (0 once closed)."""
        if self._closed:
            return 0
        return self._node.count_subscribers(topic)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._stop.set()
        self._executor.wake()
        self._spinner.join(timeout=5.0)
        if self._spinner.is_alive():
            log.warning("ROS 2 spin thread of %s did not stop within 5 s", self.node_name)
        self._executor.shutdown(timeout_sec=1.0)
        self._node.destroy_node()
        self._context.try_shutdown()
        self._context.destroy()


TRANSPORT = Ros2Transport
