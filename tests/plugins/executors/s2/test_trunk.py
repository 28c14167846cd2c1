"""S2 on the pretrained trunk (``model.stem=efficientnet``): its patch grid, frozen training, checkpoint and ONNX."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from s2kit.learning.checkpoints import load_policy, read_info, save_checkpoint
from s2kit.learning.export import export_onnx
from s2kit.plugins.executors.s2.configuration import ModelConfig
from s2kit.plugins.executors.s2.modeling import S2Policy
from tests.learning.test_export import TINY, make_checkpoint
from tests.plugins.executors.s2.toy import toy_batch

TRUNK = {"stem": "efficientnet", "trunk_blocks": 5}  # stride 8: TINY's 32 px give 4x4 patches, 2x2 stride-4 cells each


def test_the_trunk_sets_the_patch_grid_and_refuses_a_patch_size_it_cannot_give() -> None:
    assert ModelConfig(stem="efficientnet", trunk_blocks=5, image_size=96).grid == 12
    assert ModelConfig(stem="efficientnet", image_size=128).grid == 8  # 11 blocks: stride 16
    with pytest.raises(ValueError, match="patch_size 12: the efficientnet stem's stride after 11 blocks is 16"):
        ModelConfig(stem="efficientnet", patch_size=12)
    with pytest.raises(ValueError, match="trunk_blocks"):
        ModelConfig(stem="efficientnet", trunk_blocks=2)  # no stride-4 map yet
    with pytest.raises(ValueError, match="patch_size 12: the efficientnet stem's stride"):
        S2Policy(ModelConfig().model_copy(update={"stem": "efficientnet"}))  # a copy is not validated again


def train_step(model: S2Policy, batch: dict[str, torch.Tensor]) -> None:
    """One step as the kit's trainer takes it: the unused parameters frozen, AdamW."""
    unused = set(model.unused_parameters())
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name not in unused)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.loss(batch)["loss"].backward()
    optimizer.step()


@pytest.mark.parametrize("frozen", [True, False])
def test_a_frozen_trunk_keeps_its_imagenet_weights_through_training(frozen: bool) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    config = ModelConfig.variant("s2", **{**TINY, **TRUNK, "state_dim": 1, "action_dim": 2, "text_dim": 16, "trunk_frozen": frozen})
    model = S2Policy(config.model_copy(update={"focus_weight": 1.0, "focus_map": 1.0}))  # every reader of the cells
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train_step(model, toy_batch(4, cameras=len(config.cameras), chunk=4))
    changed = {k for k, v in model.state_dict().items() if not torch.equal(before[k], v)}
    trunk = {k for k in before if k.startswith("stem.")}
    assert "stem_proj.weight" in changed
    assert (changed & trunk == set()) if frozen else any(k.endswith("running_var") for k in changed & trunk)


def test_s2_on_the_trunk_trains_saves_loads_and_exports_with_parity(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    fresh = make_checkpoint(tmp_path / "fresh", **TRUNK, trunk_frozen=False)  # training moves the trunk's weights too
    info = read_info(fresh)
    model, _, _ = load_policy(fresh)
    batch = toy_batch(2, cameras=len(info.model.cameras), chunk=info.model.chunk, text_dim=info.model.text_dim)
    batch["state"] = torch.randn(2, info.model.state_dim)
    batch["actions"] = torch.randn(2, info.model.chunk, info.model.action_dim)
    del batch["focus"], batch["focus_uv"]
    train_step(model, batch)
    trained = save_checkpoint(tmp_path / "trained", model.eval(), info)
    loaded, _, _ = load_policy(trained)
    noise = torch.randn(2, info.model.chunk, info.model.action_dim)
    assert not torch.equal(loaded.stem._bn0.running_mean, S2Policy(info.model).stem._bn0.running_mean)
    with torch.inference_mode():  # the trained weights come back, not the packaged ones
        torch.testing.assert_close(loaded.sample(batch, noise=noise)["actions"], model.sample(batch, noise=noise)["actions"])
    report = export_onnx(trained, tmp_path / "model.onnx")
    assert report["max_abs_actions"] <= 1e-4 and report["max_abs_done"] <= 1e-4 and report["keep_index"] == "identical"
