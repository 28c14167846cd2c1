"""Serving an executor over openpi's websocket protocol, and the client side of it.

The protocol is openpi's (``openpi/serving/websocket_policy_server.py`` and
``openpi_client.websocket_client_policy``), so existing openpi robot clients
work unchanged:

* One websocket per client at ``ws://HOST:PORT``. A client with an API key
  sends the header ``Authorization: Api-Key KEY``; a server that requires a
  key refuses the handshake (HTTP 401) without it, before any inference.
* On connect the server sends its metadata, a msgpack map (see `metadata`).
* Then every binary message is an observation map and gets one reply: the
  action map, ``actions`` ``(H, D)`` float32 plus ``server_timing``
  (milliseconds: ``infer_ms`` in the executor, ``queue_ms`` waiting for it,
  ``server_ms`` from receiving the request until the reply is built, so a
  client's round trip minus it is transport; ``prev_total_ms`` the previous
  request's whole turn on the server, sending included, as openpi reports).
  An s2kit server adds ``space`` (the action space) and ``subtask_done``,
  and ``codes`` where the executor gives its chunk a latent code (float32
  array in ``ActionChunk.info["codes"]``, e.g. the thoughts of ``cr``), so
  another process can read what the chunk was decoded from.
* A request that cannot be served gets a text message saying why, as
  openpi's server does, and the connection stays open. openpi's client turns
  a text reply into ``RuntimeError("Error in inference server: ...")``.
* Plain HTTP ``GET /healthz`` answers 200 (no key needed: it tells nothing).

Messages are msgpack with numpy arrays as openpi encodes them (a map of
``__ndarray__``, ``data``, ``dtype``, ``shape``). The codec is written here
rather than imported from openpi-client, which pins NumPy below 2; decoding
checks every array (numeric dtype, data length matching the shape) since the
bytes come from the network.

Observation keys (`ObservationKeys`) map the request to an `Observation`:
openpi's examples send ``observation/image`` and ``observation/wrist_image``
(uint8 HxWx3; CxHxW is accepted too), ``observation/state`` and ``prompt``.
The prompt becomes ``Guidance(goal=prompt)``. An s2kit client adds two keys
(its extensions): ``guidance``, the full S2 guidance (goal, trajectory,
subtasks, current), and ``timestamp``, the robot's clock.

The server (`PolicyServer`) runs one asyncio event loop for every connection
and a single worker thread for inference: requests from several clients are
decoded and checked concurrently, and run through the executor one at a time
(an executor is one model with one state, not thread-safe).
"""

from __future__ import annotations

import hmac
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Self

import msgpack
import numpy as np
from pydantic import Field, ValidationError, model_validator

from s2kit import __version__
from s2kit.core.config import PluginConfig, describe_validation_error
from s2kit.core.errors import ConfigError, PluginError, S2kitError
from s2kit.core.interfaces import Executor
from s2kit.core.types import ActionChunk, Guidance, Observation, RobotSpec

if TYPE_CHECKING:  # asyncio and websockets load with the server, not with this module
    import asyncio

__all__ = [
    "CODES",
    "DEFAULT_MAX_BYTES",
    "GUIDANCE",
    "SERVER_NAME",
    "TIMESTAMP",
    "ObservationKeys",
    "PolicyServer",
    "PolicyServerError",
    "ProtocolError",
    "check_actions",
    "make_request",
    "packb",
    "parse_request",
    "served_spec",
    "unpackb",
]

log = logging.getLogger(__name__)

#: What the metadata's ``server`` entry says; an s2kit client sends its extensions only to such a server.
SERVER_NAME = "s2kit"
#: s2kit's extension keys in a request: the full guidance, the robot's clock.
GUIDANCE, TIMESTAMP = "guidance", "timestamp"
#: The key of a chunk's latent code, in ``ActionChunk.info`` and in a reply (an s2kit extension).
CODES = "codes"
#: Requests larger than this get an error reply (openpi's two 224x224 images and a state are about 0.3 MB).
DEFAULT_MAX_BYTES = 16 * 1024 * 1024
#: A request over this many times ``max_bytes`` is not read at all: the connection closes with 1009.
_UNREAD_FACTOR = 4


