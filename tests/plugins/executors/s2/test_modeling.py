"""The S2 network: shapes, the evidence budget, and that it learns a small problem."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch

from s2kit.plugins.executors.s2.configuration import VARIANTS, ModelConfig
from s2kit.plugins.executors.s2.modeling import (
    ACTIONS,
    FOCUS,
    FOCUS_UV,
    S2Policy,
    _patch_cells,
    focus_map_pixels,
    rho_schedule,
)
from tests.plugins.executors.s2.toy import toy_batch

SMALL = {"cameras": ["head"], "image_size": 32, "patch_size": 8, "state_dim": 1, "action_dim": 2, "chunk": 4, "text_dim": 16,
         "dim": 64, "heads": 4, "encoder_layers": 2, "decoder_layers": 1}  # fmt: skip


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("head", ["flow", "regression"])
def test_every_variant_and_head_gives_a_chunk(variant: str, head: str) -> None:
    config = ModelConfig.variant(variant, head=head, focus_map=1.0, focus_weight=1.0, **SMALL)
    model = S2Policy(config).eval()
    batch = toy_batch(3)
    with torch.inference_mode():
        extras = model.sample(batch)
    actions, done = extras["actions"], extras["done"]
    assert actions.shape == (3, 4, 2) and done.shape == (3,) and torch.isfinite(actions).all()
    if config.budget:
        assert extras["keep_index"].shape == (3, 1, config.kept())  # exactly k patches per camera
    model.train()
    losses = model.loss(batch)
    assert set(losses) >= {"action", "loss", "done", "focus", "focus_map"} and torch.isfinite(losses["loss"])


def test_rho_is_a_run_time_knob_and_selection_is_top_k() -> None:
    model = S2Policy(ModelConfig.variant("s2", focus_map=1.0, focus_weight=1.0, **SMALL)).eval()
    batch = toy_batch(2)
    with torch.inference_mode():
        for rho, k in ((1.0, 16), (0.5, 8), (0.25, 4), (0.1, 2)):
            memory, _, extras = model.encode(batch, rho)
            assert memory.shape[1] == 3 + 1 + k + 1 + 1  # guidance, state, k patches, the keypoint and focus-map tokens
            top = extras["keep_logits"].topk(k, dim=-1).indices.sort(dim=-1).values
            assert torch.equal(extras["keep_index"], top)


def test_the_baseline_reads_the_goal_only() -> None:
    model = S2Policy(ModelConfig.variant("baseline", **SMALL)).eval()
    batch = toy_batch(4)
    changed = {**batch, "text": batch["text"].clone()}
    changed["text"][:, 1:] = torch.randn_like(changed["text"][:, 1:])  # other trajectory and subtask texts
    noise = torch.randn(4, 4, 2)
    with torch.inference_mode():
        assert torch.equal(model.sample(batch, noise=noise)["actions"], model.sample(changed, noise=noise)["actions"])


def test_rho_anneals_from_one_to_the_budget() -> None:
    assert rho_schedule(0, 100, 0.25, 0.5) == 1.0
    assert rho_schedule(25, 100, 0.25, 0.5) == pytest.approx(0.625)
    assert rho_schedule(80, 100, 0.25, 0.5) == 0.25
    # what the kit's trainer asks the policy for at each step
    assert S2Policy(ModelConfig(rho=0.25, budget_warmup=0.5, **SMALL)).schedule(25, 100) == {"rho": pytest.approx(0.625)}


@functools.cache
def fit_toy(head: str, steps: int, term: str, **config: object) -> tuple[dict, dict]:
    """Train on fresh toy batches (every patch) minimizing one loss term; (a test batch, the model's sample of it).

    Cached: tests that read different heads of one fit share it. One thread: a small network gains nothing
    from more, and on a busy 2-core machine the default threads made a fit 6x slower (152 s against 25 s).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        model = S2Policy(ModelConfig(budget=False, head=head, **{**SMALL, **config}))
        optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
        for step in range(steps):
            model.train()
            loss = model.loss(toy_batch(64, seed=100 + step))[term]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        test = toy_batch(256, seed=1)
        model.eval()
        with torch.inference_mode():
            return test, model.sample(test)
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize(("head", "steps"), [("regression", 900), ("flow", 1500)])
def test_it_learns_to_reach_the_square_the_guidance_names(head: str, steps: int) -> None:
    """Fresh samples every step: the rule (image + guidance -> target position) must be learned, not memorized.

    Every patch. The flow head is scored on chunks sampled from noise (10 Euler steps).
    Both heads show a phase change once the target is found (regression around
    step 700, flow around 900, flow time drawn from pi0's Beta(1.5, 1)); with
    uniform flow time the flow head took over 2000 steps. With the budget at rho
    0.25 (annealed from 1 over half the steps) the problem takes about 3000 steps,
    too slow for a unit test (docs/executors.md).
    """
    # the flow head with the auxiliary focus loss: without it, it stays at 0.9-1.1 of the variance through 3000 steps
    # (the regression head needs none); docs/executors.md, "Heads"
    test, out = fit_toy(head, steps, "loss", **({"focus_weight": 1.0} if head == "flow" else {}))
    actions = out["actions"]
    error = ((actions - test[ACTIONS]) ** 2).mean() / test[ACTIONS].var()
    assert error < 0.1, f"mean squared error is {error:.2f} of the variance"


def test_both_stems_give_the_patch_grid() -> None:
    for stem in ("patch", "conv"):
        model = S2Policy(ModelConfig(stem=stem, **SMALL)).eval()
        with torch.inference_mode():
            memory, _, extras = model.encode(toy_batch(2), 1.0)
        assert extras["keep_logits"].shape == (2, 1, 16)  # 32 px / 8 px patches: 4x4 per camera
        assert torch.isfinite(memory).all()


@pytest.mark.parametrize(("patch_size", "stem"), [(8, "patch"), (16, "patch"), (8, "conv")])
def test_the_per_patch_layers_are_their_convolutions_run_on_each_patch_alone(patch_size: int, stem: str) -> None:
    """The stems' per-patch layers (the patch stem's first and last, the conv stem's last) and the focus map's 1x1, 3x3, 1x1
    layers run as matrix products on each patch's cells; they must give what the convolutions give on each patch cut out as
    its own image (zero-padded at its edges), and nothing else."""
    torch.manual_seed(0)
    config = ModelConfig(focus_map=1.0, focus_weight=1.0, stem=stem, **{**SMALL, "cameras": ["head", "wrist"], "patch_size": patch_size})
    model = S2Policy(config).eval()
    for p in model.parameters():  # away from zero-initialized biases, so every term shows
        p.data.add_(0.05 * torch.randn_like(p))
    N, G, side = 2, config.grid, patch_size // 4
    images = torch.randint(0, 256, (N, 3, config.image_size, config.image_size), dtype=torch.uint8)
    guidance, state = torch.randn(1, config.dim), torch.randn(1, config.dim)
    with torch.inference_mode():
        fine = model.stem[:-1](images.float() / 255 - 0.5)  # (N, F, H, W)
        cells, patches = model.patch_features(images)
        assert torch.allclose(cells, _patch_cells(fine.permute(0, 2, 3, 1), G), atol=1e-6)
        assert torch.allclose(patches, model.stem[-1](fine).flatten(2).transpose(1, 2), atol=1e-5)

        gain, shift = model.map_film(torch.cat([guidance, state], dim=-1)).view(N, -1).chunk(2, -1)
        x = torch.nn.functional.gelu(fine * (1 + gain[:, :, None, None]) + shift[:, :, None, None])
        F_ = x.shape[1]
        alone = x.view(N, F_, G, side, G, side).permute(0, 2, 4, 1, 3, 5).reshape(N * G * G, F_, side, side)
        expected = model.map_logits(alone).view(N, G, G, side, side).permute(0, 1, 3, 2, 4).reshape(1, N, G * side, G * side)
        maps = model.focus_map(cells, guidance, state, 1)
    assert maps.shape == expected.shape and torch.allclose(maps, expected, atol=1e-5)


def test_inference_reads_the_weights_as_they_are_now() -> None:
    """Inference keeps what it derives from the weights alone (rearranged kernels, the regression decoder's constant
    queries) between calls; an optimizer step or a checkpoint load must still be seen by the next chunk."""
    torch.manual_seed(0)
    config = ModelConfig(head="regression", focus_map=1.0, focus_weight=1.0, **SMALL)
    model, batch = S2Policy(config), toy_batch(4)
    saved = {k: v.clone() for k, v in model.state_dict().items()}

    def chunk(net: S2Policy) -> torch.Tensor:
        net.eval()
        with torch.inference_mode():
            return net.sample(batch, rho=0.5)["actions"]

    before = chunk(model)
    model.train()
    model.loss(batch)["loss"].backward()
    torch.optim.SGD(model.parameters(), lr=0.5).step()
    after = chunk(model)
    fresh = S2Policy(config)
    fresh.load_state_dict(model.state_dict())
    assert not torch.allclose(before, after, atol=1e-4)
    assert torch.allclose(after, chunk(fresh), atol=1e-6)
    model.load_state_dict(saved)
    assert torch.allclose(chunk(model), before, atol=1e-6)
    with torch.inference_mode():  # a network made under inference mode: its weights keep no version, nothing is kept
        made = S2Policy(config).eval()
        made.load_state_dict(saved)
        assert torch.allclose(made.sample(batch, rho=0.5)["actions"], before, atol=1e-6)


def test_the_focus_loss_shapes_the_patches_but_never_the_keep_scorer() -> None:
    """The auxiliary target is privileged: it may teach the stem where things are, not which patches to keep."""
    torch.manual_seed(0)
    model = S2Policy(ModelConfig(focus_weight=1.0, **SMALL)).train()
    batch = toy_batch(8)
    model.loss(batch)["focus"].backward()
    assert all(p.grad is None or not p.grad.any() for p in model.scorer.parameters())
    assert model.stem[0].weight.grad.abs().sum() > 0
    # rows whose target is unknown (a real robot's frames: NaN) carry no loss, and no NaN leaks
    model.zero_grad()
    unknown = {**batch, FOCUS: torch.full_like(batch[FOCUS], float("nan"))}
    losses = model.loss(unknown)
    assert losses["focus"] == 0 and torch.isfinite(losses["loss"])
    losses["loss"].backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    half = {**batch, FOCUS: batch[FOCUS].clone()}
    half[FOCUS][4:] = float("nan")
    known = {k: v[:4] for k, v in batch.items()}
    torch.manual_seed(1)
    a = model.loss(half)["focus"]
    torch.manual_seed(1)
    assert torch.allclose(a, model.loss(known)["focus"], atol=1e-6)
    # no focus head without its loss (the default), and sampling never needs the target
    bare = S2Policy(ModelConfig(**SMALL))
    assert not hasattr(bare, "focus_head") and "focus" not in bare.loss(batch)


def test_the_focus_head_learns_where_the_named_square_is() -> None:
    test, extras = fit_toy("regression", 900, "loss", focus_weight=1.0)  # the focus head learns beside the action, as in training
    error = ((extras["focus"][:, :2] - test[FOCUS][:, :2]) ** 2).mean() / test[FOCUS][:, :2].var()
    assert error < 0.1, f"mean squared error is {error:.2f} of the variance"


def test_the_focus_map_finds_the_named_square_and_never_trains_the_keep_scorer() -> None:
    """Its target is privileged too: it may teach the stem what the guidance names, not which patches to keep."""
    torch.manual_seed(0)
    model = S2Policy(ModelConfig(focus_map=1.0, focus_weight=1.0, **SMALL)).train()
    batch = toy_batch(8)
    model.loss(batch)["focus_map"].backward()
    assert all(p.grad is None or not p.grad.any() for p in model.scorer.parameters())
    assert model.stem[0].weight.grad.abs().sum() > 0
    unknown = {**batch, FOCUS_UV: torch.full_like(batch[FOCUS_UV], float("nan"))}
    assert model.loss(unknown)["focus_map"] == 0
    bare = S2Policy(ModelConfig(**SMALL))  # off by default
    assert not hasattr(bare, "map_logits") and "focus_map" not in bare.loss(batch)
    # learned: the red or the green square, as the subtask says, to within half a 4 px cell (32 px images;
    # a uniform map is typically 9 px from it, the other square further)
    test, extras = fit_toy("regression", 400, "loss", focus_map=1.0, focus_weight=1.0, focus_input=True)  # the fit below, trained on every term
    distance = focus_map_pixels(extras["focus_map"], test[FOCUS_UV], 32)
    assert distance.median() < 2.5, f"median {distance.median():.2f} px from the named square"


def test_the_focus_estimate_is_an_input_that_the_action_loss_never_trains() -> None:
    """model.focus_input: the focus head reads the map's tokens and the state, runs at inference, and its estimate is an input."""
    with pytest.raises(ValueError, match="focus_map"):
        ModelConfig(focus_input=True, **SMALL)
    with pytest.raises(ValueError, match="focus_weight"):
        ModelConfig(focus_map=1.0, focus_input=True, **SMALL)
    torch.manual_seed(0)
    model = S2Policy(ModelConfig.variant("s2", focus_map=1.0, focus_weight=1.0, focus_input=True, **SMALL)).train()
    batch = toy_batch(8)
    model.loss(batch)["action"].backward()
    assert all(p.grad is None or not p.grad.any() for p in model.lift.parameters())  # the estimate is detached
    assert model.focus_in.weight.grad.abs().sum() > 0  # and the action reads it
    live = {k: v for k, v in batch.items() if k not in (FOCUS, FOCUS_UV)}  # a robot's observation: nothing privileged
    with torch.inference_mode():
        assert model.eval().sample(live)["focus"].shape == (8, 3)
    # learned: where the named square is, from the map's position alone
    test, extras = fit_toy("regression", 400, "loss", focus_map=1.0, focus_weight=1.0, focus_input=True)
    actions = extras["actions"]
    error = ((extras["focus"][:, :2] - test[FOCUS][:, :2]) ** 2).mean() / test[FOCUS][:, :2].var()
    assert error < 0.1, f"focus mean squared error is {error:.2f} of the variance"
    error = ((actions - test[ACTIONS]) ** 2).mean() / test[ACTIONS].var()
    assert error < 0.1, f"action mean squared error is {error:.2f} of the variance"


class FixedRanking(torch.nn.Module):
    """A keep-scorer that prefers the same patches whatever the image: patch p scores -p."""

    def forward(self, patches: torch.Tensor, guidance: torch.Tensor) -> torch.Tensor:
        return -torch.arange(patches.shape[2], dtype=patches.dtype).expand(*patches.shape[:3])


@pytest.mark.parametrize("grid", ["patch", "fine"])
def test_pixels_outside_the_kept_patches_change_nothing(grid: str) -> None:
    """The budget is real: the encoder, the keypoints (fine cells included), the focus-map token and the focus estimate
    made from it read kept patches only."""
    torch.manual_seed(0)
    model = S2Policy(ModelConfig(keypoint_grid=grid, focus_map=1.0, focus_weight=1.0, focus_input=True, **SMALL)).eval()
    model.scorer = FixedRanking()  # keeps patches 0-3 (the top row of the 4x4 grid) at rho 0.25
    batch = toy_batch(2)

    def flipped(rows: slice) -> dict:
        images = batch["images"].clone()
        images[:, :, :, rows] = 255 - images[:, :, :, rows]
        return {**batch, "images": images}

    with torch.inference_mode():
        memory, _, extras = model.encode(batch, 0.25)
        assert extras["keep_index"][0, 0].tolist() == [0, 1, 2, 3]
        assert torch.equal(model.encode(flipped(slice(8, 32)), 0.25)[0], memory)  # every other row of patches
        assert not torch.allclose(model.encode(flipped(slice(0, 8)), 0.25)[0], memory)  # the kept row


def test_the_keep_prior_keeps_the_patches_the_focus_map_points_at() -> None:
    torch.manual_seed(0)
    batch = toy_batch(2)
    peak = torch.full((2, 1, 8, 8), -30.0)  # 32 px images: 8x8 stride-4 cells, 2x2 per 8 px patch
    peak[..., 2:4, 2:4] = 0.0  # all the mass in patch 5 (row 1, column 1 of the 4x4 grid)
    kept = {}
    for prior in (0.0, 10.0):
        model = S2Policy(ModelConfig(focus_map=1.0, focus_weight=1.0, keep_prior=prior, **SMALL)).eval()
        model.scorer = FixedRanking()  # on its own it keeps patches 0-3
        model.focus_map = lambda *args: peak  # type: ignore[method-assign]
        with torch.inference_mode():
            kept[prior] = model.encode(batch, 0.25)[2]["keep_index"][0, 0].tolist()
    assert kept == {0.0: [0, 1, 2, 3], 10.0: [0, 1, 2, 5]}


def test_registers_are_learned_tokens_outside_the_budget() -> None:
    """Registers add tokens to the encoder, not patches: the budget still keeps k patches per camera and reads nothing
    else of the image, and the action loss trains the registers."""
    torch.manual_seed(0)
    model = S2Policy(ModelConfig(focus_map=1.0, focus_weight=1.0, registers=3, **SMALL))
    batch = toy_batch(2)
    model.loss(batch)["action"].backward()
    assert model.register_tokens.grad is not None and model.register_tokens.grad.abs().sum() > 0
    model.eval()
    model.scorer = FixedRanking()  # keeps patches 0-3 (the top row of the 4x4 grid) at rho 0.25
    images = batch["images"].clone()
    images[:, :, :, 8:] = 255 - images[:, :, :, 8:]  # every row of patches but the kept one
    with torch.inference_mode():
        memory, bias, extras = model.encode(batch, 0.25)
        assert memory.shape[1] == 3 + 1 + 4 + 1 + 1 + 3 and bias is not None and bias.shape[1] == memory.shape[1]
        assert extras["keep_index"].shape == (2, 1, 4)
        assert torch.equal(model.encode({**batch, "images": images}, 0.25)[0], memory)


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("head", ["flow", "regression"])
@pytest.mark.parametrize("focus_input", [False, True])
def test_the_parameters_named_unused_are_exactly_those_the_loss_leaves_without_a_gradient(variant: str, head: str, focus_input: bool) -> None:
    """Training freezes them, so torchrun's DistributedDataParallel does not wait for their gradients (it did, and failed)."""
    torch.manual_seed(0)
    config = ModelConfig.variant(variant, head=head, focus_map=1.0, focus_weight=1.0, focus_input=focus_input, **SMALL)
    model = S2Policy(config).train()
    model.loss(toy_batch(3), 0.5)["loss"].backward()
    without = {name for name, p in model.named_parameters() if p.grad is None}
    assert without == set(model.unused_parameters())


def test_the_diffusion_head_trains_samples_from_its_noise_and_exports(tmp_path: Path) -> None:
    """One training step reaches every parameter the diffusion head reads; sampling is a function of the noise (the
    executor's replay, the exported graph's input), in ``ddim_steps`` decoder passes, and its ONNX graph matches torch."""
    from s2kit.learning import export
    from tests.learning.test_export import make_checkpoint

    torch.manual_seed(0)
    config = ModelConfig.variant("s2", head="diffusion", ddim_steps=4, **SMALL)
    assert config.decoder_passes == 4 and config.graph_facts()["decoder_passes"] == 4
    model = S2Policy(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss = model.loss(toy_batch(3), 0.5)["loss"]
    loss.backward()
    assert torch.isfinite(loss) and {n for n, p in model.named_parameters() if p.grad is None} == set(model.unused_parameters())
    assert not any(n.startswith(("action_in.", "time_mlp.")) for n in model.unused_parameters())  # the flow head's layers, reused
    optimizer.step()
    model.eval()
    passes = 0

    def count(*_: object) -> None:
        nonlocal passes
        passes += 1

    batch, noise = toy_batch(2), torch.randn(2, 4, 2, generator=torch.Generator().manual_seed(0))
    handle = model.action_out.register_forward_hook(count)
    with torch.inference_mode():
        first = model.sample(batch, noise=noise)["actions"]
        again = model.sample(batch, noise=noise.clone())["actions"]
        other = model.sample(batch, noise=torch.randn(2, 4, 2))["actions"]
    handle.remove()
    assert passes == 3 * 4 and torch.equal(first, again) and not torch.allclose(first, other)
    checkpoint = make_checkpoint(tmp_path / "checkpoint", head="diffusion", ddim_steps=4)
    report = export.export_onnx(checkpoint, tmp_path / "model.onnx", episodes=1, steps=2)
    assert report["decoder_passes"] == 4 and report["max_abs_actions"] <= 1e-4 and "noise" in export.OnnxBackend(tmp_path / "model.onnx", None).inputs


def test_diffusion_sample_steps_beyond_its_training_levels_are_a_config_error() -> None:
    with pytest.raises(ValueError, match="ddim_steps 200 must not exceed model.diffusion_steps 100"):
        ModelConfig(head="diffusion", ddim_steps=200)
    assert ModelConfig(head="flow", ddim_steps=200).decoder_passes == 10  # a flow model never reads it
