"""Executor ``remote``: a client of a policy server speaking openpi's websocket protocol.

The server is ``s2kit serve`` (ours) or openpi's ``serve_policy.py``: inference
lives on another machine, the control loop and the safety layer stay on the
robot. Each chunk is one request: the robot's images under the configured
image keys, the state, the goal as ``prompt``; to an s2kit server (its
metadata says so) also the full guidance and the observation's timestamp.

Connecting happens when the executor is built, so a missing server is an
error before the robot moves. A dropped connection or a reply that does not
come within ``timeout`` is retried on a new connection, ``retries`` times
with a doubling wait from ``backoff``; then the episode stops with an error
naming the server. A refused API key, an error the server sends back, or a
chunk that is misshapen or non-finite stops it at once.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any

import numpy as np
from pydantic import Field

from s2kit import hookimpl
from s2kit.core.errors import ConfigError
from s2kit.core.interfaces import Executor
from s2kit.plugins.executors.remote.server import (
    CODES,
    SERVER_NAME,
    ObservationKeys,
    PolicyServerError,
    ProtocolError,
    check_actions,
    make_request,
    packb,
    unpackb,
)
from s2kit.core.types import EE_DELTA, ActionChunk, Guidance, Observation, RobotSpec

API_KEY_ENV = "S2KIT_API_KEY"


class RemoteConfig(ObservationKeys):
    """Where the policy server is, how long to wait for it, and the request's key names."""

    # connection
    host: str = Field("127.0.0.1", description="The server's host name or address (or a ws:// / wss:// URI).")
    port: int | None = Field(8000, ge=0, le=65535, description="The server's port (None: the URI in host says).")
    api_key: str | None = Field(None, description=f"Sent as 'Authorization: Api-Key KEY'; default: ${API_KEY_ENV} if set.")

    # waiting and retrying
    timeout: float = Field(10.0, gt=0, description="Seconds to wait to connect, and for each reply.")
    retries: int = Field(5, ge=0, description="New connections tried after a dropped one (or at start) before giving up.")
    backoff: float = Field(0.25, gt=0, description="Seconds before the first retry; each further wait doubles (at most 5 s).")

    # what the server returns
    action_space: str | None = Field(
        None, description=f"The action space of the server's chunks; default: what an s2kit server says, else {EE_DELTA}."
    )