class ProtocolError(S2kitError, ValueError):
    """A message does not follow the protocol: not msgpack, a missing key, a wrong array."""


class PolicyServerError(S2kitError):
    """The policy server is unreachable, gone, refused us, or answered with an error."""


# --- msgpack with numpy arrays (openpi's encoding) -------------------------------------------

_NDARRAY, _NPGENERIC = b"__ndarray__", b"__npgeneric__"
_KINDS = "biuf"  # bool, signed and unsigned integers, floats: what a request or reply carries


def _pack(obj: Any) -> Any:
    if isinstance(obj, (np.ndarray, np.generic)) and obj.dtype.kind not in _KINDS:
        raise TypeError(f"cannot send an array of dtype {obj.dtype} (only bool, integer and float arrays)")
    if isinstance(obj, np.ndarray):
        return {_NDARRAY: True, b"data": obj.tobytes(), b"dtype": obj.dtype.str, b"shape": obj.shape}
    if isinstance(obj, np.generic):
        return {_NPGENERIC: True, b"data": obj.item(), b"dtype": obj.dtype.str}
    return obj


def _unpack(obj: dict[Any, Any]) -> Any:
    if _NDARRAY in obj:
        dtype, shape, data = _dtype(obj.get(b"dtype")), obj.get(b"shape"), obj.get(b"data")
        if not isinstance(shape, (list, tuple)) or not all(isinstance(n, int) and n >= 0 for n in shape):
            raise ProtocolError(f"array shape {shape!r} is not a list of non-negative integers")
        if not isinstance(data, bytes) or len(data) != math.prod(shape) * dtype.itemsize:
            size = len(data) if isinstance(data, bytes) else type(data).__name__
            raise ProtocolError(f"array of shape {tuple(shape)} and dtype {dtype} needs {math.prod(shape) * dtype.itemsize} bytes, got {size}")
        return np.frombuffer(data, dtype=dtype).reshape(shape)
    if _NPGENERIC in obj:
        try:
            return _dtype(obj.get(b"dtype")).type(obj.get(b"data"))
        except (TypeError, ValueError, OverflowError) as err:
            raise ProtocolError(f"bad numpy scalar: {err}") from None
    return obj


def _dtype(text: Any) -> np.dtype[Any]:
    try:
        dtype = np.dtype(text)
    except TypeError:
        raise ProtocolError(f"unknown array dtype {text!r}") from None
    if dtype.kind not in _KINDS:
        raise ProtocolError(f"array dtype {dtype} is not allowed (only bool, integer and float arrays)")
    return dtype


def packb(obj: Any) -> bytes:
    """``obj`` as msgpack, numpy arrays and scalars as openpi's msgpack_numpy encodes them."""
    return msgpack.packb(obj, default=_pack)


def unpackb(data: bytes) -> Any:
    """The value in a msgpack-numpy message; `ProtocolError` naming what is wrong with it."""
    try:
        return msgpack.unpackb(data, object_hook=_unpack)
    except ProtocolError:
        raise
    except (ValueError, TypeError, msgpack.UnpackException) as err:  # ExtraData, FormatError, StackError, bad UTF-8, ...
        raise ProtocolError(f"not a msgpack message ({type(err).__name__}: {err})") from None


# --- observation keys -------------------------------------------------------------------------


