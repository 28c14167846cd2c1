"""Shareability of Continuous Reasoning's codes on recorded frames: instance B's action error from its own codes,
from instance A's (mapped into B's code space by an affine map fitted on other frames) and from none.

A and B are two ``cr`` runs trained apart (another seed) on the same data; DATA should be episodes neither saw
(another seed range of `s2kit collect`). Half of the sampled frames fit the map, the other half are scored
(`s2kit.plugins.executors.cr.sharing.sharing_errors`: mean squared error of the chunk decoded from zero noise, as a
fraction of the actions' variance). The frames are normalized with B's statistics, which differ from A's only by
the episodes each run held out.

    .venv/bin/python scripts/diagnostics/cr_sharing.py runs/hsr_cr_s0 runs/hsr_cr_s1 --data data/hsr_cr_test [--frames 1024]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from s2kit.learning.checkpoints import load_policy
from s2kit.learning.data import guidance_embeddings, load_frames
from s2kit.learning.inputs import Normalizer
from s2kit.plugins.executors.cr.sharing import sharing_errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path, help="Instance A: the codes' source (a cr checkpoint or run).")
    parser.add_argument("b", type=Path, help="Instance B: the decoder that reads them.")
    parser.add_argument("--data", required=True, help="LeRobot dataset folder(s), comma-separated.")
    parser.add_argument("--frames", type=int, default=1024, help="Frames sampled: half fit the map, half are scored.")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    a, _, _ = load_policy(args.a)
    b, info, _ = load_policy(args.b)
    model, data = info.model, args.data.split(",")
    frames = load_frames(data, cameras=model.cameras, image_size=model.image_size, state=info.state_names, done_window=1)
    embeddings = guidance_embeddings(frames.strings, data)
    norm = Normalizer.from_dict(info.normalization)
    index = torch.randperm(len(frames), generator=torch.Generator().manual_seed(args.seed))[: args.frames]
    fitting, test = (frames.batch(part, chunk=model.chunk, embeddings=embeddings, norm=norm) for part in index.chunk(2))
    errors = sharing_errors(a.eval(), b.eval(), fitting, test)
    print(json.dumps({"a": str(args.a), "b": str(args.b), "frames": len(index), **errors}, indent=2))


if __name__ == "__main__":
    main()
