"""Still images without an imaging package: PNG through FFmpeg (PyAV), resizing in NumPy."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from s2kit.core.errors import DataError

__all__ = ["png_encode", "read_image", "resize"]


def png_encode(frames: np.ndarray) -> list[bytes]:
    """PNG files of uint8 RGB frames ``(N, H, W, 3)``, by FFmpeg's encoder."""
    import av

    codec = av.CodecContext.create("png", "w")
    codec.width, codec.height, codec.pix_fmt = frames.shape[2], frames.shape[1], "rgb24"
    packets = []
    for frame in frames:
        packets += codec.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24"))
    packets += codec.encode(None)
    assert len(packets) == len(frames), "the PNG encoder emits one packet per frame"
    return [bytes(p) for p in packets]


def read_image(path: str | Path) -> np.ndarray:
    """A PNG, JPEG or other still image file as uint8 ``(H, W, 3)``; DataError naming the file."""
    import av

    path = Path(path)
    if not path.is_file():
        raise DataError(f"image file {str(path)!r} does not exist")
    try:
        with av.open(str(path)) as container:
            frame = next(container.decode(video=0))
            return frame.to_ndarray(format="rgb24")
    except (av.error.FFmpegError, StopIteration, ValueError) as err:
        raise DataError(f"{path} is not an image FFmpeg can read: {err}") from None


def resize(image: np.ndarray, size: int) -> np.ndarray:
    """``image`` scaled so its longer side is ``size`` pixels (box filter down, nearest up)."""
    h, w = image.shape[:2]
    scale = size / max(h, w)
    if scale == 1.0:
        return image
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    if scale < 1.0:  # area average: each output pixel is the mean of its source box
        ys = np.linspace(0, h, nh + 1).astype(int)
        xs = np.linspace(0, w, nw + 1).astype(int)
        rows = np.add.reduceat(image.astype(np.float32), ys[:-1], axis=0) / np.diff(ys)[:, None, None]
        out = np.add.reduceat(rows, xs[:-1], axis=1) / np.diff(xs)[None, :, None]
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return image[(np.arange(nh) / scale).astype(int)][:, (np.arange(nw) / scale).astype(int)]
