"""Any kit policy as an ONNX graph (``s2kit export RUN --format onnx``), and the ONNX Runtime backend that runs it.

The graph is the policy's `Policy.sample`, the inference path of its executor::

    images uint8 (B, cameras, 3, S, S), state (B, state_dim), text (B, 3, 384), noise (B, H, A),
    then the policy's own inputs (`Policy.extra_inputs`: SOF's translator's skill tokens)
      -> Policy.outputs(): actions (B, H, A) normalized, done (B,) probability where predicted, extras

An input the policy does not read (``noise`` under a regression head) is not
in the graph. Loops over a fixed count (a flow head's Euler steps) are
unrolled. The batch is fixed at 1, what an executor feeds, unless
``dynamic_batch``: with a fixed batch, shapes fold into constants (about 10%
faster per chunk on CPU for S2).

The policy's inference options (`PolicyExecutor.sample_options`, e.g. S2's
``rho``) are fixed when the graph is traced; `PolicyConfig.graph_facts`
says what they fix (S2: how many patches per camera are kept, a Python int
in the traced code). A graph records its options and facts, and
`OnnxBackend` refuses options whose facts differ, with a one-line error
that says how to export a graph for them.

Metadata (ONNX ``metadata_props``): ``s2kit.version``, ``s2kit.executor``,
``s2kit.variant``, ``s2kit.step`` (the checkpoint's training step),
``s2kit.opset``, ``s2kit.options`` and ``s2kit.facts`` (JSON),
``s2kit.batch`` (1 or ``dynamic``), ``s2kit.model`` (the policy config,
JSON) and ``s2kit.weights_sha256`` (of the checkpoint's weights file).

Before the file appears (written beside ``out``, then renamed), the graph is
run on ONNX Runtime next to the torch policy on real observations: the
simulated robot the checkpoint was trained on (``robot_type`` of its
datasets, found in the registry by name), a few seeds, each observed at
reset and again after some steps of an expert (the scripted one by default), with the oracle
planner's guidance; inputs are built by `prepare_inputs`, exactly as the
executor builds them, with the same noise for both (a policy's own inputs,
which no planner gives, are drawn at random within their `InputSpec`). Floating outputs must
agree within ``tolerance`` (normalized units) and integer ones (S2's kept
patches) exactly, or the export fails and nothing is written.

This module imports neither torch nor onnx at import time.
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
from s2kit.learning.batch import IMAGES, NOISE, STATE, TEXT
from s2kit.learning.checkpoints import CheckpointInfo

__all__ = [
    "FORMATS", "INPUTS", "ExportCheckError", "ExportConfig", "OnnxBackend", "export_onnx", "observed_inputs", "random_inputs", "with_extra_inputs",
]  # fmt: skip

FORMATS = ("onnx",)
INPUTS = (IMAGES, STATE, TEXT, NOISE)
DEFAULT_OPSET, DEFAULT_TOLERANCE = 17, 1e-3
META = "s2kit."

Inputs = dict[str, np.ndarray]


class ExportCheckError(S2kitError):
    """The exported graph does not compute what the torch network computes."""


class ExportConfig(BaseModel):
    """Options of ``s2kit export`` (``--set key=value``); an executor's subclass adds its inference options."""

    model_config = ConfigDict(extra="forbid")

    # the graph
    # 14: scaled_dot_product_attention's first opset; 20: the TorchScript exporter's last
    opset: int = Field(DEFAULT_OPSET, ge=14, le=20, description="ONNX opset.")
    dynamic_batch: bool = Field(False, description="A dynamic batch axis instead of batch 1 (the executor's).")
    # the parity check
    check: bool = Field(True, description="Check the graph against the torch network before writing it.")
    tolerance: float = Field(DEFAULT_TOLERANCE, gt=0.0, description="Largest allowed difference of floating outputs, normalized units.")
    robot: str | None = Field(None, description="Robot to observe for the check; default: the one the checkpoint's datasets name.")
    episodes: int = Field(3, ge=1, le=100, description="Seeds to reset the robot with, 0..episodes-1.")
    steps: int = Field(10, ge=0, le=1000, description="Expert steps between an episode's two observations (0: reset only).")
    expert: str = Field("scripted", description="The executor that moves the robot between observations (the simulator's scripted expert).")


