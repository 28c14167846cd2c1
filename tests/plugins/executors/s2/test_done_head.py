"""S2's subtask-done head: the executor's own progress signal (``runtime.progress=executor``) needs no simulator.

As on the toy problem (tests/plugins/executors/s2/toy.py) the subtask names a red or a green square ("pick up
the red square"); here it is done once that square has left the table, and each square is gone in about half the
scenes. The head must read both the image and the guidance: with the other square named, the same scene's answer
changes wherever the two squares differ. (The squares fill a patch each: what is tested is the head, not how fast
the stem learns to see small things.)
"""

from __future__ import annotations

import torch

from s2kit.plugins.executors.s2.configuration import ModelConfig
from s2kit.plugins.executors.s2.modeling import DONE, IMAGES, TEXT, S2Policy
from tests.plugins.executors.s2.toy import toy_batch

CONFIG = {"cameras": ["head"], "image_size": 32, "patch_size": 8, "state_dim": 1, "action_dim": 2, "chunk": 4, "text_dim": 16,
          "dim": 32, "heads": 2, "encoder_layers": 2, "decoder_layers": 1, "head": "regression", "budget": False, "keypoints": 0}  # fmt: skip
STEPS = 250


def done_batch(n: int, seed: int) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    """Scenes with a red and a green square, each gone in about half of them (done: the named one is gone); the
    subtask text that names the other square, and whether that one is done."""
    g = torch.Generator().manual_seed(seed)
    batch = toy_batch(n, seed=seed)  # for its texts: toy.py's subtask words for red and green
    named = batch[DONE].long()  # 1 where the subtask names the green square (channel 1), 0 for red (channel 0)
    cells = torch.zeros(n, 3, 16)  # (sample, channel, patch): each square fills one of the 4x4 patches
    where = torch.rand(n, 16, generator=g).argsort(-1)[:, :2]
    rows = torch.arange(n)
    cells[rows, 0, where[:, 0]] = cells[rows, 1, where[:, 1]] = 1.0
    gone = torch.rand(n, 2, generator=g) < 0.5  # each square left the table (or not) on its own, so a missing square
    cells[:, :2][gone] = 0.0  # alone does not say the named subtask is done: the head must read which one is named
    other_done = gone[rows, 1 - named].float()
    gone = gone[rows, named]
    images = cells.view(n, 1, 3, 4, 1, 4, 1).expand(n, 1, 3, 4, 8, 4, 8).reshape(n, 1, 3, 32, 32)
    batch[IMAGES] = (images * 255).to(torch.uint8)
    batch[DONE] = gone.float()
    texts = batch[TEXT][:, 2]
    other = torch.where(named[:, None].bool(), texts[named == 0][:1], texts[named == 1][:1])  # the other square's words
    return batch, other, other_done
def test_the_done_head_learns_when_the_named_subtask_is_done() -> None:
    torch.manual_seed(0)
    model = S2Policy(ModelConfig(**CONFIG))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for step in range(STEPS):
        loss = model.loss(done_batch(64, seed=100 + step)[0])["done"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    test, other_words, other_done = done_batch(256, seed=1)
    other = {**test, TEXT: test[TEXT].clone()}
    other[TEXT][:, 2] = other_words
    model.eval()
    with torch.inference_mode():
        p = model.sample(test)[DONE]
        q = model.sample(other)[DONE]  # the same scenes, the other square named
    accuracy = float(((p > 0.5) == test[DONE].bool()).float().mean())
    assert accuracy > 0.9, f"the done head is right on {accuracy:.0%} of held-out scenes"
    accuracy = float(((q > 0.5) == other_done.bool()).float().mean())
    assert accuracy > 0.9, f"with the other square named, the done head is right on {accuracy:.0%} of the same scenes"
    differ = test[DONE] != other_done
    assert differ.float().mean() > 0.3 and ((p > 0.5) != (q > 0.5))[differ].all()  # the text alone changed its answer
