"""SOF's translator: (skill tokens, observation) -> the action chunk that acts the skill out, on the learning kit.

A skill token pair names what the video does over the next window of
frames (`s2kit.plugins.skills.sof.labels`); the translator learns which
actions do that, from a small action-labelled set. Its chunk is one window
long: actions t .. t + window - 1 move the scene from frame t to frame
t + window, the span the tokens were read from.

Network (`SkillTranslator`): each camera's frozen trunk map as tokens
(`s2kit.learning.vision`), the state as one token, each skill
token embedded with its position, and one query per chunk step; a small
transformer over all of them; each query's output is its step's action
(regression, mean squared error over normalized actions). It reads no text:
the skill tokens are its whole instruction.

`s2kit.plugins.skills.sof.plugin.SkillTranslatorExecutor` (``sof-translator``) is the kit's executor for it:
``s2kit train sof-translator DATA --set model.tokenizer=TOKENIZER`` trains
it (the tokenizer labels the frames, `SkillTranslator.derive_frames`),
``s2kit export`` writes its ONNX graph with the parity check (the tokens are
an input of the graph), and in a pipeline it acts out the skill tokens its
guidance carries (the ``sof`` skill gives them; a planner that emits skill
tokens can drive it directly).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from pydantic import Field
from torch import Tensor, nn

from s2kit.learning.batch import ACTION_MASK, ACTIONS, STATE
from s2kit.learning.data import FrameData
from s2kit.learning.heads import masked_mean, regression_error
from s2kit.learning.policy import InputSpec
from s2kit.plugins.skills.sof.labels import SKILLS, frame_tokens, with_tokens
from s2kit.plugins.skills.sof.policy import SkillConfig, SkillPolicy
from s2kit.learning.vision import ObservationTokens, transformer

__all__ = ["SkillTranslator", "TranslatorConfig"]


class TranslatorConfig(SkillConfig):
    """The translator's network and inputs. ``tokens``, ``codebook`` and ``chunk`` are set from the tokenizer by training."""

    cameras: list[str] = Field(default_factory=lambda: ["head", "wrist"], description="Camera roles, in order.")
    chunk: int = Field(8, ge=1, description="Actions per chunk: the tokenizer's window (set by training).")


class SkillTranslator(SkillPolicy):
    """Skill tokens and an observation to an action chunk (see the module docstring)."""

    config_class = TranslatorConfig

    def __init__(self, config: TranslatorConfig) -> None:
        super().__init__(config)
        c, D = config, config.dim
        self.vision = ObservationTokens(c)
        self.state_in = nn.Linear(c.state_dim, D)
        self.skill_embed = nn.Embedding(c.codebook, D)
        self.skill_pos = nn.Parameter(torch.randn(1, c.tokens, D) * 0.02)
        self.queries = nn.Parameter(torch.randn(1, c.chunk, D) * 0.02)
        self.body = transformer(c.dim, c.heads, c.layers, c.dropout)
        self.action_out = nn.Linear(D, c.action_dim)

    @classmethod
    def derive_frames(
        cls, config: TranslatorConfig, frames: FrameData, data: Sequence[str | Path], *, cache: str, log: Callable[[str], None] | None
    ) -> tuple[FrameData, dict[str, Any]]:
        """The frames labelled with the skill tokens of the window each starts (`frame_tokens`); the chunk is the window."""
        labels = frame_tokens(config.tokenizer, data, cache=cache, log=log, frames=len(frames))
        return with_tokens(frames, SKILLS, labels.tokens), {"tokens": labels.tokens.shape[1], "codebook": labels.codebook, "chunk": labels.window}

    def extra_inputs(self) -> dict[str, InputSpec]:
        return {SKILLS: InputSpec((self.config.tokens,), "int64", self.config.codebook)}

    def predict(self, batch: dict[str, Tensor]) -> Tensor:
        """The chunk (B, chunk, A), normalized."""
        B = batch[SKILLS].shape[0]
        parts = [
            self.vision(batch),  # (B, cameras * cells, D)
            self.state_in(batch[STATE])[:, None],
            self.skill_embed(batch[SKILLS].clamp(min=0)) + self.skill_pos,
            self.queries.expand(B, -1, -1),
        ]
        out = self.body(torch.cat(parts, dim=1))
        return self.action_out(out[:, -self.config.chunk :])

    def loss(self, batch: dict[str, Tensor], **schedule: Any) -> dict[str, Tensor]:
        error = masked_mean(regression_error(self.predict(batch), batch[ACTIONS]), batch.get(ACTION_MASK))
        return {"loss": error, "action": error.detach()}

    def sample(self, batch: dict[str, Tensor], noise: Tensor | None = None, **options: Any) -> dict[str, Tensor]:
        return {ACTIONS: self.predict(batch)}

    def outputs(self) -> tuple[str, ...]:
        return (ACTIONS,)