class ObservationKeys(PluginConfig):
    """Which request keys carry the camera images, the state and the prompt (openpi's names by default)."""

    images: dict[str, str] = Field(
        default_factory=lambda: {"observation/image": "head", "observation/wrist_image": "wrist"},
        description="Request key -> camera role. The robot's cameras not named here are not sent.",
    )
    state: str = Field("observation/state", description="Request key of the state vector (the robot spec's state_names, in order).")
    prompt: str = Field("prompt", description="Request key of the instruction (it becomes the guidance's goal).")

    @model_validator(mode="after")
    def _distinct(self) -> ObservationKeys:
        roles = list(self.images.values())
        twice = sorted({r for r in roles if roles.count(r) > 1})
        if twice:
            raise ValueError(f"camera role {twice[0]!r} is named by two image keys")
        keys = [*self.images, self.state, self.prompt, GUIDANCE, TIMESTAMP]
        clash = sorted({k for k in keys if keys.count(k) > 1})
        if clash:
            raise ValueError(f"key {clash[0]!r} is used twice (image keys, state, prompt, {GUIDANCE}, {TIMESTAMP} must differ)")
        return self

    def check(self, spec: RobotSpec) -> None:
        """ConfigError unless every image key names one of the robot's cameras."""
        roles = [c.role for c in spec.cameras]
        for key, role in self.images.items():
            if role not in roles:
                raise ConfigError(
                    f"image key {key!r} maps to camera {role!r}, which robot {spec.name!r} does not have "
                    f"(its cameras: {', '.join(roles) or 'none'})"
                )


def served_spec(spec: RobotSpec, keys: ObservationKeys) -> RobotSpec:
    """The robot's spec as a served executor sees it: only the cameras a request carries."""
    keys.check(spec)
    roles = set(keys.images.values())
    return spec.model_copy(update={"cameras": tuple(c for c in spec.cameras if c.role in roles)})


def make_request(observation: Observation, guidance: Guidance, keys: ObservationKeys, *, extensions: bool) -> dict[str, Any]:
    """The request a client sends for ``observation``: openpi's keys, and s2kit's extensions if asked."""
    request: dict[str, Any] = {key: np.ascontiguousarray(observation.images[role]) for key, role in keys.images.items()}
    request[keys.state] = np.asarray(observation.state, dtype=np.float32)
    request[keys.prompt] = guidance.goal
    if extensions:
        request[GUIDANCE] = guidance.model_dump(mode="json")
        request[TIMESTAMP] = float(observation.timestamp)
    return request


def parse_request(message: bytes | str, spec: RobotSpec, keys: ObservationKeys, max_bytes: int = DEFAULT_MAX_BYTES) -> tuple[Observation, Guidance]:
    """The observation and guidance in a request; `ProtocolError` naming the first thing wrong."""
    if isinstance(message, str):
        raise ProtocolError("a request must be a binary msgpack message, not text")
    if len(message) > max_bytes:
        raise ProtocolError(f"the request has {len(message)} bytes, over this server's limit of {max_bytes}")
    request = unpackb(message)
    if not isinstance(request, dict):
        raise ProtocolError(f"a request must be a map of observation keys, got {type(request).__name__}")

    images = {role: _image(request, key) for key, role in keys.images.items()}
    state = _state(request, keys.state, spec)
    guidance = _guidance(request, keys.prompt)
    timestamp = request.get(TIMESTAMP, None)
    if timestamp is None:
        timestamp = time.monotonic()
    elif not isinstance(timestamp, (int, float)) or isinstance(timestamp, bool) or not math.isfinite(timestamp):
        raise ProtocolError(f"{TIMESTAMP!r} must be a finite number of seconds, got {timestamp!r}")
    return Observation(images=images, state=state, timestamp=float(timestamp)), guidance


def _image(request: dict[str, Any], key: str) -> np.ndarray:
    value = request.get(key)
    if value is None:
        raise ProtocolError(f"missing {key!r} (a camera image)")
    if not isinstance(value, np.ndarray) or value.dtype != np.uint8 or value.ndim != 3 or 3 not in (value.shape[0], value.shape[-1]):
        what = f"{value.dtype} array of shape {value.shape}" if isinstance(value, np.ndarray) else type(value).__name__
        raise ProtocolError(f"{key!r} must be a uint8 image of shape (H, W, 3) or (3, H, W), got a {what}")
    if value.shape[-1] != 3:  # (3, H, W): channel-first, as openpi's ALOHA example sends its images
        value = value.transpose(1, 2, 0)
    if 0 in value.shape[:2]:  # no pixel to see: an executor would divide by its size
        raise ProtocolError(f"{key!r} is an empty image ({value.shape[0]}x{value.shape[1]} pixels)")
    return np.ascontiguousarray(value)


