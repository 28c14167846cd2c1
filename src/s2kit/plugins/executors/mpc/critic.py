"""``mpc``'s learned scorer: a progress critic on the kit, (observation, guidance, candidate chunk) -> progress.

What it predicts. For a frame and the next ``chunk`` commands from it, the
discounted time until the current subtask is done: ``discount ** (k - 1)``
where the k-th command from the frame completes it, 0 where the episode
never completes it (a rollout that failed). The label comes from the
dataset column ``progress.subtasks_done`` (the subtasks done after each
command: what a simulated robot's progress counts, or what an annotator
marks on a real one; `s2kit collect` records it), so the critic learns
from demonstrations and from recorded rollouts of any executor that
succeeded and failed (``s2kit collect --executor NAME --keep all``). This is
a Monte Carlo value of the behaviour that made the data.

A value of the recorded chunk alone does not tell chunks apart at one
state; a second term does: where the recorded chunk led on to the subtask
(weighted by its value), it must score above the same chunk perturbed (an
offset of ``rank_noise`` normalized units on the translation, as ``mpc``
perturbs), by a margin (a logistic ranking loss). That assumes the recorded
behaviour beats its perturbations where it succeeded, the assumption of
learning from demonstrations. A third term does the same against the
recorded chunk *stopping* (its translation held still from a random step on,
which is what ``mpc``'s kept candidates turn into once their rest runs out):
without it a critic learns that standing still comes just before a subtask
is done (the expert stops to grasp and to release) and ``mpc`` then picks
standing still at every step. Where the recorded chunk hardly moved there is
nothing to tell apart, so the term is weighted by how far the stop takes the
chunk (in units of ``rank_noise``, at most 1).

Network (`ProgressCritic`): the frozen trunk's tokens of each camera
(`s2kit.learning.vision`), the state, the three guidance embeddings (goal,
trajectory, current subtask), the candidate's commands (one token each,
with their position) and a value query, through a small transformer; the
query's output is the logit. The observation is encoded once for all the
candidates of a step (``candidates``: (B, K, chunk, A)).

`CriticExecutor` (``mpc-critic``) is its kit executor: ``s2kit train
--executor mpc-critic`` trains it, ``s2kit export`` writes its ONNX graph
(the candidates an input, ``candidates`` of them per call) with the parity
check; `CriticScorer` runs it for ``mpc``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from s2kit.core.errors import DataError
from s2kit.learning.batch import ACTIONS, STATE, TEXT
from s2kit.learning.data import ExtraColumns
from s2kit.learning.policy import InputSpec
from s2kit.learning.vision import FrozenTrunkPolicy, ObservationTokens, VisionConfig, transformer
from s2kit.plugins.executors.mpc.columns import CANDIDATES, PROGRESS, STEPS, VALUE, steps_to_done

__all__ = ["CriticConfig", "ProgressColumns", "ProgressCritic"]


class CriticConfig(VisionConfig):
    """The critic's network, its labels and its ranking term."""

    chunk: int = Field(5, ge=1, description="Commands of a candidate it scores (mpc's window).")
    discount: float = Field(0.97, gt=0.0, le=1.0, description="Per-command discount of the time to the subtask's end.")
    rank_weight: float = Field(1.0, ge=0.0, description="Weight of the ranking term (recorded chunk above its perturbations).")
    rank_noise: float = Field(0.5, gt=0.0, description="Perturbation of the ranking term, in normalized action units.")
    rank_margin: float = Field(1.0, ge=0.0, description="Logit margin of the ranking term.")
    perturb: list[int] = Field(default_factory=lambda: [0, 1, 2], description="Action dimensions the ranking terms perturb and stop.")
    stop_weight: float = Field(1.0, ge=0.0, description="Weight of the stop term (recorded chunk above itself stopping partway).")
    candidates: int = Field(16, ge=1, description="Candidates per call in an exported graph (torch takes any number).")


