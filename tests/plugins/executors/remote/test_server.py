"""The policy server, driven by the real openpi client (openpi-client from PyPI) and by raw websockets."""

from __future__ import annotations

import socket
import threading
import time
import urllib.request
from collections.abc import Iterator

import msgpack
import numpy as np
import pytest
import websockets.sync.client
from openpi_client import msgpack_numpy
from openpi_client.action_chunk_broker import ActionChunkBroker
from openpi_client.runtime.agents.policy_agent import PolicyAgent
from openpi_client.runtime.environment import Environment
from openpi_client.runtime.runtime import Runtime
from openpi_client.websocket_client_policy import WebsocketClientPolicy
from pydantic import Field, ValidationError
from websockets.exceptions import ConnectionClosedError, InvalidStatus

from s2kit.core.config import PluginConfig
from s2kit.core.errors import ConfigError
from s2kit.core.interfaces import Executor
from s2kit.plugins.executors.remote.server import (
    ObservationKeys,
    PolicyServer,
    PolicyServerError,
    packb,
    unpackb,
)
from s2kit.core.types import (
    ActionChunk,
    CameraSpec,
    Guidance,
    Observation,
    RobotSpec,
    ee_delta_space,
)

# openpi-client 0.1.2 calls websockets' connect() the pre-17 way; the warning is about its code, not ours.
pytestmark = pytest.mark.filterwarnings("ignore:connect\\(\\) must be used as a context manager:DeprecationWarning")

STATE_NAMES = ("x", "y", "z", "roll", "pitch", "yaw", "gripper", "lift")
SPEC = RobotSpec(
    name="arm",
    cameras=(CameraSpec(role="head", height=32, width=32), CameraSpec(role="wrist", height=24, width=24)),
    state_names=STATE_NAMES,
    action_spaces=(ee_delta_space(),),
)


class EchoConfig(PluginConfig):
    horizon: int = Field(4, ge=1)
    delay: float = Field(0.0, ge=0, description="Seconds each act() sleeps, so that clients overlap.")


class EchoExecutor(Executor):
    """Every action row is the first 7 state values: a client can tell its own reply. Records what it saw."""

    name = "echo"
    Config = EchoConfig

    def __init__(self, config: EchoConfig | None = None) -> None:
        super().__init__(config)
        self.seen: list[tuple[Observation, Guidance]] = []
        self.fault: str | None = None
        self.active = self.most_active = 0
        self._count = threading.Lock()

    def act(self, observation: Observation, guidance: Guidance) -> ActionChunk:
        with self._count:
            self.active += 1
            self.most_active = max(self.most_active, self.active)
        try:
            time.sleep(self.config.delay)  # type: ignore[attr-defined]
            self.seen.append((observation, guidance))
            if self.fault == "raise":
                raise RuntimeError("model exploded")
            actions = np.tile(observation.state[:7], (self.config.horizon, 1)).astype(np.float32)  # type: ignore[attr-defined]
            if self.fault == "nan":
                actions[2, 3] = np.nan
            return ActionChunk(actions=actions, period=self.spec.control_period, subtask_done=guidance.current > 0)
        finally:
            with self._count:
                self.active -= 1


def observation(state0: float = 0.5, size: int = 224, **extra: object) -> dict[str, object]:
    """What openpi's examples send: two uint8 images, the state, the prompt."""
    rng = np.random.default_rng(int(state0 * 1000) % 2**32)
    return {
        "observation/image": rng.integers(0, 256, (size, size, 3), dtype=np.uint8),
        "observation/wrist_image": rng.integers(0, 256, (size, size, 3), dtype=np.uint8),
        "observation/state": np.array([state0, 0.1, 0.2, 0.0, 0.0, 0.0, 1.0, 0.3]),
        "prompt": "put the red block in the bowl",
        **extra,
    }


@pytest.fixture
def echo() -> EchoExecutor:
    return EchoExecutor()


@pytest.fixture
def serve(echo: EchoExecutor) -> Iterator:
    """Start a server on a free loopback port (stopped after the test); the warm-up is forgotten."""
    servers: list[PolicyServer] = []

    def start(executor: Executor | None = None, **options: object) -> PolicyServer:
        server = PolicyServer(executor or echo, options.pop("spec", SPEC), port=0, **options).start()  # type: ignore[arg-type]
        servers.append(server)
        echo.seen.clear()
        return server

    yield start
    for server in servers:
        server.stop()


def raw_client(server: PolicyServer) -> websockets.sync.client.ClientConnection:
    ws = websockets.sync.client.connect(server.url, max_size=None)
    ws.recv(timeout=10)  # the metadata
    return ws