def export_onnx(
    checkpoint: str | Path,
    out: str | Path,
    *,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = False,
    check: bool = True,
    tolerance: float = DEFAULT_TOLERANCE,
    robot: str | None = None,
    episodes: int = 3,
    steps: int = 10,
    expert: str = "scripted",
    **settings: Any,
) -> dict[str, Any]:
    """Export a checkpoint's inference graph to ``out`` (see the module docstring); a report.

    ``settings`` are the executor's inference settings (S2: ``rho``), turned into the policy's options by the
    executor that built the checkpoint. Raises `ExportCheckError` when the graph and the torch network
    disagree (``out`` is then left as it was) and `ConfigError` for options that do not fit the checkpoint.
    """
    from s2kit.core.checkpoints import find_checkpoint
    from s2kit.core.registry import get_registry
    from s2kit.learning.checkpoints import WEIGHTS, read_info
    from s2kit.learning.executor import TorchBackend

    start = time.perf_counter()
    folder = find_checkpoint(checkpoint)
    info = read_info(folder)
    executor = get_registry().get("executor", info.executor).cls
    options = executor.sample_options(info, settings, f"export: {folder}")  # type: ignore[attr-defined]
    facts = info.model.graph_facts(**options)
    out = Path(out)
    if out.is_dir():
        raise ConfigError(f"export: --out {out} is a folder; name a file, e.g. {out / 'model.onnx'}")
    out.parent.mkdir(parents=True, exist_ok=True)
    torch_backend = TorchBackend(folder, None)
    metadata = {
        "version": _version(), "executor": info.executor, "variant": info.variant, "step": str(info.step), "opset": str(opset),
        "options": json.dumps(options), "facts": json.dumps(facts), "batch": "dynamic" if dynamic_batch else "1",
        "model": info.model.model_dump_json(), "weights_sha256": _sha256(folder / WEIGHTS),
    }  # fmt: skip
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        _write_graph(torch_backend.model, tmp, options=options, opset=opset, dynamic_batch=dynamic_batch, metadata=metadata)
        report: dict[str, Any] = {
            "format": "onnx", "out": str(out), "checkpoint": str(folder), "step": info.step, **options, **facts,
            "opset": opset, "batch": metadata["batch"], "size_mb": round(tmp.stat().st_size / 1e6, 2),
        }  # fmt: skip
        if check:
            report.update(
                _check(
                    torch_backend, OnnxBackend(tmp, None), info, options=options, tolerance=tolerance, robot=robot,
                    episodes=episodes, steps=steps, expert=expert, dynamic_batch=dynamic_batch, out=out,
                )  # fmt: skip
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


def _write_graph(policy: Any, path: Path, *, options: dict[str, Any], opset: int, dynamic_batch: bool, metadata: dict[str, str]) -> None:
    import onnx
    import torch

    c = policy.config
    outputs = list(policy.outputs())
    extra = policy.extra_inputs()
    names = [*INPUTS, *extra]

    class Inference(torch.nn.Module):
        """`Policy.sample` with positional tensors in and out, as the graph's signature."""

        def __init__(self) -> None:
            super().__init__()
            self.policy = policy

        def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
            batch = dict(zip(names, tensors, strict=True))
            noise = batch.pop(NOISE)
            result = self.policy.sample(batch, noise=noise, **options)
            return tuple(result[name] for name in outputs)

    example = (
        torch.zeros(1, len(c.cameras), 3, c.image_size, c.image_size, dtype=torch.uint8),
        torch.zeros(1, c.state_dim),
        torch.zeros(1, 3, c.text_dim),
        torch.zeros(1, c.chunk, c.action_dim),
        *(torch.from_numpy(np.zeros((1, *spec.shape), spec.dtype)) for spec in extra.values()),
    )
    axes = {name: {0: "batch"} for name in (*names, *outputs)} if dynamic_batch else None
    # Eval mode explicitly: the exporter restores the wrapper's own mode afterwards, and a
    # fresh module is in training mode, which would put training-only randomness into later samples.
    module = Inference().eval()
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of torch.export's, which needs
        # onnxscript (not a dependency); tracer warnings are about the shape asserts.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, example, str(path), dynamo=False, opset_version=opset, input_names=names,
            output_names=outputs, dynamic_axes=axes, do_constant_folding=True,
        )  # fmt: skip
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
    options: dict[str, Any],
    tolerance: float,
    robot: str | None,
    episodes: int,
    steps: int,
    expert: str,
    dynamic_batch: bool,
    out: Path,
) -> dict[str, Any]:
    """Run both backends on the same inputs; the differences, or `ExportCheckError`."""
    robot = robot or next((str(d["robot_type"]) for d in info.datasets if d.get("robot_type")), None)
    if robot is not None:
        inputs = with_extra_inputs(torch_backend.model, observed_inputs(info, robot, episodes=episodes, steps=steps, expert=expert))
        moved = f"{expert} steps 0 and {steps}" if steps else "at reset"
        where = f"{len(inputs)} observations of robot {robot!r} (seeds 0-{episodes - 1}, {moved})"
    else:
        inputs = with_extra_inputs(torch_backend.model, random_inputs(info.model, 2 * episodes))
        where = f"{len(inputs)} random inputs (the checkpoint names no robot; --set robot=NAME for real observations)"
    if dynamic_batch and len(inputs) > 1:  # the dynamic axis too: all of them as one batch
        inputs = [*inputs, {k: np.concatenate([x[k] for x in inputs]) for k in inputs[0]}]
    largest: dict[str, float] = {}
    same: dict[str, bool] = {}
    for x in inputs:
        expected, got = torch_backend(x, options), onnx_backend(x, options)
        for name, value in expected.items():
            if np.issubdtype(value.dtype, np.floating):
                largest[name] = max(largest.get(name, 0.0), float(np.abs(value - got[name]).max(initial=0.0)))
            else:
                same[name] = same.get(name, True) and np.array_equal(value, got[name])
    result: dict[str, Any] = {"check": where, **{f"max_abs_{k}": v for k, v in largest.items()}}
    result.update({k: "identical" if v else "DIFFERENT" for k, v in same.items()})
    result["tolerance"] = tolerance
    if not all(same.values()) or any(v > tolerance for v in largest.values()):
        differences = ", ".join(f"max |{k} difference| {v:.2e}" for k, v in largest.items())
        exact = "".join(f", {k} {'the same' if v else 'different'}" for k, v in same.items())
        raise ExportCheckError(
            f"export: the ONNX graph does not match the torch network on {where}: {differences} (tolerance {tolerance:g}){exact}; "
            f"{out} was not written"
        )
    return result