def _state(request: dict[str, Any], key: str, spec: RobotSpec) -> np.ndarray:
    value = request.get(key)
    n = len(spec.state_names)
    expected = f"{n} values ({', '.join(spec.state_names[:3])}{', ...' if n > 3 else ''})" if n else "a vector"
    if value is None:
        raise ProtocolError(f"missing {key!r} (the robot state: {expected})")
    if isinstance(value, (list, tuple)):
        value = np.asarray(value) if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value) else None
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "iuf" or value.ndim != 1 or (n and value.shape[0] != n):
        what = f"{value.dtype} array of shape {value.shape}" if isinstance(value, np.ndarray) else type(request[key]).__name__
        raise ProtocolError(f"{key!r} must be {expected} for robot {spec.name!r}, got a {what}")
    state = value.astype(np.float32)
    if not np.isfinite(state).all():
        raise ProtocolError(f"{key!r} has non-finite values at {np.flatnonzero(~np.isfinite(state)).tolist()}")
    return state


def _guidance(request: dict[str, Any], key: str) -> Guidance:
    prompt, full = request.get(key), request.get(GUIDANCE)
    if prompt is not None and not isinstance(prompt, str):
        raise ProtocolError(f"{key!r} must be text (the instruction), got {type(prompt).__name__}")
    if full is None:
        if not prompt:
            raise ProtocolError(f"missing {key!r} (the instruction)")
        return Guidance(goal=prompt)
    if not isinstance(full, dict):
        raise ProtocolError(f"{GUIDANCE!r} must be a map (goal, trajectory, subtasks, current), got {type(full).__name__}")
    try:
        guidance = Guidance.model_validate(full)
    except ValidationError as err:
        raise ProtocolError(f"{GUIDANCE!r}: {describe_validation_error(err, Guidance)}") from None
    if prompt and prompt != guidance.goal:
        raise ProtocolError(f"{key!r} ({prompt!r}) and {GUIDANCE}.goal ({guidance.goal!r}) differ: the goal is the instruction")
    return guidance


def check_actions(actions: Any, dim: int) -> np.ndarray:
    """``actions`` as float32 ``(H, dim)``, finite; `ProtocolError` saying what is wrong otherwise.

    The server checks what its executor returns, a client what a server sends:
    a non-finite or misshapen chunk never crosses the network or reaches a robot.
    """
    if not isinstance(actions, np.ndarray) or actions.dtype.kind not in "iuf":
        what = f"a {actions.dtype} array" if isinstance(actions, np.ndarray) else type(actions).__name__
        raise ProtocolError(f"actions must be a numeric array, got {what}")
    if actions.ndim != 2 or actions.shape[0] < 1 or actions.shape[1] != dim:
        raise ProtocolError(f"actions have shape {actions.shape}, expected (H, {dim})")
    actions = actions.astype(np.float32)
    if not np.isfinite(actions).all():
        rows = sorted({int(i) for i in np.argwhere(~np.isfinite(actions))[:, 0]})
        raise ProtocolError(f"non-finite actions in rows {rows}")
    return actions


# --- the server -------------------------------------------------------------------------------


