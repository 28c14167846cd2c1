"""LeRobot v3.0 datasets, written and read without the ``lerobot`` or ``datasets`` packages.

Hugging Face lerobot (``codebase_version: "v3.0"``) is the format robot-learning
tools exchange; this module writes it with pyarrow and PyAV only, so recording
needs neither torch-side package. What it writes:

```
meta/info.json                                   schema, fps, counts, path templates (written last)
meta/tasks.parquet                               task string (pandas index "task") -> task_index
meta/stats.json                                  per-feature min/max/mean/std/count/q01..q99 (on close)
meta/episodes/chunk-CCC/file-FFF.parquet         one row per episode: length, tasks, where its
                                                 frames and videos are, its own stats
data/chunk-CCC/file-FFF.parquet                  one row per frame
videos/<video_key>/chunk-CCC/file-FFF.mp4        H.264 (or AV1), yuv420p, one per camera
```

Choices, and why:

- **One file per episode.** Episode ``e`` lives at chunk ``e // chunks_size``,
  file ``e % chunks_size`` in ``data/``, ``videos/<key>/`` and
  ``meta/episodes/``. lerobot itself packs several episodes into one file, but
  file indices are free in v3.0 (every reader goes through the episode rows),
  and one file per episode is what makes a save durable without rewriting
  anything already there.
- **Durable saves.** Every file is written under a temporary name, fsynced and
  renamed into place (``os.replace``); ``meta/info.json`` is replaced last and
  is the commit point: an episode is in the dataset exactly when
  ``total_episodes`` counts it. A process killed mid-save leaves at most
  complete files of the uncounted episode; readers ignore them and
  ``mode="append"`` removes them before writing.
- **String features** (language annotations such as ``annotation.subtask``) are
  features of dtype ``"string"``, shape ``(1,)``: a plain Arrow string column in
  the data parquet, declared in ``info.json`` like any other feature. lerobot
  maps that to ``datasets.Value("string")``, validates frames with it and
  skips it for statistics, so its loader reads the dataset unchanged.
- **Images.** Camera features are ``uint8 (H, W, 3)``. With ``use_videos`` they
  become dtype ``"video"`` (odd sides padded by one pixel for 4:2:0 chroma;
  GOP of 2 like lerobot's encoder, so random access stays cheap); without,
  dtype ``"image"``: PNG bytes in a ``{"bytes", "path"}`` struct column, as
  ``datasets.Image`` stores them, so that path round-trips exactly.
- **Statistics.** Per-episode stats follow lerobot (numeric features over
  their frames; images per channel over at most 100 sampled frames, scaled to
  [0, 1], shape (3, 1, 1)). ``stats.json`` is written by ``close()``: numeric
  features are computed exactly over every frame of the dataset (exact
  quantiles, where lerobot averages per-episode histogram estimates), images
  are aggregated from the per-episode stats the way lerobot does. A writer
  killed before ``close()`` leaves no fresh ``stats.json``; opening the
  dataset with ``mode="append"`` and closing it writes one.
- **Shapes read back.** Features of shape ``(1,)`` are scalars per frame, as in
  lerobot: ``episode()`` returns them as ``(T,)``; vectors as ``(T, D)``;
  images ``(T, H, W, 3)``; strings and tasks as lists.

The reader also reads datasets lerobot wrote (several episodes per file).
pyarrow and PyAV are imported inside the functions that use them: importing
this module costs numpy only. One writer at a time per dataset.
"""

from __future__ import annotations

import json
import numbers
import os
import re
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from s2kit.datasets.images import png_encode
from s2kit.core.errors import DataError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["CODEBASE_VERSION", "INDEX_FEATURES", "LeRobotDatasetReader", "LeRobotWriter"]

CODEBASE_VERSION = "v3.0"

INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"

# lerobot's defaults, recorded in info.json; files here hold one episode each,
# far below the sizes.
CHUNKS_SIZE = 1000
DATA_FILES_SIZE_IN_MB = 100
VIDEO_FILES_SIZE_IN_MB = 500

# The per-frame bookkeeping every lerobot dataset has, after the user's features.
INDEX_FEATURES: dict[str, dict[str, Any]] = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}

QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}
VISUAL = ("image", "video")
# Image stats use at most this many frames per episode, like lerobot's sampling.
IMAGE_STATS_FRAMES = 100
_FILE_NAME = re.compile(r"^chunk-(\d+)/file-(\d+)\.(parquet|mp4)$")


# --- writing ---------------------------------------------------------------------------


