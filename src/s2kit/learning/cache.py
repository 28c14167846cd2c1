"""A dataset's frames decoded once: a uint8 file on disk, memory-mapped by every run that trains on it.

Decoding video is most of what reading a LeRobot dataset costs, and a run
needs its frames at the network's size only. So each dataset's frames, at one
image size and camera list, are decoded once into ``frames-<key>.u8``
((frames, cameras, 3, S, S) uint8, the episodes in order) with a JSON sidecar,
and later runs map that file instead of decoding again (the pages are shared
between runs and kept by the operating system, not by each process).

A cache file names its dataset's *fingerprint*: the contents of
``meta/info.json`` and the size and modification time of every file under
``data/``, ``videos/`` and ``meta/``, plus the cameras and image size. A
dataset that changed (episodes added, relabelled, copied over) has another
fingerprint, so its cache is rebuilt and the stale one removed. A folder of
video files (no ``meta/info.json``) is fingerprinted by its own files.

Arrays computed from a dataset's frames (SOF's optical flow) are cached the
same way under a name of their own (``what``), in their own dtype.

Where (``TrainConfig.cache``): ``auto`` keeps it in ``<dataset>/.s2kit-cache/``,
or, where the dataset folder is read-only, in ``$XDG_CACHE_HOME/s2kit/frames/``
(``~/.cache``); a folder path keeps every dataset's cache there; ``off``
decodes into memory every run. If no place is writable the frames are decoded
into memory, with a line saying so.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
from numpy.typing import DTypeLike

__all__ = ["CACHE_DIR", "FORMAT", "FRAMES", "cached_frames", "cache_folders", "fingerprint"]

FORMAT = 1
CACHE_DIR = ".s2kit-cache"
#: The ``what`` of decoded frames (`cached_frames`).
FRAMES = "frames"


def fingerprint(root: Path, cameras: Sequence[str], image_size: int, what: str = FRAMES) -> str:
    """What a dataset's decoded frames (or arrays made from them, ``what``) depend on, as a hex digest (see the
    module's docstring). A folder that is no LeRobot dataset (a folder of video files) is its own files."""
    head = f"{FORMAT}|{','.join(cameras)}|{image_size}" + ("" if what == FRAMES else f"|{what}")
    digest = hashlib.sha256(head.encode())
    info = root / "meta" / "info.json"
    digest.update(info.read_bytes() if info.is_file() else b"")
    if info.is_file():
        files = [p for part in ("data", "videos", "meta") if (root / part).is_dir() for p in sorted((root / part).rglob("*"))]
    else:
        files = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    for path in files:
        if path.is_file():
            stat = path.stat()
            digest.update(f"{path.relative_to(root)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:24]


def cache_folders(root: Path, where: str) -> list[Path]:
    """Where ``root``'s cache may live, the first writable one wins (``where``: auto, off or a folder)."""
    if where == "off":
        return []
    name = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16] + "-" + root.resolve().name
    if where != "auto":
        return [Path(where).expanduser() / name]
    xdg = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "s2kit" / "frames" / name
    return [root / CACHE_DIR, xdg]


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
        return True
    except OSError:
        return False


def _suffix(dtype: np.dtype) -> str:
    """The data file's suffix: ``.u8`` for frames, the dtype's code (``.f2``: float16) for other arrays."""
    return ".u8" if dtype == np.uint8 else f".{dtype.str[1:]}"


def _open(path: Path, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    if not shape[0]:  # an empty file cannot be mapped
        return np.zeros(shape, dtype=dtype)
    # copy-on-write: torch accepts the array (a read-only one warns on every use), the file is never written
    return np.memmap(path, dtype=dtype, mode="c", shape=shape)


def cached_frames(
    root: Path,
    shape: tuple[int, ...],
    cameras: Sequence[str],
    where: str,
    decode: Callable[[], Iterator[np.ndarray]],
    log: Callable[[str], None] | None = None,
    *,
    what: str = FRAMES,
    dtype: DTypeLike = np.uint8,
) -> np.ndarray:
    """Every frame of dataset ``root``, (frames, *shape) uint8 with ``shape`` (cameras, 3, S, S): mapped from its
    cache, built first if missing or stale; ``decode()`` yields the frames episode by episode, each (T, *shape).

    ``what`` (a name and version) and ``dtype`` cache another per-frame array computed from a dataset's frames the same
    way, under a name of its own (SOF's optical flow: ``what="flow..."``, float16, ``shape`` (cameras, 2, S, S))."""
    dtype = np.dtype(dtype)
    folders = cache_folders(root, where)
    stem = f"{what}-{'-'.join(cameras)}-{shape[-1]}px"
    key = fingerprint(root, cameras, shape[-1], what) if folders else ""
    for folder in folders:
        meta = folder / f"{stem}-{key}.json"
        if meta.is_file():
            try:
                record = json.loads(meta.read_text())
                full = tuple(record["shape"])
                data = folder / meta.with_suffix(_suffix(dtype)).name
                if full[1:] == shape and np.dtype(record.get("dtype", "uint8")) == dtype and data.stat().st_size == int(np.prod(full)) * dtype.itemsize:
                    return _open(data, full, dtype)
            except (OSError, ValueError, KeyError, TypeError):
                pass  # unreadable or torn: rebuilt below
    for folder in folders:
        if _writable(folder):
            return _build(folder, stem, key, shape, dtype, decode, log, what)
    if folders and log is not None:
        log(f"no writable place for the {what} cache of {root} ({', '.join(map(str, folders))}): decoding into memory")
    return np.concatenate([np.zeros((0, *shape), dtype), *decode()]).astype(dtype, copy=False)


def _build(
    folder: Path, stem: str, key: str, shape: tuple[int, ...], dtype: np.dtype, decode: Callable[[], Iterator[np.ndarray]],
    log: Callable[[str], None] | None, what: str,
) -> np.ndarray:  # fmt: skip
    data, meta = folder / f"{stem}-{key}{_suffix(dtype)}", folder / f"{stem}-{key}.json"
    tmp = folder / f"{data.name}.{os.getpid()}.tmp"
    frames = 0
    try:
        with open(tmp, "wb") as out:
            for episode in decode():
                assert episode.shape[1:] == shape, (episode.shape, shape)
                frames += len(episode)
                out.write(np.ascontiguousarray(episode, dtype=dtype).tobytes())
        full = (frames, *shape)
        os.replace(tmp, data)  # the data first: a sidecar always names a complete file
        record = {"format": FORMAT, "shape": list(full)} | ({} if dtype == np.uint8 else {"dtype": dtype.str})
        meta.write_text(json.dumps(record) + "\n")
    finally:
        tmp.unlink(missing_ok=True)
    for old in folder.glob(f"{stem}-*"):  # the dataset's earlier versions
        if old.name not in (data.name, meta.name) and not old.name.endswith(".tmp"):
            old.unlink(missing_ok=True)
    if log is not None:
        done = f"decoded {frames} frames" if what == FRAMES else f"computed the {what} of {frames} frames"
        log(f"{done} into {data} ({data.stat().st_size / 2**20:.0f} MiB)")
    return _open(data, full, dtype)
