"""SOF's skill planner: which skills come next, as tokens, from the current observation and the guidance; no actions.

It plans ``horizon`` windows ahead (``horizon * tokens`` skill tokens)
autoregressively: the sequence is the camera's frozen trunk map as tokens
(`s2kit.learning.vision`), the goal's and the current subtask's
sentence embeddings, a start token and the planned tokens so far; the
observation and texts see each other, and each token position sees them and
the tokens before it (a causal mask), so training is one pass with teacher
forcing (cross-entropy on every planned token) and inference decodes token
by token (greedy, or sampled at a ``temperature``).

It also says whether the subtask its guidance names is over (the kit's
stale-guidance samples: frames just after a subtask ended, paired with the
ended subtask, are done; every other frame is not), read from the
observation and texts: the skill's own progress signal, so that a pipeline
needs no executor to move on.

Targets come from video and language alone: the tokens of the windows that
start at the frame and every ``window`` frames after it (`labels`), and the
annotations. It trains on the kit (`s2kit.learning.trainer.prepare` with no
actions, then `fit`) through ``s2kit sof train-planner``
(`s2kit.plugins.skills.sof.training.train_planner`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from s2kit.learning.batch import DONE, TEXT
from s2kit.learning.data import FrameData
from s2kit.plugins.skills.sof.labels import PLAN, SKILLS, frame_tokens, with_tokens
from s2kit.plugins.skills.sof.policy import SkillConfig, SkillPolicy
from s2kit.learning.vision import ObservationTokens, transformer

__all__ = ["PlannerConfig", "SkillPlanner"]

#: Which of a batch's three texts the planner reads: the goal and the current subtask (not the trajectory).
_TEXTS = (0, 2)


class PlannerConfig(SkillConfig):
    """The planner's network and what it plans. ``tokens``, ``codebook`` and ``window`` are set from the tokenizer by training."""

    cameras: list[str] = Field(default_factory=lambda: ["head"], description="Camera roles, in order.")
    horizon: int = Field(2, ge=1, description="Windows planned ahead; the skill acts out the first and plans again.")
    window: int = Field(8, ge=1, description="Frames per window (set from the tokenizer by training).")
    done_weight: float = Field(0.5, ge=0.0, description="Weight of the subtask-done loss.")

    @property
    def length(self) -> int:
        """Tokens planned: ``horizon * tokens``."""
        return self.horizon * self.tokens