class LeRobotWriter:
    """Writes episodes of a LeRobot v3.0 dataset under ``root``, each one durably.

    ``features`` maps a name to ``{"dtype", "shape", "names"}``: a numpy dtype
    with a 1-D shape, ``"string"``, or ``"image"``/``"video"`` with shape
    ``(H, W, 3)`` (stored as video when ``use_videos``, else as PNG). The index
    features (``timestamp``, ``frame_index``, ...) are added here.
    ``mode="create"`` needs an empty or missing ``root``; ``mode="append"``
    continues an existing dataset with the same fps, robot type and features.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        fps: float,
        robot_type: str,
        features: Mapping[str, Mapping[str, Any]],
        use_videos: bool = True,
        mode: str = "create",
        video_codec: str = "libx264",
    ) -> None:
        if mode not in ("create", "append"):
            raise ValueError(f"mode must be 'create' or 'append', not {mode!r}")
        if isinstance(fps, bool) or not isinstance(fps, numbers.Real) or not fps > 0:
            raise ValueError(f"fps must be a positive number, not {fps!r}")
        self.root = Path(root)
        self.video_codec = video_codec
        fps = int(fps) if float(fps).is_integer() else float(fps)  # info.json holds plain numbers
        wanted = _normalize_features(features, use_videos, video_codec, fps)
        if mode == "create":
            if self.root.exists() and (not self.root.is_dir() or any(self.root.iterdir())):
                raise DataError(f"{self.root} is not empty: refusing to create a dataset there (use mode='append')")
            self.info = _empty_info(fps, robot_type, wanted)
            self._tasks: dict[str, int] = {}
            _write_json(self.root / INFO_PATH, self.info)
        else:
            self.info = _load_info(self.root)
            _check_same_dataset(self.root / INFO_PATH, self.info, fps, robot_type, wanted)
            self._tasks = {task: i for i, task in enumerate(_load_tasks(self.root, self.info))}
            _remove_uncommitted(self.root, self.info, self._tasks)
        self.features: dict[str, dict[str, Any]] = self.info["features"]
        self.fps: int | float = self.info["fps"]
        self._user_features = {k: ft for k, ft in self.features.items() if k not in INDEX_FEATURES}
        self._closed = False
        self._reset_buffer()

    @property
    def num_episodes(self) -> int:
        """Episodes saved so far, including those there before an append."""
        return int(self.info["total_episodes"])

    def _reset_buffer(self) -> None:
        self._buffer: dict[str, list[Any]] = {key: [] for key in self._user_features}
        self._frame_tasks: list[str] = []

    def add_frame(self, frame: Mapping[str, Any], task: str) -> None:
        """Buffer one timestep: every feature given, images uint8 (H, W, 3), strings as str.

        Nothing is written until ``save_episode``; values are copied, so a
        camera driver may reuse its buffers.
        """
        self._check_open()
        if not isinstance(task, str) or not task:
            raise TypeError(f"task must be a non-empty string, not {task!r}")
        missing = sorted(set(self._user_features) - set(frame))
        extra = sorted(set(frame) - set(self._user_features))
        if missing or extra:
            raise ValueError(f"frame does not match the features: missing {missing}, unknown {extra}")
        values = {key: _check_value(key, ft, frame[key]) for key, ft in self._user_features.items()}
        for key, value in values.items():
            self._buffer[key].append(value)
        self._frame_tasks.append(task)

    def discard_episode(self) -> None:
        """Drop the frames buffered since the last save."""
        self._reset_buffer()

    def save_episode(self) -> int:
        """Write the buffered frames as the next episode and return its index.

        Videos, data, the episode row and the tasks are put in place first and
        ``meta/info.json`` last, each by an atomic rename: the episode is
        either all there or not counted. On an exception the buffer is kept,
        so the save can be retried or the episode discarded.
        """
        import pyarrow as pa

        self._check_open()
        length = len(self._frame_tasks)
        if length == 0:
            raise ValueError("save_episode() needs at least one add_frame() since the last save")
        info = self.info
        episode = int(info["total_episodes"])
        start = int(info["total_frames"])
        chunk, file = divmod(episode, int(info["chunks_size"]))
        where = {"chunk_index": chunk, "file_index": file}

        tasks = dict(self._tasks)
        for task in self._frame_tasks:
            tasks.setdefault(task, len(tasks))
        columns: dict[str, Any] = {}
        for key, ft in self._user_features.items():
            rows = self._buffer[key]
            columns[key] = rows if ft["dtype"] == "string" else np.stack(rows)
        frame_index = np.arange(length, dtype=np.int64)
        columns["timestamp"] = (frame_index / self.fps).astype(np.float32)
        columns["frame_index"] = frame_index
        columns["episode_index"] = np.full(length, episode, dtype=np.int64)
        columns["index"] = np.arange(start, start + length, dtype=np.int64)
        columns["task_index"] = np.array([tasks[t] for t in self._frame_tasks], dtype=np.int64)

        row: dict[str, Any] = {
            "episode_index": episode,
            "tasks": list(dict.fromkeys(self._frame_tasks)),
            "length": length,
            "data/chunk_index": chunk,
            "data/file_index": file,
            "dataset_from_index": start,
            "dataset_to_index": start + length,
        }
        for key, ft in self.features.items():
            if ft["dtype"] == "video":
                video = self.root / VIDEO_PATH.format(video_key=key, **where)
                _encode_video(video, columns[key], self.fps, self.video_codec)
                row |= {
                    f"videos/{key}/chunk_index": chunk,
                    f"videos/{key}/file_index": file,
                    f"videos/{key}/from_timestamp": 0.0,
                    f"videos/{key}/to_timestamp": length / self.fps,
                }
        for key, ft in self.features.items():
            if ft["dtype"] != "string":
                for stat, value in _episode_stats(columns[key], ft).items():
                    row[f"stats/{key}/{stat}"] = value.tolist()
        row |= {"meta/episodes/chunk_index": chunk, "meta/episodes/file_index": file}

        _write_parquet(self.root / DATA_PATH.format(**where), _data_table(columns, self.features))
        _write_parquet(self.root / EPISODES_PATH.format(**where), pa.Table.from_pylist([row]))
        if len(tasks) > len(self._tasks):
            _write_parquet(self.root / TASKS_PATH, _tasks_table(list(tasks)))
        committed = info | {
            "total_episodes": episode + 1,
            "total_frames": start + length,
            "total_tasks": len(tasks),
            "splits": {"train": f"0:{episode + 1}"},
        }
        _write_json(self.root / INFO_PATH, committed)
        self.info, self._tasks = committed, tasks
        self._reset_buffer()
        return episode

    def close(self) -> None:
        """Write ``meta/stats.json`` over every episode and end writing.

        Frames added but neither saved nor discarded are an error, not
        silently dropped.
        """
        if self._closed:
            return
        if self._frame_tasks:
            raise ValueError(
                f"{len(self._frame_tasks)} frames were added but not saved: "
                "call save_episode() or discard_episode() before close()"
            )
        if self.info["total_episodes"] > 0:
            stats = _dataset_stats(self.root, self.info)
            serial = {key: {name: value.tolist() for name, value in st.items()} for key, st in stats.items()}
            _write_json(self.root / STATS_PATH, serial)
        self._closed = True

    def __enter__(self) -> LeRobotWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self.discard_episode()  # an episode interrupted by an error is not saved
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"the writer of {self.root} is closed")


def _normalize_features(
    features: Mapping[str, Mapping[str, Any]], use_videos: bool, video_codec: str, fps: int | float
) -> dict[str, dict[str, Any]]:
    """The features as info.json stores them: user features, then the index features."""
    if not isinstance(features, Mapping) or not features:
        raise TypeError(f"features must be a non-empty mapping of name -> spec, not {features!r}")
    out: dict[str, dict[str, Any]] = {}
    for name, spec in features.items():
        if not isinstance(name, str) or not name or "/" in name:
            raise ValueError(f"feature name {name!r} must be a non-empty string without '/'")
        if name in INDEX_FEATURES or name == "task":
            raise ValueError(f"feature name {name!r} is reserved: it is written by the writer itself")
        if not isinstance(spec, Mapping) or "dtype" not in spec:
            raise TypeError(f"feature {name!r} needs a mapping with a 'dtype', not {spec!r}")
        dtype = spec["dtype"]
        shape = [int(s) for s in spec.get("shape", [1])]
        names = json.loads(json.dumps(spec.get("names")))
        if dtype in VISUAL:
            if len(shape) != 3 or shape[2] != 3 or min(shape) < 1:
                raise ValueError(f"feature {name!r}: images need shape (height, width, 3), not {shape}")
            dtype = "video" if use_videos else "image"
            names = names or ["height", "width", "channels"]
        elif dtype == "string":
            if shape != [1]:
                raise ValueError(f"feature {name!r}: strings have shape (1,), not {shape}")
        else:
            try:
                kind = np.dtype(dtype).kind
            except TypeError:
                kind = ""
            if kind not in "biuf" or not isinstance(dtype, str):
                raise ValueError(
                    f"feature {name!r}: dtype {dtype!r} is not a numpy number/bool name, 'string', 'image' or 'video'"
                )
            if len(shape) != 1 or shape[0] < 1:
                raise ValueError(f"feature {name!r}: numeric features need a 1-D shape, not {shape}")
        out[name] = {"dtype": dtype, "shape": shape, "names": names}
        if dtype == "video":
            out[name]["info"] = _video_info(shape, video_codec, fps)
    return out | json.loads(json.dumps(INDEX_FEATURES))


def _video_info(shape: list[int], codec: str, fps: int | float) -> dict[str, Any]:
    """What lerobot's get_video_info reports for the files this writer encodes."""
    import av  # deferred: FFmpeg is only needed for video datasets

    try:
        canonical = av.codec.Codec(codec, "w").canonical_name
    except Exception as err:  # PyAV raises UnknownCodecError or ValueError by version
        raise ValueError(f"video codec {codec!r} is not available in PyAV: {err}") from None
    return {
        "video.height": shape[0] + shape[0] % 2,
        "video.width": shape[1] + shape[1] % 2,
        "video.codec": canonical,
        "video.pix_fmt": "yuv420p",
        "video.is_depth_map": False,
        "video.fps": fps,
        "video.channels": 3,
        "has_audio": False,
    }


