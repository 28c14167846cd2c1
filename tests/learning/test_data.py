"""Batches from LeRobot datasets: frames, chunks, texts, done labels, a policy's extra columns, clear data errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from s2kit.core.errors import DataError
from s2kit.datasets.lerobot import LeRobotDatasetReader
from s2kit.learning.batch import ACTION_MASK, ACTIONS, DONE, IMAGES, TEXT
from s2kit.learning.data import Normalizer, StateEncoder, guidance_embeddings, load_frames
from tests.datasets.test_lerobot import make_episode, write
from tests.learning.tiny import MARK, StateColumns


def frames(root: Path, **kw):
    return load_frames([root], cameras=["head", "wrist"], image_size=kw.pop("image_size", 16), state=None, done_window=2, **kw)


def test_frames_chunks_texts_and_a_policys_extra_columns(tiny_dataset: Path) -> None:
    data = frames(tiny_dataset, columns=[StateColumns()])
    reader = LeRobotDatasetReader(tiny_dataset)
    first = reader.episode(0)
    length = len(first["action"])
    assert len(data) == reader.num_frames and data.num_episodes == reader.num_episodes
    assert data.strings[data.text[0, 0]] == first["task"][0] and data.strings[data.text[0, 2]] == first["annotation.subtask"][0]
    norm = Normalizer.fit(data.state.numpy(), data.actions.numpy())
    batch = data.batch(torch.tensor([length - 2]), chunk=4, embeddings=torch.eye(len(data.strings)), norm=norm)
    assert batch[ACTION_MASK].tolist() == [[True, True, False, False]]  # the episode ends after two more actions
    np.testing.assert_allclose(batch[ACTIONS][0, :2].numpy(), norm.action(np.asarray(first["action"][-2:])), atol=1e-5)
    assert batch[IMAGES].shape == (1, 2, 3, 16, 16) and batch[TEXT].shape == (1, 3, len(data.strings))
    assert batch[MARK].tolist() == [[pytest.approx(float(first["observation.state"][-2][0]))]]  # the extra column, by frame


def test_stale_guidance_after_a_subtask_ends_is_labelled_done_and_the_policy_hears_of_it(tiny_dataset: Path) -> None:
    data = frames(tiny_dataset, columns=[StateColumns()])
    boundary = 5 + 4  # the second episode (from frame 5) starts its second subtask at its frame 4
    assert (data.stale[5:boundary] == -1).all() and (data.stale[boundary : boundary + 2] == data.text[boundary - 1, 2]).all()
    norm = Normalizer.fit(data.state.numpy(), data.actions.numpy())
    batch = data.batch(torch.tensor([boundary, boundary]), chunk=3, embeddings=torch.eye(len(data.strings)), norm=norm,
                       stale=torch.tensor([False, True]))  # fmt: skip
    assert batch[DONE].tolist() == [0.0, 1.0] and batch[ACTION_MASK][1].sum() == 0
    assert batch[MARK][0].isfinite().all() and batch[MARK][1].isnan().all()  # the extra column's own stale rule
    assert torch.equal(batch[TEXT][1, 2], torch.eye(len(data.strings))[data.text[boundary - 1, 2]])


def test_a_split_keeps_its_episodes_and_copies_no_images(tiny_dataset: Path) -> None:
    data = frames(tiny_dataset, columns=[StateColumns()])
    part = data.subset(torch.tensor([2]))
    assert part.images is data.images and part.num_episodes == 1 and len(part) == 20
    assert torch.equal(part.frames(torch.arange(20)), data.frames(torch.arange(17, 37)))
    assert (part.end == 20).all() and torch.equal(part.extras[MARK], data.extras[MARK][17:])


def test_several_datasets_batch_from_each(tiny_dataset: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    write(other, [make_episode(7, 6)])
    both = load_frames([tiny_dataset, other], cameras=["head", "wrist"], image_size=16, state=None, done_window=2)
    alone = frames(other)
    assert len(both) == 37 + 6 and both.num_episodes == 4
    index = torch.tensor([40, 0, 37])
    expected = torch.cat([alone.frames(torch.tensor([3])), frames(tiny_dataset).frames(torch.tensor([0])), alone.frames(torch.tensor([0]))])
    assert torch.equal(both.frames(index), expected)


def test_datasets_that_do_not_match_are_refused_by_name(tiny_dataset: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    write(other, [make_episode(0, 6)])
    info = json.loads((other / "meta" / "info.json").read_text())
    info["features"]["action"]["names"] = [f"a{i}" for i in range(7)]
    (other / "meta" / "info.json").write_text(json.dumps(info))
    with pytest.raises(DataError, match="has actions .* one action space per run"):
        load_frames([tiny_dataset, other], cameras=["head", "wrist"], image_size=16, state=None, done_window=2)
    with pytest.raises(DataError, match="no 'observation.images.hand'"):
        load_frames([tiny_dataset], cameras=["head", "hand"], image_size=16, state=None, done_window=2)
    # 32 px images scaled up: loads
    assert frames(tiny_dataset, image_size=48).frames(torch.tensor([0])).shape[-2:] == (48, 48)


@pytest.mark.parametrize("broken", ["data", "video"])
def test_a_corrupt_dataset_is_one_clear_error(tiny_dataset: Path, broken: str) -> None:
    path = next((tiny_dataset / ("data" if broken == "data" else "videos")).rglob("*.parquet" if broken == "data" else "*.mp4"))
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataError, match=path.name):
        frames(tiny_dataset)


def test_a_dataset_whose_frames_disagree_with_its_episodes_is_one_clear_error(tiny_dataset: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Frames that do not add up to the episodes' lengths (a dataset changed while it was read) are refused, not misaligned."""
    from s2kit.learning import data as data_module

    decoder = data_module.frame_decoder
    monkeypatch.setattr(data_module, "frame_decoder", lambda *a: (lambda: (f[:-1] for f in decoder(*a)())))
    with pytest.raises(DataError, match="changed while it was read"):
        frames(tiny_dataset, cache="off")


