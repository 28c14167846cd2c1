"""Latency of one S2 action chunk: torch eager next to ONNX Runtime, over the evidence budget.

One chunk is what the executor computes per call: the encoder once, then
``flow_steps`` decoder passes (Euler; one pass with the regression head),
batch 1, two 96x96 cameras. Both
backends are the executor's own (`TorchBackend`, `OnnxBackend`), fed the same
inputs; the ONNX graphs are written by `export_onnx`, one per rho (k is baked
into a graph). Without ``--checkpoint`` the network is the default
`ModelConfig` (dim 128, 3 encoder and 2 decoder layers, 10 flow steps),
untrained: timing does not depend on the weights.

    .venv/bin/python benchmarks/executor_latency.py [--checkpoint RUN] [--calls 50] [--threads 1,2] [--batch 1] [--profile] [--json]

Prints median and p90 milliseconds per chunk after warm-up. ``--batch N``
times one call that computes N chunks (N robots served by one network), and
reports milliseconds per call: at batch 1 a chunk of this small network is
mostly per-operation overhead, which no budget removes; with a larger batch
the arithmetic, which the budget cuts, dominates. Goals: ONNX
Runtime >= 1.5x faster than torch eager; rho 0.25 >= 1.5x faster than rho
1.0; a chunk in under 20 ms on a 2-core machine. ``--profile`` splits a chunk
into the encoder and one decoder pass (torch: timed directly; ONNX Runtime,
flow head only: from graphs with 1 and with ``flow_steps`` decoder passes,
same weights). The regression head makes one decoder pass per chunk.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from s2kit.learning.checkpoints import (
    CheckpointInfo,
    load_policy,
    read_info,
    save_checkpoint,
)
from s2kit.learning.batch import IMAGES, NOISE, STATE, TEXT
from s2kit.learning.executor import TorchBackend
from s2kit.learning.export import OnnxBackend, export_onnx, random_inputs
from s2kit.plugins.executors.s2.modeling import S2Policy

RHOS = (1.0, 0.5, 0.25, 0.1)


def untrained_checkpoint(folder: Path, policy: type[S2Policy] = S2Policy, **model: object) -> Path:
    """The default network of ``policy`` (S2's, or a subclass such as cr's), freshly initialized, as a checkpoint of a
    7-D action robot."""
    torch.manual_seed(0)
    config = policy.config_class(**model)  # type: ignore[arg-type]
    names = [f"s{i}" for i in range(config.state_dim)]
    executor = ("s2" if config.budget else "baseline") if policy is S2Policy else policy.__module__.split(".")[-2]
    info = CheckpointInfo(
        executor=executor,
        variant="s2" if config.budget else "baseline",
        model=config,
        normalization={
            "state_mean": [0.0] * config.state_dim,
            "state_std": [1.0] * config.state_dim,
            "action_mean": [0.0] * config.action_dim,
            "action_std": [1.0] * config.action_dim,
        },
        state_names=names,
        action_names=[f"a{i}" for i in range(config.action_dim)],
        control_hz=10.0,
    )
    return save_checkpoint(folder, policy(config).eval(), info)


def timed(fn: Callable[[], object], calls: int, warmup: int) -> tuple[float, float]:
    """(median, p90) milliseconds of ``fn`` after ``warmup`` calls."""
    return summary(interleaved({None: fn}, calls, warmup, block=calls)[None])


def interleaved(
    fns: dict[Any, Callable[[], object]], calls: int, warmup: int, block: int = 10
) -> dict[Any, list[float]]:
    """Milliseconds of ``calls`` calls of each function, taken in turns, ``block`` calls at a time.

    In turns rather than one function after the other, so that a change in the
    machine's load (other processes) weighs on every function alike; in blocks,
    each after one untimed call, so that one backend's idle thread pool (ONNX
    Runtime's threads spin after a run) does not slow the next one down.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[Any, list[float]] = {key: [] for key in fns}
    while any(len(t) < calls for t in times.values()):
        for key, fn in fns.items():
            if block > 1:
                fn()
            for _ in range(min(block, calls - len(times[key]))):
                start = time.perf_counter()
                fn()
                times[key].append((time.perf_counter() - start) * 1e3)
    return times


def summary(times: list[float]) -> tuple[float, float]:
    return statistics.median(times), float(np.percentile(times, 90))


