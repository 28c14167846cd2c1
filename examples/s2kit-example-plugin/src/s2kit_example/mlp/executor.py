"""Executor ``colour-mlp``: the kit's `PolicyExecutor` running `ColourMlpPolicy`; nothing else is its own."""

from __future__ import annotations

from typing import TYPE_CHECKING

from s2kit.learning.executor import PolicyExecutor

if TYPE_CHECKING:
    from s2kit_example.mlp.modeling import ColourMlpPolicy


class ColourMlpExecutor(PolicyExecutor):
    """A small MLP over the downsampled image, the state and the guidance; train it with s2kit train --executor colour-mlp."""

    name = "colour-mlp"

    @classmethod
    def policy_class(cls) -> type[ColourMlpPolicy]:
        from s2kit_example.mlp.modeling import ColourMlpPolicy  # torch: imported when the network is needed

        return ColourMlpPolicy
