"""Dense optical flow between consecutive video frames, in numba, and its colour-wheel picture.

SOF learns skills from the motion in action-free videos, so every pair of
consecutive frames of every training video needs a dense flow field: many
small pairs (96 x 96 camera images, hundreds per episode), on CPUs.

The algorithm is coarse-to-fine iterative Lucas-Kanade with warping, each
constraint linearised at its own pixel's estimate (as Farnebäck's method and
the local part of Bruhn, Weickert and Schnörr's CLG method, IJCV 2005, do):

* each frame becomes grey (Rec. 601 luma, as OpenCV), is smoothed once with
  the 5-tap binomial filter, and is halved into a pyramid (binomial
  filter, every other pixel) down to `DEFAULT_LEVELS` levels or 8 pixels;
* from the coarsest level up, the flow of the level below, doubled, is the
  start; each iteration warps the second frame by the current flow
  (bilinear) and writes brightness constancy at every pixel j as
  ``Ix_j (u - u_j) + Iy_j (v - v_j) = -It_j``, linearised at that pixel's
  own estimate (u_j, v_j); every pixel takes the least-squares (u, v) of
  its window of those constraints, a 2 x 2 solve of windowed sums. The
  plainer update ``du = -G^-1 sum(grad I * It)``, with every pixel's It
  but the centre's flow, grows noisier with each iteration; this one
  settles;
* the window is a box of ``2 radius + 1`` pixels applied twice (a tent
  ``4 radius + 1`` wide, weights falling off from the centre) by running
  sums: its cost does not depend on its size;
* a small Tikhonov term ``regularization * (u - u_before)`` pulls each
  pixel towards its flow before the iteration (at first, the coarser
  level's): where a window has no texture (the flat table tops and walls
  of simulated scenes) the flow of the neighbourhood carries over instead
  of a division by a vanishing determinant.

Why this one: it is the cheapest dense method that is accurate at these
sizes. Per pixel and iteration it is a bilinear sample, two products, two
windowed sums and a 2 x 2 solve; the gradients are the first frame's, so
their windowed products are computed once per level. Farnebäck fits a
quadratic polynomial to every pixel's neighbourhood in both frames and
then blurs five products per iteration; TV-L1 needs tens of primal-dual
iterations per warp. On the known-flow pairs of
``benchmarks/optical_flow.py`` this method has lower endpoint error than
OpenCV's Farnebäck and takes less time per 96 x 96 pair on one thread
(docs/skills.md has the figures). Every pair is independent, so a video
is parallel over pairs (numba ``prange``), and each frame's pyramid is
built once and shared by the two pairs it is in.

Convention (OpenCV's): ``flow[t, y, x] = (dx, dy)`` in pixels, such that
``frames[t + 1]`` at ``(x + dx, y + dy)`` shows what ``frames[t]`` shows at
``(x, y)``.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from numba import njit, prange

from s2kit.core.errors import ConfigError

__all__ = [
    "DEFAULT_ITERATIONS",
    "DEFAULT_LEVELS",
    "DEFAULT_RADIUS",
    "DEFAULT_REGULARIZATION",
    "colour_wheel",
    "flow_to_rgb",
    "optical_flow",
    "warp",
    "write_flow_video",
]

#: Pyramid levels, the full-size one included (fewer where the image is small).
DEFAULT_LEVELS = 4
#: Iterations per level, finest first; the last entry serves every coarser level.
DEFAULT_ITERATIONS = (2, 3, 4, 5)
#: Half-width of the box that, applied twice, is the least-squares window.
DEFAULT_RADIUS = 5
#: Weight of the pull towards the coarser level's flow, in units of squared grey-level
#: gradient (grey in [0, 1]); matters only where a window has almost no texture.
DEFAULT_REGULARIZATION = 1e-4
#: The smallest side a pyramid level may have, and the smallest frame accepted.
MIN_SIDE = 8
#: Bytes of pyramids held at once: longer videos are processed in chunks of frames.
_CHUNK_BYTES = 64 << 20


# --- kernels -------------------------------------------------------------------------------------


@njit(cache=True, fastmath=True)
def _binomial(src, dst, tmp, step):
    """``dst`` = ``src`` smoothed by the 5-tap binomial filter (edges replicated), every ``step``-th pixel."""
    h, w = src.shape
    h2, w2 = dst.shape
    for y in range(h):
        for x2 in range(w2):
            x = step * x2
            tmp[y, x2] = 0.0625 * (src[y, max(x - 2, 0)] + src[y, min(x + 2, w - 1)]) + 0.25 * (
                src[y, max(x - 1, 0)] + src[y, min(x + 1, w - 1)]
            ) + 0.375 * src[y, x]
    for y2 in range(h2):
        y = step * y2
        ym2, ym1, yp1, yp2 = max(y - 2, 0), max(y - 1, 0), min(y + 1, h - 1), min(y + 2, h - 1)
        for x2 in range(w2):
            dst[y2, x2] = 0.0625 * (tmp[ym2, x2] + tmp[yp2, x2]) + 0.25 * (tmp[ym1, x2] + tmp[yp1, x2]) + 0.375 * tmp[y, x2]


@njit(cache=True)
def _level(buffer, shapes, offsets, level):
    """Level ``level`` of a pyramid stored flat in ``buffer``, as an (h, w) view."""
    h, w = shapes[level, 0], shapes[level, 1]
    return buffer[offsets[level] : offsets[level] + h * w].reshape((h, w))


@njit(cache=True, fastmath=True)
def _pyramid(frame, scale, buffer, shapes, offsets):
    """Grey, smoothed and halved: the pyramid of one (H, W, C) frame, into ``buffer``."""
    h, w, channels = frame.shape
    grey = np.empty((h, w), np.float32)
    tmp = np.empty((h, w), np.float32)
    for y in range(h):
        for x in range(w):
            if channels == 1:
                grey[y, x] = frame[y, x, 0] * scale
            else:
                grey[y, x] = (0.299 * frame[y, x, 0] + 0.587 * frame[y, x, 1] + 0.114 * frame[y, x, 2]) * scale
    _binomial(grey, _level(buffer, shapes, offsets, 0), tmp, 1)
    for level in range(1, shapes.shape[0]):
        _binomial(_level(buffer, shapes, offsets, level - 1), _level(buffer, shapes, offsets, level), tmp, 2)


@njit(cache=True, fastmath=True)
def _box_mean(src, dst, tmp, r):
    """Mean over a (2r+1)^2 box, shrunk at the borders, by running sums; ``dst`` may be ``src``."""
    h, w = src.shape
    for y in range(h):
        s = np.float32(0.0)
        for x in range(min(r, w - 1) + 1):
            s += src[y, x]
        for x in range(w):
            tmp[y, x] = s / (min(x + r, w - 1) - max(x - r, 0) + 1)
            if x + r + 1 < w:
                s += src[y, x + r + 1]
            if x - r >= 0:
                s -= src[y, x - r]
    acc = np.zeros(w, np.float32)
    for y in range(min(r, h - 1) + 1):
        for x in range(w):
            acc[x] += tmp[y, x]
    for y in range(h):
        inv = np.float32(1.0) / (min(y + r, h - 1) - max(y - r, 0) + 1)
        for x in range(w):
            dst[y, x] = acc[x] * inv
        if y + r + 1 < h:
            for x in range(w):
                acc[x] += tmp[y + r + 1, x]
        if y - r >= 0:
            for x in range(w):
                acc[x] -= tmp[y - r, x]


@njit(cache=True, fastmath=True)
def _window(src, dst, tmp, r):
    """The least-squares window: a box mean applied twice (a tent 4r+1 wide)."""
    _box_mean(src, dst, tmp, r)
    _box_mean(dst, dst, tmp, r)


@njit(cache=True, fastmath=True, inline="always")
def _bilinear(image, x, y):
    """``image`` (h, w) at the point (x, y), coordinates clamped to the frame."""
    h, w = image.shape
    x = min(max(x, 0.0), w - 1.0)
    y = min(max(y, 0.0), h - 1.0)
    x0 = min(int(x), w - 2) if w > 1 else 0
    y0 = min(int(y), h - 2) if h > 1 else 0
    tx, ty = x - x0, y - y0
    x1, y1 = min(x0 + 1, w - 1), min(y0 + 1, h - 1)
    top = image[y0, x0] + tx * (image[y0, x1] - image[y0, x0])
    bottom = image[y1, x0] + tx * (image[y1, x1] - image[y1, x0])
    return top + ty * (bottom - top)


@njit(cache=True, fastmath=True)
def _pair_flow(first, second, shapes, offsets, iterations, radius, lam, out):
    """The flow from one pyramid to the next, into ``out`` (H, W, 2)."""
    height, width = shapes[0, 0], shapes[0, 1]
    u = np.zeros((height, width), np.float32)  # the current level's flow
    v = np.zeros((height, width), np.float32)
    prev_u = np.zeros((height, width), np.float32)  # the coarser level's
    prev_v = np.zeros((height, width), np.float32)
    gx = np.empty((height, width), np.float32)
    gy = np.empty((height, width), np.float32)
    gxx = np.empty((height, width), np.float32)
    gxy = np.empty((height, width), np.float32)
    gyy = np.empty((height, width), np.float32)
    cx = np.empty((height, width), np.float32)
    cy = np.empty((height, width), np.float32)
    tmp = np.empty((height, width), np.float32)
    for level in range(shapes.shape[0] - 1, -1, -1):
        h, w = shapes[level, 0], shapes[level, 1]
        i1 = _level(first, shapes, offsets, level)
        i2 = _level(second, shapes, offsets, level)
        # start from the coarser flow, doubled: coarse pixel j sits on fine pixel 2j
        coarse = min(level + 1, shapes.shape[0] - 1)
        pu = prev_u[: shapes[coarse, 0], : shapes[coarse, 1]]
        pv = prev_v[: shapes[coarse, 0], : shapes[coarse, 1]]
        for y in range(h):
            for x in range(w):  # the coarsest level starts from zero (prev_* are zeros)
                u[y, x] = 2.0 * _bilinear(pu, 0.5 * x, 0.5 * y)
                v[y, x] = 2.0 * _bilinear(pv, 0.5 * x, 0.5 * y)
        # the first frame's gradients (central differences) and their windowed products
        for y in range(h):
            ym, yp = max(y - 1, 0), min(y + 1, h - 1)
            for x in range(w):
                dx = 0.5 * (i1[y, min(x + 1, w - 1)] - i1[y, max(x - 1, 0)])
                dy = 0.5 * (i1[yp, x] - i1[ym, x])
                gx[y, x], gy[y, x] = dx, dy
                gxx[y, x], gxy[y, x], gyy[y, x] = dx * dx, dx * dy, dy * dy
        _window(gxx[:h, :w], gxx[:h, :w], tmp, radius)
        _window(gxy[:h, :w], gxy[:h, :w], tmp, radius)
        _window(gyy[:h, :w], gyy[:h, :w], tmp, radius)
        for _ in range(iterations[min(level, len(iterations) - 1)]):
            # each pixel's constraint, linearised at its own flow: grad I . (u_j, v_j) - It_j
            for y in range(h):
                for x in range(w):
                    dx, dy = gx[y, x], gy[y, x]
                    tx, ty = x + u[y, x], y + v[y, x]
                    known = dx * u[y, x] + dy * v[y, x]
                    if 0.0 <= tx <= w - 1.0 and 0.0 <= ty <= h - 1.0:
                        known -= _bilinear(i2, tx, ty) - i1[y, x]
                    # a pixel whose match left the frame says nothing new: It taken as 0
                    cx[y, x] = dx * known
                    cy[y, x] = dy * known
            _window(cx[:h, :w], cx[:h, :w], tmp, radius)
            _window(cy[:h, :w], cy[:h, :w], tmp, radius)
            for y in range(h):
                for x in range(w):
                    a, b, d = gxx[y, x] + lam, gxy[y, x], gyy[y, x] + lam
                    rx, ry = cx[y, x] + lam * u[y, x], cy[y, x] + lam * v[y, x]
                    inv = 1.0 / (a * d - b * b)
                    u[y, x] = (d * rx - b * ry) * inv
                    v[y, x] = (a * ry - b * rx) * inv
        for y in range(h):
            for x in range(w):
                prev_u[y, x], prev_v[y, x] = u[y, x], v[y, x]
    for y in range(height):
        for x in range(width):
            out[y, x, 0] = u[y, x]
            out[y, x, 1] = v[y, x]


@njit(cache=True, parallel=True)
def _video_flow(frames, scale, shapes, offsets, iterations, radius, lam):
    """The flows between consecutive frames (T, H, W, C): (T - 1, H, W, 2), parallel over frames."""
    count = frames.shape[0]
    total = offsets[-1] + shapes[-1, 0] * shapes[-1, 1]
    pyramids = np.empty((count, total), np.float32)
    for t in prange(count):
        _pyramid(frames[t], scale, pyramids[t], shapes, offsets)
    out = np.empty((count - 1, frames.shape[1], frames.shape[2], 2), np.float32)
    for t in prange(count - 1):
        _pair_flow(pyramids[t], pyramids[t + 1], shapes, offsets, iterations, radius, lam, out[t])
    return out


@njit(cache=True, parallel=True)
def _warp(image, flow, out):
    h, w, channels = image.shape
    for y in prange(h):
        for x in range(w):
            for c in range(channels):
                out[y, x, c] = _bilinear(image[:, :, c], x + flow[y, x, 0], y + flow[y, x, 1])


# --- the public functions ------------------------------------------------------------------------


def _as_frames(frames: np.ndarray | Sequence[np.ndarray]) -> tuple[np.ndarray, float]:
    """Frames as a contiguous (T, H, W, C) uint8 or float32 array and the scale to grey in [0, 1]."""
    if not isinstance(frames, np.ndarray):
        frames = list(frames)
        shapes = {np.shape(f) for f in frames}
        if len(shapes) > 1:
            first = np.shape(frames[0])
            odd = next(i for i, f in enumerate(frames) if np.shape(f) != first)
            raise ValueError(f"frames: frame {odd} has shape {np.shape(frames[odd])}, frame 0 has {first}")
        frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[..., None]
    if frames.ndim != 4 or frames.shape[-1] not in (1, 3):
        raise ValueError(f"frames must be (T, H, W) grey or (T, H, W, 3) RGB, got shape {frames.shape}")
    if frames.shape[0] < 2:
        raise ValueError(f"frames: flow needs at least two frames, got {frames.shape[0]}")
    if min(frames.shape[1:3]) < MIN_SIDE:
        raise ValueError(f"frames must be at least {MIN_SIDE} x {MIN_SIDE} pixels, got {frames.shape[1:3]}")
    if frames.dtype == np.uint8:
        return np.ascontiguousarray(frames), 1.0 / 255.0
    if not np.issubdtype(frames.dtype, np.floating):
        raise TypeError(f"frames must be uint8 (0-255) or float (0-1), not {frames.dtype}")
    bad = ~np.isfinite(frames)
    if bad.any():
        raise ValueError(f"frames: frame {int(np.argwhere(bad)[0][0])} holds non-finite values (NaN or inf)")
    return np.ascontiguousarray(frames, dtype=np.float32), 1.0


def _pyramid_shapes(height: int, width: int, levels: int) -> tuple[np.ndarray, np.ndarray]:
    """Each level's (h, w), halving while both sides stay at least `MIN_SIDE`, and offsets into a flat buffer."""
    shapes = [(height, width)]
    while len(shapes) < levels and min(shapes[-1]) // 2 >= MIN_SIDE:
        h, w = shapes[-1]
        shapes.append(((h + 1) // 2, (w + 1) // 2))
    sizes = [h * w for h, w in shapes]
    offsets = np.cumsum([0, *sizes[:-1]])
    return np.array(shapes, np.int64), offsets.astype(np.int64)


def optical_flow(
    frames: np.ndarray | Sequence[np.ndarray],
    *,
    levels: int = DEFAULT_LEVELS,
    iterations: Sequence[int] = DEFAULT_ITERATIONS,
    radius: int = DEFAULT_RADIUS,
    regularization: float = DEFAULT_REGULARIZATION,
) -> np.ndarray:
    """Dense flow between each pair of consecutive frames: float32 (T - 1, H, W, 2), (dx, dy) in pixels.

    ``frames``: (T, H, W, 3) RGB or (T, H, W) grey, uint8 (0-255) or float
    (0-1), T >= 2, sides of at least 8 pixels. Pairs are computed in parallel
    (numba's threads: ``NUMBA_NUM_THREADS`` or ``numba.set_num_threads``);
    ``optical_flow(frames)[t]`` equals ``optical_flow(frames[t:t + 2])[0]``.
    The options are the algorithm's (module docstring); the defaults are the
    ones measured in docs/skills.md.
    """
    array, scale = _as_frames(frames)
    if levels < 1 or radius < 1 or regularization <= 0:
        raise ValueError(f"levels and radius must be >= 1 and regularization > 0, got {levels}, {radius}, {regularization}")
    steps = np.asarray(list(iterations), np.int64)
    if steps.ndim != 1 or len(steps) == 0 or (steps < 1).any():
        raise ValueError(f"iterations must be one or more counts >= 1 (finest level first), got {list(iterations)}")
    shapes, offsets = _pyramid_shapes(array.shape[1], array.shape[2], levels)
    per_frame = 4 * int((shapes[:, 0] * shapes[:, 1]).sum())
    chunk = max(2, _CHUNK_BYTES // per_frame)
    out = np.empty((array.shape[0] - 1, *array.shape[1:3], 2), np.float32)
    # numba's OpenMP layer shares torch's libgomp: starting its threads sets torch's count to numba's; keep torch's
    torch = sys.modules.get("torch")
    threads = torch.get_num_threads() if torch is not None else None
    for start in range(0, array.shape[0] - 1, chunk - 1):  # chunks overlap by one frame
        part = array[start : start + chunk]
        out[start : start + len(part) - 1] = _video_flow(part, np.float32(scale), shapes, offsets, steps, radius, np.float32(regularization))
    if torch is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return out


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``image`` sampled at ``(x + dx, y + dy)`` (bilinear, edges replicated), in ``image``'s dtype.

    With the flow from frame a to frame b, ``warp(b, flow)`` looks like a.
    Conversely ``warp(b, field)`` makes a frame whose flow to ``b`` is ``field``.
    """
    image = np.asarray(image)
    flow = np.asarray(flow)
    if image.ndim not in (2, 3) or flow.shape != (*image.shape[:2], 2):
        raise ValueError(f"warp needs an (H, W[, C]) image and an (H, W, 2) flow, got {image.shape} and {flow.shape}")
    if not np.isfinite(flow).all():
        raise ValueError("warp: the flow holds non-finite values (NaN or inf)")
    planes = np.ascontiguousarray(image.reshape(*image.shape[:2], -1), dtype=np.float32)
    out = np.empty_like(planes)
    _warp(planes, np.ascontiguousarray(flow, dtype=np.float32), out)
    out = out.reshape(image.shape)
    if image.dtype == np.uint8:
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return out.astype(image.dtype, copy=False) if np.issubdtype(image.dtype, np.floating) else out


# --- pictures ------------------------------------------------------------------------------------

#: The colour wheel of Baker et al., "A Database and Evaluation Methodology for Optical Flow"
#: (IJCV 2011): hue ramps (steps) between red, yellow, green, cyan, blue and magenta.
_RAMPS = ((15, (255, 0, 0), (255, 255, 0)), (6, (255, 255, 0), (0, 255, 0)), (4, (0, 255, 0), (0, 255, 255)),
          (11, (0, 255, 255), (0, 0, 255)), (13, (0, 0, 255), (255, 0, 255)), (6, (255, 0, 255), (255, 0, 0)))  # fmt: skip
_WHEEL = np.concatenate(
    [np.array(a) + (np.array(b) - np.array(a)) * np.arange(n)[:, None] / n for n, a, b in _RAMPS]
).astype(np.float32) / 255.0


def flow_to_rgb(flow: np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
    """Flow (..., H, W, 2) as uint8 RGB (..., H, W, 3): hue is the direction, saturation the speed.

    Still pixels are white; a flow of ``max_magnitude`` pixels (default: the
    largest in ``flow``) has the full colour (rightwards red, downwards
    yellow, leftwards cyan, upwards violet: Baker et al.'s wheel, as in the
    Middlebury and Sintel benchmarks); faster ones are darkened.
    """
    flow = np.asarray(flow, dtype=np.float32)
    if flow.ndim < 3 or flow.shape[-1] != 2:
        raise ValueError(f"flow must be (..., H, W, 2), got shape {flow.shape}")
    if not np.isfinite(flow).all():
        raise ValueError("flow_to_rgb: the flow holds non-finite values (NaN or inf)")
    u, v = flow[..., 0], flow[..., 1]
    magnitude = np.hypot(u, v)
    scale = float(magnitude.max(initial=0.0)) if max_magnitude is None else float(max_magnitude)
    if not scale > 0:
        if max_magnitude is not None:
            raise ValueError(f"max_magnitude must be > 0, got {max_magnitude}")
        scale = 1.0  # no motion anywhere: all white
    radius = magnitude / scale
    position = (np.arctan2(-v, -u) / np.pi + 1) / 2 * (len(_WHEEL) - 1)
    k0 = np.floor(position).astype(np.int64)
    k1 = (k0 + 1) % len(_WHEEL)
    f = (position - k0)[..., None]
    colour = (1 - f) * _WHEEL[k0] + f * _WHEEL[k1]
    r = radius[..., None]
    colour = np.where(r <= 1, 1 - r * (1 - colour), 0.75 * colour)
    return np.clip(np.rint(255 * colour), 0, 255).astype(np.uint8)


def colour_wheel(size: int) -> np.ndarray:
    """The key to `flow_to_rgb`'s colours: a disc of flows pointing away from its centre, black around it."""
    centre = (size - 1) / 2
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) - centre
    disc = flow_to_rgb(np.stack([x, y], axis=-1), max_magnitude=max(centre, 1.0))
    disc[np.hypot(x, y) > centre + 0.5] = 0
    return disc


def _check_writable(path: Path) -> None:
    """Refuse a video path that cannot be written, before any work (ConfigError naming it)."""
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder; give a video file path")
    if not path.parent.is_dir():
        raise ConfigError(f"{path}: the folder {path.parent} does not exist")
    if path.exists() and not os.access(path, os.W_OK):
        raise ConfigError(f"{path}: the file is not writable")
    try:
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".probe"):
            pass
    except OSError as err:
        raise ConfigError(f"{path}: cannot write in {path.parent} ({err.strerror or err})") from None


def write_flow_video(
    path: str | Path,
    frames: np.ndarray,
    flows: np.ndarray | None = None,
    *,
    fps: float = 10.0,
    max_magnitude: float | None = None,
    min_height: int = 384,
) -> np.ndarray:
    """Write an MP4 of each frame beside the colours of its flow; returns the flows (computed if not given).

    ``frames`` as for `optical_flow`; ``flows`` (T - 1, H, W, 2) their flows.
    Picture t is frame t beside the flow from t to t + 1, with the colour
    wheel (`colour_wheel`) in the flow's corner. One ``max_magnitude``
    (default: the 99th percentile of the video's speeds, at least one pixel)
    colours every picture alike. Both halves are upscaled (nearest) by the
    least integer factor that makes them ``min_height`` pixels tall, as
    episode videos are.
    The path is checked first: one that cannot be written is a
    `ConfigError` before any flow is computed.
    """
    from s2kit.workflows.video import tile_frames, upscale_factor, write_video

    path = Path(path)
    if not fps > 0 or min_height < 0:
        raise ValueError(f"fps must be > 0 and min_height >= 0, got {fps} and {min_height}")
    _check_writable(path)
    array, _ = _as_frames(frames)
    flows = optical_flow(array) if flows is None else np.asarray(flows, dtype=np.float32)
    if flows.shape != (array.shape[0] - 1, *array.shape[1:3], 2):
        raise ValueError(f"flows must be (T - 1, H, W, 2) = {(array.shape[0] - 1, *array.shape[1:3], 2)}, got {flows.shape}")
    if max_magnitude is None:  # at least a pixel: a still video stays white instead of showing its noise
        max_magnitude = max(float(np.percentile(np.hypot(flows[..., 0], flows[..., 1]), 99)), 1.0)
    rgb = array if array.dtype == np.uint8 else np.clip(np.rint(array * 255), 0, 255).astype(np.uint8)
    rgb = np.repeat(rgb, 3, axis=-1) if rgb.shape[-1] == 1 else rgb
    h, w = array.shape[1:3]
    k = upscale_factor(h, min_height)
    key = colour_wheel(max(8, min(h, w) * k // 4))
    inside = key.any(axis=-1, keepdims=True)
    buffer = np.zeros((h * k, 2 * w * k, 3), np.uint8)

    def pictures() -> Iterator[np.ndarray]:  # one buffer, refilled
        for t in range(len(flows)):
            halves = {"frame": rgb[t], "flow": flow_to_rgb(flows[t], max_magnitude)}
            tile_frames(halves, ("frame", "flow"), {"frame": k, "flow": k}, out=buffer)
            np.copyto(buffer[: len(key), w * k : w * k + len(key)], key, where=inside)
            yield buffer

    write_video(path, pictures(), fps)
    return flows
