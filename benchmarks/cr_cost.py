"""What Continuous Reasoning's thoughts cost: training samples/s and chunk latency of ``cr`` beside S2's, one thread.

The networks are the executors' defaults at the recipe that ships (the frozen EfficientNet-Lite0 trunk with its
features computed once, so a training step reads them from memory; flow head, rho 0.25): ``s2``; ``cr`` (4
thoughts of 16, one thought block, MMD, the EMA teacher's verification loss); ``cr`` without the verification loss
(its training step skips the teacher's decoder pass). Training: `encoders_heads.training_step` on one synthetic
batch of 64, the networks taken in turns. Latency: one chunk (batch 1, two 96x96 cameras) on torch eager and on ONNX
Runtime, the executor's own backends (the verification loss changes nothing at inference). Untrained networks:
timing does not depend on the weights.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/cr_cost.py [--steps 8] [--calls 30] [--json]
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from encoders_heads import BATCH, training_and_chunk_arguments, training_step
from executor_latency import interleaved, latency, print_rows, summary, untrained_checkpoint
from train_throughput import synthetic_batch

from s2kit.learning.batch import FEATURES, IMAGES
from s2kit.plugins.executors.cr.modeling import CrPolicy
from s2kit.plugins.executors.s2.modeling import S2Policy

RECIPE = {"stem": "efficientnet", "state_dim": 7, "action_dim": 7}
NETWORKS: dict[str, tuple[type[S2Policy], dict[str, object]]] = {
    "s2": (S2Policy, {}),
    "cr": (CrPolicy, {}),
    "cr, no verification": (CrPolicy, {"verify_weight": 0.0}),
}


def training_rates(steps: int, warmup: int) -> dict[str, float]:
    fns = {}
    for name, (policy, model) in NETWORKS.items():
        torch.manual_seed(0)
        net = policy(policy.config_class(**RECIPE, **model))  # type: ignore[arg-type]
        batch = synthetic_batch(net.config, BATCH)
        with torch.inference_mode():
            features = net.frozen_features(batch.pop(IMAGES).flatten(0, 1))
        batch[FEATURES] = features.half().view(BATCH, len(net.config.cameras), -1)  # as training keeps them
        fns[name] = training_step(net, batch)
    times = interleaved(fns, steps, warmup, block=2)
    return {name: BATCH / (summary(t)[0] / 1e3) for name, t in times.items()}


def main() -> None:
    args = training_and_chunk_arguments(__doc__.splitlines()[0], "network")
    rates = training_rates(args.steps, args.warmup)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (policy, model) in NETWORKS.items():
            folder = Path(tmp) / name.replace(" ", "_").replace(",", "")
            checkpoint = untrained_checkpoint(folder, policy, **RECIPE, **model)
            chunk = latency(checkpoint, folder / "graphs", [0.25], [1], args.calls, args.warmup)[0]
            rows.append({"network": name, "train_samples_per_s": rates[name], "torch_ms": chunk["torch_ms"], "onnxruntime_ms": chunk["onnxruntime_ms"]})
    columns = [("network", "network", "s"), ("training samples/s", "train_samples_per_s", ".0f"), ("chunk torch ms", "torch_ms", ".1f"),
               ("chunk onnxruntime ms", "onnxruntime_ms", ".1f")]  # fmt: skip
    print_rows(rows, columns, args.json)

if __name__ == "__main__":
    main()