class PolicyServer:
    """An `Executor` behind openpi's websocket protocol.

    The executor is set up with ``spec`` as `served_spec` narrows it, and
    tried once on a blank observation before the server listens: the first
    request does not pay for loading, the metadata can say how long a chunk
    is, and an executor that cannot run on what crosses the network (a
    privileged one, which reads simulator state) is refused here, not at the
    first request (see `_warm_up`). Every client shares the executor, reset
    once at start.

    Run it with `serve_forever` (blocks until Ctrl-C or SIGTERM) or `start` /
    `stop` (a background thread; also a context manager).
    """

    def __init__(
        self,
        executor: Executor,
        spec: RobotSpec,
        *,
        keys: ObservationKeys | None = None,
        host: str = "127.0.0.1",
        port: int = 8000,
        api_key: str | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        if max_bytes < 1:
            raise ConfigError(f"max_bytes must be positive, got {max_bytes}")
        self.executor = executor
        self.keys = keys or ObservationKeys()
        self.spec = served_spec(spec, self.keys)
        try:
            self.space = self.spec.action_space(executor.action_space)
        except ValueError as err:
            raise ConfigError(f"executor {executor.name!r} emits {executor.action_space!r}, but {err}") from None
        self.host, self.port = host, port
        self.api_key = api_key or None
        self.max_bytes = max_bytes
        executor.setup(self.spec)
        self.horizon = self._warm_up()
        self.metadata = {**self._metadata(), **(metadata or {})}
        self._packed_metadata = packb(self.metadata)
        self._pool: ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    # --- what clients are told --------------------------------------------------------------

    def _metadata(self) -> dict[str, Any]:
        """Sent on connect: what the executor needs and returns, in the request's own key names."""
        return {
            "server": SERVER_NAME,
            "version": __version__,
            "executor": self.executor.name,
            "robot": self.spec.name,
            "action_space": self.space.name,
            "action_names": list(self.space.names),
            "action_horizon": self.horizon,
            "control_hz": self.spec.control_hz,
            "images": {key: {"role": role, **self._camera(role)} for key, role in self.keys.images.items()},
            "state": self.keys.state,
            "state_names": list(self.spec.state_names),
            "prompt": self.keys.prompt,
            "extensions": [GUIDANCE, TIMESTAMP],
            "max_bytes": self.max_bytes,
        }

    def _camera(self, role: str) -> dict[str, int]:
        camera = next(c for c in self.spec.cameras if c.role == role)
        return {"height": camera.height, "width": camera.width}

    def _warm_up(self) -> int | None:
        """Run the executor once on a blank observation; the chunk length it returns (None: unknown).

        An executor that refuses with an s2kit error (a privileged one: it needs simulator
        state) cannot be served. One that fails otherwise may only dislike the blank input
        (a goal with no subtasks to read, say): it is served, with a warning.
        """
        blank = Observation(
            images={c.role: np.zeros((c.height, c.width, 3), dtype=np.uint8) for c in self.spec.cameras},
            state=np.zeros(len(self.spec.state_names), dtype=np.float32),
        )
        name = self.executor.name
        try:
            self.executor.reset()
            return int(self._act(blank, Guidance(goal="warm up"))[0].shape[0])
        except S2kitError as err:
            raise PluginError(
                f"executor {name!r} cannot be served: on a blank observation it said: {err}; "
                "a served executor sees only what a request carries (images, state, guidance)"
            ) from err
        except Exception as err:  # noqa: BLE001 - reported; real requests may well work
            log.warning("executor %r failed on a blank observation (%s: %s); serving it anyway", name, type(err).__name__, err)
            return None
        finally:
            self.executor.reset()

    # --- serving ----------------------------------------------------------------------------

    @property
    def address(self) -> str:
        """``host:port`` (an IPv6 host in brackets)."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"ws://{self.address}"

    def serve_forever(self, on_ready: Callable[[PolicyServer], None] | None = None) -> None:
        """Serve until SIGINT (Ctrl-C) or SIGTERM, then close every connection and return."""
        import asyncio

        asyncio.run(self._main(lambda: on_ready(self) if on_ready else None, signals=True))

    def start(self, timeout: float = 30.0) -> Self:
        """Serve on a background thread; returns once listening (``port`` 0 becomes the port chosen)."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            import asyncio

            try:
                asyncio.run(self._main(ready.set))
            except BaseException as err:  # noqa: BLE001 - handed to start(), which raises it
                failure.append(err)
                ready.set()

        self._thread = threading.Thread(target=run, name="s2kit-serve", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise PolicyServerError(f"the server did not start listening on {self.host}:{self.port} within {timeout} s")
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        """Close every connection and stop serving (the `start` thread ends). Safe to call twice."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start() if self._thread is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _main(self, on_ready: Callable[[], object], signals: bool = False) -> None:
        import asyncio
        import signal

        from websockets.asyncio.server import serve

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        if signals:  # a stop request, not an exception: connections close, the caller's cleanup runs
            for number in (signal.SIGINT, signal.SIGTERM):
                self._loop.add_signal_handler(number, self._stop.set)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="s2kit-infer")
        try:
            server = await serve(
                self._handle, self.host, self.port, process_request=self._admit, compression=None,
                max_size=self.max_bytes * _UNREAD_FACTOR,
            )  # fmt: skip
        except OSError as err:
            self._pool.shutdown(wait=False)
            raise PolicyServerError(f"cannot listen on {self.host}:{self.port}: {err.strerror or err}") from None
        try:
            async with server:
                self.port = server.sockets[0].getsockname()[1]
                on_ready()
                await self._stop.wait()
        finally:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def _admit(self, connection: Any, request: Any) -> Any:
        """Before the handshake: answer /healthz, refuse a missing or wrong API key."""
        if request.path == "/healthz":
            return connection.respond(HTTPStatus.OK, "OK\n")
        if self.api_key is not None:
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Api-Key {self.api_key}".encode()):
                log.warning("refused a connection from %s: %s API key", _peer(connection), "wrong" if given else "no")
                return connection.respond(HTTPStatus.UNAUTHORIZED, "missing or wrong API key (send 'Authorization: Api-Key KEY')\n")
        return None

    async def _handle(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        peer = _peer(ws)
        loop = self._loop
        assert loop is not None  # set by _main before the server listens
        log.info("%s connected", peer)
        previous: float | None = None
        try:
            await ws.send(self._packed_metadata)
            async for message in ws:
                received = time.perf_counter()
                try:
                    observation, guidance = parse_request(message, self.spec, self.keys, self.max_bytes)
                except ProtocolError as err:
                    log.warning("%s: bad request: %s", peer, err)
                    await ws.send(f"bad request: {err}")
                    continue
                queued = time.perf_counter()
                try:
                    actions, chunk, started, finished = await loop.run_in_executor(self._pool, self._act, observation, guidance)
                except Exception as err:  # noqa: BLE001 - a failing request must not stop the server
                    why = str(err) if isinstance(err, S2kitError) else f"{type(err).__name__}: {err}"
                    log.warning("%s: executor %r failed: %s", peer, self.executor.name, why)
                    await ws.send(f"executor {self.executor.name!r} failed: {why}")
                    continue
                timing = {"infer_ms": (finished - started) * 1e3, "queue_ms": (started - queued) * 1e3}
                if previous is not None:
                    timing["prev_total_ms"] = previous * 1e3
                reply = {"actions": actions, "space": chunk.space, "subtask_done": bool(chunk.subtask_done), "server_timing": timing}
                codes = chunk.info.get(CODES)
                if isinstance(codes, np.ndarray) and codes.dtype == np.float32 and np.isfinite(codes).all():
                    reply[CODES] = codes
                timing["server_ms"] = (time.perf_counter() - received) * 1e3
                await ws.send(packb(reply))
                previous = time.perf_counter() - received
        except ConnectionClosed:
            pass
        finally:
            sent = ws.protocol.close_sent  # what this side said when closing, if it closed first
            if sent is not None and sent.code == 1009:  # a request too large to read
                log.warning("%s: closed the connection: a request over %d bytes", peer, self.max_bytes * _UNREAD_FACTOR)
            else:  # openpi's client never closes cleanly (1006): no warning for that
                log.info("%s disconnected (%s)", peer, ws.close_code)

    def _act(self, observation: Observation, guidance: Guidance) -> tuple[np.ndarray, ActionChunk, float, float]:
        """One chunk from the executor, checked (runs on the single inference worker)."""
        started = time.perf_counter()
        chunk = self.executor.act(observation, guidance)
        finished = time.perf_counter()
        if not isinstance(chunk, ActionChunk):
            raise PluginError(f"it returned {type(chunk).__name__}, not an ActionChunk")
        if chunk.space != self.space.name:
            raise PluginError(f"it returned a chunk in {chunk.space!r}, declared {self.space.name!r}")
        return check_actions(chunk.actions, self.space.dim), chunk, started, finished


def _peer(connection: Any) -> str:
    address = getattr(connection, "remote_address", None)
    return f"client {address[0]}:{address[1]}" if isinstance(address, tuple) and len(address) >= 2 else "a client"
