"""The ROS 1 transport: rospy, from Debian's packages.

rospy and the ROS 1 message packages come from Debian (``ros-core``,
``python3-rospy``, ``python3-sensor-msgs``, ...; ``scripts/system-packages.txt``)
and live in ``/usr/lib/python3/dist-packages``. That directory is appended
to the END of ``sys.path`` here, and only here, so every package the venv
has wins. The exception is the message packages, whose names the ROS 2
wheels use as well (``std_msgs``, ``sensor_msgs``, ``rosgraph_msgs``, ...):
rospy needs the ROS 1 ones, and they import each other (sensor_msgs needs
geometry_msgs), so once ROS 1 is loaded a finder at the front of
``sys.meta_path`` takes every ``*_msgs`` package from Debian's directory
(`_Ros1Messages`). One process therefore speaks one middleware; asking for
the other afterwards is an error that says so.

rospy allows one node per process and one ``init_node``: the first
transport initialises it; later transports in the same process (the driver
and a test's publisher, say) share it, with their own publishers and
subscriptions, which ``close`` unregisters.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import logging
import os
import socket
import sys
import threading
import time
import xmlrpc.client
from collections.abc import Callable
from types import ModuleType
from typing import Any
from urllib.parse import urlparse

from s2kit.core.errors import PluginError, RobotError
from s2kit.plugins.robots.ros.transport import Transport, split_type_name

__all__ = ["DEBIAN_PYTHON", "TRANSPORT", "Ros1Transport", "master_reachable"]

log = logging.getLogger(__name__)

DEBIAN_PYTHON = "/usr/lib/python3/dist-packages"
#: Packages rospy itself imports whose names the ROS 2 wheels share.
_ROSPY_MESSAGES = ("rosgraph_msgs", "std_msgs")
_INSTALL = (
    "the ROS 1 backend needs rospy and the ROS 1 message packages from Debian: "
    "apt-get install ros-core python3-rospy python3-std-msgs python3-sensor-msgs "
    "python3-geometry-msgs python3-trajectory-msgs python3-nav-msgs (scripts/system-packages.sh installs them)"
)

_lock = threading.Lock()
_node: dict[str, Any] = {}  # the process's one rospy node: name, master


class _Ros1Messages(importlib.abc.MetaPathFinder):
    """Finds top-level ``*_msgs`` packages in Debian's directory first (see the module docstring)."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if "." in fullname or not fullname.endswith("_msgs"):
            return None
        return importlib.machinery.PathFinder.find_spec(fullname, [DEBIAN_PYTHON])


def _pin(package: str) -> ModuleType:
    """Import ROS 1 message ``package``; an error if this process already has another of that name."""
    module = sys.modules.get(package)
    if module is not None:
        where = getattr(module, "__file__", None) or ""
        if not where.startswith(DEBIAN_PYTHON):
            raise PluginError(
                f"ROS 1 needs the ROS 1 {package!r}, but this process already imported another one from {where} "
                "(ROS 2's); run ROS 1 and ROS 2 in separate processes"
            )
        return module
    if importlib.machinery.PathFinder.find_spec(package, [DEBIAN_PYTHON]) is None:
        raise PluginError(f"no ROS 1 package {package!r} in {DEBIAN_PYTHON}; {_INSTALL}")
    return importlib.import_module(package)


def _rospy() -> ModuleType:
    """rospy, imported as described in the module docstring."""
    with _lock:
        if DEBIAN_PYTHON not in sys.path:
            sys.path.append(DEBIAN_PYTHON)
        if not any(isinstance(f, _Ros1Messages) for f in sys.meta_path):
            sys.meta_path.insert(0, _Ros1Messages())
    for package in _ROSPY_MESSAGES:
        _pin(package)
    try:
        import rospy
    except ImportError as err:
        raise PluginError(f"{_INSTALL} ({err})") from None
    return rospy


def master_reachable(uri: str, timeout: float = 1.0) -> bool:
    """Whether a ROS 1 master answers at ``uri`` within ``timeout`` seconds."""
    url = urlparse(uri)
    try:
        with socket.create_connection((url.hostname or "127.0.0.1", url.port or 11311), timeout=timeout):
            pass
    except OSError:
        return False
    transport = _TimeoutTransport(timeout)
    try:
        code, _, _ = xmlrpc.client.ServerProxy(uri, transport=transport).getPid("/s2kit_probe")
    except (OSError, xmlrpc.client.Error):
        return False
    return code == 1