def _empty_info(fps: int | float, robot_type: str, features: dict[str, dict[str, Any]]) -> dict[str, Any]:
    has_video = any(ft["dtype"] == "video" for ft in features.values())
    return {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": robot_type,
        "total_episodes": 0,
        "total_frames": 0,
        "total_tasks": 0,
        "chunks_size": CHUNKS_SIZE,
        "data_files_size_in_mb": DATA_FILES_SIZE_IN_MB,
        "video_files_size_in_mb": VIDEO_FILES_SIZE_IN_MB,
        "fps": fps,
        "splits": {},
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH if has_video else None,
        "features": features,
    }


def _check_same_dataset(
    info_path: Path, info: dict[str, Any], fps: int | float, robot_type: str, wanted: dict[str, dict[str, Any]]
) -> None:
    """DataError naming the first way the dataset differs from what the writer was given."""
    if info["fps"] != fps:
        raise DataError(f"{info_path}: the dataset has fps {info['fps']}, the writer was given fps {fps}")
    if info.get("robot_type") != robot_type:
        raise DataError(
            f"{info_path}: the dataset has robot_type {info.get('robot_type')!r}, the writer was given {robot_type!r}"
        )
    have = info["features"]
    if set(have) != set(wanted):
        raise DataError(
            f"{info_path}: features differ: only in the dataset {sorted(set(have) - set(wanted))}, "
            f"only in the writer {sorted(set(wanted) - set(have))}"
        )
    for name, ft in wanted.items():
        for key in ("dtype", "shape", "names"):
            if have[name].get(key) != ft[key]:
                raise DataError(
                    f"{info_path}: feature {name!r} has {key} {have[name].get(key)!r} in the dataset, "
                    f"the writer was given {ft[key]!r}"
                )
        if ft["dtype"] == "video":
            codec = have[name].get("info", {}).get("video.codec")
            if codec is not None and codec != ft["info"]["video.codec"]:
                raise DataError(
                    f"{info_path}: video {name!r} is {codec}, the writer would encode {ft['info']['video.codec']}"
                )


