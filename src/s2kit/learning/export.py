"""S2 as an ONNX graph (``s2kit export RUN --format onnx``) and the ONNX Runtime backend that runs it.

The graph is `S2Policy.sample`, the inference path of the executor::

    images uint8 (B, cameras, 3, S, S), state (B, state_dim), text (B, 3, 384), noise (B, H, A)
      -> actions (B, H, A) normalized, done (B,) probability, keep_index (B, cameras, k)

The encoder runs once; the flow head's Euler loop is unrolled into
``flow_steps`` decoder passes (a regression head has one, and no ``noise``
input); ``keep_index`` exists only with the evidence budget on. The batch is
fixed at 1, what the executor feeds, unless ``dynamic_batch``: with a fixed
batch the flow times and their embeddings fold into constants (about 10%
faster per chunk on CPU).

The keep count k = rho * patches is baked into the graph, not an input:
`S2Policy.encode` computes k as a Python int (`ModelConfig.kept`), so the
tracer records it as a constant, and making it a tensor would need a second
copy of the encoder here. A graph is small and a run uses one rho, so a
graph per rho it is; the graph records its rho and k, and `OnnxBackend`
refuses another k with a one-line error that says how to export one.

Metadata (ONNX ``metadata_props``): ``s2kit.version``, ``s2kit.executor``,
``s2kit.variant``, ``s2kit.step`` (the checkpoint's training step),
``s2kit.opset``, ``s2kit.rho`` (JSON; null without a budget), ``s2kit.kept``
(k per camera), ``s2kit.batch`` (1 or ``dynamic``), ``s2kit.model`` (the
`ModelConfig`, JSON) and ``s2kit.weights_sha256`` (of the checkpoint's
weights file).

Before the file appears (written beside ``out``, then renamed), the graph is
run on ONNX Runtime next to the torch network on real observations: the
simulated robot the checkpoint was trained on (``robot_type`` of its
datasets), a few seeds, each observed at reset and again after some steps of
the scripted expert, with the oracle planner's guidance; inputs are built by
`prepare_inputs`, exactly as the executor builds them, with the same noise
for both. Actions and done must agree within ``tolerance`` (normalized
units) and the kept patches must be the same, or the export fails and
nothing is written.

This module imports neither torch nor onnx at import time: running a graph
needs onnxruntime only.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from pathlib import Path
from typing import Any, cast

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from s2kit.core.checkpoints import CheckpointError
from s2kit.core.errors import ConfigError, PluginError, S2kitError
from s2kit.core.interfaces import Executor, Planner, Robot
from s2kit.learning.checkpoints import CheckpointInfo
from s2kit.plugins.executors.s2.configuration import ModelConfig

__all__ = [
    "FORMATS",
    "INPUTS",
    "ExportCheckError",
    "ExportConfig",
    "OnnxBackend",
    "export_onnx",
    "observed_inputs",
]

FORMATS = ("onnx",)
INPUTS = ("images", "state", "text", "noise")
OUTPUTS = ("actions", "done", "keep_index")
DEFAULT_OPSET, DEFAULT_TOLERANCE = 17, 1e-3
META = "s2kit."

Inputs = tuple[
    np.ndarray, np.ndarray, np.ndarray, np.ndarray
]  # images, state, text, noise


class ExportCheckError(S2kitError):
    """The exported graph does not compute what the torch network computes."""


class ExportConfig(BaseModel):
    """Options of ``s2kit export`` for S2 (``--set key=value``)."""

    model_config = ConfigDict(extra="forbid")

    # the graph
    rho: float | None = Field(
        None,
        gt=0.0,
        le=1.0,
        description="Keep-fraction baked into the graph; default: the checkpoint's.",
    )
    # 14: scaled_dot_product_attention's first opset; 20: the TorchScript exporter's last
    opset: int = Field(DEFAULT_OPSET, ge=14, le=20, description="ONNX opset.")
    dynamic_batch: bool = Field(
        False, description="A dynamic batch axis instead of batch 1 (the executor's)."
    )
    # the parity check
    check: bool = Field(
        True, description="Check the graph against the torch network before writing it."
    )
    tolerance: float = Field(
        DEFAULT_TOLERANCE,
        gt=0.0,
        description="Largest allowed difference of actions and done, normalized units.",
    )
    robot: str | None = Field(
        None,
        description="Robot to observe for the check; default: the one the checkpoint's datasets name.",
    )
    episodes: int = Field(
        3, ge=1, le=100, description="Seeds to reset the robot with, 0..episodes-1."
    )
    steps: int = Field(
        10,
        ge=0,
        le=1000,
        description="Scripted-expert steps between an episode's two observations (0: reset only).",
    )


def export_onnx(
    checkpoint: str | Path,
    out: str | Path,
    *,
    rho: float | None = None,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = False,
    check: bool = True,
    tolerance: float = DEFAULT_TOLERANCE,
    robot: str | None = None,
    episodes: int = 3,
    steps: int = 10,
) -> dict[str, Any]:
    """Export a checkpoint's inference graph to ``out`` (see the module docstring); a report.

    Raises `ExportCheckError` when the graph and the torch network disagree
    (``out`` is then left as it was) and `ConfigError` for options that do
    not fit the checkpoint.
    """
    from s2kit.core.checkpoints import find_checkpoint
    from s2kit.learning.checkpoints import WEIGHTS, read_info
    from s2kit.plugins.executors.s2.executor import TorchBackend

    start = time.perf_counter()
    folder = find_checkpoint(checkpoint)
    info = read_info(folder)
    model = info.model
    if rho is not None and not model.budget:
        raise ConfigError(
            f"export: {folder} was trained without an evidence budget; rho does not apply"
        )
    rho = (model.rho if rho is None else rho) if model.budget else None
    out = Path(out)
    if out.is_dir():
        raise ConfigError(
            f"export: --out {out} is a folder; name a file, e.g. {out / 'model.onnx'}"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    torch_backend = TorchBackend(folder, None)
    metadata = {
        "version": _version(),
        "executor": info.executor,
        "variant": info.variant,
        "step": str(info.step),
        "opset": str(opset),
        "rho": json.dumps(rho),
        "kept": str(model.kept(rho)),
        "batch": "dynamic" if dynamic_batch else "1",
        "model": model.model_dump_json(),
        "weights_sha256": _sha256(folder / WEIGHTS),
    }
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        _write_graph(
            torch_backend.model,
            tmp,
            rho=rho,
            opset=opset,
            dynamic_batch=dynamic_batch,
            metadata=metadata,
        )
        report: dict[str, Any] = {
            "format": "onnx",
            "out": str(out),
            "checkpoint": str(folder),
            "step": info.step,
            "rho": rho,
            "kept": f"{model.kept(rho)} of {model.patches} patches per camera",
            "opset": opset,
            "batch": metadata["batch"],
            "decoder_passes": model.decoder_passes,
            "size_mb": round(tmp.stat().st_size / 1e6, 2),
        }
        if check:
            report.update(
                _check(
                    torch_backend,
                    OnnxBackend(tmp, None),
                    info,
                    rho=rho,
                    tolerance=tolerance,
                    robot=robot,
                    episodes=episodes,
                    steps=steps,
                    dynamic_batch=dynamic_batch,
                    out=out,
                )
            )
        else:
            report["check"] = "skipped"
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    report["seconds"] = round(time.perf_counter() - start, 1)
    return report


# --- writing the graph ------------------------------------------------------------------------


def _write_graph(
    policy: Any,
    path: Path,
    *,
    rho: float | None,
    opset: int,
    dynamic_batch: bool,
    metadata: dict[str, str],
) -> None:
    import onnx
    import torch

    from s2kit.plugins.executors.s2.modeling import IMAGES, STATE, TEXT

    c = policy.config

    class Inference(torch.nn.Module):
        """`S2Policy.sample` with positional tensors in and out, as the graph's signature."""

        def __init__(self) -> None:
            super().__init__()
            self.policy = policy

        def forward(
            self,
            images: torch.Tensor,
            state: torch.Tensor,
            text: torch.Tensor,
            noise: torch.Tensor,
        ) -> tuple[torch.Tensor, ...]:
            actions, done, extras = self.policy.sample(
                {IMAGES: images, STATE: state, TEXT: text}, rho, noise
            )
            return (
                (actions, done, extras["keep_index"]) if c.budget else (actions, done)
            )

    example = (
        torch.zeros(
            1, len(c.cameras), 3, c.image_size, c.image_size, dtype=torch.uint8
        ),
        torch.zeros(1, c.state_dim),
        torch.zeros(1, 3, c.text_dim),
        torch.zeros(1, c.chunk, c.action_dim),
    )
    outputs = list(OUTPUTS if c.budget else OUTPUTS[:2])
    axes = (
        {name: {0: "batch"} for name in (*INPUTS, *outputs)} if dynamic_batch else None
    )
    # Eval mode explicitly: the exporter restores the wrapper's own mode afterwards, and a
    # fresh module is in training mode, which would put the ranking noise into later samples.
    module = Inference().eval()
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of torch.export's, which needs
        # onnxscript (not a dependency); tracer warnings are about the shape asserts.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            example,
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=list(INPUTS),
            output_names=outputs,
            dynamic_axes=axes,
            do_constant_folding=True,
        )
    graph = onnx.load(str(path))
    onnx.helper.set_model_props(graph, {META + k: v for k, v in metadata.items()})
    onnx.checker.check_model(graph)
    onnx.save(graph, str(path))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _version() -> str:
    from s2kit import __version__

    return __version__


