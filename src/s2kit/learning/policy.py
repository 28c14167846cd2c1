"""The policy contract: what a learned model gives the kit, so training, checkpoints and export need nothing else.

A policy is a pydantic config (`PolicyConfig` or a subclass: everything that
shapes the network and its inputs, saved in every checkpoint) and an
``nn.Module`` (`Policy`) built from it alone. Its batches are
``dict[str, Tensor]`` under the keys of `s2kit.learning.batch` (plus keys of
its own). Training calls `Policy.loss` (through ``forward``, so that
DistributedDataParallel sees the pass) with the keyword arguments
`Policy.schedule` gives for the step; inference calls `Policy.sample`, whose
``outputs()`` are what an executor reads and an exported graph returns.

Inference options (keyword arguments of ``sample`` that an executor sets at
run time, such as S2's keep-fraction ``rho``) are the policy's own; what of
them an exported graph fixes is `PolicyConfig.graph_facts`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from s2kit.learning.batch import ACTIONS, DONE

if TYPE_CHECKING:
    from s2kit.learning.data import ExtraColumns, FrameData

__all__ = ["InputSpec", "Policy", "PolicyConfig"]


@dataclass(frozen=True)
class InputSpec:
    """An inference input of a policy's own (`Policy.extra_inputs`): its shape without the batch axis, its numpy dtype,
    and for integers the values it takes, 0 .. ``high`` - 1 (what an export's check feeds where no robot gives it)."""

    shape: tuple[int, ...]
    dtype: str = "float32"
    high: int | None = None


class PolicyConfig(BaseModel):
    """The inputs every kit policy reads; a model's own config subclasses it."""

    model_config = ConfigDict(extra="forbid")

    #: Fields added after checkpoints were first written, with the value that reproduces a checkpoint saved without them.
    saved_defaults: ClassVar[dict[str, Any]] = {}

    cameras: list[str] = Field(default_factory=lambda: ["head", "wrist"], description="Camera roles, in order.")
    image_size: int = Field(96, ge=16, description="Images are letterboxed to this square size.")
    state_dim: int = Field(15, ge=1, description="Size of the encoded state input (set from the data by training).")
    action_dim: int = Field(7, ge=1, description="Size of an action (set from the data by training).")
    chunk: int = Field(10, ge=1, description="Actions predicted per chunk (H).")
    text_dim: int = Field(384, description="Sentence-embedding size (MiniLM: 384).")

    def graph_facts(self, **options: Any) -> dict[str, Any]:
        """What an exported graph of this network fixes, given `Policy.sample`'s inference ``options``.

        Recorded in the graph; a graph refuses options whose facts differ (S2: how many patches ``rho`` keeps).
        """
        return {}


class Policy(nn.Module):
    """A learned model on the kit: losses for a batch, actions for inputs.

    ``config_class`` is the config it is built from; ``presets`` names config
    settings a user can start from (``--set variant=NAME``), e.g. an ablation.
    """

    config_class: ClassVar[type[PolicyConfig]] = PolicyConfig
    presets: ClassVar[dict[str, dict[str, Any]]] = {}
    #: Training targets of its own that the kit reads from dataset columns into its batches (`ExtraColumns`).
    extra_columns: ClassVar[tuple[ExtraColumns, ...]] = ()

    def __init__(self, config: PolicyConfig) -> None:
        super().__init__()
        if not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__} expects a {self.config_class.__name__}, got {type(config).__name__}")
        self.config = config

    @classmethod
    def check_training(cls, config: PolicyConfig, where: str) -> None:
        """Checks of a training config that need no data (files it names), before anything is loaded: raise a
        `ConfigError` (or a `CheckpointError` for a file that is not what it should be) starting with ``where``.
        Nothing by default."""

    @classmethod
    def derive_frames(
        cls, config: PolicyConfig, frames: FrameData, data: Sequence[str | Path], *, cache: str, log: Callable[[str], None] | None
    ) -> tuple[FrameData, dict[str, Any]]:
        """(the training frames with whatever this policy derives from the recorded ones added, the config fields that
        this fixes): SOF's skill tokens, which a trained tokenizer reads off each frame's video window, as
        `FrameData.extras` with an `ExtraColumns` that batches them, and the tokenizer's token count and codebook.

        ``data`` are the datasets the frames came from, ``cache`` the run's frame cache setting. Called by the trainer
        after loading, before episodes are held out. The frames as they are, and no fields, by default.
        """
        return frames, {}

    def normalization_fitted(self, action_mean: Tensor, action_std: Tensor) -> None:
        """Training's action normalization, once it is fitted (raw = normalized * std + mean), for a loss that needs to
        know where a raw value lies in normalized units (mpc's critic: a chunk that stops moving). Called by the trainer
        before the first step, on a resumed run too; nothing by default."""

    def extra_inputs(self) -> dict[str, InputSpec]:
        """Inference inputs beyond images, state, text and noise, by batch key (SOF's translator: the skill tokens).

        Its executor builds them (`PolicyExecutor.inputs`) and an exported graph takes them; none by default.
        """
        return {}

    def loss(self, batch: dict[str, Tensor], **schedule: Any) -> dict[str, Tensor]:
        """Loss terms for a training batch; ``loss`` is the total that is minimized."""
        raise NotImplementedError

    def forward(self, batch: dict[str, Tensor], **schedule: Any) -> dict[str, Tensor]:
        """The training loss (`loss`), so that DistributedDataParallel wraps the training pass."""
        return self.loss(batch, **schedule)

    def sample(self, batch: dict[str, Tensor], noise: Tensor | None = None, **options: Any) -> dict[str, Tensor]:
        """Inference: ``actions`` (B, H, A) normalized, ``done`` (B,) probability where the model predicts it, extras.

        ``noise`` (B, H, A) is the starting point of a generative head (flow matching), so that a run can be replayed;
        a head that needs none ignores it.
        """
        raise NotImplementedError

    def outputs(self) -> tuple[str, ...]:
        """The entries of `sample`'s result that inference uses, in order: an executor reads them, an export returns them."""
        return (ACTIONS, DONE)

    def schedule(self, step: int, total: int) -> dict[str, Any]:
        """Keyword arguments of `loss` at training step ``step`` of ``total`` (annealed settings); none by default."""
        return {}

    def validation_metrics(self, batches: Sequence[dict[str, Tensor]], outputs: Sequence[dict[str, Tensor]]) -> dict[str, float]:
        """Held-out figures of the policy's own, from the validation batches and what `sample` gave for each (the
        trainer reports ``action_mse`` and ``done_accuracy`` for every policy); none by default."""
        return {}

    def frozen_features(self, images: Tensor) -> Tensor | None:
        """What the policy's frozen image encoder (a pretrained trunk no step trains) makes of images (N, 3, S, S) uint8, as
        (N, F), or None where it has none.

        Training then runs it once per frame before the first step and gives the policy ``features`` (B, cameras, F) in
        place of ``images`` (batch key `FEATURES`), where no augmentation changes the pixels; the policy must accept
        either. Inference always passes images.
        """
        return None

    def unused_parameters(self) -> list[str]:
        """Parameters this configuration never reads (frozen in training, kept in checkpoints)."""
        return []

    def packaged_weights(self) -> list[str]:
        """State entries (parameters and buffers) that a new network of this config loads from an installed package
        and no training step changes (a frozen pretrained trunk); none by default.

        A checkpoint stores their digest instead of their values, and loading takes them from the package after
        checking the digest (`s2kit.learning.checkpoints`).
        """
        return []

    @torch.no_grad()
    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())