# --- the openpi client ------------------------------------------------------------------------


def test_the_openpi_client_gets_the_metadata_then_chunks_from_what_it_sent(serve, echo: EchoExecutor) -> None:
    server = serve()
    client = WebsocketClientPolicy(host="127.0.0.1", port=server.port)
    meta = client.get_server_metadata()
    assert meta["server"] == "s2kit" and meta["executor"] == "echo" and meta["robot"] == "arm"
    assert meta["action_space"] == "ee_delta" and meta["action_horizon"] == 4 and meta["state_names"] == list(STATE_NAMES)
    assert meta["images"]["observation/wrist_image"]["role"] == "wrist"

    sent = observation(0.25)
    t = time.perf_counter()
    reply = client.infer(sent)
    round_trip_ms = (time.perf_counter() - t) * 1e3
    assert reply["actions"].dtype == np.float32 and reply["actions"].shape == (4, 7)
    np.testing.assert_allclose(reply["actions"], np.tile(sent["observation/state"][:7], (4, 1)), rtol=1e-6)
    timing = reply["server_timing"]
    # what a client reads off them: the server's share of its round trip, and the transport is the rest
    assert timing["infer_ms"] + timing["queue_ms"] <= timing["server_ms"] <= round_trip_ms

    seen, guidance = echo.seen[-1]
    np.testing.assert_array_equal(seen.images["head"], sent["observation/image"])
    np.testing.assert_array_equal(seen.images["wrist"], sent["observation/wrist_image"])
    assert seen.state.dtype == np.float32 and guidance == Guidance(goal="put the red block in the bowl")
    assert "prev_total_ms" in client.infer(sent)["server_timing"]  # openpi reports the previous turn from the second on


def test_openpis_chunk_broker_and_runtime_drive_steps_through_the_server(serve, echo: EchoExecutor) -> None:
    server = serve()

    class Env(Environment):
        def __init__(self) -> None:
            self.applied: list[np.ndarray] = []
            self.t = 0

        def reset(self) -> None:
            self.t = 0

        def is_episode_complete(self) -> bool:
            return len(self.applied) >= 10

        def get_observation(self) -> dict:
            self.t += 1
            return observation(self.t / 100, size=64)

        def apply_action(self, action: dict) -> None:
            self.applied.append(action["actions"])

    env = Env()
    policy = ActionChunkBroker(WebsocketClientPolicy(host="127.0.0.1", port=server.port), action_horizon=4)
    Runtime(env, PolicyAgent(policy), [], max_hz=0, num_episodes=1).run()
    assert len(env.applied) == 10 and all(a.shape == (7,) for a in env.applied)
    assert len(echo.seen) == 3  # ceil(10 / 4) chunks
    # each step's action comes from the chunk computed at the observation that opened the chunk
    np.testing.assert_allclose([a[0] for a in env.applied], [0.01] * 4 + [0.05] * 4 + [0.09] * 2, rtol=1e-6)


def test_configured_keys_and_channel_first_images(serve, echo: EchoExecutor) -> None:
    keys = ObservationKeys(images={"cam_high": "head", "cam_left_wrist": "wrist"}, state="qpos", prompt="task")
    server = serve(keys=keys)
    client = WebsocketClientPolicy(host="127.0.0.1", port=server.port)
    high = np.random.default_rng(0).integers(0, 256, (3, 48, 64), dtype=np.uint8)  # (C, H, W): channel-first, as openpi's ALOHA example sends
    wrist = np.zeros((48, 64, 3), dtype=np.uint8)
    client.infer({"cam_high": high, "cam_left_wrist": wrist, "qpos": np.arange(8, dtype=np.float64), "task": "fold"})
    seen, guidance = echo.seen[-1]
    np.testing.assert_array_equal(seen.images["head"], high.transpose(1, 2, 0))
    assert seen.images["head"].shape == (48, 64, 3) and guidance.goal == "fold"
    with pytest.raises(RuntimeError, match="missing 'cam_high'"):
        client.infer(observation())


def test_an_s2kit_client_sends_the_full_guidance_and_its_clock(serve, echo: EchoExecutor) -> None:
    server = serve()
    client = WebsocketClientPolicy(host="127.0.0.1", port=server.port)
    full = Guidance(goal="tidy up", trajectory="left arm", subtasks=["pick the cup", "place it"], current=1)
    reply = client.infer(observation(guidance=full.model_dump(mode="json"), timestamp=12.5, prompt="tidy up"))
    seen, guidance = echo.seen[-1]
    assert guidance == full and seen.timestamp == 12.5
    assert reply["subtask_done"] is True and reply["space"] == "ee_delta"