def latency(
    checkpoint: Path,
    graphs: Path,
    rhos: list[float],
    threads: list[int],
    calls: int,
    warmup: int,
    batch: int = 1,
) -> list[dict[str, object]]:
    info = read_info(checkpoint)
    model = info.model
    inputs = {k: np.repeat(x, batch, axis=0) for k, x in random_inputs(model, 1)[0].items()}
    rhos = rhos if model.budget else [1.0]
    for rho in rhos:
        export_onnx(
            checkpoint,
            graphs / f"rho_{rho}.onnx",
            rho=rho if model.budget else None,
            dynamic_batch=batch > 1,
            check=False,
        )
    rows = []
    for n in threads:
        torch.set_num_threads(n)
        on_torch = TorchBackend(checkpoint, n)
        fns: dict[Any, Callable[[], object]] = {}
        for rho in rhos:
            on_ort = OnnxBackend(graphs / f"rho_{rho}.onnx", n)
            fns["torch", rho] = lambda b=on_torch, r=rho: b(inputs, {"rho": r})
            fns["onnxruntime", rho] = lambda b=on_ort, r=rho: b(inputs, {"rho": r})
        times = interleaved(fns, calls, warmup)
        for rho in rhos:
            (t_med, t_p90), (o_med, o_p90) = (
                summary(times["torch", rho]),
                summary(times["onnxruntime", rho]),
            )
            rows.append(
                {
                    "rho": rho,
                    "kept": model.kept(rho),
                    "threads": n,
                    "batch": batch,
                    "torch_ms": t_med,
                    "torch_p90_ms": t_p90,
                    "onnxruntime_ms": o_med,
                    "onnxruntime_p90_ms": o_p90,
                    "speedup": t_med / o_med,
                }
            )
    return rows


def profile(
    checkpoint: Path, graphs: Path, rho: float, threads: int, calls: int, warmup: int
) -> dict[str, float]:
    """Milliseconds of the encoder and of one decoder pass, on each backend."""
    torch.set_num_threads(threads)
    policy, info, _ = load_policy(checkpoint)
    model = info.model
    inputs = random_inputs(model, 1)[0]
    batch = {k: torch.from_numpy(inputs[k]) for k in (IMAGES, STATE, TEXT)}
    with torch.inference_mode():
        memory, bias, _ = policy.encode(batch, rho)
        x, t = torch.from_numpy(inputs[NOISE]), torch.ones(1)
        encoder = timed(lambda: policy.encode(batch, rho), calls, warmup)[0]
        decoder = timed(lambda: policy.decode(memory, bias, x, t), calls, warmup)[0]
    passes = model.decoder_passes
    if passes == 1:  # the regression head: one decoder pass, nothing to tell the graph's parts apart by
        return {"rho": rho, "threads": threads, "decoder_passes": 1, "torch_encoder_ms": encoder, "torch_decoder_pass_ms": decoder}
    # ONNX Runtime: the same weights with a single decoder pass; the difference is (steps - 1) passes
    single_config = model.model_copy(update={"flow_steps": 1})
    twin = S2Policy(single_config)
    twin.load_state_dict(policy.state_dict())
    one_step = save_checkpoint(
        graphs / "one_step",
        twin.eval(),
        info.model_copy(update={"model": single_config}),
    )
    full, single = graphs / "profile_full.onnx", graphs / "profile_one.onnx"
    graph_rho = rho if model.budget else None
    export_onnx(checkpoint, full, rho=graph_rho, check=False)
    export_onnx(one_step, single, rho=graph_rho, check=False)
    on_full, on_single = OnnxBackend(full, threads), OnnxBackend(single, threads)
    t_full = timed(lambda: on_full(inputs, {"rho": rho}), calls, warmup)[0]
    t_one = timed(lambda: on_single(inputs, {"rho": rho}), calls, warmup)[0]
    per_step = (t_full - t_one) / max(1, model.flow_steps - 1)
    return {
        "rho": rho,
        "threads": threads,
        "decoder_passes": passes,
        "torch_encoder_ms": encoder,
        "torch_decoder_pass_ms": decoder,
        "onnxruntime_encoder_ms": t_one - per_step,
        "onnxruntime_decoder_pass_ms": per_step,
    }


def machine_info() -> dict[str, object]:
    """What the figures were measured on, with the load other processes put on it."""
    return {
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "load_average_1min": round(os.getloadavg()[0], 2),
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "(default)"),
    }