class RemoteExecutor(Executor):
    """Asks a policy server (s2kit serve, or openpi's) for each chunk over a websocket."""

    name = "remote"
    Config = RemoteConfig

    def __init__(self, config: RemoteConfig | None = None) -> None:
        super().__init__(config)
        cfg: RemoteConfig = self.config  # type: ignore[assignment]
        self.uri = cfg.host if cfg.host.startswith(("ws://", "wss://")) else f"ws://{cfg.host}"
        if cfg.port is not None:
            self.uri += f":{cfg.port}"
        self.api_key = cfg.api_key or os.environ.get(API_KEY_ENV) or None
        self._ws: Any = None
        self._stack = contextlib.ExitStack()  # owns the open connection
        self._connected = False  # once: a later failure means the server is gone, not unreachable
        self.metadata: dict[str, Any] = {}
        self._retrying(lambda: None)  # connects, and reads the metadata
        self.extensions = self.metadata.get("server") == SERVER_NAME
        self.action_space = cfg.action_space or self.metadata.get("action_space") or EE_DELTA

    @classmethod
    def details(cls) -> dict[str, Any]:
        return {"server": "s2kit serve, or openpi's serve_policy.py (docs/serving.md)"}

    def setup(self, spec: RobotSpec) -> None:
        """Check that the robot has what the requests carry and the server expects."""
        super().setup(spec)
        cfg: RemoteConfig = self.config  # type: ignore[assignment]
        try:
            cfg.check(spec)
        except ConfigError as err:
            raise ConfigError(f"executor 'remote': {err}; set executor.images") from None
        self.dim = spec.action_space(self.action_space).dim
        # An s2kit server says what it reads and returns: a mismatch is clearer here than at the first request.
        served, where = self.metadata, f"executor 'remote': the server at {self.uri}"
        names = served.get("action_names")
        if isinstance(names, list) and len(names) != self.dim:
            raise ConfigError(
                f"{where} returns {len(names)} values per action ({served.get('action_space')}), "
                f"robot {spec.name!r} takes {self.dim} in {self.action_space!r}"
            )
        state = served.get("state_names")
        if isinstance(state, list) and state != list(spec.state_names):
            raise ConfigError(
                f"{where} reads the state of robot {served.get('robot')!r} ({len(state)} values), robot {spec.name!r} "
                f"gives {len(spec.state_names)} others; serve it with --robot {spec.name}"
            )
        images = served.get("images")
        if isinstance(images, dict) and set(images) != set(cfg.images):
            raise ConfigError(f"{where} reads the image keys {sorted(images)}, this executor sends {sorted(cfg.images)}; set executor.images")
        for ours, key in (("state", cfg.state), ("prompt", cfg.prompt)):
            if isinstance(served.get(ours), str) and served[ours] != key:
                raise ConfigError(f"{where} reads the {ours} as {served[ours]!r}, this executor sends {key!r}; set executor.{ours}")

    def act(self, observation: Observation, guidance: Guidance) -> ActionChunk:
        cfg: RemoteConfig = self.config  # type: ignore[assignment]
        request = packb(make_request(observation, guidance, cfg, extensions=self.extensions))
        reply = self._retrying(lambda: self._exchange(request))
        who = f"the policy server at {self.uri}"
        if isinstance(reply, str):
            raise PolicyServerError(f"{who} answered with an error: {reply}")
        try:
            message = unpackb(reply)
            if not isinstance(message, dict):
                raise ProtocolError(f"the reply is a {type(message).__name__}, not a map")
            if "error" in message:  # servers other than ours may answer a map with an error
                raise PolicyServerError(f"{who} answered with an error: {message['error']}")
            actions = check_actions(message.get("actions"), self.dim)
        except ProtocolError as err:
            raise PolicyServerError(f"{who} sent a bad reply: {err}") from None
        space = message.get("space", self.action_space)
        if space != self.action_space:
            raise PolicyServerError(f"{who} sent a chunk in {space!r}, expected {self.action_space!r}")
        info: dict[str, Any] = {"server_timing": message["server_timing"]} if isinstance(message.get("server_timing"), dict) else {}
        codes = message.get(CODES)
        if isinstance(codes, np.ndarray) and codes.dtype.kind == "f" and np.isfinite(codes).all():
            info[CODES] = codes.astype(np.float32)
        return ActionChunk(
            actions=actions, space=self.action_space, period=self.spec.control_period,
            subtask_done=bool(message.get("subtask_done", False)), info=info,
        )  # fmt: skip

    def close(self) -> None:
        self._ws = None
        self._stack.close()

    # --- the connection ---------------------------------------------------------------------

    def _connect(self) -> None:
        from websockets.sync.client import connect

        cfg: RemoteConfig = self.config  # type: ignore[assignment]
        headers = {"Authorization": f"Api-Key {self.api_key}"} if self.api_key else None
        with contextlib.ExitStack() as stack:  # closes the connection unless it is kept
            ws = stack.enter_context(connect(self.uri, additional_headers=headers, compression=None, max_size=None, open_timeout=cfg.timeout))
            first = ws.recv(timeout=cfg.timeout)
            try:
                metadata = unpackb(first) if isinstance(first, bytes) else first
            except ProtocolError as err:
                raise PolicyServerError(f"the server at {self.uri} is not a policy server: its first message is {err}") from None
            if not isinstance(metadata, dict):
                raise PolicyServerError(f"the server at {self.uri} is not a policy server: it sent {type(metadata).__name__} as its metadata, not a map")
            self._stack = stack.pop_all()
        self._ws, self.metadata, self._connected = ws, metadata, True

    def _exchange(self, request: bytes) -> bytes | str:
        self._ws.send(request)
        return self._ws.recv(timeout=self.config.timeout)  # type: ignore[attr-defined]

    def _retrying(self, call: Any) -> Any:
        """``call()`` on a live connection, reconnecting with backoff when it drops or times out."""
        from websockets.exceptions import (
            ConnectionClosed,
            InvalidHandshake,
            InvalidStatus,
        )

        cfg: RemoteConfig = self.config  # type: ignore[assignment]
        t0 = time.monotonic()
        for attempt in range(cfg.retries + 1):
            try:
                if self._ws is None:
                    self._connect()
                return call()
            except InvalidStatus as err:  # the handshake was answered: retrying will not change it
                status = err.response.status_code
                if status == 401:
                    key = "no API key was sent" if not self.api_key else "the API key was refused"
                    raise PolicyServerError(f"the policy server at {self.uri} refused the connection: {key} (executor.api_key or ${API_KEY_ENV})") from None
                raise PolicyServerError(f"the policy server at {self.uri} refused the connection: HTTP {status}") from None
            except (OSError, ConnectionClosed, InvalidHandshake) as err:  # TimeoutError is an OSError
                why = f"no answer within {cfg.timeout} s" if isinstance(err, TimeoutError) else f"{type(err).__name__}: {err}"
                self.close()  # a late reply must not answer the next request
            if attempt < cfg.retries:
                time.sleep(min(cfg.backoff * 2**attempt, 5.0))
        state = "is gone" if self._connected else "is unreachable"
        raise PolicyServerError(
            f"the policy server at {self.uri} {state} ({why}); gave up after {cfg.retries + 1} tries over "
            f"{time.monotonic() - t0:.1f} s (executor.retries, executor.backoff)"
        )


@hookimpl
def s2kit_executors() -> list[type[Executor]]:
    return [RemoteExecutor]
