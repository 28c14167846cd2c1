"""The small interface both ROS middlewares implement.

The driver (`driver.RosRobot`) and the bridge (`bridge.SimBridge`) speak only
this interface, so everything above it is written once for ROS 1 and ROS 2.
A transport is one node: ``ros1.Ros1Transport`` (rospy) and
``ros2.Ros2Transport`` (rclpy, a background executor thread spins the node).

``type_name`` is the ROS 1 style ``package/Type`` (``"sensor_msgs/JointState"``);
a ROS 2 transport maps it to ``package.msg.Type``. Callbacks run on the
middleware's own threads: keep them short (store the message, return).

A middleware module (``ros1.py``, ``ros2.py``) defines its class and names it
``TRANSPORT``; `open_transport` builds ``TRANSPORT(node_name, **settings)``:

* ROS 1: ``Ros1Transport(node_name, *, master_uri=None, ip=None, connect_timeout_s=15.0)``
  (``None``: the environment's ``ROS_MASTER_URI`` / ``ROS_IP``).
* ROS 2: ``Ros2Transport(node_name, *, domain_id=None, localhost_only=False)``
  (``None``: the environment's ``ROS_DOMAIN_ID``).

The driver and the bridge pass exactly these keywords (`RosSettings` holds
their values).

Both raise `PluginError` when the middleware is not installed (the message
says what to install) and `RobotError` when it cannot be reached. Publishers
use a queue of a few messages; subscriptions keep the newest (depth 1 for
images is fine: the driver only ever reads the latest).
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from s2kit.core.errors import PluginError

__all__ = ["MIDDLEWARES", "Transport", "open_transport", "split_type_name"]

#: Middleware name -> module (under this package) defining the transport class ``TRANSPORT``.
MIDDLEWARES: dict[str, str] = {"ros1": "ros1", "ros2": "ros2"}


class Transport(ABC):
    """One ROS node: publishers, subscriptions, message classes, the clock."""

    #: "ros1" or "ros2".
    middleware: str = ""

    @abstractmethod
    def publisher(self, topic: str, type_name: str) -> Callable[[Any], None]:
        """A function that publishes one message of ``type_name`` on ``topic``."""

    @abstractmethod
    def subscribe(self, topic: str, type_name: str, callback: Callable[[Any], None]) -> None:
        """Call ``callback(msg)`` for every message on ``topic`` (from a middleware thread)."""

    @abstractmethod
    def message(self, type_name: str) -> type:
        """The message class for ``type_name``, e.g. ``"sensor_msgs/Image"``."""

    @abstractmethod
    def now(self) -> float:
        """The middleware's clock, in seconds (wall time unless simulated time is on)."""

    @abstractmethod
    def connected(self) -> bool:
        """Whether the middleware is reachable (ROS 1: the master answers; ROS 2: the context is ok)."""

    @abstractmethod
    def close(self) -> None:
        """Shut the node down. Safe to call twice."""

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def split_type_name(type_name: str) -> tuple[str, str]:
    """``"sensor_msgs/JointState"`` -> ``("sensor_msgs", "JointState")``; one clear error otherwise."""
    package, sep, name = type_name.partition("/")
    if not sep or not package or not name or "/" in name:
        raise PluginError(f"message type {type_name!r} is not 'package/Type' (e.g. 'sensor_msgs/JointState')")
    return package, name


def open_transport(middleware: str, node_name: str, **settings: Any) -> Transport:
    """Open the transport for ``middleware`` ("ros1" or "ros2") as node ``node_name``.

    ``settings`` go to the transport's constructor (ROS 1: ``master_uri``,
    ``ip``; ROS 2: ``domain_id``, ``localhost_only``).
    """
    module_name = MIDDLEWARES.get(middleware)
    if module_name is None:
        raise PluginError(f"unknown ROS middleware {middleware!r} (available: {', '.join(MIDDLEWARES)})")
    module = importlib.import_module(f"{__package__}.{module_name}")
    return module.TRANSPORT(node_name, **settings)