def observed_inputs(info: CheckpointInfo, robot: str, *, episodes: int, steps: int, expert: str = "scripted") -> list[Inputs]:
    """Backend inputs from a simulated robot, built as the executor builds them.

    For each seed 0..episodes-1: the observation at reset and, with ``steps``,
    the one after that many steps of the ``expert`` executor; guidance from the
    oracle planner, flow noise from one seeded generator.
    """
    from s2kit.core.registry import get_registry
    from s2kit.learning.executor import prepare_inputs
    from s2kit.learning.inputs import Normalizer, StateEncoder
    from s2kit.learning.text import GuidanceEncoder

    registry = get_registry()
    machine = cast(Robot, registry.create("robot", {"name": robot}))
    try:
        planner = cast(Planner, registry.create("planner", {"name": "oracle"}))
        mover = cast(Executor, registry.create("executor", {"name": expert})) if steps else None
        if mover is not None:
            mover.setup(machine.spec)
        state = StateEncoder(machine.spec.state_names, info.state_names)
        norm = Normalizer.from_dict(info.normalization)
        text = GuidanceEncoder()
        rng = np.random.default_rng(0)
        inputs = []
        for seed in range(episodes):
            observation = machine.reset(seed=seed)
            instruction = machine.instruction or ""
            guidance = planner.plan(instruction, observation)
            inputs.append(prepare_inputs(info, state, norm, observation, guidance, rng, text))
            if mover is None:
                continue
            mover.reset()
            taken = 0
            while taken < steps:
                chunk = mover.act(observation, guidance)
                for action in chunk.actions[: steps - taken]:
                    machine.apply(action, chunk.space)
                    taken += 1
                observation = machine.observe()
            guidance = planner.plan(instruction, observation)
            inputs.append(prepare_inputs(info, state, norm, observation, guidance, rng, text))
        return inputs
    finally:
        machine.close()


