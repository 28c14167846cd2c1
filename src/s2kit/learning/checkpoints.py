"""Checkpoints of any kit policy: a folder with the weights and everything needed to use them.

::

    <checkpoint>/
      model.safetensors     the network's weights
      config.json           `CheckpointInfo`: which executor plugin built it, the policy config, normalization,
                            state and action names, the embodiment it was trained for, ...
      training_state.pt     optimizer, schedule, RNG states (run checkpoints only; --resume reads it)

A training run writes ``RUN/checkpoints/step_NNNNNNN/`` folders, each complete
before it appears (written beside, then renamed); `s2kit.core.checkpoints`
finds them.

No loader here names a model: config.json names the executor plugin, the
registry finds its class, and that class's ``policy_class()`` (a
`s2kit.learning.executor.PolicyExecutor`) says which `Policy` and config to
build. Format 1 (before the kit) is read as it was written: S2's executors
built it, and it has no embodiment record.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, ValidationError

from s2kit.core.checkpoints import CONFIG, CheckpointError, find_checkpoint, read_config
from s2kit.core.errors import S2kitError

if TYPE_CHECKING:
    from s2kit.core.types import RobotSpec
    from s2kit.learning.policy import Policy, PolicyConfig

__all__ = [
    "FORMAT",
    "READS",
    "WEIGHTS",
    "CheckpointError",
    "CheckpointInfo",
    "Embodiment",
    "find_checkpoint",
    "load_policy",
    "load_weights",
    "policy_class",
    "read_info",
    "save_checkpoint",
]

FORMAT = 2  # 2: the embodiment record; the model config is the policy's own
READS = (1, 2)
WEIGHTS, TRAINING = "model.safetensors", "training_state.pt"
#: The safetensors metadata entry naming the weights a checkpoint stores by reference (keys and their digest).
PACKAGED = "s2kit.packaged"
#: How far a robot's control rate may be from the training data's before it is another embodiment (relative).
RATE_TOLERANCE = 0.01


class Embodiment(BaseModel):
    """The robots a checkpoint was trained for, as their datasets recorded them.

    A robot is another embodiment when its type is none of ``robots``, its
    control rate differs from ``control_hz`` (by over 1%), or its limits for ``action_space`` are narrower than the actions the policy
    learned (``action_low``/``action_high``, the training data's extremes). The
    same action space alone makes no robot the same embodiment; a checkpoint
    trained on several robots' data (ee_delta, cross-embodiment) lists them all.
    """

    model_config = ConfigDict(extra="forbid")

    robots: list[str] = Field(description="Robot types of the training datasets (LeRobot info's robot_type).")
    control_hz: float = Field(description="Control rate of the training data (the datasets' fps).")
    image_size: int = Field(description="The square image size the policy reads.")
    cameras: list[str] = Field(description="Camera roles the policy reads.")
    action_space: str
    action_low: list[float] | None = Field(None, description="Smallest value of each action dimension in the training data.")
    action_high: list[float] | None = Field(None, description="Largest value of each action dimension in the training data.")

    @classmethod
    def of_data(
        cls, datasets: Sequence[dict[str, Any]], fps: float, config: PolicyConfig, action_space: str, actions: np.ndarray | None = None
    ) -> Embodiment:
        """The embodiment of a policy trained on ``datasets`` (their records: ``robot_type``) with ``actions`` (N, A)."""
        robots = sorted({str(d["robot_type"]) for d in datasets if d.get("robot_type")})
        low = high = None
        if actions is not None and len(actions):
            low, high = [float(x) for x in np.min(actions, axis=0)], [float(x) for x in np.max(actions, axis=0)]
        return cls(
            robots=robots, control_hz=float(fps), image_size=config.image_size, cameras=list(config.cameras),
            action_space=action_space, action_low=low, action_high=high,
        )  # fmt: skip

    def differences(self, spec: RobotSpec) -> list[str]:
        """How robot ``spec`` differs from this embodiment, one phrase each (empty: it is the same)."""
        out = []
        if self.robots and spec.name not in self.robots:
            out.append(f"robot type {spec.name!r}, trained on {', '.join(map(repr, self.robots))}")
        if abs(spec.control_hz - self.control_hz) > RATE_TOLERANCE * self.control_hz:
            out.append(f"control rate {spec.control_hz:g} Hz, trained at {self.control_hz:g} Hz")
        # (a missing camera or action space is no difference to allow: the policy cannot run at all, `PolicyExecutor.setup`)
        space = next((s for s in spec.action_spaces if s.name == self.action_space), None)
        if space is not None and self.action_low is not None and self.action_high is not None and len(space.low) == len(self.action_low):
            beyond = [
                space.names[i] for i in range(len(space.low))
                if self.action_low[i] < space.low[i] - _slack(space.low[i]) or self.action_high[i] > space.high[i] + _slack(space.high[i])
            ]  # fmt: skip
            if beyond:
                out.append(f"{self.action_space} limits narrower than the trained actions in {', '.join(beyond)}")
        return out


def _slack(limit: float) -> float:
    return 1e-6 + 0.01 * abs(limit)


class CheckpointInfo(BaseModel):
    """config.json: what the weights are and how to feed them."""

    model_config = ConfigDict(extra="forbid")

    format: int = FORMAT
    executor: str = Field(description="The executor plugin that built and runs it (its registry name).")
    variant: str = Field("", description="The preset the model config started from, if any.")
    model: SerializeAsAny[Any] = Field(description="The policy's config (its `config_class`).")
    normalization: dict[str, list[float]] = Field(description="state_mean, state_std, action_mean, action_std.")
    state_names: list[str] = Field(description="The robot state entries the model reads, in order.")
    action_names: list[str]
    action_space: str = "ee_delta"
    control_hz: float
    step: int = 0
    datasets: list[dict[str, Any]] = Field(default_factory=list)
    train: dict[str, Any] = Field(default_factory=dict, description="The training config that produced it.")
    embodiment: Embodiment | None = Field(None, description="What it was trained for; None in format 1 (no check).")


def policy_class(executor: str, where: str | Path = "checkpoint") -> type[Policy]:
    """The `Policy` class of the executor plugin called ``executor``, through the registry; `CheckpointError` if none."""
    from s2kit.core.registry import get_registry

    try:
        cls = get_registry().get("executor", executor).cls
    except S2kitError as err:
        raise CheckpointError(f"{where} was built by executor {executor!r}, which cannot be loaded here: {err}") from None
    find = getattr(cls, "policy_class", None)
    if find is None:
        raise CheckpointError(f"{where} names executor {executor!r}, which runs no learned policy")
    return find()


def read_info(path: str | Path) -> CheckpointInfo:
    """The checkpoint's config.json, checked: its model config validated by the policy of the executor that built it."""
    folder, raw = read_config(path)
    where = folder / CONFIG
    if not isinstance(raw, dict):
        raise CheckpointError(f"{where}: not a JSON object")
    if raw.get("format", FORMAT) not in READS:
        raise CheckpointError(f"{where} has format {raw.get('format')}; this s2kit reads format {', '.join(map(str, READS))}")
    executor = raw.get("executor")
    if not isinstance(executor, str) or not executor:
        raise CheckpointError(f"{where} does not name its executor")
    config_class = policy_class(executor, where).config_class
    model = raw.get("model")
    if not isinstance(model, dict):
        raise CheckpointError(f"{where}: model: a policy config (a JSON object) is required")
    model = {**config_class.saved_defaults, **model}  # written before a field existed: what the network then was
    try:
        config = config_class.model_validate(model)
        return CheckpointInfo.model_validate({**raw, "model": config})
    except ValidationError as err:
        first = err.errors()[0]
        where_in = ".".join(str(p) for p in first["loc"])
        prefix = "" if err.title == CheckpointInfo.__name__ else "model."
        raise CheckpointError(f"{where}: {prefix}{where_in}: {first['msg']}") from None


def save_checkpoint(folder: Path, model: Any, info: BaseModel, training_state: dict[str, Any] | None = None) -> Path:
    """Write a checkpoint atomically: into ``folder``.tmp, then renamed.

    ``info`` is its config.json: a `CheckpointInfo` for an executor's policy, or the record of a model that no executor
    runs (SOF's skill tokenizer), a pydantic model with a ``format`` field either way."""
    import torch
    from safetensors.torch import save_file

    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    metadata = {"format": str(info.format)}  # type: ignore[attr-defined]
    packaged = sorted(model.packaged_weights()) if hasattr(model, "packaged_weights") else []
    if packaged:  # a digest in place of weights that every installation has in its package
        metadata[PACKAGED] = json.dumps({"keys": packaged, "sha256": _digest(state, packaged)})
        by_reference = set(packaged)
        state = {k: v for k, v in state.items() if k not in by_reference}
    save_file(state, str(tmp / WEIGHTS), metadata=metadata)
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


def _digest(state: dict[str, Any], keys: Sequence[str]) -> str:
    """SHA-256 over ``keys``' names, dtypes, shapes and values in ``state``."""
    digest = hashlib.sha256()
    for key in keys:
        value = state[key].detach().cpu().contiguous()
        digest.update(f"{key}|{value.dtype}|{tuple(value.shape)}|".encode())
        digest.update(value.numpy().tobytes())
    return digest.hexdigest()


def _packaged(weights: Path, metadata: dict[str, str], expected: dict[str, Any]) -> dict[str, Any]:
    """The entries ``weights`` stores by reference (`PACKAGED` in its ``metadata``), taken from the newly built
    network ``expected`` after checking that they are the values the checkpoint was trained with."""
    if PACKAGED not in metadata:
        return {}
    try:
        record = json.loads(metadata[PACKAGED])
        keys, sha = list(record["keys"]), str(record["sha256"])
    except (ValueError, KeyError, TypeError) as err:
        raise CheckpointError(f"{weights}: its record of packaged weights is corrupt: {err}") from None
    unknown = [k for k in keys if k not in expected]
    if unknown:
        raise CheckpointError(f"{weights} refers to packaged weights its config does not build: {unknown[:3]}")
    if _digest(expected, keys) != sha:
        raise CheckpointError(
            f"{weights} was trained on other packaged weights ({keys[0]} ... {len(keys)} entries: a frozen pretrained "
            "trunk) than the installed package gives; install the version of that package it was trained with"
        )
    return {k: expected[k] for k in keys}


def load_weights(folder: Path, model: Any, device: str = "cpu") -> None:
    """Load checkpoint ``folder``'s weights into ``model``, a new network built from its config; any corruption or
    mismatch is a `CheckpointError` naming the file.

    Weights the checkpoint stores by reference (a frozen pretrained trunk, `Policy.packaged_weights`) come from the
    network as built (the installed package's), checked against the digest it stores."""
    from safetensors import SafetensorError, safe_open

    weights = folder / WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"{folder} has no {WEIGHTS}")
    try:  # the tensors and the metadata (packaged weights) in one read
        with safe_open(str(weights), framework="pt", device=device) as handle:
            metadata = handle.metadata() or {}
            state = {key: handle.get_tensor(key) for key in handle.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{weights} is corrupt: {err}") from None
    bad = [k for k, v in state.items() if v.is_floating_point() and not v.isfinite().all()]
    if bad:
        raise CheckpointError(f"{weights} holds non-finite weights ({', '.join(bad[:3])}): a diverged run")
    expected = model.state_dict()
    state = {**_packaged(weights, metadata, expected), **state}
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [k for k, v in state.items() if k in expected and expected[k].shape != v.shape]
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"{weights} does not match its config: missing {missing[:3]}, unexpected {unexpected[:3]}, wrong shape {wrong[:3]}"
        )
    model.load_state_dict(state)


def load_policy(path: str | Path, device: str = "cpu") -> tuple[Any, CheckpointInfo, Path]:
    """(the policy in eval mode, its info, the checkpoint folder); any mismatch is a `CheckpointError`.

    Weights the checkpoint stores by reference (a frozen pretrained trunk, `Policy.packaged_weights`) come from the
    installed package, checked against the digest it stores."""
    from s2kit.learning.inputs import StateEncoder

    folder = find_checkpoint(path)  # a run is searched once
    info = read_info(folder)
    if not (folder / WEIGHTS).is_file():
        raise CheckpointError(f"{folder} has no {WEIGHTS}")
    try:
        model = policy_class(info.executor, folder / CONFIG)(info.model)
    except ValueError as err:  # a config the network cannot be built from
        raise CheckpointError(f"{folder / CONFIG}: {err}") from None
    load_weights(folder, model, device)
    if StateEncoder(info.state_names, None).dim != info.model.state_dim or len(info.action_names) != info.model.action_dim:
        raise CheckpointError(f"{folder / CONFIG}: state/action names do not match the model's sizes")
    return model.to(device).eval(), info, folder
