"""Round trip and throughput of ``s2kit serve``'s protocol, for 1 and for 4 clients at once.

The server (`PolicyServer`, in its own process) serves one of two executors:
``null`` returns a fixed chunk at once, so what is left is the protocol's own
cost; ``s2`` is the default S2 network (two 96x96 cameras, dim 128, 10 flow
steps; untrained, since timing does not depend on the weights) on torch, one
thread, as `benchmarks/executor_latency.py` builds it. Each client is its own
process running openpi-client's `WebsocketClientPolicy`, sending what openpi's
examples send: two uint8 images (224x224 by default), a 15-value state and a
prompt. Clients start together and send requests back to back.

    .venv/bin/python benchmarks/serve_latency.py [--executors null,s2] [--clients 1,4] [--requests 200] [--image-size 224] [--json]

Per request, from the client's clock and the reply's ``server_timing``:

* round trip: ``infer()`` called to reply unpacked, on the client;
* infer: the executor's ``act`` on the server; queue: waiting for the single
  inference worker (other clients' requests);
* transport: round trip minus ``server_ms`` (the server's time from receiving
  the request to the reply built): packing and unpacking at both ends and
  the websocket over loopback.

Throughput is replies per second over all clients, first request sent to
last reply received. Prints medians and p95s.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

STATE_DIM = 15  # the default S2 network's state input
PROMPT = "put the red block in the bowl"


def spec() -> Any:
    from s2kit.core.types import CameraSpec, RobotSpec, ee_delta_space

    return RobotSpec(
        name="bench",
        cameras=(CameraSpec(role="head"), CameraSpec(role="wrist")),
        state_names=tuple(f"s{i}" for i in range(STATE_DIM)),
        action_spaces=(ee_delta_space(),),
    )


def make_executor(kind: str, folder: Path) -> Any:
    from s2kit.core.interfaces import Executor
    from s2kit.core.types import ActionChunk

    if kind == "s2":
        sys.path.insert(0, str(Path(__file__).parent))
        from executor_latency import untrained_checkpoint

        from s2kit.plugins.executors.s2.executor import S2Config, S2Executor

        return S2Executor(S2Config(checkpoint=untrained_checkpoint(folder / "s2"), threads=1))

    class NullExecutor(Executor):
        """The same chunk at once: only the protocol is left to time."""

        name = "null"
        chunk = np.zeros((10, 7), dtype=np.float32)

        def act(self, observation: Any, guidance: Any) -> Any:
            return ActionChunk(actions=self.chunk, period=0.1)

    return NullExecutor()


def server_process(kind: str, ports: Any, stop: Any) -> None:
    from s2kit.plugins.executors.remote.server import PolicyServer

    with tempfile.TemporaryDirectory() as tmp:
        server = PolicyServer(make_executor(kind, Path(tmp)), spec(), port=0).start()
        ports.put(server.port)
        stop.wait()
        server.stop()


def client_process(port: int, requests: int, warmup: int, image_size: int, seed: int, barrier: Any, results: Any) -> None:
    import warnings

    warnings.filterwarnings("ignore", category=DeprecationWarning)  # openpi-client's pre-17 websockets call
    from openpi_client.websocket_client_policy import WebsocketClientPolicy

    rng = np.random.default_rng(seed)
    obs = {
        "observation/image": rng.integers(0, 256, (image_size, image_size, 3), dtype=np.uint8),
        "observation/wrist_image": rng.integers(0, 256, (image_size, image_size, 3), dtype=np.uint8),
        "observation/state": rng.standard_normal(STATE_DIM).astype(np.float32),
        "prompt": PROMPT,
    }
    policy = WebsocketClientPolicy(host="127.0.0.1", port=port)
    for _ in range(warmup):
        policy.infer(obs)
    barrier.wait()
    rows = []
    first = time.monotonic()
    for _ in range(requests):
        t = time.perf_counter()
        reply = policy.infer(obs)
        rtt = (time.perf_counter() - t) * 1e3
        timing = reply["server_timing"]
        rows.append((rtt, timing["infer_ms"], timing["queue_ms"], rtt - timing["server_ms"]))
    results.put((first, time.monotonic(), rows))


def measure(kind: str, clients: int, requests: int, warmup: int, image_size: int) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    ports, stop, results = ctx.Queue(), ctx.Event(), ctx.Queue()
    server = ctx.Process(target=server_process, args=(kind, ports, stop))
    server.start()
    try:
        port = ports.get(timeout=300)
        barrier = ctx.Barrier(clients)
        procs = [
            ctx.Process(target=client_process, args=(port, requests, warmup, image_size, i, barrier, results))
            for i in range(clients)
        ]
        for p in procs:
            p.start()
        outs = [results.get(timeout=600) for _ in procs]
        for p in procs:
            p.join()
    finally:
        stop.set()
        server.join(timeout=30)
    rows = np.array([row for _, _, r in outs for row in r])  # (requests, [rtt, infer, queue, transport])
    span = max(end for _, end, _ in outs) - min(start for start, _, _ in outs)
    p50, p95 = np.percentile(rows, 50, axis=0), np.percentile(rows, 95, axis=0)
    names = ("round_trip", "infer", "queue", "transport")
    return {
        "executor": kind,
        "clients": clients,
        **{f"{n}_p50_ms": float(v) for n, v in zip(names, p50)},
        **{f"{n}_p95_ms": float(v) for n, v in zip(names, p95)},
        "throughput_per_s": len(rows) / span,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--executors", default="null,s2", help="Comma-separated: null, s2.")
    parser.add_argument("--clients", default="1,4", help="Comma-separated client counts.")
    parser.add_argument("--requests", type=int, default=200, help="Timed requests per client.")
    parser.add_argument("--warmup", type=int, default=10, help="Untimed requests per client first.")
    parser.add_argument("--image-size", type=int, default=224, help="Side of each of the two images sent.")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    table = [
        measure(kind, int(n), args.requests, args.warmup, args.image_size)
        for kind in args.executors.split(",")
        for n in args.clients.split(",")
    ]
    meta = {"requests": args.requests, "image_size": args.image_size, "python": platform.python_version(),
            "machine": platform.machine(), "cpu_count": os.cpu_count(), "load": os.getloadavg()}  # fmt: skip
    if args.json:
        print(json.dumps({"results": table, **meta}, indent=2))
        return
    print(f"{args.requests} requests per client, two {args.image_size}x{args.image_size} images; ms p50 / p95")
    print(f"{'executor':8} {'clients':>7} {'round trip':>15} {'infer':>15} {'queue':>15} {'transport':>15} {'replies/s':>10}")
    for r in table:
        cells = [f"{r[f'{n}_p50_ms']:6.2f} / {r[f'{n}_p95_ms']:6.2f}" for n in ("round_trip", "infer", "queue", "transport")]
        print(f"{r['executor']:8} {r['clients']:>7} {cells[0]:>15} {cells[1]:>15} {cells[2]:>15} {cells[3]:>15} {r['throughput_per_s']:>10.1f}")


if __name__ == "__main__":
    main()
