"""Real ROS on loopback for the ROS tests, for both middlewares.

* ROS 1: a real ``roscore`` on a free loopback port (session-wide);
  ``ROS_MASTER_URI=http://127.0.0.1:PORT``, ``ROS_IP=127.0.0.1``.
* ROS 2: a ROS domain of this test session, localhost-only discovery.

`network` is parametrized over both (``ros1``, ``ros2``); a middleware that is
not installed is skipped, saying so. `Bridge` runs ``s2kit bridge`` in a
subprocess; `s2kit` runs the CLI on a network; `in_child` / `start_child` run a
test function in a fresh interpreter.

Why children: ROS 1 and ROS 2 share Python package names (``std_msgs``,
``sensor_msgs``, ...), so one process can speak only one of them. Code that
opens a transport therefore never runs in the pytest process itself: the
function (module-level, importable) runs in a spawned child, and an
assertion failing there fails the test here with its message.
"""

from __future__ import annotations

import importlib.util
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[4]
S2KIT = str(Path(sys.executable).parent / "s2kit")
MIDDLEWARES = ("ros1", "ros2")
DEBIAN_PYTHON = "/usr/lib/python3/dist-packages"


def missing(middleware: str) -> str | None:
    """Why ``middleware`` cannot run here, or None when it can."""
    if middleware == "ros1":
        if shutil.which("roscore") is None or not Path(DEBIAN_PYTHON, "rospy").is_dir():
            return "ROS 1 is not installed (apt-get install ros-core python3-rospy ...: scripts/system-packages.sh)"
        return None
    if importlib.util.find_spec("rclpy") is None:
        return "ROS 2 is not installed (pip install 's2kit[ros2]': the ros-rclpy wheels)"
    if importlib.util.find_spec("s2kit.plugins.robots.ros.ros2") is None:
        return "this s2kit has no ROS 2 transport (s2kit/plugins/robots/ros/ros2.py)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RosNetwork:
    """One middleware's network for a test: how to reach it from a config, a CLI and a child."""

    middleware: str
    #: RosSettings fields that reach this network.
    settings: dict[str, Any]
    #: Environment for subprocesses (the ROS variables; PYTHONPATH for the test doubles).
    env: dict[str, str] = field(default_factory=dict)

    @property
    def version(self) -> str:
        return self.middleware[-1]

    def overrides(self, prefix: str = "robot.ros") -> list[str]:
        """``--set`` arguments naming this network, for ``s2kit run`` (prefix robot.ros) or ``s2kit bridge`` (ros)."""
        out = []
        for key, value in self.settings.items():
            out += ["--set", f"{prefix}.{key}={str(value).lower() if isinstance(value, bool) else value}"]
        return out


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = {**os.environ, "MUJOCO_GL": "osmesa", "PYTHONPATH": str(ROOT), **extra}
    env.pop("S2KIT_DEBUG", None)
    return env


@pytest.fixture(scope="session")
def ros1_network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RosNetwork]:
    """A real roscore on a free loopback port, for the session."""
    reason = missing("ros1")
    if reason:
        pytest.skip(reason)
    from s2kit.plugins.robots.ros.ros1 import (
        master_reachable,  # no rospy import: safe in this process
    )

    home = tmp_path_factory.mktemp("ros1")
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    ros_env = {"ROS_MASTER_URI": uri, "ROS_IP": "127.0.0.1", "ROS_HOME": str(home), "ROS_LOG_DIR": str(home / "log")}
    env = _env(ros_env)
    log = open(home / "roscore.log", "w")  # noqa: SIM115 - open for the session
    process = subprocess.Popen(
        ["roscore", "-p", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    deadline = time.monotonic() + 30
    while not master_reachable(uri):
        if process.poll() is not None or time.monotonic() > deadline:
            _stop(process)
            pytest.fail(f"roscore did not start on port {port}: {(home / 'roscore.log').read_text()[-2000:]}")
        time.sleep(0.2)
    previous = {k: os.environ.get(k) for k in ros_env}
    os.environ.update(ros_env)  # spawned children (rospy logs, ROS_IP) inherit it
    try:
        yield RosNetwork("ros1", {"master_uri": uri, "ip": "127.0.0.1"}, ros_env)
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _stop(process)
        log.close()


@pytest.fixture(scope="session")
def ros2_network() -> RosNetwork:
    """A ROS 2 domain of this session (localhost-only discovery); other sessions and users do not meet it."""
    reason = missing("ros2")
    if reason:
        pytest.skip(reason)
    domain = 20 + os.getpid() % 70  # the ROS 2 transport's own tests use 100 and above
    ros_env = {"ROS_DOMAIN_ID": str(domain), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    return RosNetwork("ros2", {"domain_id": domain, "localhost_only": True}, ros_env)


@pytest.fixture(params=MIDDLEWARES)
def network(request: pytest.FixtureRequest) -> RosNetwork:
    """Each middleware in turn (skipped, with the reason, where it is not installed)."""
    return request.getfixturevalue(f"{request.param}_network")


def _stop(process: subprocess.Popen, sig: int = signal.SIGINT, timeout: float = 15.0) -> None:
    """Stop a process (and its group) politely, then for sure."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


class Bridge:
    """``s2kit bridge`` in a subprocess (its own process group), started and waited for until ready."""

    def __init__(self, network: RosNetwork, robot: str = "hsr", *args: str, ready_s: float = 90.0) -> None:
        self.network = network
        command = [S2KIT, "bridge", "--robot", robot, "--ros", network.version, *network.overrides("ros"), *args]
        self.process = subprocess.Popen(
            command, env=_env(network.env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True,
        )  # fmt: skip
        self.lines: list[str] = []
        self._ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        if not self._ready.wait(ready_s):
            self.stop()
            raise AssertionError(f"the bridge did not become ready in {ready_s:g} s:\n{self.output}")

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.startswith("bridge: ") and "Ctrl-C stops" in line:
                self._ready.set()

    def wait_for(self, text: str, timeout: float = 60.0) -> str:
        """The first output line containing ``text``, waiting for it."""
        def first() -> str | None:
            return next((line for line in list(self.lines) if text in line), None)

        wait_until(lambda: first() is not None, f"{text!r} from the bridge (output so far: {self.output!r})", timeout)
        return first()  # type: ignore[return-value]

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def kill(self) -> None:
        """Gone at once, as a crash or a pulled cable."""
        _stop(self.process, signal.SIGKILL, timeout=5)

    def stop(self) -> None:
        _stop(self.process)

    def __enter__(self) -> Bridge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def s2kit(network: RosNetwork, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the installed ``s2kit`` on ``network`` (its ROS variables in the environment)."""
    return subprocess.run([S2KIT, *args], env=_env(network.env), capture_output=True, text=True, timeout=timeout)


def start_s2kit(network: RosNetwork, *args: str) -> subprocess.Popen[str]:
    """``s2kit`` in the background (its own process group); read its output with ``communicate``."""
    return subprocess.Popen(
        [S2KIT, *args], env=_env(network.env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip


def in_child(fn: Callable[..., Any], *args: Any, timeout: float = 180) -> Any:
    """``fn(*args)`` in a fresh interpreter; its result, or its exception raised here."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply_async(fn, args).get(timeout)


def start_child(fn: Callable[..., Any], *args: Any) -> multiprocessing.Process:
    """``fn(*args)`` in a fresh interpreter, in the background (stop it with ``terminate``)."""
    process = multiprocessing.get_context("spawn").Process(target=fn, args=args, daemon=True)
    process.start()
    return process


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Poll ``condition`` until it holds; an AssertionError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)
