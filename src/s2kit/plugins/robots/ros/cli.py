"""``s2kit bridge``: run a simulated robot as a ROS node on the real robot's topics."""

from __future__ import annotations

import signal
import sys
import threading
from typing import Annotated, Any

import typer

from s2kit import hookimpl
from s2kit.cli._common import (
    SetOption,
    command,
    component_section,
    console,
    err_console,
)
from s2kit.core.errors import ConfigError
from s2kit.core.registry import get_registry

app = typer.Typer()


@app.command("bridge")
@command
def bridge(
    robot: Annotated[str, typer.Option(help="Robot plugin with a ROS driver (hsr, txg2).")] = "hsr",
    ros: Annotated[int, typer.Option("--ros", help="ROS version: 1 (rospy) or 2 (rclpy).")] = 2,
    suite: Annotated[str | None, typer.Option(help="Task suite of the first episode (a reset may name another).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the episode shown before the first reset.")] = 0,
    rate: Annotated[float, typer.Option(min=1.0, max=500.0, help="Physics ticks per second; joint states go out every tick.")] = 50.0,
    camera_rate: Annotated[float, typer.Option(min=0.5, max=100.0, help="Camera images per second.")] = 10.0,
    set_: SetOption = None,
) -> None:
    """Run the simulated robot as a ROS node on the real robot's topics, in real time, until Ctrl-C.

    It publishes joint states and camera images and applies trajectory, joint
    and velocity commands, on the topics the robot's 'ros' settings name
    (the same settings the driver reads, e.g. --set ros.topics.arm=...;
    ROS 1 finds the master in ros.master_uri or ROS_MASTER_URI). For tests
    and evaluation it also takes resets by seed and reports the task's
    progress on s2kit-only topics (ros.sim_prefix), which the driver uses
    with --set robot.ros.sim_bridge=true.
    """
    from s2kit.plugins.robots.ros.bridge import SimBridge
    from s2kit.plugins.robots.ros.transport import open_transport
    from s2kit.plugins.robots.sim.base import SimRobot

    middleware = f"ros{ros}"
    registry = get_registry()
    cls = registry.get("robot", robot).cls
    if not (isinstance(cls, type) and issubclass(cls, SimRobot)) or middleware not in cls.backends:
        offered = [b for b in getattr(cls, "backends", ()) if b != "sim"]
        raise ConfigError(
            f"robot {robot!r} has no ROS {ros} driver"
            + (f" (it has: {', '.join(offered)})" if offered else " (no ROS driver at all)")
        )
    section = component_section("robot", robot, set_)
    if suite is not None:
        section["suite"] = suite
    section.pop("backend", None)
    options = {k: v for k, v in section.items() if k != "name"}
    config: Any = registry.config("robot", robot, options)
    command_period = 1.0 / config.control_hz  # the driver's control period: one Twist moves the base this long
    layout = cls.ros_layout(config, middleware)
    sim = cls(config.model_copy(update={"control_hz": rate}))
    ros_cfg = config.ros
    def say(line: str) -> None:
        console.print(f"bridge: {line}", highlight=False, soft_wrap=True)
        sys.stdout.flush()  # a supervisor (or a test) reads these lines as they come

    try:
        sim.reset(seed=seed)
        transport = open_transport(middleware, f"s2kit_bridge_{robot}", **ros_cfg.transport_settings(middleware))
        try:
            node = SimBridge(
                sim, transport, layout, rate_hz=rate, camera_hz=camera_rate, command_period=command_period,
                sim_prefix=ros_cfg.sim_prefix, suite=suite, announce=say,
            )  # fmt: skip
            stop = threading.Event()
            for sig in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C or a supervisor: finish the tick, close the node
                signal.signal(sig, lambda *_: stop.set())

            def ready() -> None:
                say(f"{robot} on ROS {ros}, {rate:g} Hz (cameras {camera_rate:g} Hz); joint states {layout.joint_states}; Ctrl-C stops")

            node.run(stop, on_ready=ready)
            if node.overruns:
                err_console.print(f"bridge: fell behind real time {node.overruns} times", highlight=False)
        finally:
            transport.close()
    finally:
        sim.close()


@hookimpl
def s2kit_register_commands(cli: typer.Typer) -> None:
    cli.command("bridge")(bridge)
