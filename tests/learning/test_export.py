"""``s2kit export``: a kit policy's ONNX graph checked against torch on the robot, and the onnxruntime backend (on S2)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from s2kit import __version__
from s2kit.cli.main import build_app
from s2kit.core.checkpoints import CheckpointError
from s2kit.core.errors import ConfigError
from s2kit.core.registry import get_registry
from s2kit.learning import export
from s2kit.learning.checkpoints import CheckpointInfo, save_checkpoint
from s2kit.learning.inputs import EE_STATE
from s2kit.plugins.executors.s2.configuration import ModelConfig
from s2kit.plugins.executors.s2.modeling import S2Policy
from tests.conftest import run_s2kit

runner = CliRunner()
#: A network of the robot's inputs (two cameras, the hand pose), small enough to export in a second.
TINY = {
    "image_size": 32,
    "patch_size": 8,
    "dim": 32,
    "heads": 2,
    "encoder_layers": 1,
    "decoder_layers": 1,
    "chunk": 4,
    "flow_steps": 3,
    "state_dim": 10,
}
QUICK = ["--set", "episodes=2", "--set", "steps=4"]  # four observations of the robot


def make_checkpoint(folder: Path, variant: str = "s2", **model: object) -> Path:
    """A freshly initialized network as a checkpoint of the simulated HSR (identity normalization)."""
    torch.manual_seed(0)
    config = ModelConfig.variant(variant, **{**TINY, **model})
    info = CheckpointInfo(
        executor="baseline" if variant == "baseline" else "s2",
        variant=variant,
        model=config,
        normalization={
            "state_mean": [0.0] * 10,
            "state_std": [1.0] * 10,
            "action_mean": [0.0] * 7,
            "action_std": [1.0] * 7,
        },
        state_names=list(EE_STATE),
        action_names=["dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"],
        control_hz=10.0,
        step=7,
        datasets=[{"path": "synthetic", "robot_type": "hsr"}],
    )
    return save_checkpoint(folder, S2Policy(config).eval(), info)


def invoke(*args: str) -> object:
    return runner.invoke(build_app(), list(args))


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    """(checkpoint, graph, the export's JSON report), exported once through the CLI."""
    root = tmp_path_factory.mktemp("export")
    checkpoint = make_checkpoint(root / "checkpoint")
    graph = root / "graphs" / "model.onnx"
    result = invoke("export", str(checkpoint), "--out", str(graph), *QUICK, "--json")
    assert result.exit_code == 0, result.output
    return checkpoint, graph, json.loads(result.output)


def test_export_checks_the_graph_on_the_robot_and_records_what_it_is(
    exported: tuple[Path, Path, dict],
) -> None:
    import onnx

    _, graph, report = exported
    assert report["check"].startswith("4 observations of robot 'hsr'")
    assert report["keep_index"] == "identical"
    assert report["max_abs_actions"] <= 1e-4 and report["max_abs_done"] <= 1e-4
    assert report["rho"] == 0.25 and report["kept"] == 4 and report["decoder_passes"] == 3
    meta = {p.key: p.value for p in onnx.load(str(graph)).metadata_props}
    assert (
        meta["s2kit.version"] == __version__
        and meta["s2kit.step"] == "7"
        and meta["s2kit.opset"] == "17"
    )
    assert json.loads(meta["s2kit.options"]) == {"rho": 0.25}
    assert json.loads(meta["s2kit.facts"]) == {"kept": 4, "decoder_passes": 3}
    assert meta["s2kit.executor"] == "s2" and json.loads(meta["s2kit.model"])["patch_size"] == 8
    assert sorted(p.name for p in graph.parent.iterdir()) == [
        "model.onnx"
    ]  # no temporary file left


def test_an_episode_on_onnxruntime_acts_as_on_torch(
    exported: tuple[Path, Path, dict],
) -> None:
    checkpoint, graph, _ = exported
    episode = invoke(
        "run", "--robot", "hsr", "--planner", "oracle", "--executor", "s2", "--episodes", "1",
        "--set", f"executor.checkpoint={checkpoint}", "--set", "executor.backend=onnxruntime",
        "--set", f"executor.onnx={graph}", "--set", "runtime.max_steps=20",
    )  # fmt: skip
    assert episode.exit_code == 0, episode.output
    registry = get_registry()
    robot = registry.create("robot", {"name": "hsr"})
    try:
        observation = robot.reset(seed=1)
        guidance = registry.create("planner", {"name": "oracle"}).plan(
            robot.instruction, observation
        )
        chunks = []
        for backend in ("torch", "onnxruntime"):
            executor = registry.create(
                "executor",
                {
                    "name": "s2",
                    "checkpoint": checkpoint,
                    "backend": backend,
                    "onnx": graph,
                },
            )
            executor.setup(robot.spec)
            executor.reset()
            chunks.append(executor.act(observation, guidance))
    finally:
        robot.close()
    on_torch, on_ort = chunks
    np.testing.assert_allclose(on_ort.actions, on_torch.actions, atol=1e-4)
    assert on_ort.info["done_probability"] == pytest.approx(
        on_torch.info["done_probability"], abs=1e-4
    )
    for role in ("head", "wrist"):
        assert np.array_equal(on_ort.info["keep"][role], on_torch.info["keep"][role])


def test_a_graph_runs_only_at_the_keep_count_it_was_exported_with(
    exported: tuple[Path, Path, dict],
) -> None:
    _, graph, _ = exported
    backend = export.OnnxBackend(graph, threads=1)
    inputs = export.random_inputs(backend.model, 1)[0]
    assert backend(inputs, {"rho": 0.26})["keep_index"].shape == (1, 2, 4)  # another rho, the same k: fine
    with pytest.raises(ConfigError, match=r"exported at rho 0.25 .* --set rho=0.5"):
        backend(inputs, {"rho": 0.5})


def test_a_missing_or_corrupt_graph_is_a_one_line_error(
    exported: tuple[Path, Path, dict], tmp_path: Path
) -> None:
    checkpoint, _, _ = exported
    with pytest.raises(
        CheckpointError, match="does not exist; write it with: s2kit export"
    ):
        export.OnnxBackend(tmp_path / "nothing.onnx", None)
    corrupt = tmp_path / "model.onnx"
    corrupt.write_bytes(b"\x08\x07not a protobuf")
    done = run_s2kit(
        "run", "--robot", "hsr", "--executor", "s2", "--set", f"executor.checkpoint={checkpoint}",
        "--set", "executor.backend=onnxruntime", "--set", f"executor.onnx={corrupt}",
        env={"MUJOCO_GL": "osmesa"},
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip() == done.stderr.strip().splitlines()[0]  # one line
    assert done.stderr.startswith(
        f"Error: ONNX graph {corrupt} is corrupt or unreadable"
    )


def test_unknown_format_or_option_is_an_error(
    exported: tuple[Path, Path, dict], tmp_path: Path
) -> None:
    checkpoint, _, _ = exported
    result = invoke(
        "export",
        str(checkpoint),
        "--out",
        str(tmp_path / "m.tflite"),
        "--format",
        "tflite",
    )
    assert (
        result.exit_code == 2
        and result.output.strip()
        == "Error: export s2: unknown format 'tflite' (known: onnx)"
    )
    result = invoke(
        "export",
        str(checkpoint),
        "--out",
        str(tmp_path / "m.onnx"),
        "--set",
        "rhoo=0.5",
    )
    assert (
        result.exit_code == 2
        and "unknown option 'rhoo' (allowed: opset, dynamic_batch, check, tolerance, robot, episodes, steps, expert, rho)" in result.output
    )
    assert list(tmp_path.iterdir()) == []


def test_a_graph_that_disagrees_with_torch_is_not_written(
    exported: tuple[Path, Path, dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkpoint, _, _ = exported
    run = export.OnnxBackend.__call__

    def off_by_a_little(self: export.OnnxBackend, *args: object) -> dict[str, np.ndarray]:
        out = run(self, *args)  # type: ignore[arg-type]
        return {**out, "actions": out["actions"] + 0.01}

    monkeypatch.setattr(export.OnnxBackend, "__call__", off_by_a_little)
    out = tmp_path / "model.onnx"
    out.write_bytes(b"the previous graph")
    result = invoke(
        "export",
        str(checkpoint),
        "--out",
        str(out),
        "--set",
        "episodes=1",
        "--set",
        "steps=0",
    )
    assert result.exit_code == 1
    assert (
        "does not match the torch network" in result.output
        and "max |actions difference| 1.00e-02" in result.output
    )
    assert out.read_bytes() == b"the previous graph" and list(tmp_path.iterdir()) == [
        out
    ]


@pytest.mark.parametrize(
    ("variant", "head", "model"),
    [
        ("baseline", "flow", {}),
        ("s2", "regression", {}),
        ("s2", "regression", {"focus_weight": 1.0, "focus_map": 1.0, "focus_input": True, "keep_prior": 10.0}),
        ("s2", "regression", {"focus_map": 1.0, "keep_prior": 10.0, "registers": 2}),
    ],
)
def test_every_head_and_the_baseline_export_with_a_dynamic_batch(
    variant: str, head: str, model: dict, tmp_path: Path
) -> None:
    checkpoint = make_checkpoint(tmp_path / "checkpoint", variant, head=head, **model)
    out = tmp_path / "model.onnx"
    report = export.export_onnx(
        checkpoint, out, dynamic_batch=True, episodes=1, steps=2
    )
    assert report["max_abs_actions"] <= 1e-4 and report["max_abs_done"] <= 1e-4 and report["batch"] == "dynamic"
    assert report.get("keep_index") == ("identical" if variant == "s2" else None)  # the baseline keeps every patch
    backend = export.OnnxBackend(out, None)
    assert ("noise" in backend.inputs) == (
        head == "flow"
    )  # a regression head has no noise to read
    inputs = export.random_inputs(backend.model, 3)
    batch = {k: np.concatenate([x[k] for x in inputs]) for k in inputs[0]}
    out = backend(batch, {"rho": 0.25})
    assert out["actions"].shape == (3, 4, 7) and out["done"].shape == (3,)
    assert out["keep_index"].shape == (3, 2, 4) if variant == "s2" else "keep_index" not in out
