"""Where trained executors live on disk, whatever the executor.

A *checkpoint* is a folder whose ``config.json`` names, under ``executor``,
the executor plugin that runs it (that plugin's config takes the folder as
``checkpoint``). A *run* is a training run's folder: its checkpoints are
``RUN/checkpoints/step_NNNNNNN/``, each complete before it appears. Wherever
a checkpoint is asked for, a run means its newest checkpoint.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from s2kit.core.errors import DataError

__all__ = ["CONFIG", "CheckpointError", "checkpoint_executor", "find_checkpoint", "read_config"]

CONFIG = "config.json"
_STEP = re.compile(r"^step_(\d+)$")


class CheckpointError(DataError):
    """A checkpoint is missing, corrupt or does not fit what it is used with."""


def find_checkpoint(path: str | Path) -> Path:
    """A checkpoint folder itself, or a run folder's newest complete checkpoint."""
    path = Path(path)
    if (path / CONFIG).is_file():
        return path
    folder = path / "checkpoints"
    steps = sorted((int(m.group(1)), p) for p in folder.glob("step_*") if (m := _STEP.match(p.name)) and (p / CONFIG).is_file()) if folder.is_dir() else []
    if steps:
        return steps[-1][1]
    if not path.exists():
        raise CheckpointError(f"{path} does not exist")
    raise CheckpointError(f"{path} is neither a checkpoint (no {CONFIG}) nor a run with checkpoints/step_*/{CONFIG}")


def read_config(path: str | Path) -> tuple[Path, Any]:
    """(the checkpoint folder, its config.json parsed) for a checkpoint or a run's newest one."""
    folder = find_checkpoint(path)
    try:
        return folder, json.loads((folder / CONFIG).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{folder / CONFIG} is not readable JSON: {err}") from None


def checkpoint_executor(path: str | Path) -> str:
    """The executor plugin named in a checkpoint's (or a run's newest checkpoint's) config.json."""
    folder, raw = read_config(path)
    name = raw.get("executor") if isinstance(raw, dict) else None
    if not isinstance(name, str) or not name:
        raise CheckpointError(f"{folder / CONFIG} does not name its executor")
    return name
