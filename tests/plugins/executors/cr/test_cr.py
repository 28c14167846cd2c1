"""Executor ``cr``: the thoughts fit a small problem, verification and the regularizer do what they say, another
instance can read the codes, and the whole chain (train, export with parity, act, serve) carries the codes."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from openpi_client.websocket_client_policy import WebsocketClientPolicy

from s2kit.core.errors import ConfigError
from s2kit.core.registry import get_registry
from s2kit.core.types import Guidance
from s2kit.plugins.executors.cr.modeling import CODES, CrConfig, CrPolicy, gaussian_kl, mmd_to_normal
from s2kit.plugins.executors.cr.sharing import action_error, codes_of, sharing_errors
from tests.cli.test_serve import openpi_request, serve_process
from tests.conftest import run_s2kit
from tests.plugins.executors.cr.toy import SMALL, colour_batch
from tests.plugins.executors.s2.conftest import hsr_dataset, train_args  # noqa: F401 - a fixture used here

# openpi-client 0.1.2 calls websockets' connect() the pre-17 way; the warning is about its code, not ours.
pytestmark = [
    pytest.mark.usefixtures("one_torch_thread"),
    pytest.mark.filterwarnings("ignore:connect\\(\\) must be used as a context manager:DeprecationWarning"),
]


@functools.cache
def fit(seed: int, steps: int = 400, **config: object) -> tuple[CrPolicy, list[dict[str, float]]]:
    """A cr network trained on fresh toy batches; (the network in eval mode, the loss terms of every step)."""
    torch.manual_seed(seed)
    model = CrPolicy(CrConfig(**{**SMALL, **config}))
    trained = [p for name, p in model.named_parameters() if name not in set(model.unused_parameters())]
    optimizer = torch.optim.AdamW(trained, lr=2e-3)
    history = []
    model.train()
    for step in range(steps):
        terms = model.loss(colour_batch(64, seed=1000 * seed + step))
        optimizer.zero_grad()
        terms["loss"].backward()
        optimizer.step()
        history.append({k: float(v.detach()) for k, v in terms.items()})
    return model.eval(), history


def test_it_fits_a_small_problem_through_its_thoughts() -> None:
    """The decoder sees the image only through the codes: the fit needs them, and zeroing them loses the colour."""
    model, _ = fit(0)
    test = colour_batch(256, seed=1)
    assert action_error(model, test) < 0.05
    # the side comes from the guidance, which the decoder reads directly; the colour (half the variance) is gone
    assert action_error(model, test, zero_codes=True) > 0.3


def test_the_verification_loss_falls_and_the_teacher_only_follows_the_average() -> None:
    model, history = fit(0)
    first, last = (np.mean([h["verify"] for h in part]) for part in (history[:50], history[-50:]))
    assert last < 0.2 * first, f"verification loss {first:.3f} -> {last:.3f}"
    # the teacher takes no gradient: one optimizer step leaves it, one average step moves it towards the student
    teacher = {k: v.clone() for k, v in model.teacher.state_dict().items()}
    model.train()
    model.loss(colour_batch(8, seed=5))["loss"].backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    moved = {k: v.clone() for k, v in model.teacher.state_dict().items()}
    assert any(not torch.equal(teacher[k], moved[k]) for k in teacher)  # the loss's own average step
    student = dict(model.named_parameters())
    decay = model.config.ema_decay
    for name, value in model.teacher.named_parameters():
        expected = teacher[name] + (1 - decay) * (student[name].detach() - teacher[name])
        torch.testing.assert_close(value, expected)
    model.eval()


def test_the_codes_of_one_instance_help_another() -> None:
    """Instance B (another seed) decodes from A's codes, mapped linearly into its own code space on other observations
    (two instances' spaces agree only up to such a map: the prior is the same in every direction)."""
    errors = sharing_errors(fit(0)[0], fit(1)[0], colour_batch(256, seed=7), colour_batch(256, seed=8))
    assert errors["given"] < 0.2 * errors["none"] and errors["given"] < errors["own"] + 0.05, errors


def test_the_regularizers_measure_the_distance_to_the_prior() -> None:
    g = torch.Generator().manual_seed(0)
    prior, shifted = torch.randn(512, 8, generator=g), torch.randn(512, 8, generator=g) * 0.2 + 1.0
    assert abs(float(mmd_to_normal(prior, torch.Generator().manual_seed(1)))) < 0.01
    assert float(mmd_to_normal(shifted, torch.Generator().manual_seed(1))) > 0.1
    assert float(gaussian_kl(torch.zeros(4, 8), torch.zeros(4, 8))) == 0.0
    assert float(gaussian_kl(torch.ones(4, 8), torch.zeros(4, 8))) == pytest.approx(4.0)  # half of 8 squared unit means


def test_the_regularizer_spreads_the_codes_like_the_prior() -> None:
    """Without it the codes drift anywhere; with MMD their spread stays near the prior's."""
    with_mmd, _ = fit(0)
    without, _ = fit(0, regularizer="none")
    test = colour_batch(256, seed=1)
    spread = {name: float(codes_of(m, test).flatten(0, 1).std(0).mean()) for name, m in (("mmd", with_mmd), ("none", without))}
    assert 0.3 < spread["mmd"] < 1.5, spread
    assert abs(spread["mmd"] - 1.0) < abs(spread["none"] - 1.0), spread


def test_cr_generates_by_flow_matching_only() -> None:
    with pytest.raises(ValueError, match="flow matching"):
        CrConfig(head="regression")


def test_train_export_act_and_serve_carry_the_codes(hsr_dataset: Path, tmp_path: Path) -> None:  # noqa: F811
    """s2kit train --executor cr, s2kit export (parity on the robot), the executor on torch and onnxruntime, and a
    served chunk: every chunk carries its K codes."""
    run = tmp_path / "cr"
    done = run_s2kit(*train_args("cr", hsr_dataset, run, 4, "model.thoughts=3", "model.code_dim=5"))
    assert done.returncode == 0, done.stderr
    graph = tmp_path / "cr.onnx"
    exported = run_s2kit("export", str(run), "--out", str(graph), "--set", "episodes=1", "--set", "steps=3", "--json", env={"MUJOCO_GL": "osmesa"})
    assert exported.returncode == 0, exported.stderr
    report = json.loads(exported.stdout)
    assert report["zero_codes"] is False and "robot 'hsr'" in report["check"] and report["max_abs_codes"] < 1e-3, report
    robot = get_registry().create("robot", {"name": "hsr"})
    try:
        observation = robot.reset(seed=5)
        guidance = Guidance(goal=robot.instruction, trajectory="move the red cube", subtasks=["pick up the red cube", "put it in the bowl"])
        chunks = {}
        for backend in ("torch", "onnxruntime"):
            executor = get_registry().create("executor", {"name": "cr", "checkpoint": str(run), "backend": backend, "onnx": str(graph)})
            executor.setup(robot.spec)
            chunks[backend] = executor.act(observation, guidance)
        assert chunks["torch"].info[CODES].shape == (3, 5) and chunks["torch"].info[CODES].dtype == np.float32
        np.testing.assert_allclose(chunks["onnxruntime"].info[CODES], chunks["torch"].info[CODES], atol=1e-4)
        zeroed = get_registry().create("executor", {"name": "cr", "checkpoint": str(run), "zero_codes": True})
        zeroed.setup(robot.spec)
        assert not zeroed.act(observation, guidance).info[CODES].any()
        # a graph exported with the thoughts refuses to run as the zeroed ablation, with what to do instead
        ablation = get_registry().create("executor", {"name": "cr", "checkpoint": str(run), "backend": "onnxruntime", "onnx": str(graph), "zero_codes": True})
        ablation.setup(robot.spec)
        with pytest.raises(ConfigError, match="zero_codes"):
            ablation.act(observation, guidance)
    finally:
        robot.close()
    with pytest.raises(ConfigError, match="needs a checkpoint"):
        get_registry().create("executor", {"name": "cr"})
    with serve_process(str(run)) as (port, _):  # openpi's own client gets the codes beside the actions, s2kit's in the chunk
        client = WebsocketClientPolicy(host="127.0.0.1", port=port)
        reply = client.infer(openpi_request(len(client.get_server_metadata()["state_names"])))
        assert reply["actions"].shape[1] == 7 and reply[CODES].shape == (3, 5) and np.isfinite(reply[CODES]).all()
        robot = get_registry().create("robot", {"name": "hsr"})
        remote = get_registry().create("executor", {"name": "remote", "port": port})
        try:
            remote.setup(robot.spec)
            chunk = remote.act(robot.reset(seed=5), Guidance(goal=robot.instruction))
            assert chunk.info[CODES].shape == (3, 5) and chunk.info[CODES].dtype == np.float32
        finally:
            remote.close()
            robot.close()
