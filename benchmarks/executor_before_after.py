"""S2 network latency, this tree's `modeling.py` against another revision's, in one process.

Both networks get the same weights (a checkpoint's) and the same inputs, and
their calls are taken in turns, so a change in the machine's load weighs on
both alike: the way to see a small change in per-chunk cost on a noisy
machine. The other revision's `S2Policy` must load this tree's checkpoints
(same parameter names and shapes).

    .venv/bin/python benchmarks/executor_before_after.py --before a0df40b [--checkpoint RUN] [--rhos 1.0,0.25] [--rounds 60]

Prints median milliseconds per chunk (`S2Policy.sample`, batch 1, inference
mode, one thread) for each revision and rho, and rho 1.0 against the lowest rho.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from executor_latency import interleaved  # this folder's: calls taken in turns, 10 at a time

from s2kit.learning.batch import IMAGES, NOISE, STATE, TEXT
from s2kit.learning.checkpoints import load_policy, read_info
from s2kit.learning.export import random_inputs
from s2kit.plugins.executors.s2.executor import default_checkpoint

MODELING = "src/s2kit/plugins/executors/s2/modeling.py"


def modeling_at(revision: str, folder: Path) -> object:
    """The ``modeling`` module as it was at ``revision``, imported under another name."""
    root = Path(__file__).resolve().parents[1]
    source = subprocess.run(["git", "show", f"{revision}:{MODELING}"], cwd=root, check=True, capture_output=True, text=True).stdout
    path = folder / "modeling_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("modeling_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="A git revision whose modeling.py to compare against.")
    parser.add_argument("--checkpoint", type=Path, help="A checkpoint or run; default: the shipped one.")
    parser.add_argument("--rhos", default="1.0,0.25")
    parser.add_argument("--rounds", type=int, default=60, help="Rounds of 10 timed calls per network and rho (each after an untimed one).")
    args = parser.parse_args()
    torch.set_num_threads(1)
    checkpoint = args.checkpoint or default_checkpoint("hsr")
    after, info, _ = load_policy(checkpoint)
    with tempfile.TemporaryDirectory() as tmp:
        before = modeling_at(args.before, Path(tmp)).S2Policy(info.model)  # type: ignore[attr-defined]
    before.load_state_dict(after.state_dict())
    before.eval()
    inputs = random_inputs(read_info(checkpoint).model, 1)[0]
    batch = {k: torch.from_numpy(inputs[k]) for k in (IMAGES, STATE, TEXT)}
    rhos = [float(r) for r in args.rhos.split(",")]
    nets = {args.before: before, "this tree": after}
    noise_t = torch.from_numpy(inputs[NOISE])
    # by keyword: S2Policy.sample took (batch, rho, noise) before the learning kit, (batch, noise, rho) since
    fns = {(name, rho): (lambda n=net, r=rho: n.sample(batch, rho=r, noise=noise_t)) for name, net in nets.items() for rho in rhos}
    with torch.inference_mode():
        times = interleaved(fns, calls=10 * args.rounds, warmup=20)
    for name in nets:
        medians = {r: statistics.median(times[name, r]) for r in rhos}
        cells = "  ".join(f"rho {r}: {m:.2f} ms" for r, m in medians.items())
        print(f"{name:>12}  {cells}  rho {rhos[0]} / rho {rhos[-1]}: {medians[rhos[0]] / medians[rhos[-1]]:.2f}x")


if __name__ == "__main__":
    main()
