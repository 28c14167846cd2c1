"""How well one ``cr`` instance's codes serve another: the shareability measurement of Continuous Reasoning.

Two instances trained apart (another seed) put their codes in the same prior, N(0, I), but that prior looks
the same in every direction, so their code spaces agree at best up to a map. `stitch` fits an affine map from
instance A's codes to B's on some observations (least squares; model stitching); `sharing_errors` then gives
B's action error on other observations decoding from its own codes, from A's codes through the map, and from
none (zeroed: the prior's mean).
"""

from __future__ import annotations

import torch
from torch import Tensor

from s2kit.learning.batch import ACTION_MASK, ACTIONS
from s2kit.plugins.executors.cr.modeling import CODES, CrPolicy

__all__ = ["action_error", "codes_of", "sharing_errors", "stitch"]


@torch.inference_mode()
def codes_of(model: CrPolicy, batch: dict[str, Tensor]) -> Tensor:
    """The codes (B, K, c) ``model`` gives for ``batch``."""
    return model.sample(batch)[CODES]


@torch.inference_mode()
def action_error(model: CrPolicy, batch: dict[str, Tensor], **options: object) -> float:
    """Mean squared error of the chunk decoded from zero noise (the flow's mean path), over the chunk steps the
    batch's mask keeps, as a fraction of the target actions' variance. ``options``: `CrPolicy.sample`'s."""
    actions = model.sample(batch, noise=torch.zeros_like(batch[ACTIONS]), **options)[ACTIONS]  # type: ignore[arg-type]
    keep = batch.get(ACTION_MASK, torch.ones(actions.shape[:2], dtype=torch.bool))
    error, target = (actions - batch[ACTIONS])[keep], batch[ACTIONS][keep]
    return float((error**2).mean() / target.var())


def stitch(source: Tensor, target: Tensor) -> Tensor:
    """The affine map (K * c + 1, K * c) from ``source`` codes (N, K, c) to ``target`` codes, by least squares."""
    x = torch.cat([source.flatten(1), torch.ones(len(source), 1)], dim=1)
    return torch.linalg.lstsq(x, target.flatten(1)).solution


def sharing_errors(a: CrPolicy, b: CrPolicy, fitting: dict[str, Tensor], test: dict[str, Tensor]) -> dict[str, float]:
    """B's action error on ``test`` from its own codes (``own``), from A's mapped into its space by a `stitch`
    fitted on ``fitting`` (``given``), and from none (``none``)."""
    mapping = stitch(codes_of(a, fitting), codes_of(b, fitting))
    theirs = codes_of(a, test)
    mapped = (torch.cat([theirs.flatten(1), torch.ones(len(theirs), 1)], dim=1) @ mapping).view_as(theirs)
    return {"own": action_error(b, test), "given": action_error(b, test, codes=mapped), "none": action_error(b, test, zero_codes=True)}