def test_guidance_embeddings_are_kept_beside_the_frames(tiny_dataset: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    strings = ["pick up the cube", "place it on the plate"]
    first = guidance_embeddings(strings, [tiny_dataset])
    assert first.shape == (2, 384) and torch.allclose(first.norm(dim=1), torch.ones(2), atol=1e-5)
    monkeypatch.setattr("s2kit.learning.text.sentence_encoder", lambda: pytest.fail("encoded again"))
    assert torch.equal(guidance_embeddings(strings, [tiny_dataset]), first)


def test_the_hand_angles_wrap_without_a_jump() -> None:
    encoder = StateEncoder(["j", "ee_roll", "gripper"], ["ee_roll", "gripper"])
    a, b = encoder(np.array([0.3, np.pi - 1e-6, 1.0])), encoder(np.array([0.3, -np.pi + 1e-6, 1.0]))
    assert encoder.dim == 3 and np.abs(a - b).max() < 1e-5
    with pytest.raises(DataError, match="no entries"):
        StateEncoder(["j"], ["ee_x"])


def test_dimensions_that_barely_move_are_not_blown_up_into_noise() -> None:
    rng = np.random.default_rng(0)
    state = np.stack([rng.normal(0.4, 1e-4, 500), rng.normal(0.0, 0.3, 500)], axis=1)  # IK jitter; a real signal
    actions = np.stack([rng.normal(0, 3e-4, 500), rng.normal(0, 0.02, 500)], axis=1)
    norm = Normalizer.fit(state, actions)
    assert np.abs(norm.state(state)[:, 0]).max() < 0.1 and norm.state(state)[:, 1].std() == pytest.approx(1.0, rel=1e-3)
    assert np.abs(norm.action(actions)[:, 0]).max() < 1.5 and norm.action(actions)[:, 1].std() == pytest.approx(1.0, rel=1e-3)
    restored = Normalizer.from_dict(norm.to_dict())
    np.testing.assert_allclose(restored.unaction(norm.action(actions)), actions, atol=1e-6)