def print_rows(rows: list[dict[str, Any]], columns: list[tuple[str, str, str]], as_json: bool) -> None:
    """``rows`` with the machine they were measured on: as JSON, or as a markdown table of ``columns`` (header, key,
    format spec)."""
    if as_json:
        print(json.dumps({"machine": machine_info(), "rows": rows}, indent=2))
        return
    print(f"machine: {machine_info()}")
    print("| " + " | ".join(header for header, _, _ in columns) + " |")
    print("|" + " --- |" * len(columns))
    for row in rows:
        print("| " + " | ".join(format(row[key], spec) for _, key, spec in columns) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--checkpoint",
        type=Path,
        help="A checkpoint or run; default: the default network, untrained.",
    )
    parser.add_argument(
        "--rhos",
        default=",".join(map(str, RHOS)),
        help="Keep-fractions, comma-separated.",
    )
    parser.add_argument(
        "--threads", default="1,2", help="Thread counts, comma-separated."
    )
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument(
        "--batch", type=int, default=1, help="Chunks per call (observations batched)."
    )
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument(
        "--profile",
        action="store_true",
        help="Also split a chunk into encoder and decoder passes (rho 0.25).",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rhos = [float(r) for r in args.rhos.split(",")]
    threads = [int(t) for t in args.threads.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        checkpoint = args.checkpoint or untrained_checkpoint(root / "checkpoint")
        rows = latency(
            checkpoint, root, rhos, threads, args.calls, args.warmup, args.batch
        )
        profiles = (
            [
                profile(checkpoint, root, 0.25, n, args.calls, args.warmup)
                for n in threads
            ]
            if args.profile
            else []
        )
    goals = _goals(rows)
    machine = machine_info()
    if args.json:
        print(
            json.dumps(
                {"machine": machine, "rows": rows, "profile": profiles, "goals": goals},
                indent=2,
            )
        )
        return
    print(
        f"{machine}\nmilliseconds per call of {args.batch} chunk(s) (median / p90 over {args.calls} calls after {args.warmup} warm-up)"
    )
    print(
        f"{'rho':>5} {'k':>4} {'thr':>3} | {'torch':>15} | {'onnxruntime':>15} | {'speedup':>7}"
    )
    for r in rows:
        print(
            f"{r['rho']:>5} {r['kept']:>4} {r['threads']:>3} | {r['torch_ms']:6.2f} / {r['torch_p90_ms']:6.2f} | "
            f"{r['onnxruntime_ms']:6.2f} / {r['onnxruntime_p90_ms']:6.2f} | {r['speedup']:6.2f}x"
        )
    for p in profiles:
        line = (
            f"profile rho {p['rho']}, {p['threads']} thread(s): torch encoder {p['torch_encoder_ms']:.2f} ms + "
            f"{p['decoder_passes']} x decoder {p['torch_decoder_pass_ms']:.2f} ms"
        )
        if "onnxruntime_encoder_ms" in p:
            line += (
                f"; onnxruntime encoder {p['onnxruntime_encoder_ms']:.2f} ms + "
                f"{p['decoder_passes']} x decoder {p['onnxruntime_decoder_pass_ms']:.2f} ms"
            )
        print(line)
    for goal, (value, met) in goals.items():
        print(f"{'met ' if met else 'MISS'} {goal}: {value}")


def _goals(rows: list[dict[str, object]]) -> dict[str, tuple[str, bool]]:
    """Each goal: the worst case over thread counts (and rhos), and whether it is met."""
    out: dict[str, tuple[str, bool]] = {}
    speedups = [float(r["speedup"]) for r in rows]  # type: ignore[arg-type]
    out["onnxruntime >= 1.5x torch eager"] = (
        f"{min(speedups):.2f}x to {max(speedups):.2f}x",
        min(speedups) >= 1.5,
    )
    by = {(r["rho"], r["threads"]): r for r in rows}
    for backend in ("torch", "onnxruntime"):
        ratios = [
            float(by[1.0, n][f"{backend}_ms"]) / float(by[0.25, n][f"{backend}_ms"])  # type: ignore[arg-type]
            for (rho, n) in by
            if rho == 0.25 and (1.0, n) in by
        ]
        if ratios:
            out[f"{backend}: rho 0.25 >= 1.5x faster than rho 1.0"] = (
                ", ".join(f"{x:.2f}x" for x in ratios),
                min(ratios) >= 1.5,
            )
    fastest = min(float(r["onnxruntime_ms"]) for r in rows)  # type: ignore[arg-type]
    slowest = max(float(r["onnxruntime_ms"]) for r in rows)  # type: ignore[arg-type]
    batch = int(rows[0].get("batch", 1))  # type: ignore[call-overload]
    out["onnxruntime chunk < 20 ms" if batch == 1 else f"onnxruntime call of {batch} chunks < 20 ms"] = (
        f"{fastest:.2f} to {slowest:.2f} ms",
        slowest < 20.0,
    )
    return out


if __name__ == "__main__":
    main()
