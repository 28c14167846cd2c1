"""Do SOF's skill tokens mean something? Mutual information with the subtask verb, and token sequences per task family.

    python scripts/diagnostics/sof_tokens.py TOKENIZER DATASET... [--out DIR] [--rows 6]

For every whole window (every frame that starts one), the window's tokens
and the subtask its first frame is annotated with. Prints, in bits:

* the mutual information between the window's first token (and its second)
  and the subtask verb (the first word of the subtask text: pick, carry,
  lower, push for the refined subtasks of `s2kit collect`), with H(verb) as
  its ceiling; and the same for the subtask's place in its task (family and
  subtask number: "sort 2");
* the same with the tokens shuffled across windows, which is what a finite
  sample gives where there is no relation (the plug-in estimate's bias).

Then writes ``DIR/sof_tokens.png``: for ``--rows`` episodes of each task
family (read off the goal and the subtask count: one subtask is push; two
are stack where the goal says "on top of", else pick-and-place; three are
sort where the goal says ", then", else tidy), one row per episode, one cell
per back-to-back window (frames 0, W, 2W, ...) coloured by its first token,
with the subtask boundaries marked; and prints the same rows as numbers.
"""

from __future__ import annotations

import argparse
import math
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from s2kit.learning.data import load_frames
from s2kit.plugins.skills.sof.labels import frame_tokens
from s2kit.plugins.skills.sof.plugin import token_colour


def mutual_information(x: np.ndarray, y: np.ndarray) -> float:
    """Plug-in mutual information of two discrete samples, in bits."""
    n = len(x)
    joint = Counter(zip(x.tolist(), y.tolist(), strict=True))
    px, py = Counter(x.tolist()), Counter(y.tolist())
    return sum(c / n * math.log2(c * n / (px[a] * py[b])) for (a, b), c in joint.items())


def entropy(x: np.ndarray) -> float:
    n = len(x)
    return -sum(c / n * math.log2(c / n) for c in Counter(x.tolist()).values())


def family(goal: str, subtasks: int) -> str:
    """The task family of an episode from its goal and its number of subtasks."""
    if subtasks == 1:
        return "push"
    if subtasks == 2:
        return "stack" if "on top of" in goal else "pick_place"
    return "sort" if ", then" in goal else "tidy"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tokenizer")
    parser.add_argument("data", nargs="+")
    parser.add_argument("--out", type=Path, default=Path("runs/sof_tokens"))
    parser.add_argument("--rows", type=int, default=6)
    args = parser.parse_args()
    torch.set_num_threads(1)

    labels = frame_tokens(args.tokenizer, args.data)
    frames = load_frames(args.data, cameras=["head"], image_size=48, state=None, done_window=8, actions=False)
    W = labels.window
    subtask = [frames.strings[i] for i in frames.text[:, 2].tolist()]
    goal = [frames.strings[i] for i in frames.text[:, 0].tolist()]
    starts = torch.nonzero(torch.cat([torch.tensor([True]), frames.episode[1:] != frames.episode[:-1]])).squeeze(1).tolist()
    ends = [*starts[1:], len(frames)]
    first, second, verbs, places, rows = [], [], [], [], {}
    for start, end in zip(starts, ends, strict=True):
        texts = list(dict.fromkeys(subtask[start:end]))
        fam = family(goal[start], len(texts))
        for t in range(start, end):
            if bool(labels.whole[t]):
                first.append(int(labels.tokens[t, 0]))
                second.append(int(labels.tokens[t, -1]))
                verbs.append(subtask[t].split()[0] if subtask[t] else "-")
                places.append(f"{fam} {texts.index(subtask[t]) + 1}")
        picks = [t for t in range(start, end, W) if bool(labels.whole[t])]
        rows.setdefault(fam, []).append([(int(labels.tokens[t, 0]), subtask[t]) for t in picks])
    first_a, second_a = np.array(first), np.array(second)
    rng = np.random.default_rng(0)
    print(f"{len(first_a)} windows of {W} flows from {len(starts)} episodes; verbs {dict(Counter(verbs))}")
    for label, values in (("verb", np.array(verbs)), ("place", np.array(places))):
        print(f"H({label}) = {entropy(values):.3f} bits")
        for name, tokens in (("first token", first_a), ("second token", second_a)):
            shuffled = np.mean([mutual_information(rng.permutation(tokens), values) for _ in range(20)])
            print(f"  I({name}; {label}) = {mutual_information(tokens, values):.3f} bits (shuffled tokens: {shuffled:.3f}); H({name}) = {entropy(tokens):.2f} bits")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = sorted(rows)
    shown = [(f, r) for f in families for r in rows[f][: args.rows]]
    width = max(len(r) for _, r in shown)
    grid = np.full((len(shown), width, 3), 255, np.uint8)  # white: past the episode's end
    for i, (_, r) in enumerate(shown):
        for j, (tok, _) in enumerate(r):
            grid[i, j] = token_colour(tok)  # the colours episode videos draw the tokens in
    fig, ax = plt.subplots(figsize=(min(18, 2 + width * 0.35), 1 + len(shown) * 0.3))
    ax.imshow(grid, aspect="auto", interpolation="nearest")
    for i, (_, r) in enumerate(shown):
        for j in range(1, len(r)):
            if r[j][1] != r[j - 1][1]:
                ax.plot([j - 0.5, j - 0.5], [i - 0.5, i + 0.5], color="black", linewidth=2)
    ax.set_yticks(range(len(shown)), [f for f, _ in shown])
    ax.set_xlabel(f"window ({W} frames each); black bars: a new subtask")
    ax.set_title("first skill token of each window, per task family")
    args.out.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(args.out / "sof_tokens.png", dpi=100)
    print(f"wrote {args.out / 'sof_tokens.png'}")
    for fam, r in shown:
        cells, last = [], None
        for tok, text in r:
            cells.append(("| " if last is not None and text != last else "") + str(tok))
            last = text
        print(f"{fam:>10}: {' '.join(cells)}")


if __name__ == "__main__":
    main()
