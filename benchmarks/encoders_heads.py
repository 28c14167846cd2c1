"""Training samples/s and chunk latency of S2 per image encoder and per action head, one thread.

Encoders: the patch stem; the EfficientNet-Lite0 trunk (11 blocks) frozen, its
features computed once before training (`Policy.frozen_features`, what
``s2kit train`` does with ``augment=false``), so a step reads them from
memory; the same trunk frozen but run on every batch (augmentation on); the
trunk fine-tuned. Heads: regression (one decoder pass), flow matching
(``flow_steps`` Euler passes), diffusion (``ddim_steps`` DDIM passes).

Training: the step `s2kit train` takes (S2 at its target rho 0.25, loss,
backward, clipping, AdamW) on one fixed synthetic batch of 64, the columns of
one head taken in turns (`executor_latency.interleaved`). Latency: one chunk
(batch 1, two 96x96 cameras, rho 0.25) on torch eager and on ONNX Runtime, the
executor's own backends, fed the same inputs; untrained networks (timing does
not depend on the weights).

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/encoders_heads.py [--steps 8] [--calls 30] [--json]
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from executor_latency import interleaved, latency, print_rows, summary, untrained_checkpoint
from train_throughput import synthetic_batch

from s2kit.learning.batch import FEATURES, IMAGES
from s2kit.plugins.executors.s2.configuration import ModelConfig
from s2kit.plugins.executors.s2.modeling import S2Policy

ENCODERS = {
    "patch stem": ({"stem": "patch"}, False),
    "trunk, frozen, features once": ({"stem": "efficientnet", "trunk_frozen": True}, True),
    "trunk, frozen, every batch": ({"stem": "efficientnet", "trunk_frozen": True}, False),
    "trunk, fine-tuned": ({"stem": "efficientnet", "trunk_frozen": False}, False),
}
HEADS = ("regression", "flow", "diffusion")
BATCH = 64


def training_step(net: torch.nn.Module, batch: dict[str, torch.Tensor]) -> Callable[[], None]:
    """One step as `s2kit train` takes it (loss at the end of the rho schedule, backward, clipping, AdamW) on ``batch``,
    the parameters the network's loss never reads frozen."""
    net.train()
    unused = set(net.unused_parameters())
    for key, parameter in net.named_parameters():
        parameter.requires_grad_(key not in unused)
    optimizer = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=3e-4)
    schedule = net.schedule(1, 1)

    def step() -> None:
        losses = net.loss(batch, **schedule)
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimizer.step()

    return step


def training_steps(head: str, steps: int, warmup: int) -> dict[str, float]:
    """Samples per second of each encoder with ``head``."""
    fns = {}
    for name, (model, precomputed) in ENCODERS.items():
        torch.manual_seed(0)
        config = ModelConfig(head=head, state_dim=7, action_dim=7, **model)  # type: ignore[arg-type]
        net = S2Policy(config)
        batch = synthetic_batch(config, BATCH)
        if precomputed:
            with torch.inference_mode():
                features = net.frozen_features(batch[IMAGES].flatten(0, 1))
            batch[FEATURES] = features.half().view(BATCH, len(config.cameras), -1)  # as training keeps them
            del batch[IMAGES]
        fns[name] = training_step(net, batch)
    times = interleaved(fns, steps, warmup, block=2)
    return {name: BATCH / (summary(t)[0] / 1e3) for name, t in times.items()}


def chunk_latency(head: str, calls: int, warmup: int, folder: Path) -> dict[str, tuple[float, float]]:
    """(torch, onnxruntime) median ms per chunk of each network (the trunk's graph is the same frozen or not)."""
    out = {}
    for name, (model, precomputed) in ENCODERS.items():
        if precomputed or name == "trunk, frozen, every batch":
            continue  # inference always runs the trunk: the same network as fine-tuned
        checkpoint = untrained_checkpoint(folder / f"{head}-{model['stem']}", head=head, **{k: v for k, v in model.items() if k != "trunk_frozen"})
        row = latency(checkpoint, folder / f"{head}-{model['stem']}-graphs", [0.25], [1], calls, warmup)[0]
        out["patch stem" if model["stem"] == "patch" else "trunk"] = (row["torch_ms"], row["onnxruntime_ms"])
    return out


def training_and_chunk_arguments(description: str, trained: str) -> argparse.Namespace:
    """The command line of a benchmark of training steps and chunks on one thread (set here): --steps per ``trained``,
    --calls, --warmup, --json."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--steps", type=int, default=8, help=f"Timed training steps per {trained}.")
    parser.add_argument("--calls", type=int, default=30, help="Timed chunks per network and backend.")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    return args


def main() -> None:
    args = training_and_chunk_arguments(__doc__.splitlines()[0], "encoder and head")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for head in HEADS:
            rates = training_steps(head, args.steps, args.warmup)
            chunks = chunk_latency(head, args.calls, args.warmup, Path(tmp))
            for name, rate in rates.items():
                ms = chunks["patch stem" if name == "patch stem" else "trunk"]
                rows.append({"head": head, "encoder": name, "train_samples_per_s": rate, "torch_ms": ms[0], "onnxruntime_ms": ms[1]})
    columns = [("head", "head", "s"), ("encoder", "encoder", "s"), ("training samples/s", "train_samples_per_s", ".0f"),
               ("chunk torch ms", "torch_ms", ".1f"), ("chunk onnxruntime ms", "onnxruntime_ms", ".1f")]  # fmt: skip
    print_rows(rows, columns, args.json)

if __name__ == "__main__":
    main()
