"""Specify More for existing data: add S2's guidance to every frame of a LeRobot v3.0 dataset.

`relabel` asks a planner, once per episode, for guidance on the episode's
task (kept verbatim as the goal) and its first camera frame, then writes the
four annotation columns `s2kit collect` writes (``annotation.trajectory``,
``annotation.subtask``, ``annotation.subtask_index``, ``annotation.subtasks``)
into every frame. Which frames belong to which subtask (``segment``):

- ``annotation``: the dataset's own ``annotation.subtask_index``, where it
  has one with as many subtasks as the planner gave;
- ``gripper``: from the gripper's open/close events in ``action`` (or the
  state): when there are as many releases as subtasks, each subtask ends at
  a release (put-style tasks); when there are as many events as subtasks,
  at each event (pick, then place);
- ``uniform``: equal parts;
- ``auto`` (the default): the first of these that applies, per episode.

Safety of the data:

- The source is never written unless ``in_place``. Otherwise the result is
  a new dataset in ``out``: videos are hard-linked (copied across file
  systems), metadata copied, data files rewritten with the new columns.
- Resumable: each finished data file is recorded in
  ``meta/s2kit_relabel.json`` of the output (written atomically), and a
  second run with the same source and planner skips finished files. A
  planner's own cache (``incontext``'s ``cache_dir``) saves its answers too.
- ``meta/info.json`` of the output is written last: until it exists the
  output is not a dataset, so an interrupted run is never mistaken for a
  finished one.
- ``in_place``: new data files are staged in ``.s2kit-relabel/`` beside the
  data, then each replaces its original with an atomic rename, and
  ``info.json`` is replaced last. Readers see the old or the new labels of
  a file, never a torn file; an interrupted swap is finished by running again.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from s2kit.workflows.collect import ANNOTATIONS
from s2kit.datasets.lerobot import (
    INFO_PATH,
    STATS_PATH,
    LeRobotDatasetReader,
    _arrow_type,
    _hf_feature,
    _publish,
    _read_parquet,
    _stats,
    _tmp,
    _write_json,
    _write_parquet,
)
from s2kit.core.errors import DataError
from s2kit.core.interfaces import Planner
from s2kit.core.types import Guidance, Observation

__all__ = ["RelabelReport", "relabel", "segment_frames"]

MANIFEST = "meta/s2kit_relabel.json"
STAGING = ".s2kit-relabel"
Segment = Literal["auto", "annotation", "gripper", "uniform"]


@dataclass
class RelabelReport:
    """What a relabel run did."""

    root: Path
    episodes: int = 0
    frames: int = 0
    files_done: int = 0
    files_skipped: int = 0
    segmentation: Counter[str] = field(default_factory=Counter)
    example: Guidance | None = None


def _gripper_column(reader: LeRobotDatasetReader) -> tuple[str, int] | None:
    """(feature, dimension) of the gripper command, preferring ``action`` over the state."""
    for key in ("action", "observation.state"):
        names = reader.features.get(key, {}).get("names")
        if isinstance(names, dict):  # lerobot sometimes nests names: {"motors": [...]}
            names = next(iter(names.values()), None)
        if isinstance(names, list):
            for i, name in enumerate(names):
                if "gripper" in str(name).lower():
                    return key, i
    return None


def segment_frames(
    length: int,
    count: int,
    *,
    strategy: Segment = "auto",
    annotation: np.ndarray | None = None,
    gripper: np.ndarray | None = None,
) -> tuple[np.ndarray, str]:
    """Subtask index per frame (``(length,)`` int64, 0..count-1, non-decreasing) and the strategy used."""
    if count < 1:
        raise ValueError(f"count must be at least 1, not {count}")
    if strategy in ("auto", "annotation") and annotation is not None and len(annotation) == length and length:
        index = np.asarray(annotation, dtype=np.int64)
        if index.min() >= 0 and index.max() == count - 1 and np.all(np.diff(index) >= 0):
            return index, "annotation"
    if strategy in ("auto", "gripper") and gripper is not None and len(gripper) == length and length > 1:
        g = np.asarray(gripper, dtype=np.float64)
        lo, hi = float(np.min(g)), float(np.max(g))
        if hi - lo > 1e-6:
            is_open = g > (lo + hi) / 2
            changes = np.flatnonzero(is_open[1:] != is_open[:-1]) + 1  # first frame after each event
            releases = changes[is_open[changes]]
            for ends in (releases, changes):
                if len(ends) == count:
                    return np.searchsorted(ends[: count - 1], np.arange(length), side="right").astype(np.int64), "gripper"
    return np.minimum(np.arange(length) * count // max(length, 1), count - 1).astype(np.int64), "uniform"


def _camera(reader: LeRobotDatasetReader, camera: str | None) -> str | None:
    visual = [k for k, ft in reader.features.items() if ft["dtype"] in ("video", "image")]
    if camera is not None:
        for key in (camera, f"observation.images.{camera}"):
            if key in visual:
                return key
        raise DataError(f"{reader.root} has no camera {camera!r} (it has {', '.join(visual) or 'none'})")
    heads = [k for k in visual if "head" in k or "base" in k or k.endswith(".image")]
    return (heads or visual or [None])[0]


def _link_or_copy(src: Path, dst: Path) -> None:
    if dst.exists() and dst.stat().st_size == src.stat().st_size:
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp(dst)
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copy2(src, tmp)
    _publish(tmp, dst)


def relabel(
    source: str | Path,
    planner: Planner,
    *,
    out: str | Path | None = None,
    in_place: bool = False,
    camera: str | None = None,
    segment: Segment = "auto",
    planner_id: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> RelabelReport:
    """Relabel ``source`` with ``planner`` into ``out`` (or in place); see the module docstring."""
    import pyarrow as pa

    source = Path(source)
    reader = LeRobotDatasetReader(source)
    if in_place == (out is not None):
        raise ValueError("give exactly one of out= and in_place=True")
    target = source if in_place else Path(out)  # type: ignore[arg-type]
    if not in_place and target.resolve() == source.resolve():
        raise DataError(f"--out {target} is the source dataset; relabelling in place needs --in-place")
    staging = source / STAGING if in_place else target
    planner_id = planner_id or planner.name
    manifest_path = staging / MANIFEST
    manifest = {"source": str(source.resolve()), "planner": planner_id, "segment": segment, "done": []}
    if manifest_path.is_file():
        previous = json.loads(manifest_path.read_text())
        mismatch = [k for k in ("source", "planner", "segment") if previous.get(k) != manifest[k]]
        if mismatch:
            raise DataError(
                f"{target} holds an unfinished relabel with another {', '.join(mismatch)} "
                f"({', '.join(f'{k}={previous.get(k)!r}' for k in mismatch)}); remove it or choose another --out"
            )
        manifest = previous
    elif not in_place and target.exists() and any(target.iterdir()):
        raise DataError(f"--out {target} exists and is not an unfinished relabel of {source}; choose an empty folder")

    if not in_place:  # everything but the data files and info.json, which come last
        for path in sorted(source.rglob("*")):
            rel = path.relative_to(source)
            hidden = any(part.startswith(".") for part in rel.parts)  # temporaries, an in-place staging folder
            if path.is_file() and rel.parts[0] != "data" and str(rel) != INFO_PATH and not hidden:
                _link_or_copy(path, target / rel)

    by_file: dict[Path, list[int]] = {}
    for i in range(reader.num_episodes):
        by_file.setdefault(reader.data_file(i), []).append(i)
    features = {**reader.features, **ANNOTATIONS}
    gripper = _gripper_column(reader)
    cam = _camera(reader, camera)
    keys = [k for k in (cam, gripper[0] if gripper else None, "observation.state", "annotation.subtask_index") if k and k in reader.features]
    report = RelabelReport(root=target)
    done_files = set(manifest["done"])
    total, finished = reader.num_episodes, 0
    subtask_index_values: list[np.ndarray] = []
    for path, episodes in by_file.items():
        rel = str(path.relative_to(source))
        dest = staging / rel
        if rel in done_files and dest.is_file():
            report.files_skipped += 1
            subtask_index_values.append(_read_parquet(dest, ["annotation.subtask_index"]).column(0).to_numpy())
            finished += len(episodes)
            if progress:
                progress(finished, total)
            continue
        table = _read_parquet(path)
        episode_column = table.column("episode_index").to_numpy()
        columns = {k: np.empty(table.num_rows, dtype=object) for k in ANNOTATIONS}
        columns["annotation.subtask_index"] = np.zeros(table.num_rows, dtype=np.int64)
        for index in episodes:
            data = reader.episode(index, keys=keys)
            length = len(data["frame_index"])
            task = data["task"][0] if data["task"] else ""
            images = {cam.removeprefix("observation.images."): data[cam][0]} if cam else {}
            state = np.asarray(data["observation.state"][0], np.float32) if "observation.state" in data else np.zeros(0, np.float32)
            guidance = planner.plan(task, Observation(images=images, state=state, timestamp=0.0), event="start")
            if guidance.goal != task:
                raise DataError(f"planner {planner.name!r} replaced the goal {task!r} with {guidance.goal!r}")
            g = np.asarray(data[gripper[0]])[:, gripper[1]] if gripper else None
            annotation = np.asarray(data["annotation.subtask_index"]) if "annotation.subtask_index" in data else None
            index_per_frame, how = segment_frames(length, len(guidance.subtasks), strategy=segment, annotation=annotation, gripper=g)
            report.segmentation[how] += 1
            rows = np.flatnonzero(episode_column == index)
            order = np.argsort(table.column("frame_index").to_numpy()[rows], kind="stable")
            rows = rows[order]
            columns["annotation.trajectory"][rows] = guidance.trajectory
            columns["annotation.subtasks"][rows] = json.dumps(guidance.subtasks)
            columns["annotation.subtask_index"][rows] = index_per_frame
            columns["annotation.subtask"][rows] = [guidance.subtasks[k] for k in index_per_frame]
            report.episodes += 1
            report.frames += length
            report.example = report.example or guidance
            finished += 1
            if progress:
                progress(finished, total)
        kept = [name for name in table.column_names if name not in ANNOTATIONS]
        table = table.select(kept)
        for name, ft in ANNOTATIONS.items():
            kind = _arrow_type(ft)
            table = table.append_column(pa.field(name, kind), pa.array(columns[name].tolist(), kind))
        table = table.replace_schema_metadata(_hf_metadata(table.schema.metadata, features))
        _write_parquet(dest, table)
        subtask_index_values.append(columns["annotation.subtask_index"])
        manifest["done"] = sorted({*manifest["done"], rel})
        _write_json(manifest_path, manifest)
        report.files_done += 1

    info = {**reader.info, "features": features}
    stats = reader.stats
    if stats is not None:
        values = np.concatenate(subtask_index_values) if subtask_index_values else np.zeros(1, np.int64)
        stats["annotation.subtask_index"] = _stats(values.reshape(-1, 1), len(values))
        stats_json = {k: {s: np.asarray(v).tolist() for s, v in st.items()} for k, st in stats.items()}
    if in_place:  # swap the staged files in, one atomic rename each, info.json last
        for rel in manifest["done"]:
            if (staging / rel).is_file():
                os.replace(staging / rel, source / rel)
    if stats is not None:
        _write_json(target / STATS_PATH, stats_json)
    _write_json(target / INFO_PATH, info)
    if in_place:
        shutil.rmtree(staging, ignore_errors=True)
    else:
        manifest_path.unlink(missing_ok=True)
    return report


def _hf_metadata(metadata: dict[bytes, bytes] | None, features: dict[str, dict[str, Any]]) -> dict[bytes, bytes]:
    """The schema metadata with the ``datasets`` features of the annotation columns added."""
    out = dict(metadata or {})
    try:
        hf = json.loads(out.get(b"huggingface", b"{}"))
    except json.JSONDecodeError:
        hf = {}
    hf.setdefault("info", {}).setdefault("features", {})
    for name in ANNOTATIONS:
        hf["info"]["features"][name] = _hf_feature(features[name])
    out[b"huggingface"] = json.dumps(hf).encode()
    return out