def _remove_uncommitted(root: Path, info: dict[str, Any], tasks: dict[str, int]) -> None:
    """Delete what an interrupted save left: temporary files and files of uncounted episodes.

    Episode files sit at linear position chunk * chunks_size + file; a dataset
    of N episodes (lerobot-packed or not) uses positions below N only.
    """
    committed, chunks_size = int(info["total_episodes"]), int(info["chunks_size"])
    for top in ("data", "videos", "meta"):
        for path in sorted((root / top).rglob("*")):
            if not path.is_file():
                continue
            if path.name.startswith(".") and path.name.endswith(".tmp"):
                path.unlink()
                continue
            match = _FILE_NAME.match("/".join(path.parts[-2:]))
            if match and int(match[1]) * chunks_size + int(match[2]) >= committed:
                path.unlink()
    tasks_path = root / TASKS_PATH
    if tasks_path.exists() and _read_parquet(tasks_path).num_rows > len(tasks):
        if tasks:
            _write_parquet(tasks_path, _tasks_table(list(tasks)))
        else:
            tasks_path.unlink()


def _check_value(key: str, ft: dict[str, Any], value: Any) -> Any:
    """One frame's value for a feature, copied and checked against its spec."""
    dtype, shape = ft["dtype"], tuple(ft["shape"])
    if dtype == "string":
        if not isinstance(value, str):
            raise TypeError(f"feature {key!r} is a string feature, got {type(value).__name__}: {value!r}")
        return value
    if dtype in VISUAL:
        if not isinstance(value, np.ndarray) or value.dtype != np.uint8:
            got = f"{type(value).__name__} {getattr(value, 'dtype', '')}"
            raise TypeError(f"feature {key!r} needs a uint8 numpy image, got {got}")
        if value.shape != shape:
            raise ValueError(f"feature {key!r} needs shape {shape}, got {value.shape}")
        return value.copy()
    array = np.asarray(value)
    try:
        array = array.astype(dtype, casting="same_kind")
    except TypeError:
        raise TypeError(f"feature {key!r} is {dtype}, got {array.dtype} value {value!r}") from None
    if shape == (1,) and array.shape in ((), (1,)):
        return array.reshape(())
    if array.shape != shape:
        raise ValueError(f"feature {key!r} needs shape {shape}, got {array.shape}")
    return array


# --- statistics ------------------------------------------------------------------------


def _stats(values: np.ndarray, count: int) -> dict[str, np.ndarray]:
    """min/max/mean/std/quantiles over axis 0 of (N, D) values, as lerobot names them.

    Quantiles are exact (numpy's linear interpolation).
    """
    stats = {
        "min": values.min(axis=0),
        "max": values.max(axis=0),
        "mean": values.mean(axis=0, dtype=np.float64),
        "std": values.std(axis=0, dtype=np.float64),
        "count": np.array([count], dtype=np.int64),
    }
    as_float = values.astype(np.float64, copy=False)  # np.quantile rejects bool
    for name, q in QUANTILES.items():
        stats[name] = np.quantile(as_float, q, axis=0)
    return stats


def _episode_stats(column: Any, ft: dict[str, Any]) -> dict[str, np.ndarray]:
    """One episode's stats of one feature; images per channel in [0, 1], shape (3, 1, 1)."""
    if ft["dtype"] not in VISUAL:
        values = np.asarray(column)
        return _stats(values.reshape(len(values), -1), len(values))
    frames = np.asarray(column)
    picks = np.unique(np.round(np.linspace(0, len(frames) - 1, min(len(frames), IMAGE_STATS_FRAMES))).astype(int))
    sample = frames[picks]
    height, width = sample.shape[1:3]
    if max(height, width) >= 300:  # lerobot's downsampling: stride to about 150 pixels
        stride = max(height, width) // 150
        sample = sample[:, ::stride, ::stride]
    stats = _stats(sample.reshape(-1, 3) / 255.0, len(picks))
    return {k: v if k == "count" else v.reshape(3, 1, 1) for k, v in stats.items()}


