"""Diagnostic, not a method: how well can an image encoder learn ``privileged.focus`` from pixels?

S2 closes the loop when it is given the focus (where the subtask needs the hand,
relative to it; `privileged_focus.py`), and only to within about 2 cm of error.
This probe trains a perception network alone (no action head) to predict the
focus from both cameras, the state and the current subtask's text, and reports
the held-out error per axis. It isolates what limits perception: the image
encoder, the text conditioning or the number of scenes.

Per camera: an encoder (``--encoder``), FiLM by the text and the state (``--film``),
spatial-softmax keypoints and a pooled feature, and with ``--heatmap W`` a focus
map trained against ``privileged.focus_uv`` (S2's ``model.focus_map``), whose
expected position and confidence join them; an MLP reads them with the state
and the text.

    python scripts/diagnostics/perception_probe.py DATA[,DATA...] [--encoder patch|cnn|pixel]
        [--text sentence|tokens|words] [--episodes N] [--steps 2000] [--seed 0] [--film text|text+state] [--heatmap W]

``--text``: ``sentence`` the frozen MiniLM sentence embedding S2 uses; ``tokens``
MiniLM's per-token embeddings, attention-pooled by learned queries; ``words`` a
bag of words of the subtask's first clause (its object) beside one of the rest
(its destination). ``--episodes`` trains on the first N of the training episodes
(10 episodes of the first dataset held out, as `s2kit train` holds out 5% of 200).
"""

from __future__ import annotations

import argparse
import math
import re
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from s2kit.learning.text import DIM, sentence_encoder
from s2kit.learning.data import EE_STATE, load_frames
from s2kit.plugins.executors.s2.modeling import FOCUS, FOCUS_UV, S2Policy
from s2kit.plugins.executors.s2.training_data import FOCUS_SCALE
from s2kit.plugins.executors.s2.modeling import (
    focus_map_loss,
    focus_map_pixels,
    focus_map_uv,
)


def spatial_softmax(logits: Tensor) -> Tensor:
    """(B, K, H, W) logits -> (B, 2K) expected x and y in [-1, 1]."""
    B, K, H, W = logits.shape
    weights = logits.flatten(2).softmax(-1).view(B, K, H, W)
    xs, ys = torch.linspace(-1, 1, W), torch.linspace(-1, 1, H)
    return torch.stack([(weights.sum(2) * xs).sum(-1), (weights.sum(3) * ys).sum(-1)], -1).flatten(1)


def encoder(kind: str) -> tuple[nn.Module, int]:
    """(trunk, channels): patch as S2's stem (stride 4), cnn 3x3 convolutions at stride 2, pixel at full resolution."""
    if kind == "patch":
        return nn.Sequential(nn.Conv2d(3, 64, 4, 4), nn.GELU()), 64
    if kind == "cnn":
        return nn.Sequential(
            nn.Conv2d(3, 32, 5, 2, 2), nn.GroupNorm(8, 32), nn.GELU(),
            nn.Conv2d(32, 32, 3, 1, 1), nn.GroupNorm(8, 32), nn.GELU(), nn.Conv2d(32, 32, 3, 1, 1),
        ), 32  # fmt: skip
    if kind == "pixel":
        return nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1), nn.GELU(), nn.Conv2d(16, 16, 3, 1, 1)), 16
    raise SystemExit(f"unknown encoder {kind!r} (patch, cnn, pixel)")