class SkillPlanner(SkillPolicy):
    """Observation and guidance to the next windows' skill tokens and a subtask-done probability (module docstring)."""

    config_class = PlannerConfig

    def __init__(self, config: PlannerConfig) -> None:
        super().__init__(config)
        c, D, N = config, config.dim, config.length
        self.vision = ObservationTokens(c)
        self.text_in = nn.Linear(c.text_dim, D)
        self.text_type = nn.Parameter(torch.randn(1, len(_TEXTS), D) * 0.02)
        self.start = nn.Parameter(torch.randn(1, 1, D) * 0.02)
        self.token_embed = nn.Embedding(c.codebook, D)
        self.token_pos = nn.Parameter(torch.randn(1, N, D) * 0.02)
        self.body = transformer(c.dim, c.heads, c.layers, c.dropout)
        self.token_out = nn.Linear(D, c.codebook)
        self.done_out = nn.Linear(D, 1)
        prefix = len(c.cameras) * c.cells + len(_TEXTS)
        # prefix positions see the prefix; planned position i sees the prefix and positions <= i (True = masked out)
        mask = torch.ones(prefix + N, prefix + N, dtype=torch.bool)
        mask[:, :prefix] = False
        mask[prefix:, prefix:] = torch.triu(torch.ones(N, N, dtype=torch.bool), diagonal=1)
        self.register_buffer("mask", mask, persistent=False)
        self.prefix = prefix

    # --- data ---------------------------------------------------------------------------------

    @classmethod
    def derive_frames(
        cls, config: PlannerConfig, frames: FrameData, data: Sequence[str | Path], *, cache: str, log: Callable[[str], None] | None
    ) -> tuple[FrameData, dict[str, Any]]:
        """The frames with their plan targets: the tokens of the windows starting at the frame and every window after
        it, ``horizon`` of them; -1 past the episode's end."""
        labels = frame_tokens(config.tokenizer, data, cache=cache, log=log, frames=len(frames))
        W, K = labels.window, labels.tokens.shape[1]
        t = torch.arange(len(frames))
        plans = []
        for p in range(config.horizon):
            j = t + p * W
            inside = j < frames.end
            tokens = labels.tokens[torch.minimum(j, frames.end - 1)].clone()  # (frames, K)
            tokens[~inside] = -1
            plans.append(tokens)
        plan = torch.cat(plans, dim=1)  # (frames, horizon * K)
        return with_tokens(frames, PLAN, plan, targets=True), {"tokens": K, "codebook": labels.codebook, "window": W}

    # --- the network --------------------------------------------------------------------------

    def context(self, batch: dict[str, Tensor]) -> Tensor:
        """The prefix tokens (B, prefix, D): the observation and the goal and subtask texts."""
        text = self.text_in(batch[TEXT][:, list(_TEXTS)].float()) + self.text_type
        return torch.cat([self.vision(batch), text], dim=1)

    def run(self, context: Tensor, planned: Tensor) -> tuple[Tensor, Tensor]:
        """(token logits (B, n + 1, codebook) for planned positions 0..n, done logit (B,)) given ``planned`` (B, n) tokens."""
        B, n = planned.shape
        inputs = [context, self.start.expand(B, -1, -1) + self.token_pos[:, :1]]
        if n:
            inputs.append(self.token_embed(planned.clamp(min=0)) + self.token_pos[:, 1 : n + 1])
        x = torch.cat(inputs, dim=1)
        size = x.shape[1]
        out = self.body(x, mask=self.mask[:size, :size])
        return self.token_out(out[:, self.prefix :]), self.done_out(out[:, : self.prefix].mean(1)).squeeze(-1)

    def loss(self, batch: dict[str, Tensor], **schedule: Any) -> dict[str, Tensor]:
        target = batch[PLAN]  # (B, N), -1 where none
        logits, done = self.run(self.context(batch), target[:, :-1])
        valid = target >= 0
        if valid.any():
            tokens = F.cross_entropy(logits[valid], target[valid])
        else:
            tokens = logits.sum() * 0.0
        done_loss = F.binary_cross_entropy_with_logits(done, batch[DONE].float())
        return {"loss": tokens + self.config.done_weight * done_loss, "tokens": tokens.detach(), "done": done_loss.detach()}

    def sample(self, batch: dict[str, Tensor], noise: Tensor | None = None, temperature: float = 0.0, generator: torch.Generator | None = None, **options: Any) -> dict[str, Tensor]:
        """``skills`` (B, horizon * tokens): the plan, decoded greedily (``temperature`` 0) or sampled; ``done`` (B,)."""
        context = self.context(batch)
        planned = torch.zeros(context.shape[0], 0, dtype=torch.long, device=context.device)
        done = None
        for _ in range(self.config.length):
            logits, done_logit = self.run(context, planned)
            done = done_logit if done is None else done
            last = logits[:, -1]
            if temperature > 0:
                choice = torch.multinomial(F.softmax(last / temperature, dim=-1), 1, generator=generator)
            else:
                choice = last.argmax(-1, keepdim=True)
            planned = torch.cat([planned, choice], dim=1)
        assert done is not None
        return {SKILLS: planned, DONE: torch.sigmoid(done)}

    def outputs(self) -> tuple[str, ...]:
        return (SKILLS, DONE)

    def validation_metrics(self, batches: Sequence[dict[str, Tensor]], outputs: Sequence[dict[str, Tensor]]) -> dict[str, float]:
        """Greedy plans against the video's tokens: per-token accuracy over every planned position (and, for scale, that
        of always planning each position's most frequent token in these batches), the share of first windows planned
        exactly, and the accuracy of the done signal (on the batches' ordinary and stale samples)."""
        K = self.config.tokens
        hits = total = whole = windows = done_hits = samples = 0
        counts = torch.zeros(self.config.length, self.config.codebook, dtype=torch.long)
        for batch, out in zip(batches, outputs, strict=True):
            target, plan = batch[PLAN], out[SKILLS]
            valid = target >= 0
            for position in range(self.config.length):
                kept = target[valid[:, position], position].cpu()
                counts[position] += torch.bincount(kept, minlength=self.config.codebook)
            hits += int(((plan == target) & valid).sum())
            total += int(valid.sum())
            first = valid[:, :K].all(1)
            whole += int(((plan[:, :K] == target[:, :K]).all(1) & first).sum())
            windows += int(first.sum())
            done_hits += int(((out[DONE] > 0.5).float() == batch[DONE]).sum())
            samples += len(plan)
        return {
            "token_accuracy": hits / max(total, 1),
            "token_accuracy_most_frequent": int(counts.max(1).values.sum()) / max(total, 1),
            "window_accuracy": whole / max(windows, 1),
            "done_accuracy": done_hits / max(samples, 1),
        }
