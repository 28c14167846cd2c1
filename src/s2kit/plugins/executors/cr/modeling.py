"""The Continuous Reasoning network: S2's observation and guidance encoder, K Gaussian thoughts, a flow head that reads them.

Continuous Reasoning for VLA (arXiv 2606.00229) predicts a structured set of
continuous thoughts, maps them into a shared Gaussian code, and generates the
action chunk from them; an exponential-moving-average teacher must predict
the target action field from the student's thoughts (self-verification), so
the thoughts are an interface another model can read rather than a private
shortcut. Here (B batch, K thoughts, c code size, D width):

1. **Encoder**: S2's (`S2Policy.encode`): patch tokens of each camera (with
   the evidence budget where it is on), the guidance's three sentence
   embeddings and the state, through a transformer encoder: the memory.
2. **Thoughts**: K learned queries read the memory (``thought_layers``
   blocks of self- and cross-attention); each thought's output gives a
   Gaussian code, mean and log-variance (c each), sampled by
   reparameterization in training and its mean at inference.
3. **Regularizer**: the codes of a batch are pulled towards N(0, I), by MMD
   (an inverse multiquadratic kernel, as the Wasserstein autoencoder) or
   by KL, ``code_weight``; so every instance's codes live in one prior
   space.
4. **Action**: the flow-matching decoder (pi0's, as S2's) cross-attends to
   the code tokens and the guidance and state tokens, and to nothing of the
   image: what the policy saw reaches the action only through the K codes,
   so the codes are the whole visual context of the chunk.
5. **Verification**: an EMA copy of the decoder side (decay ``ema_decay``,
   updated once per training step) takes the student's codes, with its own
   guidance and state tokens, and must predict the same action field; its
   flow loss (``verify_weight``) trains the student's encoder and thoughts
   only (the teacher takes no gradient). Codes that only the student's
   current decoder can read cost the student this term.
6. The done head reads the encoder's state token, as S2's.

Inference gives ``codes`` (B, K, c), the means, beside the chunk: the
executor puts them in every chunk's info, and ``s2kit serve`` sends them
with the actions. ``zero_codes`` (an inference option) replaces them by the
prior's mean, the ablation of the thoughts at test time; ``codes`` (a tensor)
decodes from another instance's codes (the shareability measurement).
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field, model_validator
from torch import Tensor, nn

from s2kit.learning.batch import ACTION_MASK, ACTIONS, DONE, STATE, TEXT
from s2kit.learning.heads import flow_error, flow_sample, masked_mean
from s2kit.plugins.executors.remote.server import CODES as SERVED_CODES
from s2kit.plugins.executors.s2.configuration import ModelConfig
from s2kit.plugins.executors.s2.modeling import Block, S2Policy

__all__ = ["CODES", "CrConfig", "CrPolicy", "gaussian_kl", "mmd_to_normal"]

#: The output with each chunk's thought codes, (B, K, c): the key the chunk's info and a served reply carry them under.
CODES = SERVED_CODES

#: The modules and parameters the action is decoded with (from codes, guidance and state): the EMA teacher's copy.
_DECODER_SIDE = ("text_proj", "text_type", "state_proj", "code_in", "code_pos", "decoder", "decoder_norm", "action_in", "action_pos",
                 "time_mlp", "action_out")  # fmt: skip


class CrConfig(ModelConfig):
    """S2's network options (encoder, budget, guidance) and the thoughts', the regularizer's and the verification's."""

    thoughts: int = Field(4, ge=1, le=64, description="Thought queries (K), each one Gaussian code.")
    code_dim: int = Field(16, ge=1, description="Size of each thought's code (c).")
    thought_layers: int = Field(1, ge=1, description="Blocks in which the thought queries read the encoder's memory.")
    regularizer: Literal["mmd", "kl", "none"] = Field(
        "mmd", description="Pull of the codes towards N(0, I): mmd (inverse multiquadratic kernel, as the Wasserstein autoencoder), "
        "kl (per code, to the prior), or none.",
    )  # fmt: skip
    code_weight: float = Field(1.0, ge=0.0, description="Weight of the regularizer.")
    verify_weight: float = Field(0.5, ge=0.0, description="Weight of the verification loss (the EMA teacher's flow loss on the student's codes); 0: off.")
    ema_decay: float = Field(0.99, ge=0.0, lt=1.0, description="Decay of the teacher's exponential moving average, per training step.")

    @model_validator(mode="after")
    def _flow_only(self) -> CrConfig:
        if self.head != "flow":
            raise ValueError(f"cr generates its chunks by flow matching (model.head=flow), not {self.head!r}")
        return self

    def graph_facts(self, rho: float | None = None, zero_codes: bool = False) -> dict[str, Any]:
        """S2's, and whether the graph decodes from zeroed codes."""
        return {**super().graph_facts(rho), "zero_codes": bool(zero_codes)}