# --- checking it against torch -------------------------------------------------------------------


def _check(
    torch_backend: Any,
    onnx_backend: OnnxBackend,
    info: CheckpointInfo,
    *,
    rho: float | None,
    tolerance: float,
    robot: str | None,
    episodes: int,
    steps: int,
    dynamic_batch: bool,
    out: Path,
) -> dict[str, Any]:
    """Run both backends on the same inputs; the differences, or `ExportCheckError`."""
    robot = robot or next(
        (str(d["robot_type"]) for d in info.datasets if d.get("robot_type")), None
    )
    if robot is not None:
        inputs = observed_inputs(info, robot, episodes=episodes, steps=steps)
        where = f"{len(inputs)} observations of robot {robot!r} (seeds 0-{episodes - 1}, expert steps 0 and {steps})"
    else:
        inputs = _random_inputs(info.model, 2 * episodes)
        where = f"{len(inputs)} random inputs (the checkpoint names no robot; --set robot=NAME for real observations)"
    if (
        dynamic_batch and len(inputs) > 1
    ):  # the dynamic axis too: all of them as one batch
        inputs = [
            *inputs,
            tuple(np.concatenate(parts) for parts in zip(*inputs, strict=True)),
        ]  # type: ignore[misc]
    run_rho = 1.0 if rho is None else rho  # without a budget the backends ignore it
    actions = done = 0.0
    same = True
    for x in inputs:
        (ta, td, tk), (oa, od, ok) = (
            torch_backend(*x, run_rho),
            onnx_backend(*x, run_rho),
        )
        actions, done = (
            max(actions, float(np.abs(ta - oa).max())),
            max(done, float(np.abs(td - od).max())),
        )
        same = same and np.array_equal(tk, ok)
    result = {
        "check": where,
        "max_abs_actions": actions,
        "max_abs_done": done,
        "keep_index": "identical" if same else "DIFFERENT",
        "tolerance": tolerance,
    }
    if not same or actions > tolerance or done > tolerance:
        raise ExportCheckError(
            f"export: the ONNX graph does not match the torch network on {where}: max |actions difference| {actions:.2e}, "
            f"max |done difference| {done:.2e} (tolerance {tolerance:g}), kept patches {'the same' if same else 'different'}; "
            f"{out} was not written"
        )
    return result


