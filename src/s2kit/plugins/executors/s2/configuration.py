"""S2's model configuration: saved inside every checkpoint, so loading needs nothing else.

Named variants (``variant``) are the paper's comparison and its two
single-component ablations, all the same network:

| variant | guidance the model reads | evidence budget |
| --- | --- | --- |
| ``s2`` | goal + trajectory + current subtask | on (keep ``rho`` of each camera's patches) |
| ``baseline`` | the coarse instruction (goal) only | off (every patch), the pi0.5-style stand-in |
| ``guidance_only`` | goal + trajectory + current subtask | off |
| ``budget_only`` | goal only | on |
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import ConfigDict, Field, model_validator

from s2kit.learning.encoders import TRUNK_STRIDE
from s2kit.learning.policy import PolicyConfig

__all__ = ["VARIANTS", "ModelConfig"]

VARIANTS: dict[str, dict[str, object]] = {
    "s2": {"guidance": "s2", "budget": True},
    "baseline": {"guidance": "goal", "budget": False},
    "guidance_only": {"guidance": "s2", "budget": False},
    "budget_only": {"guidance": "goal", "budget": True},
}


class ModelConfig(PolicyConfig):
    """Everything that shapes the network and its inputs (the kit's inputs: `PolicyConfig`)."""

    model_config = ConfigDict(extra="forbid")

    #: Fields added after format 1 was fixed, with the value that reproduces a checkpoint written before them.
    saved_defaults: ClassVar[dict[str, Any]] = {"focus_weight": 0.0, "keypoint_grid": "patch", "focus_map": 0.0}

    # inputs
    guidance: Literal["s2", "goal"] = Field("s2", description="s2: goal + trajectory + subtask; goal: the instruction only.")
    # evidence budget (S2's "See Less")
    budget: bool = Field(True, description="Keep only rho of each camera's patch tokens.")
    rho: float = Field(0.25, gt=0.0, le=1.0, description="Keep-fraction per camera (run time can change it).")
    budget_warmup: float = Field(0.5, ge=0.0, le=1.0, description="Fraction of training over which rho anneals from 1.")
    gate_temperature: float = Field(1.0, gt=0.0, description="Temperature of the kept tokens' attention gates.")
    gate_noise: float = Field(1.0, ge=0.0, description="Scale of the logistic noise on the patch ranking in training.")
    budget_weight: float = Field(0.1, ge=0.0, description="Weight of (mean sigmoid(keep logit) - rho)^2, which calibrates the logits.")
    # network
    patch_size: int = Field(
        12, description="Pixels per patch side (the stem's total stride): 96 px -> 8x8 patches. With the efficientnet stem it is the "
        "trunk's stride at trunk_blocks (set from it when not given).",
    )  # fmt: skip
    stem: Literal["patch", "conv", "efficientnet"] = Field(
        "patch",
        description="patch: two convolutions (stride 4, then patch/4); conv: a small CNN (3x3 convolutions, stride 2, 2, then patch/4); "
        "efficientnet: the ImageNet-pretrained EfficientNet-Lite0's first trunk_blocks blocks, a 1x1 projection of its last map "
        "to dim per patch (its block-3 stride-4 map gives the fine cells).",
    )  # fmt: skip
    stem_width: int = Field(32, ge=4, description="Channels of the conv stem's first layer (the second has twice as many).")
    trunk_blocks: int = Field(
        11, ge=3, le=16,
        description="EfficientNet-Lite0 blocks the efficientnet stem keeps (stride 4 after 3, 8 after 5, 16 after 8 to 11, 32 after "
        "15 or 16); at least 3, the first stride-4 map, which the fine keypoints and the focus map read.",
    )  # fmt: skip
    trunk_frozen: bool = Field(
        True, description="The efficientnet stem keeps its ImageNet weights and BatchNorm statistics (no gradient); false: fine-tuned."
    )
    dim: int = Field(128, ge=16)
    heads: int = Field(4, ge=1)
    encoder_layers: int = Field(3, ge=1)
    decoder_layers: int = Field(2, ge=1)
    mlp_ratio: int = Field(2, ge=1)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    keypoints: int = Field(
        32, ge=0, description="Spatial-softmax keypoints per camera over its kept patches, as one extra token (0: none)."
    )
    keypoint_grid: Literal["patch", "fine"] = Field(
        "fine",
        description="Where keypoints are softmaxed: over the kept patches (patch), or over the stem's stride-4 cells "
        "inside the kept patches (fine: patch/4 x patch/4 cells each, a finer position).",
    )
    # action head
    head: Literal["flow", "regression", "diffusion"] = Field(
        "flow", description="flow matching (pi0), direct regression, or diffusion (DDPM training, DDIM sampling; DNAct, Diffusion Policy)."
    )
    flow_steps: int = Field(10, ge=1, description="Euler steps when sampling a flow-matching chunk.")
    diffusion_steps: int = Field(100, ge=1, description="Diffusion head: noise levels in training (squaredcos_cap_v2 schedule, epsilon prediction).")
    ddim_steps: int = Field(10, ge=1, description="Diffusion head: DDIM steps when sampling a chunk, every (diffusion_steps / ddim_steps)-th level.")
    diffusion_clip: float = Field(
        5.0, gt=0.0, description="Diffusion head: bound on each DDIM step's estimate of the clean chunk, in normalized action units."
    )
    done_weight: float = Field(0.2, ge=0.0, description="Weight of the subtask-done loss.")
    focus_weight: float = Field(
        0.0, ge=0.0,
        description="A privileged research switch. Weight of the auxiliary focus loss: from every patch of every camera (before the "
        "budget) and the state, predict where the subtask needs the hand (privileged.focus). Training only; 0 (the default): no "
        "focus head.",
    )  # fmt: skip
    focus_map: float = Field(
        0.0, ge=0.0,
        description="A privileged research switch. Weight of the focus map's loss: a map per camera over the stem's stride-4 cells, "
        "conditioned on the current subtask's text and the state, whose expected position and confidence become one token per "
        "camera; trained against where the focus item is in each image (privileged.focus_uv). 0 (the default; "
        "docs/experiments.md, \"Perception diagnostics\"): no map and no token.",
    )  # fmt: skip
    focus_input: bool = Field(
        False,
        description="A privileged research switch. The focus head reads the focus map's tokens (its position and confidence over each "
        "camera's kept cells), the current subtask's text and the state instead of every cell; it runs at inference too, and "
        "its estimate joins the state token as an input to the action (detached). Needs focus_map > 0 and focus_weight > 0.",
    )  # fmt: skip
    keep_prior: float = Field(
        0.0, ge=0.0,
        description="A privileged research switch, departing from the paper. Adds this times the focus map's probability mass in each patch "
        "(detached) to that patch's keep logit, so the patches where the map places the focus item are kept first. Needs "
        "focus_map > 0. 0: keep-scores from the action loss alone.",
    )  # fmt: skip
    registers: int = Field(
        0, ge=0, le=16,
        description="Learned tokens added to the encoder's input, outside the budget, for the network's scratch work (as ViT registers). "
        "Without them a network may spend its kept patches on a fixed, uninformative region (docs/experiments.md, \"Register "
        "tokens\").",
    )  # fmt: skip

    @model_validator(mode="after")
    def _trunk_stride(self) -> ModelConfig:
        if self.stem == "efficientnet":
            stride = TRUNK_STRIDE[self.trunk_blocks]
            if "patch_size" not in self.model_fields_set:
                self.patch_size = stride
            elif self.patch_size != stride:
                raise ValueError(f"model.patch_size {self.patch_size}: the efficientnet stem's stride after {self.trunk_blocks} blocks is {stride}")
        return self

    @model_validator(mode="after")
    def _needs_the_map(self) -> ModelConfig:
        if (self.focus_input or self.keep_prior > 0) and self.focus_map <= 0:
            raise ValueError("model.focus_input and model.keep_prior read the focus map: set model.focus_map > 0")
        if self.focus_input and self.focus_weight <= 0:
            raise ValueError("model.focus_input trains the focus head: set model.focus_weight > 0")
        if self.head == "diffusion" and self.ddim_steps > self.diffusion_steps:
            raise ValueError(f"model.ddim_steps {self.ddim_steps} must not exceed model.diffusion_steps {self.diffusion_steps}")
        return self

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def patches(self) -> int:
        return self.grid * self.grid

    @property
    def decoder_passes(self) -> int:
        """Decoder passes per action chunk: ``flow_steps`` Euler steps with the flow head, ``ddim_steps`` with diffusion,
        one with regression."""
        return {"flow": self.flow_steps, "diffusion": self.ddim_steps}.get(self.head, 1)

    def kept(self, rho: float | None = None) -> int:
        """Patch tokens kept per camera at inference (all of them with the budget off)."""
        if not self.budget:
            return self.patches
        return max(1, round((self.rho if rho is None else rho) * self.patches))

    def graph_facts(self, rho: float | None = None) -> dict[str, Any]:
        """An exported graph keeps a fixed number of patches per camera (k is a Python int when traced) and unrolls its sampling loop (flow or DDIM steps)."""
        return {"kept": self.kept(rho), "decoder_passes": self.decoder_passes} if self.budget else {"decoder_passes": self.decoder_passes}

    @classmethod
    def variant(cls, name: str, **overrides: object) -> ModelConfig:
        if name not in VARIANTS:
            raise ValueError(f"unknown S2 variant {name!r} (known: {', '.join(VARIANTS)})")
        return cls(**{**VARIANTS[name], **overrides})
