"""Diagnostic: how far an S2 run's focus map is from the focus item, per camera, on its held-out episodes.

The run's validation logs the mean distance (``val_focus_map_px``); this prints
the median and the 90th percentile too, since the errors are bimodal: near the
item, or on the wrong one. Needs a run trained with ``model.focus_map`` > 0 on
data with ``privileged.focus_uv``.

    python scripts/diagnostics/focus_map_error.py RUN DATA[,DATA...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from s2kit.learning.text import sentence_encoder
from s2kit.learning.checkpoints import find_checkpoint, load_policy
from s2kit.learning.data import Normalizer, load_frames
from s2kit.plugins.executors.s2.modeling import FOCUS_UV, focus_map_pixels
from s2kit.learning.trainer import TrainConfig, _split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run")
    parser.add_argument("data")
    args = parser.parse_args()
    model, info, _ = load_policy(find_checkpoint(args.run))
    if not info.model.focus_map:
        raise SystemExit(f"{args.run} has no focus map (model.focus_map = 0)")
    train = TrainConfig(**json.loads((Path(args.run) / "train.json").read_text())["config"])
    frames = load_frames(args.data.split(","), cameras=info.model.cameras, image_size=info.model.image_size,
                         state=info.state_names, done_window=train.done_window, columns=type(model).extra_columns)  # fmt: skip
    _, val = _split(frames, train.val_fraction, train.seed)  # the run's own held-out episodes
    assert val is not None
    norm = Normalizer.from_dict(info.normalization)
    embeddings = torch.from_numpy(sentence_encoder().encode(val.strings))
    errors = []
    with torch.inference_mode():
        for part in torch.arange(len(val)).split(256):
            batch = val.batch(part, chunk=info.model.chunk, embeddings=embeddings, norm=norm)
            _, _, extras = model.encode(batch, info.model.rho)
            errors.append(focus_map_pixels(extras["focus_map"], batch[FOCUS_UV], info.model.image_size))
    error = torch.cat(errors)  # (frames, cameras) pixels, NaN where the item is out of frame
    for k, role in enumerate(info.model.cameras):
        e = error[:, k][error[:, k].isfinite()]
        print(f"{role}: median {e.median():.2f} px, 90th percentile {e.quantile(0.9):.2f} px, mean {e.mean():.2f} px over {len(e)} frames")


if __name__ == "__main__":
    main()
