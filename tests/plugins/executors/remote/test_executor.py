"""Executor ``remote``: a client of a policy server, against s2kit's server (and a bare one) started here."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from websockets.sync.server import ServerConnection
from websockets.sync.server import serve as sync_serve

from s2kit.core.config import validate_pipeline
from s2kit.core.data import list_episodes, read_episode
from s2kit.core.errors import ConfigError
from s2kit.core.runtime import build_runtime
from s2kit.plugins.executors.remote.server import (
    ObservationKeys,
    PolicyServer,
    PolicyServerError,
    packb,
    unpackb,
)
from s2kit.core.types import Guidance, Observation
from s2kit.plugins.executors.remote.executor import RemoteConfig, RemoteExecutor
from tests.cli.test_serve import free_port, serve_process
from tests.conftest import run_s2kit
from tests.doubles import (
    ConstantConfig,
    ConstantExecutor,
    FaultyConfig,
    FaultyExecutor,
    PointRobot,
    SeekExecutor,
)

POINT_KEYS = {"observation/image": "head"}  # the point robot has one camera


@pytest.fixture
def serve() -> Iterator[Callable[..., PolicyServer]]:
    """Serve an executor for the point robot on loopback (stopped after the test)."""
    servers: list[PolicyServer] = []

    def start(executor: Any = None, port: int = 0, **options: Any) -> PolicyServer:
        keys = ObservationKeys(images=POINT_KEYS)
        server = PolicyServer(executor or SeekExecutor(), PointRobot().spec, keys=keys, port=port, **options).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def remote(port: int, **options: Any) -> RemoteExecutor:
    executor = RemoteExecutor(RemoteConfig(port=port, images=POINT_KEYS, **options))
    executor.setup(PointRobot().spec)
    return executor


def point_observation(x: float = 0.0) -> Observation:
    return Observation(images={"head": np.zeros((16, 16, 3), np.uint8)}, state=np.array([x, 0, 0, 1], np.float32))


def run_point(registry, executor: dict[str, Any], subscribers=()) -> Any:
    pipeline = validate_pipeline({"robot": {"name": "point"}, "planner": {"name": "waypoints"}, "executor": executor})
    rt = build_runtime(pipeline, registry, subscribers)
    try:
        return rt, rt.run_episode(0, seed=0)
    finally:
        rt.executor.close()


# --- against s2kit's server ---------------------------------------------------------------------


def test_an_episode_through_the_server_is_the_episode_run_locally(registry, serve) -> None:
    local, expected = run_point(registry, {"name": "seek"})
    server = serve(SeekExecutor())  # seek reads the current subtask: the full guidance must cross the network
    over, result = run_point(registry, {"name": "remote", "port": server.port, "images": POINT_KEYS})
    assert result.status == expected.status == "done" and result.subtask_success == 1.0
    assert result.steps == expected.steps and result.plans == expected.plans
    np.testing.assert_allclose(np.array(over.robot.applied), np.array(local.robot.applied), rtol=1e-6)


def test_the_servers_metadata_says_the_action_space(serve) -> None:
    server = serve(ConstantExecutor(ConstantConfig(space="position", value=[0.1, 0.2, 0.3])))
    executor = remote(server.port)
    chunk = executor.act(point_observation(), Guidance(goal="reach"))
    assert executor.action_space == "position" and chunk.space == "position"
    np.testing.assert_allclose(chunk.actions, [[0.1, 0.2, 0.3]] * 8)
    assert {"infer_ms", "server_ms"} <= set(chunk.info["server_timing"])
    executor.close()


def test_a_robot_that_does_not_fit_the_server_is_refused_before_it_moves(serve) -> None:
    server = serve()
    other = PointRobot().spec.model_copy(update={"state_names": ("a", "b", "c", "d")})
    executor = RemoteExecutor(RemoteConfig(port=server.port, images=POINT_KEYS))
    with pytest.raises(ConfigError, match="reads the state of robot 'point'.*serve it with --robot point"):
        executor.setup(other)
    executor = RemoteExecutor(RemoteConfig(port=server.port))  # openpi's two image keys: the point has no wrist camera
    with pytest.raises(ConfigError, match="camera 'wrist', which robot 'point' does not have.*set executor.images"):
        executor.setup(PointRobot().spec)
    executor = RemoteExecutor(RemoteConfig(port=server.port, images={"cam": "head"}))
    with pytest.raises(ConfigError, match=r"reads the image keys \['observation/image'\], this executor sends \['cam'\]"):
        executor.setup(PointRobot().spec)


def test_no_server_is_one_clear_error_after_the_retries() -> None:
    port = free_port()
    with pytest.raises(PolicyServerError, match=rf"ws://127.0.0.1:{port} is unreachable \(ConnectionRefusedError.*gave up after 3 tries"):
        RemoteExecutor(RemoteConfig(port=port, retries=2, backoff=0.01))


def test_a_dropped_server_is_reconnected_with_backoff(serve) -> None:
    first = serve()
    executor = remote(first.port, retries=6, backoff=0.05)
    go = Guidance(goal="reach 0.1,0,0", subtasks=["reach 0.1,0,0"])
    executor.act(point_observation(), go)
    first.stop()
    restarted: list[PolicyServer] = []
    later = threading.Timer(0.3, lambda: restarted.append(serve(port=first.port)))
    later.start()
    chunk = executor.act(point_observation(0.05), go)
    later.join()
    assert restarted and chunk.actions.shape == (8, 7) and chunk.actions[0, 0] > 0
    executor.close()


def test_a_server_gone_for_good_ends_the_run_with_a_clear_error(registry, serve) -> None:
    server = serve()
    pipeline = validate_pipeline({
        "robot": {"name": "point"}, "planner": {"name": "waypoints"},
        "executor": {"name": "remote", "port": server.port, "images": POINT_KEYS, "retries": 1, "backoff": 0.01},
    })  # fmt: skip
    rt = build_runtime(pipeline, registry, [])
    rt.run_episode(0, seed=0)
    server.stop()
    with pytest.raises(PolicyServerError, match=f"ws://127.0.0.1:{server.port} is gone .*gave up after 2 tries"):
        rt.run_episode(1, seed=1)
    assert rt.robot.holds >= 1  # the robot was told to hold
    rt.executor.close()


def test_the_api_key_from_the_config_or_the_environment(serve, monkeypatch) -> None:
    server = serve(api_key="s3cret")
    monkeypatch.delenv("S2KIT_API_KEY", raising=False)
    with pytest.raises(PolicyServerError, match="refused the connection: no API key was sent"):
        RemoteExecutor(RemoteConfig(port=server.port, images=POINT_KEYS, retries=3))
    with pytest.raises(PolicyServerError, match="refused the connection: the API key was refused"):
        RemoteExecutor(RemoteConfig(port=server.port, images=POINT_KEYS, api_key="guess"))
    remote(server.port, api_key="s3cret").close()
    monkeypatch.setenv("S2KIT_API_KEY", "s3cret")
    executor = remote(server.port)
    assert executor.act(point_observation(), Guidance(goal="x", subtasks=["reach 0,0,0"])).actions.shape == (8, 7)
    executor.close()


def test_an_error_reply_stops_at_once_without_retrying(serve) -> None:
    faulty = FaultyExecutor(FaultyConfig(fault="raise", after=1))  # the warm-up is its first chunk, then it is reset
    executor = remote(serve(faulty).port, retries=5)
    executor.act(point_observation(), Guidance(goal="x"))
    with pytest.raises(PolicyServerError, match="answered with an error: executor 'faulty' failed: RuntimeError: model exploded"):
        executor.act(point_observation(), Guidance(goal="x"))
    assert faulty.calls == 2  # not retried
    executor.close()


# --- against a server that is not s2kit's ------------------------------------------------------


@pytest.fixture
def bare_server() -> Iterator[Callable[[Callable[[dict], Any]], tuple[int, list[dict]]]]:
    """A minimal openpi-protocol server: empty metadata, then ``reply(request)`` for each request."""
    servers = []

    def start(reply: Callable[[dict], Any]) -> tuple[int, list[dict]]:
        received: list[dict] = []

        def handler(ws: ServerConnection) -> None:
            ws.send(packb({}))
            for message in ws:
                received.append(unpackb(message))
                answer = reply(received[-1])
                if answer is not None:
                    ws.send(answer if isinstance(answer, str) else packb(answer))

        server = sync_serve(handler, "127.0.0.1", 0, compression=None, max_size=None)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server.socket.getsockname()[1], received

    yield start
    for server in servers:
        server.shutdown()


def test_to_another_server_it_sends_only_openpis_keys_and_checks_the_reply(bare_server) -> None:
    chunk = np.full((5, 7), 0.01, dtype=np.float32)
    port, received = bare_server(lambda request: {"actions": chunk})
    executor = remote(port)
    assert executor.action_space == "ee_delta"
    out = executor.act(point_observation(0.2), Guidance(goal="reach it", subtasks=["reach 1,0,0"]))
    np.testing.assert_array_equal(out.actions, chunk)
    assert set(received[0]) == {"observation/image", "observation/state", "prompt"} and received[0]["prompt"] == "reach it"
    np.testing.assert_allclose(received[0]["observation/state"], [0.2, 0, 0, 1])
    executor.close()


BAD_REPLIES = {
    "non-finite": ({"actions": np.array([[0.0] * 7, [np.nan] * 7])}, r"sent a bad reply: .*non-finite actions in rows \[1\]"),
    "wrong shape": ({"actions": np.zeros((4, 6))}, r"actions have shape \(4, 6\), expected \(H, 7\)"),
    "no actions": ({"something": 1}, "actions must be a numeric array, got NoneType"),
    "an error map": ({"error": "GPU on fire"}, "answered with an error: GPU on fire"),
    "an error text": ("Traceback: GPU on fire", "answered with an error: Traceback: GPU on fire"),
    "not a map": ([1, 2], "the reply is a list, not a map"),
}


@pytest.mark.parametrize("case", list(BAD_REPLIES))
def test_a_bad_reply_never_becomes_a_chunk(bare_server, case: str) -> None:
    reply, message = BAD_REPLIES[case]
    port, _ = bare_server(lambda request: reply)
    executor = remote(port, retries=3)
    with pytest.raises(PolicyServerError, match=message):
        executor.act(point_observation(), Guidance(goal="x"))
    executor.close()


def test_a_server_that_does_not_answer_in_time(bare_server) -> None:
    port, received = bare_server(lambda request: None)
    executor = remote(port, timeout=0.2, retries=1, backoff=0.01)
    with pytest.raises(PolicyServerError, match=r"is gone \(no answer within 0.2 s\); gave up after 2 tries"):
        executor.act(point_observation(), Guidance(goal="x"))
    assert len(received) == 2  # asked again on a new connection
    executor.close()


# --- s2kit run against s2kit serve, real processes ---------------------------------------------


def test_s2kit_run_with_the_remote_executor_against_s2kit_serve(tmp_path: Path) -> None:
    """Record the scripted expert on the simulated HSR, serve its replay, run it back through `remote`."""
    env = {"MUJOCO_GL": "osmesa"}
    base = ["run", "--robot", "hsr", "--planner", "oracle", "--seed", "4", "--json", "--set", "runtime.max_steps=120"]
    scripted = run_s2kit(*base, "--executor", "scripted", "--record", str(tmp_path / "scripted"), env=env)
    assert scripted.returncode == 0, scripted.stderr
    expected = json.loads(scripted.stdout)["episodes"][0]
    with serve_process("--executor", "replay", "--set", f"path={tmp_path / 'scripted'}", "--robot", "hsr") as (port, _):
        over = run_s2kit(*base, "--executor", "remote", "--set", f"executor.port={port}", "--record", str(tmp_path / "remote"), env=env)
    assert over.returncode == 0, over.stderr
    got = json.loads(over.stdout)["episodes"][0]
    assert got["status"] == expected["status"] and got["steps"] == expected["steps"]
    assert got["subtask_success"] == expected["subtask_success"] and expected["subtask_success"] > 0
    actions = [read_episode(root / list_episodes(root)[0]["file"])["action"] for root in (tmp_path / "scripted", tmp_path / "remote")]
    np.testing.assert_allclose(actions[1], actions[0], atol=1e-6)
