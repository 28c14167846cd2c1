"""The evidence budget learns which patches carry the answer, from the action loss alone (S2's "See Less").

A problem where 2 of 16 patches carry the answer: every patch has a random grey level in red; two patches,
anywhere, are marked (green; the second also blue) and the action is their two grey levels. With rho = 1/8
the encoder sees exactly 2 patches, so the action can only be right if the keep-scorer has learned to keep
the marked ones. No mask, box or keep label is given: the scorer's only teacher is the action loss, through
the kept patches' attention gates (and the budget penalty, which only calibrates the rate, and teaches
nothing about which patches: the control).
"""

from __future__ import annotations

import torch

from s2kit.plugins.executors.s2.configuration import ModelConfig
from s2kit.plugins.executors.s2.modeling import ACTIONS, IMAGES, STATE, TEXT, S2Policy, rho_schedule

GRID, PATCH, SIZE = 4, 8, 32
CONFIG = {"cameras": ["head"], "image_size": SIZE, "patch_size": PATCH, "state_dim": 1, "action_dim": 2, "chunk": 2,
          "text_dim": 16, "dim": 32, "heads": 2, "encoder_layers": 1, "decoder_layers": 1, "head": "regression",
          "keypoints": 0, "done_weight": 0.0, "rho": 2 / GRID**2, "budget_warmup": 0.5}  # fmt: skip
STEPS = 300


def marked_batch(n: int, seed: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """A batch, and the two answer patches of each sample (sorted patch indices)."""
    g = torch.Generator().manual_seed(seed)
    grey = torch.rand(n, GRID * GRID, generator=g)
    where = torch.rand(n, GRID * GRID, generator=g).argsort(-1)[:, :2]  # (sample, 2): the answer's patches
    cells = torch.zeros(n, 3, GRID * GRID)  # (sample, channel, patch)
    cells[:, 0] = grey
    rows = torch.arange(n)
    cells[rows, 1, where[:, 0]] = cells[rows, 1, where[:, 1]] = cells[rows, 2, where[:, 1]] = 1.0
    images = cells.view(n, 1, 3, GRID, 1, GRID, 1).expand(n, 1, 3, GRID, PATCH, GRID, PATCH).reshape(n, 1, 3, SIZE, SIZE)
    answer = grey.gather(1, where) * 2 - 1  # (sample, 2) in [-1, 1]
    batch = {IMAGES: (images * 255).to(torch.uint8), STATE: torch.zeros(n, 1), TEXT: torch.zeros(n, 3, CONFIG["text_dim"]),
             ACTIONS: answer[:, None].expand(n, CONFIG["chunk"], 2).contiguous()}  # fmt: skip
    return batch, where.sort(-1).values


def train(term: str) -> tuple[float, float, float]:
    """Train on fresh batches minimizing ``term`` (rho annealed from 1 to 1/8 over half the steps, as the trainer does);
    (the share of held-out samples whose 2 kept patches are the answer's, before and after; the action error / variance)."""
    torch.manual_seed(0)
    model = S2Policy(ModelConfig(**CONFIG))
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    test, answer = marked_batch(256, seed=1)

    def kept_right() -> tuple[float, float]:
        model.eval()
        with torch.inference_mode():
            out = model.sample(test)  # at the target rho: 2 patches
        model.train()
        right = (out["keep_index"][:, 0] == answer).all(-1).float().mean()
        return float(right), float(((out[ACTIONS] - test[ACTIONS]) ** 2).mean() / test[ACTIONS].var())

    before, _ = kept_right()
    for step in range(STEPS):
        batch, _ = marked_batch(64, seed=100 + step)
        loss = model.loss(batch, rho=model.schedule(step, STEPS)["rho"])[term]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after, error = kept_right()
    return before, after, error


def test_the_kept_patches_come_to_be_those_that_carry_the_answer_from_the_action_loss_alone() -> None:
    assert rho_schedule(STEPS - 1, STEPS, CONFIG["rho"], CONFIG["budget_warmup"]) == CONFIG["rho"]  # ends at the budget
    before, after, error = train("loss")  # action + budget penalty; no keep target anywhere
    assert before < 0.2, f"an untrained scorer already keeps the answer in {before:.0%} of samples: the problem is too easy"
    assert after > 0.9, f"the 2 kept patches are the answer's in {after:.0%} of held-out samples"
    assert error < 0.15, f"seeing 2 patches of 16, the action error is {error:.2f} of its variance"


def test_without_the_action_loss_the_scorer_learns_no_such_thing() -> None:
    _, after, _ = train("budget")
    assert after < 0.2, f"the budget penalty alone kept the answer in {after:.0%} of samples"