def _aggregate_stats(parts: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """lerobot's aggregation of per-episode stats: count-weighted mean, pooled variance, quantiles."""
    counts = np.array([float(p["count"][0]) for p in parts])
    total = counts.sum()
    weights = counts.reshape(-1, *([1] * np.ndim(parts[0]["mean"]))) / total
    means = np.stack([p["mean"] for p in parts])
    mean = (means * weights).sum(axis=0)
    variance = ((np.stack([p["std"] for p in parts]) ** 2 + (means - mean) ** 2) * weights).sum(axis=0)
    out = {
        "min": np.min(np.stack([p["min"] for p in parts]), axis=0),
        "max": np.max(np.stack([p["max"] for p in parts]), axis=0),
        "mean": mean,
        "std": np.sqrt(variance),
        "count": np.array([int(total)], dtype=np.int64),
    }
    for name in QUANTILES:
        if all(name in p for p in parts):
            out[name] = (np.stack([p[name] for p in parts]) * weights).sum(axis=0)
    return out


def _dataset_stats(root: Path, info: dict[str, Any]) -> dict[str, dict[str, np.ndarray]]:
    """stats.json: numeric features exactly over every frame, images aggregated per episode."""
    features = info["features"]
    episodes = _load_episode_rows(root, info, with_stats=True)
    numeric = [k for k, ft in features.items() if ft["dtype"] not in (*VISUAL, "string")]
    columns: dict[str, list[np.ndarray]] = {k: [] for k in numeric}
    files = dict.fromkeys((int(e["data/chunk_index"]), int(e["data/file_index"])) for e in episodes)
    for chunk, file in files:
        path = root / info["data_path"].format(chunk_index=chunk, file_index=file)
        table = _read_parquet(path, columns=numeric)
        keep = _column_numpy(path, table.column("episode_index"), features["episode_index"]) < info["total_episodes"]
        for key in numeric:
            columns[key].append(_column_numpy(path, table.column(key), features[key])[keep])
    stats: dict[str, dict[str, np.ndarray]] = {}
    for key in numeric:
        values = np.concatenate(columns[key])
        stats[key] = _stats(values.reshape(len(values), -1), len(values))
    for key, ft in features.items():
        if ft["dtype"] in VISUAL:
            prefix = f"stats/{key}/"
            parts = [
                {c[len(prefix) :]: np.asarray(v) for c, v in e.items() if c.startswith(prefix)} for e in episodes
            ]
            if parts and all("mean" in p for p in parts):
                stats[key] = _aggregate_stats(parts)
    return stats


# --- files -----------------------------------------------------------------------------


def _publish(tmp: Path, path: Path) -> None:
    """Make ``tmp`` durable and atomically take ``path``'s place."""
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _tmp(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.name}.tmp")


def _write_json(path: Path, data: Any) -> None:
    tmp = _tmp(path)
    tmp.write_text(json.dumps(data, indent=4, ensure_ascii=False))
    _publish(tmp, path)


def _write_parquet(path: Path, table: pa.Table) -> None:
    import pyarrow.parquet as pq

    tmp = _tmp(path)
    pq.write_table(table, tmp)
    _publish(tmp, path)


def _read_parquet(path: Path, columns: list[str] | None = None) -> pa.Table:
    """A parquet file's table; DataError naming the file when it is missing or unreadable."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not path.is_file():
        raise DataError(f"{path} is missing")
    try:
        return pq.read_table(path, columns=columns)
    except (pa.ArrowException, OSError, ValueError) as err:
        raise DataError(f"{path} is corrupt or truncated: {err}") from None


def _parquet_columns(path: Path) -> list[str]:
    """A parquet file's column names, from its footer alone; DataError naming the file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not path.is_file():
        raise DataError(f"{path} is missing")
    try:
        return pq.read_schema(path).names
    except (pa.ArrowException, OSError, ValueError) as err:
        raise DataError(f"{path} is corrupt or truncated: {err}") from None


def _tasks_table(tasks: list[str]) -> pa.Table:
    """meta/tasks.parquet as pandas writes lerobot's DataFrame: task_index, indexed by task."""
    import pyarrow as pa

    def column(name: str | None, pandas_type: str, numpy_type: str) -> dict[str, Any]:
        kinds = {"pandas_type": pandas_type, "numpy_type": numpy_type}
        return {"name": name, "field_name": name, **kinds, "metadata": None}

    pandas_meta = {
        "index_columns": ["task"],
        "column_indexes": [column(None, "unicode", "object") | {"metadata": {"encoding": "UTF-8"}}],
        "columns": [column("task_index", "int64", "int64"), column("task", "unicode", "object")],
        "attributes": {},
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.2.0",
    }
    fields = [("task_index", pa.int64()), ("task", pa.string())]
    schema = pa.schema(fields, metadata={"pandas": json.dumps(pandas_meta)})
    return pa.Table.from_pydict({"task_index": list(range(len(tasks))), "task": tasks}, schema=schema)


def _arrow_type(ft: dict[str, Any]) -> pa.DataType:
    import pyarrow as pa

    if ft["dtype"] == "string":
        return pa.string()
    if ft["dtype"] == "image":
        return pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    value = pa.from_numpy_dtype(np.dtype(ft["dtype"]))
    return value if ft["shape"] == [1] else pa.list_(value, ft["shape"][0])


def _hf_feature(ft: dict[str, Any]) -> dict[str, Any]:
    """The ``datasets`` feature (schema metadata) lerobot's loader would give the column."""
    if ft["dtype"] == "image":
        return {"_type": "Image"}
    value = {"dtype": ft["dtype"], "_type": "Value"}
    return value if ft["shape"] == [1] else {"feature": value, "length": ft["shape"][0], "_type": "Sequence"}


def _data_table(columns: dict[str, Any], features: dict[str, dict[str, Any]]) -> pa.Table:
    """One episode's frame rows; videos are not in it, PNG images are."""
    import pyarrow as pa

    stored = {k: ft for k, ft in features.items() if ft["dtype"] != "video"}
    arrays = []
    for key, ft in stored.items():
        column, kind = columns[key], _arrow_type(ft)
        if ft["dtype"] == "image":
            png = png_encode(column)
            names = [f"frame-{i:06d}.png" for i in range(len(png))]
            cells = [pa.array(png, pa.binary()), pa.array(names, pa.string())]
            arrays.append(pa.StructArray.from_arrays(cells, ["bytes", "path"]))
        elif pa.types.is_fixed_size_list(kind):
            flat = pa.array(np.ascontiguousarray(column).reshape(-1))
            arrays.append(pa.FixedSizeListArray.from_arrays(flat, ft["shape"][0]))
        else:
            arrays.append(pa.array(column, kind))
    hf = {"info": {"features": {k: _hf_feature(ft) for k, ft in stored.items()}}}
    schema = pa.schema([(k, _arrow_type(ft)) for k, ft in stored.items()], metadata={"huggingface": json.dumps(hf)})
    return pa.Table.from_arrays(arrays, schema=schema)


def _column_numpy(path: Path, column: Any, ft: dict[str, Any]) -> np.ndarray:
    """A numeric column as (T,) for shape (1,) features, else (T, D)."""
    import pyarrow as pa

    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if array.null_count:
        raise DataError(f"{path}: column of {ft['dtype']} has {array.null_count} missing values")
    kind = array.type
    nested = pa.types.is_list(kind) or pa.types.is_fixed_size_list(kind) or pa.types.is_large_list(kind)
    values = (array.flatten() if nested else array).to_numpy(zero_copy_only=False)
    size = int(np.prod(ft["shape"]))
    if values.size != len(array) * size:
        raise DataError(f"{path}: a column holds {values.size} values for {len(array)} frames of shape {ft['shape']}")
    values = values.astype(ft["dtype"], copy=False)
    return values if ft["shape"] == [1] else values.reshape(len(array), size)


# --- video and PNG ---------------------------------------------------------------------


def _encode_video(path: Path, frames: np.ndarray, fps: int | float, codec: str) -> None:
    """Encode uint8 RGB frames (T, H, W, 3) to ``path`` atomically, frame i at i / fps.

    Not s2kit.workflows.video.write_video: that one keeps the codec's default
    GOP (hundreds of frames), while lerobot decodes single frames at random
    during training and encodes with a GOP of 2 for that reason.
    """
    import av  # deferred: FFmpeg is only needed when a video is written

    height, width = frames.shape[1:3]
    pad = ((0, 0), (0, height % 2), (0, width % 2), (0, 0))  # 4:2:0 chroma needs even sides
    frames = np.pad(frames, pad) if height % 2 or width % 2 else frames
    tmp = _tmp(path)
    with av.open(str(tmp), mode="w", format="mp4") as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001), options={"g": "2"})
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    _publish(tmp, path)


