"""The ROS driver's end-to-end control loop: period jitter and data age, at 10 Hz and 50 Hz, over ROS 1 and ROS 2.

For each middleware it brings up real middleware on loopback (a roscore on
a free port; a private ROS 2 domain with localhost-only discovery), starts
``s2kit bridge --robot hsr`` (the simulated HSR on the real topics, stepping
in real time), and runs the s2kit `Runtime` over the driver
(``robot.backend=ros1|ros2``) in a fresh process at each control rate. The
executor sends a slow circle of ``ee_delta`` commands, so every step does
the driver's whole path: observe (joint states, two cameras, FK on the
kinematic mirror), IK, clamping, and four command messages.

Per (middleware, rate) it reports:

* jitter: how far each control step's start is from its slot on the ideal
  grid (``|interval - period|`` between consecutive steps), p50/p95/max;
* joint-state and image age at observe: how old the newest message was
  when the step read it (the bridge sends joint states every tick and
  images at ``--camera-rate``);
* the runtime's own observe (median) and apply (mean, p95) times; apply is
  IK, clamping and publishing.

    .venv/bin/python benchmarks/ros_loop.py [--ros 1 2] [--rates 10 50] [--seconds 20] [--json]

ROS 1 needs roscore and rospy (scripts/system-packages.sh), ROS 2 the
ros-rclpy wheels (pip install 's2kit[ros2]'); a missing one is skipped,
saying so.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

S2KIT = str(Path(sys.executable).parent / "s2kit")


# --- the driver side (runs in a child process: one middleware per process) -------------------------


def drive(middleware: str, settings: dict[str, Any], rate: float, seconds: float) -> dict[str, Any]:
    """Run the Runtime over the driver for ``seconds`` at ``rate`` Hz; the measured figures."""
    from s2kit.core import (
        ActionChunk,
        Executor,
        Guidance,
        Planner,
        Runtime,
        RuntimeConfig,
        Subscriber,
    )
    from s2kit.core.registry import get_registry

    class Circle(Executor):
        """A slow horizontal circle of the hand (radius about 3 cm), gripper open."""

        name = "circle"

        def act(self, observation, guidance):  # type: ignore[no-untyped-def, override]
            t = observation.timestamp
            period = self.spec.control_period
            speed = 0.03 * 2 * np.pi / 6.0 * period  # one turn in 6 s
            rows = [[-speed * np.sin(2 * np.pi * (t + k * period) / 6.0), speed * np.cos(2 * np.pi * (t + k * period) / 6.0),
                     0, 0, 0, 0, 1.0] for k in range(10)]  # fmt: skip
            return ActionChunk(actions=np.asarray(rows, np.float32), period=period)

    class Fixed(Planner):
        name = "fixed"

        def plan(self, instruction, observation, **kwargs):  # type: ignore[no-untyped-def, override]
            return Guidance(goal=instruction)

    class Times(Subscriber):
        def __init__(self) -> None:
            self.times: list[float] = []

        def on_step(self, step) -> None:  # type: ignore[no-untyped-def, override]
            self.times.append(step.time)

    robot: Any = get_registry().create(
        "robot",
        {"name": "hsr", "backend": middleware, "control_hz": rate, "ros": {**settings, "sim_bridge": True, "privileged": False}},
    )
    joint_age: list[float] = []
    image_age: list[float] = []
    observe = robot.observe

    def timed_observe():  # type: ignore[no-untyped-def]
        now = time.monotonic()
        joint_age.append(robot._joint_states.age(now))
        image_age.append(max(latest.age(now) for latest in robot._images.values()))
        return observe()

    robot.observe = timed_observe
    times = Times()
    steps = int(rate * seconds)
    runtime = Runtime(robot, Fixed(), Circle(), RuntimeConfig(max_steps=steps, execute_horizon=10), [times])
    try:
        (result,) = runtime.run(episodes=1, seed=0)
    finally:
        robot.close()
    period = 1.0 / rate
    intervals = np.diff(np.asarray(times.times))
    jitter = np.abs(intervals - period) * 1e3
    ms = lambda a, q: float(np.percentile(np.asarray(a) * 1e3, q))
    return {
        "middleware": middleware,
        "rate_hz": rate,
        "steps": result.steps,
        "status": result.status,
        "period_ms": float(intervals.mean() * 1e3),
        "jitter_p50_ms": float(np.percentile(jitter, 50)),
        "jitter_p95_ms": float(np.percentile(jitter, 95)),
        "jitter_max_ms": float(jitter.max()),
        "joint_age_p50_ms": ms(joint_age, 50),
        "joint_age_p95_ms": ms(joint_age, 95),
        "image_age_p50_ms": ms(image_age, 50),
        "image_age_p95_ms": ms(image_age, 95),
        "observe_p50_ms": result.timings["observe"].p50_ms,
        "apply_mean_ms": result.timings["apply"].mean_ms,
        "apply_p95_ms": result.timings["apply"].p95_ms,
        "watchdog_holds": robot.watchdog_holds,
    }


# --- the middleware and the bridge ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(command, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def wait_for_line(log: Path, text: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {text!r} in {log}:\n{log.read_text()[-2000:]}")
        time.sleep(0.2)


def network(version: int, home: Path) -> tuple[dict[str, Any], dict[str, str], subprocess.Popen | None]:
    """RosSettings, environment and (ROS 1) the roscore process of a fresh loopback network."""
    env = {**os.environ, "MUJOCO_GL": "osmesa"}
    if version == 1:
        from s2kit.plugins.robots.ros.ros1 import master_reachable

        uri = f"http://127.0.0.1:{free_port()}"
        env.update(ROS_MASTER_URI=uri, ROS_IP="127.0.0.1", ROS_HOME=str(home), ROS_LOG_DIR=str(home / "log"))
        core = start(["roscore", "-p", uri.rsplit(":", 1)[1]], env, home / "roscore.log")
        deadline = time.monotonic() + 30
        while not master_reachable(uri):
            if time.monotonic() > deadline:
                raise RuntimeError("roscore did not start")
            time.sleep(0.2)
        os.environ.update({k: env[k] for k in ("ROS_MASTER_URI", "ROS_IP", "ROS_HOME", "ROS_LOG_DIR")})
        return {"master_uri": uri, "ip": "127.0.0.1"}, env, core
    domain = 150 + os.getpid() % 50
    env.update(ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    return {"domain_id": domain, "localhost_only": True}, env, None


def missing(version: int) -> str | None:
    if version == 1 and (shutil.which("roscore") is None or not Path("/usr/lib/python3/dist-packages/rospy").is_dir()):
        return "ROS 1 is not installed (scripts/system-packages.sh)"
    if version == 2:
        import importlib.util

        if importlib.util.find_spec("rclpy") is None or importlib.util.find_spec("s2kit.plugins.robots.ros.ros2") is None:
            return "ROS 2 is not installed (pip install 's2kit[ros2]')"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ros", type=int, nargs="+", default=[1, 2], choices=[1, 2])
    parser.add_argument("--rates", type=float, nargs="+", default=[10.0, 50.0])
    parser.add_argument("--seconds", type=float, default=20.0, help="Length of each measured run.")
    parser.add_argument("--camera-rate", type=float, default=10.0, help="The bridge's images per second.")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    rows = []
    for version in args.ros:
        reason = missing(version)
        if reason:
            print(f"ROS {version}: skipped: {reason}", file=sys.stderr)
            continue
        with tempfile.TemporaryDirectory() as tmp:
            home = Path(tmp)
            settings, env, core = network(version, home)
            try:
                for rate in args.rates:
                    overrides = [f"--set=ros.{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in settings.items()]
                    log = home / f"bridge-{rate:g}.log"
                    bridge = start(
                        [S2KIT, "bridge", "--robot", "hsr", "--ros", str(version), "--rate", f"{max(50.0, 2 * rate):g}",
                         "--camera-rate", f"{args.camera_rate:g}", f"--set=control_hz={rate:g}", *overrides],
                        env, log,
                    )  # fmt: skip
                    try:
                        wait_for_line(log, "Ctrl-C stops")
                        with multiprocessing.get_context("spawn").Pool(1) as pool:
                            row = pool.apply(drive, (f"ros{version}", settings, rate, args.seconds))
                    finally:
                        stop(bridge)
                    overruns = [line for line in log.read_text().splitlines() if "fell behind" in line]
                    row["bridge"] = overruns[0].removeprefix("bridge: ") if overruns else "kept real time"
                    rows.append(row)
                    if not args.json:
                        print(
                            f"ROS {version} {rate:4g} Hz: {row['steps']} steps, period {row['period_ms']:.2f} ms, "
                            f"jitter p50 {row['jitter_p50_ms']:.2f} / p95 {row['jitter_p95_ms']:.2f} / max {row['jitter_max_ms']:.2f} ms, "
                            f"joint age p50 {row['joint_age_p50_ms']:.1f} / p95 {row['joint_age_p95_ms']:.1f} ms, "
                            f"image age p50 {row['image_age_p50_ms']:.1f} / p95 {row['image_age_p95_ms']:.1f} ms, "
                            f"observe p50 {row['observe_p50_ms']:.2f} ms, apply {row['apply_mean_ms']:.2f} ms "
                            f"(p95 {row['apply_p95_ms']:.2f}); bridge: {row['bridge']}",
                            flush=True,
                        )
            finally:
                if core is not None:
                    stop(core)
    if args.json:
        print(json.dumps({"machine": {"python": platform.python_version(), "cpus": os.cpu_count()}, "runs": rows}, indent=2))


if __name__ == "__main__":
    main()
