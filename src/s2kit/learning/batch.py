"""Batch keys every policy on the kit shares: a batch is ``dict[str, Tensor]`` under these names.

Images uint8 (B, cameras, 3, S, S); ``state`` (B, state_dim) and ``actions`` (B, H, A)
normalized; ``text`` (B, 3, text_dim): the goal, trajectory and current-subtask
sentence embeddings; ``done`` (B,): whether the subtask the text names is over;
``action_mask`` (B, H) bool, optional: which chunk steps carry loss (False past an
episode's end); ``shift`` (B, cameras, 2), training only: how far augmentation
moved each image's content, in (u, v) units of [-1, 1]; ``features`` (B, cameras, F),
training only, in place of ``images``: what a policy's frozen image encoder makes of
them (`Policy.frozen_features`), computed once per frame before training.

A policy that needs more (S2's privileged focus targets, say) adds keys of its own.
"""

from __future__ import annotations

__all__ = ["ACTIONS", "ACTION_MASK", "DONE", "FEATURES", "IMAGES", "NOISE", "SHIFT", "STATE", "TEXT"]

IMAGES, STATE, TEXT, ACTIONS, DONE, SHIFT = "images", "state", "text", "actions", "done", "shift"
ACTION_MASK = "action_mask"
FEATURES = "features"

#: Not a training key: the starting noise (B, H, A) of a generative head at inference, an input of exported graphs.
NOISE = "noise"
