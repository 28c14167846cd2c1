"""S2 checkpoints: a folder with the weights, and everything needed to use them.

::

    <checkpoint>/
      model.safetensors     the network's weights
      config.json           `CheckpointInfo`: model config, normalization, state and action names, ...
      training_state.pt     optimizer, schedule, RNG states (run checkpoints only; --resume reads it)

A training run writes ``RUN/checkpoints/step_NNNNNNN/`` folders, each complete
before it appears (written beside, then renamed); `s2kit.core.checkpoints`
finds them.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from s2kit.core.checkpoints import CONFIG, CheckpointError, find_checkpoint, read_config
from s2kit.plugins.executors.s2.configuration import ModelConfig

__all__ = ["FORMAT", "WEIGHTS", "CheckpointError", "CheckpointInfo", "find_checkpoint", "load_policy", "read_info", "save_checkpoint"]

FORMAT = 1
WEIGHTS, TRAINING = "model.safetensors", "training_state.pt"
#: Model fields added after format 1 was fixed, with the value that reproduces a checkpoint written before them.
LEGACY_MODEL: dict[str, Any] = {"focus_weight": 0.0, "keypoint_grid": "patch", "focus_map": 0.0}


class CheckpointInfo(BaseModel):
    """config.json: what the weights are and how to feed them."""

    model_config = ConfigDict(extra="forbid")

    format: int = FORMAT
    executor: str = Field(description="The executor plugin that runs it (s2 or baseline).")
    variant: str
    model: ModelConfig
    normalization: dict[str, list[float]] = Field(description="state_mean, state_std, action_mean, action_std.")
    state_names: list[str] = Field(description="The robot state entries the model reads, in order.")
    action_names: list[str]
    action_space: str = "ee_delta"
    control_hz: float
    step: int = 0
    datasets: list[dict[str, Any]] = Field(default_factory=list)
    train: dict[str, Any] = Field(default_factory=dict, description="The training config that produced it.")


def read_info(path: str | Path) -> CheckpointInfo:
    """The checkpoint's config.json, checked."""
    folder, raw = read_config(path)
    if isinstance(raw, dict) and raw.get("format", FORMAT) != FORMAT:
        raise CheckpointError(f"{folder / CONFIG} has format {raw.get('format')}; this s2kit reads format {FORMAT}")
    if isinstance(raw, dict) and isinstance(raw.get("model"), dict):
        for field, value in LEGACY_MODEL.items():  # written before the field existed: what the network then was
            raw["model"].setdefault(field, value)
    try:
        return CheckpointInfo.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise CheckpointError(f"{folder / CONFIG}: {where}: {first['msg']}") from None


def save_checkpoint(folder: Path, model: Any, info: CheckpointInfo, training_state: dict[str, Any] | None = None) -> Path:
    """Write a checkpoint atomically: into ``folder``.tmp, then renamed."""
    import torch
    from safetensors.torch import save_file

    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(tmp / WEIGHTS), metadata={"format": str(FORMAT)})
    (tmp / CONFIG).write_text(json.dumps(info.model_dump(mode="json"), indent=2) + "\n")
    if training_state is not None:
        torch.save(training_state, tmp / TRAINING)
    for f in tmp.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    if folder.exists():
        shutil.rmtree(folder)
    tmp.rename(folder)
    return folder


def load_policy(path: str | Path, device: str = "cpu") -> tuple[Any, CheckpointInfo, Path]:
    """(S2Policy in eval mode, its info, the checkpoint folder); any mismatch is a `CheckpointError`."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from s2kit.plugins.executors.s2.modeling import S2Policy

    folder = find_checkpoint(path)  # a run is searched once
    info = read_info(folder)
    weights = folder / WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"{folder} has no {WEIGHTS}")
    try:
        state = load_file(str(weights), device=device)
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{weights} is corrupt: {err}") from None
    bad = [k for k, v in state.items() if v.is_floating_point() and not v.isfinite().all()]
    if bad:
        raise CheckpointError(f"{weights} holds non-finite weights ({', '.join(bad[:3])}): a diverged run")
    model = S2Policy(info.model)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [k for k, v in state.items() if k in expected and expected[k].shape != v.shape]
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"{weights} does not match its config: missing {missing[:3]}, unexpected {unexpected[:3]}, wrong shape {wrong[:3]}"
        )
    model.load_state_dict(state)
    from s2kit.learning.data import StateEncoder

    if StateEncoder(info.state_names, None).dim != info.model.state_dim or len(info.action_names) != info.model.action_dim:
        raise CheckpointError(f"{folder / CONFIG}: state/action names do not match the model's sizes")
    return model.to(device).eval(), info, folder