def _decode_video(path: Path, from_timestamp: float, length: int, fps: float, shape: list[int]) -> np.ndarray:
    """The ``length`` frames from ``from_timestamp`` on, uint8 (T, H, W, 3) cropped to ``shape``."""
    import av

    if not path.is_file():
        raise DataError(f"{path} is missing")
    frames: list[np.ndarray] = []
    start = from_timestamp - 0.5 / fps  # half a frame of slack for rounded timestamps
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            if from_timestamp > 0 and stream.time_base:
                container.seek(int(max(start, 0) / stream.time_base), stream=stream, backward=True)
            for frame in container.decode(stream):
                if frame.time is not None and frame.time < start:
                    continue
                frames.append(frame.to_ndarray(format="rgb24")[: shape[0], : shape[1]])
                if len(frames) == length:
                    break
    except (av.FFmpegError, IndexError, OSError) as err:
        raise DataError(f"{path} is corrupt: {err}") from None
    if len(frames) != length:
        raise DataError(f"{path} has {len(frames)} frames from {from_timestamp:.3f}s, the episode has {length}")
    return np.stack(frames)


def _png_decode(path: Path, key: str, column: Any, shape: list[int]) -> np.ndarray:
    import av

    out = []
    for i, cell in enumerate(column.to_pylist()):
        data = (cell or {}).get("bytes")
        if not data:
            raise DataError(f"{path}: image {key!r} of row {i} has no embedded bytes")
        try:
            # a fresh decoder per image: one reused across packets returns wrong pixels
            frame = av.CodecContext.create("png", "r").decode(av.Packet(data))[0]
        except (av.FFmpegError, IndexError) as err:
            raise DataError(f"{path}: image {key!r} of row {i} is not a readable PNG: {err}") from None
        out.append(frame.to_ndarray(format="rgb24"))
    images = np.stack(out)
    if images.shape[1:] != tuple(shape):
        raise DataError(f"{path}: images {key!r} are {images.shape[1:]}, info.json says {tuple(shape)}")
    return images


