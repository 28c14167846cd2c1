"""Training throughput of the S2 network: samples per second of one optimization step.

A step is what `s2kit train` does per batch: `S2Policy.loss` (training mode,
the ranking noise on), backward, gradient clipping, an AdamW step; batch 64
of synthetic samples (random images, state, guidance embeddings and actions:
the cost does not depend on the values), the default `ModelConfig` (two 96x96
cameras) unless ``--model KEY=VALUE`` changes it (e.g. the experiments' recipe:
``--model head=regression --model focus_map=1 --model focus_input=true --model keep_prior=10``).
Variants: ``s2`` at its target rho 0.25 (the end of the rho
annealing; early steps run near rho 1, like the baseline's patch count) and
``baseline`` (every patch, the goal only). Data loading is not included.
``--device cuda`` times the step on a GPU (the batch already there, each step
waited for), as `s2kit train --set device=cuda` runs it.

    .venv/bin/python benchmarks/train_throughput.py [--steps 8] [--warmup 2] [--threads 1,2] [--batch 64] [--device cpu] [--model KEY=VALUE ...] [--json]

Steps of the variants are taken in turns (see `executor_latency.interleaved`),
so a change in the machine's load weighs on both alike.
"""

from __future__ import annotations

import argparse
import json

import torch
from executor_latency import interleaved, machine_info, summary

from s2kit.plugins.executors.s2.configuration import ModelConfig
from s2kit.plugins.executors.s2.modeling import (
    ACTION_MASK,
    ACTIONS,
    DONE,
    FOCUS,
    FOCUS_UV,
    IMAGES,
    STATE,
    TEXT,
    S2Policy,
)

VARIANTS = {"s2": 0.25, "baseline": None}  # variant -> the rho its steps run at


def synthetic_batch(
    config: ModelConfig, n: int, seed: int = 0
) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    S, C = config.image_size, len(config.cameras)
    return {
        IMAGES: torch.randint(0, 256, (n, C, 3, S, S), dtype=torch.uint8, generator=g),
        STATE: torch.randn(n, config.state_dim, generator=g),
        TEXT: torch.nn.functional.normalize(
            torch.randn(n, 3, config.text_dim, generator=g), dim=-1
        ),
        ACTIONS: torch.randn(n, config.chunk, config.action_dim, generator=g),
        ACTION_MASK: torch.ones(n, config.chunk, dtype=torch.bool),
        DONE: torch.zeros(n),
        FOCUS: torch.randn(n, 3, generator=g),  # the auxiliary targets real data carries
        FOCUS_UV: torch.rand(n, C, 2, generator=g) * 2 - 1,
    }


def trainer(variant: str, rho: float | None, batch_size: int, model: dict[str, str], device: str = "cpu") -> tuple[object, int]:
    """(one training step as a function, parameter count)."""
    torch.manual_seed(0)
    overrides = dict(model)
    if variant == "baseline":  # the budget's own settings do not apply to it
        overrides.pop("keep_prior", None)
    config = ModelConfig.variant(variant, **overrides)
    model = S2Policy(config).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.01)
    batch = {k: v.to(device) for k, v in synthetic_batch(config, batch_size).items()}

    def step() -> None:
        losses = model.loss(batch, rho)
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if device != "cpu":
            torch.cuda.synchronize()  # the step's kernels have run, not only been queued

    return step, sum(p.numel() for p in model.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--steps", type=int, default=8, help="Timed steps per variant and thread count."
    )
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument(
        "--threads", default="1,2", help="Thread counts, comma-separated."
    )
    parser.add_argument(
        "--model", action="append", default=[], metavar="KEY=VALUE", help="A ModelConfig field (repeatable)."
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N].")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    model = dict(item.split("=", 1) for item in args.model)
    rows = []
    for n in (int(t) for t in args.threads.split(",")):
        torch.set_num_threads(n)
        steps = {
            variant: trainer(variant, rho, args.batch, model, args.device)
            for variant, rho in VARIANTS.items()
        }
        times = interleaved(
            {v: fn for v, (fn, _) in steps.items()}, args.steps, args.warmup, block=1
        )
        for variant, rho in VARIANTS.items():
            median, p90 = summary(times[variant])
            rows.append(
                {
                    "variant": variant,
                    "rho": rho,
                    "threads": n,
                    "device": args.device,
                    "batch": args.batch,
                    "parameters": steps[variant][1],
                    "step_ms": median,
                    "step_p90_ms": p90,
                    "samples_per_s": args.batch / median * 1e3,
                }
            )
    machine = machine_info()
    if args.json:
        print(json.dumps({"machine": machine, "model": model, "rows": rows}, indent=2))
        return
    print(
        f"{machine}\nmodel {model or 'default'}, batch {args.batch} on {args.device}, median / p90 over {args.steps} steps after {args.warmup} warm-up"
    )
    print(f"{'variant':>8} {'rho':>5} {'thr':>3} | {'ms per step':>17} | samples/s")
    for r in rows:
        rho = "all" if r["rho"] is None else r["rho"]
        print(
            f"{r['variant']:>8} {rho:>5} {r['threads']:>3} | {r['step_ms']:7.0f} / {r['step_p90_ms']:7.0f} | {r['samples_per_s']:9.1f}"
        )


if __name__ == "__main__":
    main()