class Camera(nn.Module):
    def __init__(self, kind: str, condition: int, keypoints: int = 16, heat: bool = False) -> None:
        super().__init__()
        self.trunk, C = encoder(kind)
        self.film = nn.Linear(condition, 2 * C)
        self.post = nn.Sequential(nn.GELU(), nn.Conv2d(C, C, 1), nn.GELU())
        self.keypoints = nn.Conv2d(C, keypoints, 1)
        self.heat = nn.Sequential(nn.Conv2d(C, C, 3, 1, 1), nn.GELU(), nn.Conv2d(C, 1, 1)) if heat else None
        self.out = 2 * keypoints + C + (3 if heat else 0)
        self.logits: Tensor | None = None

    def forward(self, image: Tensor, text: Tensor) -> Tensor:
        x = self.trunk(image.float() / 255.0 - 0.5)
        gain, shift = self.film(text).chunk(2, -1)
        x = self.post(x * (1 + gain[:, :, None, None]) + shift[:, :, None, None])
        features = [spatial_softmax(self.keypoints(x)), x.mean((2, 3))]
        if self.heat is not None:
            self.logits = self.heat(x)[:, 0]
            features += [focus_map_uv(self.logits), self.logits.flatten(1).logsumexp(-1, keepdim=True)]
        return torch.cat(features, 1)


class TokenPool(nn.Module):
    """Learned queries attend over a string's MiniLM token embeddings: (B, L, DIM) -> (B, DIM)."""

    def __init__(self, queries: int = 4) -> None:
        super().__init__()
        self.queries = nn.Parameter(torch.randn(queries, DIM) * 0.05)
        self.key = nn.Linear(DIM, DIM)
        self.out = nn.Linear(queries * DIM, DIM)

    def forward(self, tokens: Tensor, mask: Tensor) -> Tensor:
        scores = torch.einsum("qd,bld->bql", self.queries, self.key(tokens)) / math.sqrt(DIM)
        weights = scores.masked_fill(~mask[:, None], float("-inf")).softmax(-1)
        return self.out(torch.einsum("bql,bld->bqd", weights, tokens).flatten(1))


class Probe(nn.Module):
    def __init__(self, kind: str, cameras: int, state_dim: int, tokens: bool, heat: bool = False, film_state: bool = True) -> None:
        super().__init__()
        # the FiLM reads the state too: whether the object is held says whether the subtask needs it or its destination
        self.film_state = film_state
        self.cameras = nn.ModuleList(Camera(kind, DIM + state_dim * film_state, heat=heat) for _ in range(cameras))
        self.pool = TokenPool() if tokens else None
        width = sum(c.out for c in self.cameras) + state_dim + DIM
        self.head = nn.Sequential(nn.Linear(width, 256), nn.GELU(), nn.Linear(256, 256), nn.GELU(), nn.Linear(256, 3))

    def forward(self, images: Tensor, state: Tensor, text: Tensor, mask: Tensor | None) -> Tensor:
        if self.pool is not None:
            assert mask is not None
            text = self.pool(text, mask)
        condition = torch.cat([text, state], 1) if self.film_state else text
        features = [camera(images[:, i], condition) for i, camera in enumerate(self.cameras)]
        return self.head(torch.cat([*features, state, text], 1))


