"""Training throughput of the S2 network: samples per second, on synthetic batches and on a real dataset, side by side.

A step is what `s2kit train` does per batch: the policy's loss (training mode,
S2's ranking noise on), backward, gradient clipping, an AdamW step; batch 64,
the default S2 config (two 96x96 cameras) unless ``--model KEY=VALUE`` changes
it (e.g. the experiments' recipe: ``--model head=regression --model focus_map=1
--model focus_weight=1 --model focus_input=true --model keep_prior=10``). Variants: ``s2`` at its
target rho 0.25 (its schedule at the last step; early steps run near rho 1,
like the baseline's patch count) and ``baseline`` (every patch, the goal only).

Columns, each timed alone on one torch thread:

- ``synthetic``: the step on one fixed batch of random values (the cost does
  not depend on them; with the augmentation's ``shift``, which the network
  reads in training): the network's ceiling;
- ``real``: the trainer's data path on a LeRobot dataset (frames from the
  memory-mapped cache, stale-guidance samples, shift augmentation, the
  policy's extra columns) with the next batch drawn on a worker thread while
  the step runs (``prefetch=true``, the default), then the step;
- ``inline``: the same batches drawn between steps (``prefetch=false``);
- ``draw``: drawing one batch alone.

``--data`` names the dataset(s); without it a small one is collected first
with ``s2kit collect --robot hsr --episodes 4``. ``--device cuda`` times the
step on a GPU (each step waited for), as `s2kit train --set device=cuda` runs it.

    .venv/bin/python benchmarks/train_throughput.py [--data DIR[,DIR]] [--steps 12] [--warmup 2] [--threads 1] [--batch 64] [--device cpu] [--model KEY=VALUE ...] [--json]

The columns of a variant are taken in turns, a few steps at a time (see
`executor_latency.interleaved`), so a change in the machine's load weighs on
all alike.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from executor_latency import interleaved, machine_info, summary

from s2kit.core.config import validate_overrides
from s2kit.learning.batch import ACTION_MASK, ACTIONS, DONE, IMAGES, SHIFT, STATE, TEXT
from s2kit.learning.data import EE_STATE, Normalizer, guidance_embeddings, load_frames
from s2kit.learning.trainer import TrainConfig, FrameSampler, _Prefetcher, _to, model_settings
from s2kit.plugins.executors.s2.executor import BaselineExecutor, S2Executor
from s2kit.plugins.executors.s2.modeling import FOCUS, FOCUS_UV

EXECUTORS = {"s2": S2Executor, "baseline": BaselineExecutor}


def synthetic_batch(config, n: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    S, C = config.image_size, len(config.cameras)
    return {
        IMAGES: torch.randint(0, 256, (n, C, 3, S, S), dtype=torch.uint8, generator=g),
        STATE: torch.randn(n, config.state_dim, generator=g),
        TEXT: torch.nn.functional.normalize(torch.randn(n, 3, config.text_dim, generator=g), dim=-1),
        ACTIONS: torch.randn(n, config.chunk, config.action_dim, generator=g),
        ACTION_MASK: torch.ones(n, config.chunk, dtype=torch.bool),
        DONE: torch.zeros(n),
        FOCUS: torch.randn(n, 3, generator=g),  # the auxiliary targets real data carries
        FOCUS_UV: torch.rand(n, C, 2, generator=g) * 2 - 1,
        SHIFT: (torch.randint(-4, 5, (n, C, 2), generator=g) * 2 / S).float(),  # the shift augmentation's record, as in training
    }


def collect(folder: Path) -> Path:
    root = folder / "hsr"
    cmd = [str(Path(sys.executable).parent / "s2kit"), "collect", "--robot", "hsr", "--out", str(root), "--episodes", "4", "--seed", "3", "--json"]
    subprocess.run(cmd, check=True, capture_output=True, env={**__import__("os").environ, "MUJOCO_GL": "osmesa"})
    return root


def variant_steps(name: str, data: list[Path], args: argparse.Namespace) -> tuple[dict[str, object], dict[str, object]]:
    """({column: a function running one timed unit}, facts about the variant)."""
    executor = EXECUTORS[name]
    model = dict(args.model)
    if name == "baseline":  # the budget's own settings do not apply to it
        model.pop("keep_prior", None)
    config: TrainConfig = validate_overrides(TrainConfig, [f"batch_size={args.batch}"], "benchmark")  # type: ignore[assignment]
    config = config.model_copy(update={"model": model})
    _, model_config = model_settings(executor, config)
    policy = executor.policy_class()
    frames = load_frames(data, cameras=model_config.cameras, image_size=model_config.image_size, state=EE_STATE,
                         done_window=config.done_window, columns=policy.extra_columns, cache=config.cache)  # fmt: skip
    model_config = model_config.model_copy(update={"state_dim": frames.state.shape[1], "action_dim": frames.actions.shape[1]})
    norm = Normalizer.fit(frames.state.numpy(), frames.actions.numpy())
    embeddings = guidance_embeddings(frames.strings, data, config.cache)
    device = torch.device(args.device)
    torch.manual_seed(0)
    net = policy(model_config).to(device).train()
    optimizer = torch.optim.AdamW(net.parameters(), lr=3e-4, weight_decay=0.01)
    schedule = net.schedule(1, 1)  # the end of training: S2 at its target rho
    fixed = _to(synthetic_batch(model_config, args.batch), device)
    sampler = FrameSampler(frames, config, model_config.chunk, embeddings, norm, seed=0)
    ahead = _Prefetcher(sampler, args.batch, device)

    def step(batch: dict[str, torch.Tensor]) -> None:
        losses = net.loss(batch, **schedule)
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()  # the step's kernels have run, not only been queued

    fns = {
        "synthetic": lambda: step(fixed),
        "real": lambda: step(ahead()),
        "inline": lambda: step(_to(sampler(args.batch), device)),
        "draw": lambda: sampler(args.batch),
    }
    facts = {"parameters": sum(p.numel() for p in net.parameters()), "frames": len(frames), "schedule": schedule, "close": ahead.close}
    return fns, facts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="LeRobot dataset folder(s), comma-separated (default: collect a small one).")
    parser.add_argument("--steps", type=int, default=12, help="Timed steps per column.")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--block", type=int, default=4, help="Steps of one column taken in a row.")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", default="1", help="torch thread counts, comma-separated.")
    parser.add_argument("--variants", default="s2,baseline")
    parser.add_argument("--model", action="append", default=[], metavar="KEY=VALUE", help="A model config field (repeatable).")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N].")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    args.model = dict(item.split("=", 1) for item in args.model)
    with tempfile.TemporaryDirectory() as tmp:
        data = [Path(p) for p in args.data.split(",")] if args.data else [collect(Path(tmp))]
        rows = []
        for n in (int(t) for t in args.threads.split(",")):
            torch.set_num_threads(n)
            for variant in args.variants.split(","):
                fns, facts = variant_steps(variant, data, args)
                try:
                    times = interleaved(fns, args.steps, args.warmup, block=args.block)
                finally:
                    facts["close"]()  # type: ignore[operator]
                row = {"variant": variant, "threads": n, "device": args.device, "batch": args.batch, "parameters": facts["parameters"],
                       "frames": facts["frames"], "schedule": facts["schedule"]}  # fmt: skip
                for column, ms in times.items():
                    median, p90 = summary(ms)
                    row[f"{column}_ms"], row[f"{column}_p90_ms"] = median, p90
                    if column != "draw":
                        row[f"{column}_samples_per_s"] = args.batch / median * 1e3
                row["real_vs_synthetic"] = row["real_samples_per_s"] / row["synthetic_samples_per_s"]
                rows.append(row)
    machine = machine_info()
    if args.json:
        print(json.dumps({"machine": machine, "model": args.model, "data": [str(d) for d in data], "rows": rows}, indent=2))
        return
    print(f"{machine}\nmodel {args.model or 'default'}, batch {args.batch} on {args.device}, data {', '.join(map(str, data))}; "
          f"median ms per step over {args.steps} steps after {args.warmup} warm-up")  # fmt: skip
    print(f"{'variant':>8} {'thr':>3} | {'synthetic':>15} | {'real (prefetch)':>15} | {'inline':>15} | {'draw ms':>7} | real/synthetic")
    for r in rows:
        cells = [f"{r[f'{c}_ms']:5.0f} {r[f'{c}_samples_per_s']:6.1f}/s" for c in ("synthetic", "real", "inline")]
        print(f"{r['variant']:>8} {r['threads']:>3} | {' | '.join(f'{c:>15}' for c in cells)} | {r['draw_ms']:7.1f} | {r['real_vs_synthetic']:.2f}")


if __name__ == "__main__":
    main()