def test_only_the_mapped_cameras_are_served(serve, echo: EchoExecutor) -> None:
    server = serve(keys=ObservationKeys(images={"observation/image": "head"}))
    assert [c.role for c in echo.spec.cameras] == ["head"] and list(server.metadata["images"]) == ["observation/image"]
    with pytest.raises(ConfigError, match="maps to camera 'left', which robot 'arm' does not have"):
        PolicyServer(echo, SPEC, keys=ObservationKeys(images={"observation/image": "left"}), port=0)
    with pytest.raises(ValidationError, match="named by two image keys"):
        ObservationKeys(images={"a": "head", "b": "head"})


# --- bad requests ------------------------------------------------------------------------------


def _good() -> dict[str, object]:
    return observation(size=8)


def _ndarray(data: bytes, dtype: str, shape: list[int]) -> dict[bytes, object]:
    return {b"__ndarray__": True, b"data": data, b"dtype": dtype, b"shape": shape}


MALFORMED = {
    "not msgpack": (b"\xc1\xc1\xc1", "not a msgpack message"),
    "text": ("hello", "binary msgpack message, not text"),
    "a list": (msgpack.packb([1, 2, 3]), "a map of observation keys, got list"),
    "no state": ({k: v for k, v in _good().items() if k != "observation/state"}, "missing 'observation/state'"),
    "short state": ({**_good(), "observation/state": np.zeros(3)}, "must be 8 values (x, y, z, ...) for robot 'arm'"),
    "NaN state": ({**_good(), "observation/state": np.array([np.nan] + [0.0] * 7)}, "non-finite values at [0]"),
    "float image": ({**_good(), "observation/image": np.zeros((8, 8, 3), np.float32)}, "must be a uint8 image"),
    "grey image": ({**_good(), "observation/image": np.zeros((8, 8), np.uint8)}, "must be a uint8 image"),
    "empty image": ({**_good(), "observation/image": np.zeros((0, 0, 3), np.uint8)}, "'observation/image' is an empty image (0x0 pixels)"),
    "no columns": ({**_good(), "observation/wrist_image": np.zeros((8, 0, 3), np.uint8)}, "is an empty image (8x0 pixels)"),
    "empty channel-first": ({**_good(), "observation/image": np.zeros((3, 0, 5), np.uint8)}, "is an empty image (0x5 pixels)"),
    "no image": ({k: v for k, v in _good().items() if k != "observation/wrist_image"}, "missing 'observation/wrist_image'"),
    "no prompt": ({k: v for k, v in _good().items() if k != "prompt"}, "missing 'prompt'"),
    "array too short": ({**_good(), "observation/state": _ndarray(b"\0" * 5, "<f8", [8])}, "needs 64 bytes, got 5"),
    "object array": ({**_good(), "observation/state": _ndarray(b"\0" * 64, "|O", [8])}, "dtype object is not allowed"),
    "bad guidance": ({**_good(), "guidance": {"goal": "x", "subtasks": ["a"], "current": 3}}, "'guidance': "),
    "goal replaced": ({**_good(), "guidance": {"goal": "something else"}}, "differ: the goal is the instruction"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_request_gets_an_error_reply_and_the_connection_goes_on(serve, echo: EchoExecutor, case: str) -> None:
    server = serve()
    payload, message = MALFORMED[case]
    ws = raw_client(server)
    ws.send(payload if isinstance(payload, (bytes, str)) else msgpack_numpy.packb(payload))
    reply = ws.recv(timeout=10)
    assert isinstance(reply, str) and reply.startswith("bad request: ") and message in reply
    assert not echo.seen  # nothing reached the executor
    ws.send(msgpack_numpy.packb(_good()))
    assert msgpack_numpy.unpackb(ws.recv(timeout=10))["actions"].shape == (4, 7)
    ws.close()


def test_the_openpi_client_raises_the_servers_error_and_can_go_on(serve) -> None:
    client = WebsocketClientPolicy(host="127.0.0.1", port=serve().port)
    with pytest.raises(RuntimeError, match="'observation/state' must be 8 values"):
        client.infer({**_good(), "observation/state": np.zeros(2)})
    assert client.infer(_good())["actions"].shape == (4, 7)


def test_an_oversized_request_gets_an_error_reply_a_huge_one_closes_only_its_connection(serve, echo: EchoExecutor) -> None:
    server = serve(max_bytes=50_000)
    client = WebsocketClientPolicy(host="127.0.0.1", port=server.port)
    with pytest.raises(RuntimeError, match=r"the request has \d+ bytes, over this server's limit of 50000"):
        client.infer(observation(size=96))  # two 96x96 images: 55 kB
    assert client.infer(_good())["actions"].shape == (4, 7)

    ws = raw_client(server)
    ws.send(msgpack_numpy.packb(observation(size=224)))  # 300 kB: more than 4x the limit, not even read
    with pytest.raises(ConnectionClosedError) as closed:
        ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009  # message too big
    assert client.infer(_good())["actions"].shape == (4, 7)  # the other connection, and the server, go on
    assert len(echo.seen) == 2


def test_an_executor_failure_or_a_non_finite_chunk_is_an_error_reply_and_the_server_goes_on(serve, echo: EchoExecutor) -> None:
    client = WebsocketClientPolicy(host="127.0.0.1", port=serve().port)
    echo.fault = "raise"
    with pytest.raises(RuntimeError, match="executor 'echo' failed: RuntimeError: model exploded"):
        client.infer(_good())
    echo.fault = "nan"
    with pytest.raises(RuntimeError, match=r"non-finite actions in rows \[2\]"):
        client.infer(_good())
    echo.fault = None
    assert np.isfinite(client.infer(_good())["actions"]).all()


# --- clients, keys, health, address ------------------------------------------------------------


def test_three_clients_at_once_each_get_their_own_replies_inference_one_at_a_time(serve) -> None:
    slow = EchoExecutor(EchoConfig(delay=0.02))
    server = serve(slow)
    slow.seen.clear()
    errors: list[BaseException] = []
    start = threading.Barrier(3)

    def client(index: int) -> None:
        try:
            policy = WebsocketClientPolicy(host="127.0.0.1", port=server.port)
            start.wait(timeout=10)
            for step in range(5):
                state0 = index + step / 10
                reply = policy.infer(observation(state0, size=32))
                np.testing.assert_allclose(reply["actions"][:, 0], state0, rtol=1e-6)
        except BaseException as err:  # noqa: BLE001 - a thread cannot fail the test itself: reported below
            errors.append(err)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert len(slow.seen) == 15 and slow.most_active == 1


def test_an_api_key_is_required_before_anything_else(serve, echo: EchoExecutor) -> None:
    server = serve(api_key="s3cret")
    for key in (None, "wrong"):
        with pytest.raises(InvalidStatus) as refused:
            WebsocketClientPolicy(host="127.0.0.1", port=server.port, api_key=key)
        assert refused.value.response.status_code == 401
    assert not echo.seen
    client = WebsocketClientPolicy(host="127.0.0.1", port=server.port, api_key="s3cret")
    assert client.infer(_good())["actions"].shape == (4, 7)
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz", timeout=10) as health:  # no key needed
        assert health.status == 200 and health.read() == b"OK\n"


def test_it_listens_on_loopback_unless_told(serve) -> None:
    server = serve()
    assert server.host == "127.0.0.1"
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outward interface
        address = probe.getsockname()[0]
    except OSError:
        address = None
    finally:
        probe.close()
    if address is None or address.startswith("127."):
        pytest.skip("this machine has no non-loopback address to try")
    with pytest.raises(OSError):
        socket.create_connection((address, server.port), timeout=5).close()


def test_a_taken_port_is_one_clear_error(serve) -> None:
    server = serve()
    with pytest.raises(PolicyServerError, match=f"cannot listen on 127.0.0.1:{server.port}"):
        PolicyServer(EchoExecutor(), SPEC, port=server.port).start()


# --- the codec ---------------------------------------------------------------------------------


def test_the_codec_reads_and_writes_what_openpis_does() -> None:
    value = {
        "actions": np.arange(6, dtype=np.float32).reshape(2, 3),
        "image": np.full((4, 5, 3), 7, dtype=np.uint8),
        "ids": np.array([1, -2], dtype=np.int64),
        "mask": np.array([True, False]),
        "scalar": np.float32(1.5),
        "nested": {"list": [1, "two", 3.0]},
    }
    for encode, decode in ((packb, msgpack_numpy.unpackb), (msgpack_numpy.packb, unpackb)):
        out = decode(encode(value))
        for key in ("actions", "image", "ids", "mask"):
            assert out[key].dtype == value[key].dtype
            np.testing.assert_array_equal(out[key], value[key])
        assert out["scalar"] == np.float32(1.5) and out["nested"] == {"list": [1, "two", 3.0]}
    with pytest.raises(TypeError, match="dtype object"):
        packb({"bad": np.array([object()])})