def observed_inputs(
    info: CheckpointInfo, robot: str, *, episodes: int, steps: int
) -> list[Inputs]:
    """Backend inputs from a simulated robot, built as the executor builds them.

    For each seed 0..episodes-1: the observation at reset and, with ``steps``,
    the one after that many steps of the scripted expert; guidance from the
    oracle planner, flow noise from one seeded generator.
    """
    from s2kit.core.registry import get_registry
    from s2kit.learning.data import Normalizer, StateEncoder
    from s2kit.plugins.executors.s2.executor import prepare_inputs

    registry = get_registry()
    machine = cast(Robot, registry.create("robot", {"name": robot}))
    try:
        planner = cast(Planner, registry.create("planner", {"name": "oracle"}))
        expert = cast(Executor, registry.create("executor", {"name": "scripted"}))
        expert.setup(machine.spec)
        state = StateEncoder(machine.spec.state_names, info.state_names)
        norm = Normalizer.from_dict(info.normalization)
        rng = np.random.default_rng(0)
        inputs = []
        for seed in range(episodes):
            observation = machine.reset(seed=seed)
            expert.reset()
            instruction = machine.instruction or ""
            guidance = planner.plan(instruction, observation)
            inputs.append(prepare_inputs(info, state, norm, observation, guidance, rng))
            if not steps:
                continue
            taken = 0
            while taken < steps:
                chunk = expert.act(observation, guidance)
                for action in chunk.actions[: steps - taken]:
                    machine.apply(action, chunk.space)
                    taken += 1
                observation = machine.observe()
            guidance = planner.plan(instruction, observation)
            inputs.append(prepare_inputs(info, state, norm, observation, guidance, rng))
        return inputs
    finally:
        machine.close()