def mmd_to_normal(codes: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Maximum mean discrepancy between ``codes`` (N, c) and as many draws of N(0, I), unbiased, with the inverse
    multiquadratic kernel C / (C + |x - y|^2), C = 2 c (Tolstikhin et al. 2018, the Wasserstein autoencoder)."""
    n, c = codes.shape
    if n < 2:
        return codes.sum() * 0
    prior = torch.randn(n, c, generator=generator).to(codes)
    scale = 2.0 * c

    def kernel(x: Tensor, y: Tensor) -> Tensor:
        return scale / (scale + torch.cdist(x, y) ** 2)

    off = 1.0 - torch.eye(n, device=codes.device, dtype=codes.dtype)
    within = ((kernel(codes, codes) + kernel(prior, prior)) * off).sum() / (n * (n - 1))
    return within - 2 * kernel(codes, prior).mean()


def gaussian_kl(mean: Tensor, log_var: Tensor) -> Tensor:
    """KL(N(mean, exp(log_var)) || N(0, I)) per code, averaged over codes (summed over a code's entries)."""
    return 0.5 * (mean**2 + log_var.exp() - 1 - log_var).sum(-1).mean()


class CrPolicy(S2Policy):
    """Continuous Reasoning on the kit's policy contract (see the module docstring)."""

    config_class = CrConfig
    config: CrConfig
    #: The S2 variants that apply: the guidance and the budget are the encoder's.
    presets: ClassVar[dict[str, dict[str, Any]]] = S2Policy.presets

    def __init__(self, config: CrConfig) -> None:
        super().__init__(config)
        c, D = config, config.dim
        self.thought_queries = nn.Parameter(torch.randn(1, c.thoughts, D) * 0.02)
        self.thought_blocks = nn.ModuleList(Block(D, c.heads, c.mlp_ratio, c.dropout, cross=True) for _ in range(c.thought_layers))
        self.thought_norm = nn.LayerNorm(D)
        self.code_out = nn.Linear(D, 2 * c.code_dim)
        self.code_in = nn.Linear(c.code_dim, D)
        self.code_pos = nn.Parameter(torch.randn(1, c.thoughts, D) * 0.02)
        # the teacher: a copy of the decoder side, moved only by the moving average (never by a gradient)
        self.teacher = nn.Module()
        for name in _DECODER_SIDE:
            setattr(self.teacher, name, copy.deepcopy(getattr(self, name)))
        self.teacher.config = config  # type: ignore[assignment] # read by S2Policy.decode
        self.teacher.requires_grad_(False)

    # --- thoughts and their codes ---------------------------------------------------------------

    def thoughts(self, memory: Tensor, bias: Tensor | None) -> tuple[Tensor, Tensor]:
        """(mean, log-variance) of each thought's code, (B, K, c) each."""
        h = self.thought_queries.expand(memory.shape[0], -1, -1)
        for block in self.thought_blocks:
            h = block(h, memory=memory, memory_bias=bias)
        mean, log_var = self.code_out(self.thought_norm(h)).chunk(2, dim=-1)
        return mean, log_var.clamp(-8.0, 4.0)

    @staticmethod
    def context(parts: nn.Module, codes: Tensor, batch: dict[str, Tensor]) -> Tensor:
        """What the action decoder of ``parts`` (the student, or its teacher) reads: the code tokens, the guidance tokens
        and the state token, (B, K + texts + 1, D); nothing of the image but through the codes."""
        texts = parts.text_type.shape[1]
        text = parts.text_proj(batch[TEXT][:, :texts]) + parts.text_type
        return torch.cat([parts.code_in(codes) + parts.code_pos, text, parts.state_proj(batch[STATE])[:, None]], dim=1)

    def velocity(self, parts: nn.Module, codes: Tensor, batch: dict[str, Tensor]) -> Any:
        """The flow decoder of ``parts`` conditioned on ``codes``: (x_t, t) -> velocity."""
        context = self.context(parts, codes, batch)
        return lambda x_t, t: S2Policy.decode(parts, context, None, x_t, t)  # type: ignore[arg-type]

    # --- training -------------------------------------------------------------------------------

    @torch.no_grad()
    def update_teacher(self) -> None:
        """One step of the teacher's moving average towards the student's decoder side."""
        decay = self.config.ema_decay
        for name in _DECODER_SIDE:
            mine, theirs = getattr(self, name), getattr(self.teacher, name)
            pairs = [(mine, theirs)] if isinstance(mine, Tensor) else zip(mine.parameters(), theirs.parameters(), strict=True)
            for student, teacher in pairs:
                teacher.lerp_(student, 1.0 - decay)

    def unused_parameters(self) -> list[str]:
        """S2's, and the teacher's: read in training, moved by the moving average, never by the optimizer."""
        return [*super().unused_parameters(), *(name for name, _ in self.named_parameters() if name.startswith("teacher."))]

    def loss(self, batch: dict[str, Tensor], rho: float | None = None) -> dict[str, Tensor]:
        """Loss terms: ``action`` (flow), ``verify`` (the teacher's flow loss on the student's codes), ``codes`` (the
        regularizer), and S2's encoder terms (`S2Policy.encoder_losses`: ``budget``, ``done``); ``loss``, their weighted sum. In training the teacher first takes one step
        of its moving average."""
        c = self.config
        if self.training and c.verify_weight > 0:
            self.update_teacher()
        memory, bias, extras = self.encode(batch, rho)
        mean, log_var = self.thoughts(memory, bias)
        codes = mean + (0.5 * log_var).exp() * torch.randn_like(mean) if self.training else mean
        actions, mask = batch[ACTIONS], batch.get(ACTION_MASK)
        out = {"action": masked_mean(flow_error(self.velocity(self, codes, batch), actions), mask)}
        total = out["action"]
        if c.verify_weight > 0:
            out["verify"] = masked_mean(flow_error(self.velocity(self.teacher, codes, batch), actions), mask)
            total = total + c.verify_weight * out["verify"]
        if c.regularizer != "none":
            out["codes"] = mmd_to_normal(codes.flatten(0, 1)) if c.regularizer == "mmd" else gaussian_kl(mean, log_var)
            total = total + c.code_weight * out["codes"]
        terms, rest = self.encoder_losses(batch, memory, extras, rho)
        out.update(terms)
        out["loss"] = total + rest
        return out

    # --- inference ------------------------------------------------------------------------------

    def sample(
        self, batch: dict[str, Tensor], noise: Tensor | None = None, rho: float | None = None, zero_codes: bool = False, codes: Tensor | None = None
    ) -> dict[str, Tensor]:
        """``actions`` (B, H, A), ``done`` (B,), ``codes`` (B, K, c): the codes the chunk was decoded from (the means;
        zeros with ``zero_codes``; ``codes`` if given, e.g. another instance's), and ``keep_index`` with the budget."""
        c = self.config
        memory, bias, extras = self.encode(batch, rho)
        if codes is None:
            codes = self.thoughts(memory, bias)[0]
            if zero_codes:
                codes = torch.zeros_like(codes)
        B = memory.shape[0]
        x = torch.randn(B, c.chunk, c.action_dim, device=memory.device) if noise is None else noise
        actions = flow_sample(self.velocity(self, codes, batch), x, c.flow_steps)
        out = {ACTIONS: actions, DONE: torch.sigmoid(self.done_logit(memory)), CODES: codes}
        if "keep_index" in extras:
            out["keep_index"] = extras["keep_index"]
        return out

    def validation_metrics(self, batches: Any, outputs: Any) -> dict[str, float]:
        """``code_std``: the spread of the held-out codes (1 under the prior; near 0 when the thoughts collapsed)."""
        codes = torch.cat([o[CODES].flatten(0, 1) for o in outputs]) if outputs else None
        return {"code_std": float(codes.std(0).mean())} if codes is not None and len(codes) > 1 else {}

    def outputs(self) -> tuple[str, ...]:
        """The chunk, the done probability, the codes and, with the budget, the kept patches."""
        return (ACTIONS, DONE, CODES, "keep_index") if self.config.budget else (ACTIONS, DONE, CODES)