def with_extra_inputs(policy: Any, inputs: list[Inputs], seed: int = 0) -> list[Inputs]:
    """``inputs`` with the policy's own inputs (`Policy.extra_inputs`) added, drawn at random: integers uniform over
    0 .. high - 1, floats standard normal."""
    rng = np.random.default_rng(seed)
    specs = policy.extra_inputs()
    out = []
    for x in inputs:
        extra = {}
        for name, spec in specs.items():
            shape = (len(x[IMAGES]), *spec.shape)
            if spec.high is not None:
                extra[name] = rng.integers(0, spec.high, shape).astype(spec.dtype)
            else:
                extra[name] = rng.standard_normal(shape).astype(spec.dtype)
        out.append({**x, **extra})
    return out


def random_inputs(model: Any, n: int) -> list[Inputs]:
    """``n`` batch-1 inputs for a policy config ``model``: random images, states, unit-norm texts (like MiniLM's), noise."""
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        text = rng.standard_normal((1, 3, model.text_dim)).astype(np.float32)
        out.append({
            IMAGES: rng.integers(0, 256, (1, len(model.cameras), 3, model.image_size, model.image_size), dtype=np.uint8),
            STATE: rng.standard_normal((1, model.state_dim)).astype(np.float32),
            TEXT: text / np.linalg.norm(text, axis=-1, keepdims=True),
            NOISE: rng.standard_normal((1, model.chunk, model.action_dim)).astype(np.float32),
        })  # fmt: skip
    return out


# --- running it -----------------------------------------------------------------------------------


def _phrase(values: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in values.items()) or "no options"


class OnnxBackend:
    """An exported kit policy on ONNX Runtime: CPU, every graph optimization, ``threads`` intra-op threads."""

    def __init__(self, path: str | Path, threads: int | None) -> None:
        self.path = path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"ONNX graph {path} does not exist; write it with: s2kit export CHECKPOINT --out {path}")
        try:
            import onnxruntime as ort
            from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors
        except ImportError:
            raise PluginError("backend onnxruntime needs the onnxruntime package: pip install onnxruntime") from None
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
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except (
            ort_errors.Fail, ort_errors.InvalidProtobuf, ort_errors.InvalidGraph, ort_errors.NoSuchFile,
            ort_errors.InvalidArgument, ort_errors.NotImplemented, ort_errors.RuntimeException,
        ) as err:  # fmt: skip
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise CheckpointError(f"ONNX graph {path} is corrupt or unreadable: {first}") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        try:
            from s2kit.learning.checkpoints import policy_class

            self.executor = meta[META + "executor"]
            self.model = policy_class(self.executor, path).config_class.model_validate_json(meta[META + "model"])
            self.options: dict[str, Any] = json.loads(meta[META + "options"])
            self.facts: dict[str, Any] = json.loads(meta[META + "facts"])
            self.batch = None if meta[META + "batch"] == "dynamic" else int(meta[META + "batch"])
        except (KeyError, ValueError) as err:
            raise CheckpointError(f"ONNX graph {path} is not an s2kit export (metadata {err})") from None
        self.metadata = {k.removeprefix(META): v for k, v in meta.items() if k.startswith(META)}
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.outputs = [o.name for o in self.session.get_outputs()]

    def __call__(self, inputs: Inputs, options: dict[str, Any]) -> dict[str, np.ndarray]:
        """The policy's outputs by name, like `s2kit.learning.executor.TorchBackend`."""
        facts = self.model.graph_facts(**options)
        if facts != self.facts:
            settings = " ".join(f"--set {k}={v}" for k, v in options.items())
            raise ConfigError(
                f"ONNX graph {self.path} was exported at {_phrase(self.options)} ({_phrase(self.facts)}); {_phrase(options)} gives "
                f"{_phrase(facts)}: export one with s2kit export CHECKPOINT {settings} --out FILE"
            )
        batch = len(inputs[IMAGES])
        if self.batch is not None and batch != self.batch:
            raise ConfigError(f"ONNX graph {self.path} takes batch {self.batch}, not {batch}: export with --set dynamic_batch=true")
        feeds = {name: value for name, value in inputs.items() if name in self.inputs}
        return dict(zip(self.outputs, self.session.run(None, feeds), strict=True))