def _random_inputs(model: ModelConfig, n: int) -> list[Inputs]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        text = rng.standard_normal((1, 3, model.text_dim)).astype(np.float32)
        out.append(
            (
                rng.integers(
                    0,
                    256,
                    (1, len(model.cameras), 3, model.image_size, model.image_size),
                    dtype=np.uint8,
                ),
                rng.standard_normal((1, model.state_dim)).astype(np.float32),
                text
                / np.linalg.norm(
                    text, axis=-1, keepdims=True
                ),  # unit-norm, like MiniLM's
                rng.standard_normal((1, model.chunk, model.action_dim)).astype(
                    np.float32
                ),
            )
        )
    return out


# --- running it -----------------------------------------------------------------------------------


class OnnxBackend:
    """An exported S2 graph on ONNX Runtime: CPU, every graph optimization, ``threads`` intra-op threads."""

    def __init__(self, path: str | Path, threads: int | None) -> None:
        self.path = path = Path(path)
        if not path.is_file():
            raise CheckpointError(
                f"ONNX graph {path} does not exist; write it with: s2kit export CHECKPOINT --out {path}"
            )
        try:
            import onnxruntime as ort
            from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors
        except ImportError:
            raise PluginError(
                "backend onnxruntime needs the onnxruntime package: pip install onnxruntime"
            ) from None
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only
        # Worker threads sleep between kernels instead of spinning: the executor shares the
        # CPU with the control loop and the simulator, and on a busy 2-core machine spinning
        # doubled the 2-thread chunk time (benchmarks/executor_latency.py, docs/executors.md).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except (
            ort_errors.Fail,
            ort_errors.InvalidProtobuf,
            ort_errors.InvalidGraph,
            ort_errors.NoSuchFile,
            ort_errors.InvalidArgument,
            ort_errors.NotImplemented,
            ort_errors.RuntimeException,
        ) as err:
            first = (
                str(err).strip().splitlines()[0]
                if str(err).strip()
                else type(err).__name__
            )
            raise CheckpointError(
                f"ONNX graph {path} is corrupt or unreadable: {first}"
            ) from None
        meta = self.session.get_modelmeta().custom_metadata_map
        try:
            self.model = ModelConfig.model_validate_json(meta[META + "model"])
            self.rho: float | None = json.loads(meta[META + "rho"])
            self.kept = int(meta[META + "kept"])
            self.batch = (
                None if meta[META + "batch"] == "dynamic" else int(meta[META + "batch"])
            )
        except (KeyError, ValueError) as err:
            raise CheckpointError(
                f"ONNX graph {path} is not an s2kit S2 export (metadata {err})"
            ) from None
        self.metadata = {
            k.removeprefix(META): v for k, v in meta.items() if k.startswith(META)
        }
        self.inputs = {i.name for i in self.session.get_inputs()}

    def __call__(
        self,
        images: np.ndarray,
        state: np.ndarray,
        text: np.ndarray,
        noise: np.ndarray,
        rho: float,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(actions (B, H, A) normalized, done probability (B,), kept patch indices (B, cameras, k)), like `TorchBackend`."""
        if self.model.budget and self.model.kept(rho) != self.kept:
            raise ConfigError(
                f"ONNX graph {self.path} was exported at rho {self.rho} ({self.kept} of {self.model.patches} patches per camera); "
                f"rho {rho} keeps {self.model.kept(rho)}: export one with s2kit export CHECKPOINT --set rho={rho} --out FILE"
            )
        if self.batch is not None and len(images) != self.batch:
            raise ConfigError(
                f"ONNX graph {self.path} takes batch {self.batch}, not {len(images)}: export with --set dynamic_batch=true"
            )
        feeds = {
            name: value
            for name, value in zip(INPUTS, (images, state, text, noise), strict=True)
            if name in self.inputs
        }
        outputs = self.session.run(None, feeds)
        keep = (
            outputs[2]
            if self.model.budget
            else np.zeros((len(images), 0, 0), dtype=np.int64)
        )
        return outputs[0], outputs[1], keep