# --- reading ---------------------------------------------------------------------------


def _load_info(root: Path) -> dict[str, Any]:
    """meta/info.json, checked enough that the rest can trust it; DataError naming the file."""
    path = root / INFO_PATH
    if not path.is_file():
        raise DataError(f"{path} is missing: {root} is not a LeRobot dataset")
    try:
        info = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(info, dict):
        raise DataError(f"{path} must hold a JSON object, not {type(info).__name__}")
    version = info.get("codebase_version")
    if version != CODEBASE_VERSION:
        raise DataError(
            f"{path}: codebase_version is {version!r}; only {CODEBASE_VERSION!r} is read "
            "(lerobot converts older datasets with lerobot.datasets.v30.convert_dataset_v21_to_v30)"
        )
    counts = ("total_episodes", "total_frames", "total_tasks", "chunks_size")
    bad = [k for k in counts if isinstance(info.get(k), bool) or not isinstance(info.get(k), int) or info[k] < 0]
    if bad:
        raise DataError(f"{path}: {', '.join(bad)} must be non-negative integers")
    fps = info.get("fps")
    if isinstance(fps, bool) or not isinstance(fps, int | float) or fps <= 0:
        raise DataError(f"{path}: fps must be a positive number, not {fps!r}")
    if not isinstance(info.get("data_path"), str):
        raise DataError(f"{path}: data_path must be a path template, not {info.get('data_path')!r}")
    features = info.get("features")
    if not isinstance(features, dict) or not all(
        isinstance(ft, dict) and "dtype" in ft and isinstance(ft.get("shape"), list) for ft in features.values()
    ):
        raise DataError(f"{path}: features must map each name to an object with 'dtype' and 'shape'")
    missing = sorted(set(INDEX_FEATURES) - set(features))
    if missing:
        raise DataError(f"{path}: features lack the index features {missing}")
    if any(ft["dtype"] == "video" for ft in features.values()) and not isinstance(info.get("video_path"), str):
        raise DataError(f"{path}: there are video features but video_path is {info.get('video_path')!r}")
    return info


def _load_tasks(root: Path, info: dict[str, Any]) -> list[str]:
    """Task strings by task_index (the first total_tasks of them)."""
    count = int(info["total_tasks"])
    path = root / TASKS_PATH
    if count == 0 and not path.exists():
        return []
    table = _read_parquet(path)
    names = [n for n in table.column_names if n != "task_index"]
    if "task_index" not in table.column_names or len(names) != 1:
        raise DataError(f"{path} must have a task_index column and one task column, it has {table.column_names}")
    by_index = dict(zip(table.column("task_index").to_pylist(), table.column(names[0]).to_pylist(), strict=True))
    missing = [i for i in range(count) if not isinstance(by_index.get(i), str)]
    if missing:
        raise DataError(f"{path} lacks task_index {missing[:5]} of the {count} tasks info.json counts")
    return [by_index[i] for i in range(count)]


def _load_episode_rows(root: Path, info: dict[str, Any], with_stats: bool = False) -> list[dict[str, Any]]:
    """Rows of meta/episodes for the committed episodes, by episode index."""
    count = int(info["total_episodes"])
    rows: dict[int, dict[str, Any]] = {}
    for path in sorted((root / "meta" / "episodes").glob("chunk-*/file-*.parquet")):
        names = _parquet_columns(path)
        columns = names if with_stats else [n for n in names if not n.startswith("stats/")]
        for row in _read_parquet(path, columns=columns).to_pylist():
            if not isinstance(row.get("episode_index"), int):
                raise DataError(f"{path}: a row has no episode_index")
            if row["episode_index"] < count:
                rows[row["episode_index"]] = row
    missing = [i for i in range(count) if i not in rows]
    if missing:
        raise DataError(
            f"{root / 'meta' / 'episodes'} lacks the rows of episodes {missing[:5]} (info.json counts {count})"
        )
    required = ("length", "data/chunk_index", "data/file_index", "dataset_from_index", "dataset_to_index")
    for i in range(count):
        absent = [k for k in required if not isinstance(rows[i].get(k), int)]
        if absent:
            raise DataError(f"{root / 'meta' / 'episodes'}: episode {i} lacks {absent}")
    return [rows[i] for i in range(count)]