class ProgressColumns(ExtraColumns):
    """Each frame's commands to its subtask's end (`steps_to_done`) from the progress column; NaN where the count is
    unknown, and for stale-guidance samples (the label is not that subtask's)."""

    features = (PROGRESS,)
    keys = (STEPS,)

    def read(self, episode: Mapping[str, Any], length: int, *, features: Mapping[str, Any], cameras: Sequence[str]) -> dict[str, np.ndarray]:
        if PROGRESS not in episode:  # the labels are the critic's whole signal: a dataset without them is an error
            raise DataError(f"no {PROGRESS} column, which the critic's labels come from (s2kit collect records it)")
        return {STEPS: steps_to_done(np.asarray(episode[PROGRESS]).reshape(length))}

    def batch(self, values: dict[str, Tensor], stale: Tensor | None) -> dict[str, Tensor]:
        steps = values[STEPS].reshape(-1).clone()
        if stale is not None:
            steps[stale] = float("nan")
        return {STEPS: steps}


class ProgressCritic(FrozenTrunkPolicy):
    """Observation, guidance and K candidate chunks to K progress logits (see the module docstring)."""

    config_class = CriticConfig
    extra_columns = (ProgressColumns(),)

    def __init__(self, config: CriticConfig) -> None:
        super().__init__(config)
        c, D = config, config.dim
        self.vision = ObservationTokens(c)
        self.state_in = nn.Linear(c.state_dim, D)
        self.text_in = nn.Linear(c.text_dim, D)
        self.action_in = nn.Linear(c.action_dim, D)
        self.action_pos = nn.Parameter(torch.randn(1, c.chunk, D) * 0.02)
        self.query = nn.Parameter(torch.randn(1, 1, D) * 0.02)
        self.body = transformer(c.dim, c.heads, c.layers, c.dropout)
        self.value_out = nn.Linear(D, 1)
        #: A raw command of 0 in normalized units (`normalization_fitted`): where a stopped dimension lies. Not saved.
        self.register_buffer("still", torch.zeros(c.action_dim), persistent=False)

    def normalization_fitted(self, action_mean: Tensor, action_std: Tensor) -> None:
        self.still = (-action_mean / action_std).to(self.still)

    def target(self, batch: dict[str, Tensor]) -> Tensor:
        """The value label (B,): ``discount ** (steps - 1)``, 0 where the subtask was never done, NaN where unknown."""
        steps = batch[STEPS]
        return torch.where(steps < 0, torch.zeros_like(steps), self.config.discount ** (steps - 1))

    def extra_inputs(self) -> dict[str, InputSpec]:
        c = self.config
        return {CANDIDATES: InputSpec((c.candidates, c.chunk, c.action_dim))}

    def score(self, batch: dict[str, Tensor], candidates: Tensor) -> Tensor:
        """Logits (B, K) of candidates (B, K, chunk, A), normalized."""
        B, K = candidates.shape[:2]
        context = torch.cat([self.vision(batch), self.state_in(batch[STATE])[:, None], self.text_in(batch[TEXT])], dim=1)  # (B, N, D)
        context = context[:, None].expand(-1, K, -1, -1).flatten(0, 1)  # (B * K, N, D)
        actions = self.action_in(candidates.flatten(0, 1)) + self.action_pos  # (B * K, chunk, D)
        tokens = torch.cat([context, actions, self.query.expand(B * K, -1, -1)], dim=1)
        return self.value_out(self.body(tokens)[:, -1]).view(B, K)

    def _perturbed(self, actions: Tensor, generator: torch.Generator | None = None) -> Tensor:
        c = self.config
        scale = torch.zeros(actions.shape[-1], device=actions.device)
        scale[c.perturb] = c.rank_noise
        offset = torch.randn(actions.shape[0], 1, actions.shape[-1], generator=generator).to(actions.device) * scale
        return actions + offset

    def _stopped(self, actions: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """(``actions`` with the perturbed dimensions held still from a random step on, how far that moved each chunk
        in units of ``rank_noise``, at most 1)."""
        c = self.config
        B, H = actions.shape[:2]
        start = torch.randint(0, H, (B, 1), generator=generator).to(actions.device)
        held = torch.zeros_like(actions, dtype=torch.bool)
        held[..., c.perturb] = True
        held &= (torch.arange(H, device=actions.device)[None] >= start)[..., None]
        stopped = torch.where(held, self.still.expand_as(actions), actions)
        moved = ((actions - stopped)[..., c.perturb].norm(dim=-1).sum(dim=1) / (H - start[:, 0])) / c.rank_noise
        return stopped, moved.clamp(max=1.0)

    def loss(self, batch: dict[str, Tensor], **schedule: Any) -> dict[str, Tensor]:
        c = self.config
        real = batch[ACTIONS]  # (B, chunk, A)
        stopped, moved = self._stopped(real)
        logits = self.score(batch, torch.stack([real, self._perturbed(real), stopped], dim=1))  # (B, 3)
        target = self.target(batch)
        known = torch.isfinite(target)
        weight = torch.where(known, target, torch.zeros_like(target))
        value = F.binary_cross_entropy_with_logits(logits[known, 0], target[known]) if known.any() else logits.sum() * 0

        def below_recorded(k: int, scale: Tensor | float = 1.0) -> Tensor:
            """The logistic margin loss of candidate ``k`` scoring above the recorded chunk, value-weighted."""
            return (weight * scale * F.softplus(logits[:, k] - logits[:, 0] + c.rank_margin)).sum() / weight.sum().clamp(min=1e-6)

        rank, stop = below_recorded(1), below_recorded(2, moved)
        total = value + c.rank_weight * rank + c.stop_weight * stop
        return {"loss": total, "value": value.detach(), "rank": rank.detach(), "stop": stop.detach()}

    def sample(self, batch: dict[str, Tensor], noise: Tensor | None = None, **options: Any) -> dict[str, Tensor]:
        """``value`` (B, K): the progress each candidate predicts; without candidates, the batch's own chunk (K = 1)."""
        candidates = batch[CANDIDATES] if CANDIDATES in batch else batch[ACTIONS][:, None]
        return {VALUE: torch.sigmoid(self.score(batch, candidates))}

    def outputs(self) -> tuple[str, ...]:
        return (VALUE,)

    def validation_metrics(self, batches: Sequence[dict[str, Tensor]], outputs: Sequence[dict[str, Tensor]]) -> dict[str, float]:
        """``value_mae``: |predicted - target| of the recorded chunks; where the recorded chunk led on to the subtask,
        ``rank_accuracy``: the share it scores above its perturbation, ``stop_accuracy``: above itself stopping, among
        the chunks that stopping changes by at least half of ``rank_noise``."""
        errors, wins, ranked, stops, stopped_count = [], 0.0, 0.0, 0.0, 0.0
        g = torch.Generator().manual_seed(0)
        for batch, out in zip(batches, outputs, strict=True):
            target = self.target(batch)
            known = torch.isfinite(target)
            errors.append((out[VALUE][:, 0] - target)[known].abs())
            good = known & (target > 0)
            if good.any():
                stopped, moved = self._stopped(batch[ACTIONS], g)
                logits = self.score(batch, torch.stack([batch[ACTIONS], self._perturbed(batch[ACTIONS], g), stopped], dim=1))
                wins += float((logits[good, 0] > logits[good, 1]).sum())
                ranked += float(good.sum())
                moving = good & (moved >= 0.5)
                stops += float((logits[moving, 0] > logits[moving, 2]).sum())
                stopped_count += float(moving.sum())
        figures = {"value_mae": float(torch.cat(errors).mean())} if errors and torch.cat(errors).numel() else {}
        if ranked:
            figures["rank_accuracy"] = wins / ranked
        if stopped_count:
            figures["stop_accuracy"] = stops / stopped_count
        return figures