class _TimeoutTransport(xmlrpc.client.Transport):
    def __init__(self, timeout: float) -> None:
        super().__init__()
        self._timeout = timeout

    def make_connection(self, host: Any) -> Any:
        connection = super().make_connection(host)
        connection.timeout = self._timeout
        return connection


class Ros1Transport(Transport):
    """A rospy node (shared by the process's transports); see the module docstring."""

    middleware = "ros1"

    def __init__(
        self, node_name: str, *, master_uri: str | None = None, ip: str | None = None, connect_timeout_s: float = 15.0
    ) -> None:
        self.master_uri = master_uri or os.environ.get("ROS_MASTER_URI") or "http://127.0.0.1:11311"
        self._rospy = rospy = _rospy()
        self._publishers: list[Any] = []
        self._subscribers: list[Any] = []
        self._classes: dict[str, type] = {}
        self._closed = False
        with _lock:
            if _node:
                if _node["master"] != self.master_uri:
                    raise PluginError(
                        f"this process's ROS 1 node talks to {_node['master']}; rospy allows one node per "
                        f"process, so it cannot also talk to {self.master_uri}"
                    )
                return
            self._wait_for_master(connect_timeout_s)
            # rospy reads its master and address from the environment.
            os.environ["ROS_MASTER_URI"] = self.master_uri
            if ip:
                os.environ["ROS_IP"] = ip
            # No signal handlers: Ctrl-C belongs to the s2kit runtime, which stops at a step boundary.
            rospy.init_node(node_name, anonymous=True, disable_signals=True, disable_rosout=False)
            _node.update(name=rospy.get_name(), master=self.master_uri)

    def _wait_for_master(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        delay, attempt = 0.2, 1
        while not master_reachable(self.master_uri):
            left = deadline - time.monotonic()
            if left <= 0:
                raise RobotError(
                    f"no ROS 1 master at {self.master_uri} after {attempt} attempts over {timeout:g} s "
                    "(is roscore running? set robot.ros.master_uri or ROS_MASTER_URI)"
                )
            log.warning("no ROS 1 master at %s yet; retrying in %.1f s (attempt %d)", self.master_uri, min(delay, left), attempt)
            time.sleep(min(delay, left))
            delay, attempt = min(delay * 2, 2.0), attempt + 1

    # --- the Transport interface -------------------------------------------------------------

    def message(self, type_name: str) -> type:
        cls = self._classes.get(type_name)
        if cls is None:
            package, name = split_type_name(type_name)
            _pin(package)
            try:
                module = importlib.import_module(f"{package}.msg")
                cls = getattr(module, name)
            except (ImportError, AttributeError) as err:
                raise PluginError(f"no ROS 1 message {type_name!r} ({err}); {_INSTALL}") from None
            self._classes[type_name] = cls
        return cls

    def publisher(self, topic: str, type_name: str) -> Callable[[Any], None]:
        pub = self._rospy.Publisher(topic, self.message(type_name), queue_size=10, tcp_nodelay=True)
        self._publishers.append(pub)
        return pub.publish

    def subscribe(self, topic: str, type_name: str, callback: Callable[[Any], None]) -> None:
        # A large buffer: rospy's default 64 KiB makes big images queue up and arrive late.
        sub = self._rospy.Subscriber(
            topic, self.message(type_name), callback, queue_size=1, buff_size=1 << 20, tcp_nodelay=True
        )
        self._subscribers.append(sub)

    def now(self) -> float:
        return float(self._rospy.get_rostime().to_sec())

    def connected(self) -> bool:
        return not self._rospy.is_shutdown() and master_reachable(self.master_uri, timeout=0.5)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for item in (*self._publishers, *self._subscribers):
            try:
                item.unregister()
            except Exception as err:  # noqa: BLE001 - closing must go on
                log.debug("unregistering %s failed: %s", item, err)
        self._publishers.clear()
        self._subscribers.clear()


TRANSPORT = Ros1Transport