class LeRobotDatasetReader:
    """Reads a LeRobot v3.0 dataset: metadata on opening, episodes on request.

    Opening checks info.json, tasks and the episode rows; anything missing or
    corrupt is a DataError naming the file, raised when it is first needed.
    Only episodes that info.json counts are read.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.info: dict[str, Any] = _load_info(self.root)
        self.features: dict[str, dict[str, Any]] = self.info["features"]
        self.fps: int | float = self.info["fps"]
        self.tasks: list[str] = _load_tasks(self.root, self.info)
        self._episodes = _load_episode_rows(self.root, self.info)
        self._starts = [int(e["dataset_from_index"]) for e in self._episodes]
        self._cached: tuple[int, dict[str, Any]] | None = None

    @property
    def num_episodes(self) -> int:
        return len(self._episodes)

    @property
    def num_frames(self) -> int:
        return int(self.info["total_frames"])

    @property
    def stats(self) -> dict[str, dict[str, np.ndarray]] | None:
        """meta/stats.json as arrays, or None where there is none (a writer not closed)."""
        path = self.root / STATS_PATH
        if not path.is_file():
            return None
        try:
            raw = json.loads(path.read_text())
            return {key: {s: np.asarray(v) for s, v in st.items()} for key, st in raw.items()}
        except (json.JSONDecodeError, AttributeError, UnicodeDecodeError) as err:
            raise DataError(f"{path} is not valid stats: {err}") from None

    def episode(self, index: int, keys: Sequence[str] | None = None) -> dict[str, np.ndarray | list[Any]]:
        """Every frame of one episode: each feature, images decoded to uint8 (T, H, W, 3), and ``task``.

        ``keys`` limits which features are read (the index features always are):
        decoding only the camera one needs is much cheaper than all of them.
        """
        if isinstance(index, bool) or not isinstance(index, int | np.integer):
            raise TypeError(f"episode index must be an integer, not {index!r}")
        if not 0 <= index < self.num_episodes:
            raise IndexError(f"episode {index} is out of range: the dataset has {self.num_episodes}")
        index = int(index)
        row = self._episodes[index]
        length = int(row["length"])
        path = self.data_file(index)
        wanted = [k for k in self.features if keys is None or k in keys or k in INDEX_FEATURES]
        stored = [k for k in wanted if self.features[k]["dtype"] != "video"]
        absent = [k for k in stored if k not in _parquet_columns(path)]
        if absent:
            raise DataError(f"{path} lacks the columns {absent}")
        table = _read_parquet(path, columns=stored)  # only what was asked for: a packed file can be large
        episode_column = _column_numpy(path, table.column("episode_index"), self.features["episode_index"])
        rows = np.flatnonzero(episode_column == index)
        if len(rows) != length:
            raise DataError(f"{path} has {len(rows)} frames of episode {index}, its episode row says {length}")
        table = table.take(rows)
        out: dict[str, np.ndarray | list[Any]] = {}
        for key in wanted:
            ft = self.features[key]
            if ft["dtype"] == "video":
                chunk, file = row[f"videos/{key}/chunk_index"], row[f"videos/{key}/file_index"]
                video = self.root / self.info["video_path"].format(video_key=key, chunk_index=chunk, file_index=file)
                start = float(row[f"videos/{key}/from_timestamp"])
                out[key] = _decode_video(video, start, length, float(self.fps), ft["shape"])
            elif ft["dtype"] == "image":
                out[key] = _png_decode(path, key, table.column(key), ft["shape"])
            elif ft["dtype"] == "string":
                out[key] = table.column(key).to_pylist()
            else:
                out[key] = _column_numpy(path, table.column(key), ft)
        task_index = np.asarray(out["task_index"])
        if len(task_index) and not (0 <= task_index.min() and task_index.max() < len(self.tasks)):
            raise DataError(f"{path}: task_index {task_index.max()} is not in {TASKS_PATH} ({len(self.tasks)} tasks)")
        out["task"] = [self.tasks[i] for i in task_index]
        return out

    def data_file(self, index: int) -> Path:
        """The data parquet file that holds episode ``index``'s frames."""
        row = self._episodes[index]
        return self.root / self.info["data_path"].format(chunk_index=row["data/chunk_index"], file_index=row["data/file_index"])

    def frame(self, global_index: int) -> dict[str, Any]:
        """One frame by its dataset-wide ``index`` (its episode is read and kept for the next call)."""
        if isinstance(global_index, bool) or not isinstance(global_index, int | np.integer):
            raise TypeError(f"frame index must be an integer, not {global_index!r}")
        if not 0 <= global_index < self.num_frames:
            raise IndexError(f"frame {global_index} is out of range: the dataset has {self.num_frames}")
        episode = bisect_right(self._starts, int(global_index)) - 1
        if self._cached is None or self._cached[0] != episode:
            self._cached = (episode, self.episode(episode))
        offset = int(global_index) - self._starts[episode]
        return {key: values[offset] for key, values in self._cached[1].items()}
