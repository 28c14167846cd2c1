"""Recording episodes as they run, so that nothing recorded is ever lost.

A recording is a folder:

```
meta.json                 format, robot spec, action space, pipeline (written first)
episodes.jsonl            one line per finished episode: its file, length, status, outcome
episode_000000.npz        per-step arrays of one episode
```

Each episode file is written to a temporary name and renamed into place, and
only then is its line appended to ``episodes.jsonl`` (flushed and fsynced).
An interruption at any point leaves every listed episode complete; an
interrupted episode is kept too, with status ``interrupted``. Appending to an
existing recording continues its numbering, and only episodes of the same
robot (spec) in the same action space may be appended (`check_recording`).

Arrays in an episode file (T steps): ``image.<role>`` uint8 (T, H, W, 3) — the
observation that *followed* each command; ``state`` float32 (T, S);
``action`` float32 (T, D) as sent to the robot; ``raw_action`` as the
executor asked; ``time`` float64 (T,); ``guidance_index`` int32 (T,) into
``guidance`` (a JSON list of the episode's Guidance objects).
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from s2kit.core.errors import DataError
from s2kit.core.interfaces import Subscriber
from s2kit.core.types import EpisodeInfo, EpisodeResult, Guidance, RobotSpec, Step

__all__ = ["FORMAT", "Recorder", "check_recording", "list_episodes", "read_episode"]

FORMAT = "s2kit-episodes/1"


class Recorder(Subscriber):
    """A subscriber that writes every episode to ``root``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._index_path = self.root / "episodes.jsonl"
        self._next = len(list_episodes(self.root)) if self._index_path.exists() else 0
        #: ``(episode index in the run, file)`` of every episode this recorder wrote
        self.saved: list[tuple[int, str]] = []
        self._reset_buffers()

    def _reset_buffers(self) -> None:
        self._images: dict[str, list[np.ndarray]] = {}
        self._state: list[np.ndarray] = []
        self._action: list[np.ndarray] = []
        self._raw: list[np.ndarray] = []
        self._time: list[float] = []
        self._guidance: list[Guidance] = []
        self._guidance_index: list[int] = []
        self._info: EpisodeInfo | None = None

    # --- subscriber ---------------------------------------------------------------

    def on_episode_start(self, info: EpisodeInfo) -> None:
        self._reset_buffers()
        self._info = info
        meta = self.root / "meta.json"
        if meta.exists():
            check_recording(self.root, info.robot, info.action_space)
        else:
            _atomic_write(
                meta,
                json.dumps(
                    {
                        "format": FORMAT,
                        "robot": info.robot.model_dump(mode="json"),
                        "action_space": info.action_space,
                        "pipeline": info.pipeline,
                    },
                    indent=2,
                ).encode(),
            )

    def on_plan(self, step: int, event: str, guidance: Guidance) -> None:
        self._guidance.append(guidance)

    def on_step(self, step: Step) -> None:
        if not self._guidance or self._guidance[-1] is not step.guidance:
            self._guidance.append(step.guidance)
        obs = step.observation
        for role, image in obs.images.items():
            self._images.setdefault(role, []).append(image)
        self._state.append(obs.state)
        self._action.append(step.action)
        self._raw.append(step.raw_action)
        self._time.append(step.time)
        self._guidance_index.append(len(self._guidance) - 1)

    def on_episode_end(self, result: EpisodeResult) -> None:
        if self._info is None:
            return
        name = f"episode_{self._next:06d}.npz"
        arrays: dict[str, Any] = {
            "state": _stack(self._state, np.float32),
            "action": _stack(self._action, np.float32),
            "raw_action": _stack(self._raw, np.float32),
            "time": np.asarray(self._time, dtype=np.float64),
            "guidance_index": np.asarray(self._guidance_index, dtype=np.int32),
            "guidance": np.asarray(json.dumps([g.model_dump() for g in self._guidance])),
        }
        for role, frames in self._images.items():
            arrays[f"image.{role}"] = np.stack(frames)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        _atomic_write(self.root / name, buffer.getvalue())
        line = {
            "file": name,
            "length": len(self._action),
            "instruction": result.instruction,
            "seed": result.seed,
            "status": result.status,
            "subtask_success": result.subtask_success,
            "task_success": result.task_success,
        }
        with open(self._index_path, "a") as f:
            f.write(json.dumps(line) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.saved.append((result.index, name))
        self._next += 1
        self._reset_buffers()


def _stack(rows: list[np.ndarray], dtype: type) -> np.ndarray:
    return np.stack(rows).astype(dtype, copy=False) if rows else np.zeros((0, 0), dtype=dtype)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # a full disk: leave no half-written file behind
        tmp.unlink(missing_ok=True)
        raise


def check_recording(root: str | Path, spec: RobotSpec, action_space: str) -> None:
    """`DataError` unless the recording in ``root`` (if any) holds episodes of ``spec``'s robot in ``action_space``.

    Episodes of another robot appended to a recording would be replayed on the
    wrong one. A folder without ``meta.json`` is a new recording: nothing to check.
    """
    meta_path = Path(root) / "meta.json"
    if not meta_path.exists():
        return
    try:
        meta = json.loads(meta_path.read_text())
        have, space = dict(meta["robot"]), meta["action_space"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DataError(f"{meta_path} is not a valid recording header ({type(err).__name__}: {err})") from None
    wanted = spec.model_dump(mode="json")
    if have.get("name") != spec.name:
        raise DataError(f"{root} is a recording of robot {have.get('name')!r}: episodes of robot {spec.name!r} cannot be appended to it")
    # a field RobotSpec gained since the recording was made is no difference
    differ = next((key for key in wanted if key in have and have[key] != wanted[key]), None)
    if differ is not None:
        raise DataError(f"{root} is a recording of another {spec.name!r}: its spec's {differ!r} does not match this robot's")
    if space != action_space:
        raise DataError(f"{root} is a recording in action space {space!r}, not {action_space!r}")


# --- reading ---------------------------------------------------------------------------


def list_episodes(root: str | Path) -> list[dict[str, Any]]:
    """The episodes of a recording, from its index; DataError naming any bad line."""
    root = Path(root)
    index = root / "episodes.jsonl"
    if not index.exists():
        raise DataError(f"{root} is not an s2kit recording: {index.name} is missing")
    out = []
    with open(index) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                entry["file"], entry["length"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise DataError(f"{index}: line {number} is not a valid episode entry") from None
            out.append(entry)
    return out


def read_episode(path: str | Path) -> dict[str, Any]:
    """One episode's arrays (``guidance`` decoded to a list of Guidance); DataError if corrupt."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except FileNotFoundError:
        raise DataError(f"episode file {path} does not exist") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise DataError(f"episode file {path} is corrupt: {err}") from None
    missing = {"state", "action", "time", "guidance", "guidance_index"} - set(arrays)
    if missing:
        raise DataError(f"episode file {path} lacks {', '.join(sorted(missing))}")
    try:
        arrays["guidance"] = [Guidance.model_validate(g) for g in json.loads(str(arrays["guidance"]))]
    except ValueError as err:
        raise DataError(f"episode file {path}: guidance is not valid: {err}") from None
    lengths = {key: len(arrays[key]) for key in ("action", "time", "guidance_index")}
    if len(set(lengths.values())) != 1:
        raise DataError(f"episode file {path}: arrays disagree in length {lengths}")
    return arrays