def text_features(strings: list[str], kind: str) -> tuple[Tensor, Tensor | None]:
    """Per string: (DIM,) vectors, or (L, DIM) token vectors and their (L,) mask."""
    if kind == "sentence":
        return torch.from_numpy(sentence_encoder().encode(strings)), None
    if kind == "tokens":
        outputs = sentence_encoder()._model.encode(strings, output_value="token_embeddings", convert_to_numpy=False)
        length = max(len(o) for o in outputs)
        tokens, mask = torch.zeros(len(strings), length, DIM), torch.zeros(len(strings), length, dtype=torch.bool)
        for i, o in enumerate(outputs):
            tokens[i, : len(o)], mask[i, : len(o)] = o.float(), True
        return tokens, mask
    if kind == "words":
        clauses = [re.split(r" (?:and put it into|and put it onto|into|onto|to|on top|in front)", s, maxsplit=1) for s in strings]
        vocab = {w: i for i, w in enumerate(sorted({w for s in strings for w in re.findall(r"[a-z]+", s)}))}
        if 2 * len(vocab) > DIM:
            raise SystemExit(f"{len(vocab)} words: too many for a {DIM}-wide bag of words")
        bags = torch.zeros(len(strings), DIM)
        for i, parts in enumerate(clauses):
            for half, part in enumerate(parts[:2]):
                for w in re.findall(r"[a-z]+", part):
                    bags[i, half * len(vocab) + vocab[w]] = 1.0
        return bags, None
    raise SystemExit(f"unknown text {kind!r} (sentence, tokens, words)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data")
    parser.add_argument("--encoder", default="patch")
    parser.add_argument("--text", default="sentence")
    parser.add_argument("--episodes", type=int, default=None)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--film", choices=["text", "text+state"], default="text+state", help="what modulates each camera's features: the subtask's text alone, or the text and the state")
    parser.add_argument("--heatmap", type=float, default=0.0, help="weight of a focus heatmap per camera, trained on privileged.focus_uv (0: none)")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    frames = load_frames(args.data.split(","), cameras=["head", "wrist"], image_size=96, state=EE_STATE, done_window=8, columns=S2Policy.extra_columns)
    state = (frames.state - frames.state.mean(0)) / frames.state.std(0).clamp(min=1e-2)
    text, mask = text_features(frames.strings, args.text)
    subtask = frames.text[:, 2]
    episodes = frames.num_episodes
    first = int(frames.datasets[0]["episodes"])  # type: ignore[call-overload]
    held_out = torch.randperm(first, generator=torch.Generator().manual_seed(0))[:10]  # from the first dataset: the same whatever follows
    known = frames.extras[FOCUS].isfinite().all(1)
    is_val = torch.isin(frames.episode, held_out)
    train, val = (~is_val & known).nonzero().squeeze(1), (is_val & known).nonzero().squeeze(1)
    if args.episodes is not None:
        kept = torch.tensor([e for e in range(episodes) if e not in set(held_out.tolist())][: args.episodes])
        train = train[torch.isin(frames.episode[train], kept)]
    target = frames.extras[FOCUS] * FOCUS_SCALE  # decimetres
    mean_rms = (target[val] - target[train].mean(0)).pow(2).mean(0).sqrt() * 10
    print(f"{len(train)} training frames, {len(val)} held out; predicting the mean: {mean_rms.numpy().round(2)} cm RMS (x, y, z)")

    model = Probe(args.encoder, 2, state.shape[1], mask is not None, heat=args.heatmap > 0, film_state=args.film == "text+state")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-3, total_steps=args.steps, pct_start=0.05)

    def predict(index: Tensor) -> Tensor:
        ids = subtask[index]
        return model(frames.frames(index), state[index], text[ids], None if mask is None else mask[ids])

    def held_out_rms() -> np.ndarray:
        model.eval()
        errors, map_errors = [], []
        with torch.no_grad():
            for i in range(0, len(val), 256):
                index = val[i : i + 256]
                errors.append(predict(index) - target[index])
                if args.heatmap > 0:
                    map_errors.append(torch.stack([focus_map_pixels(c.logits, frames.extras[FOCUS_UV][index, k], 96) for k, c in enumerate(model.cameras)], 1))
        model.train()
        if map_errors:
            pixels = torch.cat(map_errors)  # (frames, cameras), NaN where the item is out of frame
            for k, role in enumerate(("head", "wrist")):
                d = pixels[:, k][pixels[:, k].isfinite()]
                print(f"  {role} heatmap: median {d.median():.2f} px, 90th percentile {d.quantile(0.9):.2f} px over {len(d)} labelled frames")
        return (torch.cat(errors).pow(2).mean(0).sqrt() * 10).numpy()  # cm

    start = time.time()
    for step in range(1, args.steps + 1):
        index = train[torch.randint(len(train), (args.batch,))]
        loss = F.mse_loss(predict(index), target[index])
        if args.heatmap > 0:
            for k, camera in enumerate(model.cameras):
                assert camera.logits is not None
                entropy, maps = focus_map_loss(camera.logits, frames.extras[FOCUS_UV][index, k])
                loss = loss + args.heatmap * entropy / maps.clamp(min=1.0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 500 == 0 or step == args.steps:
            rms = held_out_rms()
            print(f"step {step}: held-out RMS x {rms[0]:.2f}, y {rms[1]:.2f}, z {rms[2]:.2f} cm ({time.time() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
