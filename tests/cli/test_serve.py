"""``s2kit serve``: a trained run or a named executor behind openpi's protocol, as a real process."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from openpi_client.websocket_client_policy import WebsocketClientPolicy
from websockets.exceptions import InvalidStatus

from tests.conftest import BIN, ROOT
from tests.plugins.executors.s2.conftest import hsr_dataset, tiny_run  # noqa: F401 - fixtures used here

# openpi-client 0.1.2 calls websockets' connect() the pre-17 way; the warning is about its code, not ours.
pytestmark = pytest.mark.filterwarnings("ignore:connect\\(\\) must be used as a context manager:DeprecationWarning")

POINT = ["--executor", "constant", "--robot", "point", "--image", "observation/image=head"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve_process(*args: str, env: dict[str, str] | None = None, timeout: float = 120.0) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    """``s2kit serve ARGS --port P`` as a real process, once it answers /healthz; terminated afterwards."""
    port = free_port()
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "MUJOCO_GL": "osmesa"}
    full_env.pop("S2KIT_API_KEY", None)  # only the key a test asks for
    full_env.update(env or {})
    process = subprocess.Popen(
        [str(BIN / "s2kit"), "serve", *args, "--port", str(port)], env=full_env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise AssertionError(f"s2kit serve exited with {process.returncode}: {process.stderr.read()}")  # type: ignore[union-attr]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as health:
                    if health.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"s2kit serve did not answer /healthz on port {port} within {timeout} s") from None
                time.sleep(0.1)
        yield port, process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=30)


def openpi_request(state_dim: int, size: int = 224) -> dict[str, object]:
    return {
        "observation/image": np.zeros((size, size, 3), np.uint8),
        "observation/wrist_image": np.zeros((size, size, 3), np.uint8),
        "observation/state": np.zeros(state_dim),
        "prompt": "put the red block in the bowl",
    }


# --- a real process -----------------------------------------------------------------------------


def test_serving_a_trained_run_to_the_openpi_client(tiny_run: Path) -> None:  # noqa: F811 - the fixture
    with serve_process(str(tiny_run)) as (port, process):
        client = WebsocketClientPolicy(host="127.0.0.1", port=port)
        meta = client.get_server_metadata()
        assert meta["executor"] == "s2" and meta["robot"] == "hsr"  # the robot its datasets were recorded on
        t = time.perf_counter()
        reply = client.infer(openpi_request(len(meta["state_names"])))
        round_trip_ms = (time.perf_counter() - t) * 1e3
        assert reply["actions"].shape == (meta["action_horizon"], 7) and np.isfinite(reply["actions"]).all()
        timing = reply["server_timing"]  # the model's inference is inside the server's share of the round trip
        assert timing["infer_ms"] + timing["queue_ms"] <= timing["server_ms"] <= round_trip_ms
        process.send_signal(signal.SIGINT)  # Ctrl-C: a clean stop
        out, _ = process.communicate(timeout=30)
    assert process.returncode == 0
    assert f"serving executor 's2' ({tiny_run}) for robot 'hsr'" in out and f"ws://127.0.0.1:{port}" in out
    assert out.rstrip().endswith("stopped")


def test_an_api_key_from_the_option_or_the_environment(tmp_path: Path) -> None:
    env = {"S2KIT_PLUGINS": "tests.doubles"}
    for args, extra in (((*POINT, "--api-key", "opt-key"), {}), (POINT, {"S2KIT_API_KEY": "opt-key"})):
        with serve_process(*args, env={**env, **extra}) as (port, process):
            with pytest.raises(InvalidStatus, match="401"):
                WebsocketClientPolicy(host="127.0.0.1", port=port)
            client = WebsocketClientPolicy(host="127.0.0.1", port=port, api_key="opt-key")
            request = {k: v for k, v in openpi_request(4, size=16).items() if k != "observation/wrist_image"}
            assert client.infer(request)["actions"].shape == (8, 7)
            process.terminate()  # SIGTERM stops it cleanly too
            out, err = process.communicate(timeout=30)
            assert process.returncode == 0 and "(API key required)" in out
            assert "refused a connection from client 127.0.0.1" in err and "no API key" in err


# --- errors, in-process -------------------------------------------------------------------------


def test_run_or_executor_one_of_them(invoke, tmp_path: Path) -> None:
    result = invoke("serve")
    assert result.exit_code == 2 and "give RUN (a trained checkpoint or run folder) or --executor NAME: one is needed" in result.output
    result = invoke("serve", str(tmp_path), "--executor", "constant")
    assert result.exit_code == 2 and "not both" in result.output
    result = invoke("serve", str(tmp_path / "nothing"))
    assert result.exit_code == 2 and "does not exist" in result.output


def test_a_privileged_executor_is_refused(invoke) -> None:
    result = invoke("serve", "--executor", "scripted", "--robot", "hsr")
    assert result.exit_code == 2
    assert "executor 'scripted' cannot be served" in result.output and "is privileged" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--image", "observation/image"], "--image 'observation/image': expected KEY=ROLE"),
        (["--image", "observation/image=left"], "maps to camera 'left', which robot 'point' does not have"),
        (["--state-key", "prompt"], "key 'prompt' is used twice"),
        (["--set", "horizon=0"], "horizon"),
        (["--set", "robot.colour=red"], "colour"),
        (["--robot", "nobody"], "unknown robot 'nobody'"),
    ],
)
def test_bad_options_are_one_line(invoke, args: list[str], message: str) -> None:
    result = invoke("serve", "--executor", "constant", "--robot", "point", "--image", "observation/image=head", *args)
    assert result.exit_code == 2, result.output
    assert result.output.startswith("Error: ") and message in result.output and "Traceback" not in result.output


def test_a_taken_port_is_one_line(invoke) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = invoke("serve", *POINT, "--port", str(port))
    assert result.exit_code == 1 and f"cannot listen on 127.0.0.1:{port}" in result.output
