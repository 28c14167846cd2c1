"""S2's training data: frames, chunks, guidance texts and subtask-done labels from LeRobot datasets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from s2kit.datasets.lerobot import LeRobotDatasetReader
from s2kit.core.errors import DataError
from s2kit.learning.data import (
    EE_STATE,
    Normalizer,
    StateEncoder,
    load_frames,
)
from s2kit.plugins.executors.s2.modeling import (
    ACTION_MASK,
    ACTIONS,
    DONE,
    FOCUS,
    FOCUS_UV,
    IMAGES,
    STATE,
    TEXT,
)


def frames_of(root: Path, **kw):
    return load_frames([root], cameras=["head", "wrist"], image_size=kw.pop("image_size", 96), state=EE_STATE, done_window=3, **kw)


def test_every_frame_is_loaded_with_its_episode_guidance_and_chunk(hsr_dataset: Path) -> None:
    data = frames_of(hsr_dataset)
    reader = LeRobotDatasetReader(hsr_dataset)
    assert len(data) == reader.num_frames and data.num_episodes == reader.num_episodes
    assert data.images.shape == (len(data), 2, 3, 96, 96) and data.images.dtype == torch.uint8
    assert data.state.shape[1] == 7 + 3  # roll, pitch, yaw as sine and cosine
    first = reader.episode(0)
    goal, subtasks = first["task"][0], json.loads(first["annotation.subtasks"][0])
    assert data.strings[data.text[0, 0]] == goal
    assert data.strings[data.text[0, 2]] == subtasks[0]

    norm = Normalizer.fit(data.state.numpy(), data.actions.numpy())
    length = len(first["action"])
    last = torch.tensor([length - 1])  # the last frame of episode 0: one real action, the rest masked
    embeddings = torch.randn(len(data.strings), 384)
    batch = data.batch(last, chunk=5, embeddings=embeddings, norm=norm)
    assert batch[ACTION_MASK].tolist() == [[True, False, False, False, False]]
    np.testing.assert_allclose(batch[ACTIONS][0, 0].numpy(), norm.action(np.asarray(first["action"][-1])), atol=1e-5)
    assert batch[IMAGES].shape == (1, 2, 3, 96, 96) and batch[STATE].shape == (1, 10) and batch[TEXT].shape == (1, 3, 384)
    # the focus target, in decimetres, from the dataset's privileged.focus
    np.testing.assert_allclose(batch[FOCUS][0].numpy(), np.asarray(first["privileged.focus"][-1]) * 10, atol=1e-5)
    # the focus map's target per camera (head, wrist), from privileged.focus_uv (square images: unscaled)
    recorded = np.asarray(first["privileged.focus_uv"]).reshape(length, 2, 2)
    assert data.focus_uv.shape == (len(data), 2, 2) and batch[FOCUS_UV].shape == (1, 2, 2)
    np.testing.assert_allclose(data.focus_uv[:length].numpy(), recorded, atol=1e-6)
    assert np.isfinite(recorded[:, 0]).mean() > 0.5  # the head camera sees the focus item most of the time


def test_a_dataset_without_focus_targets_loads_them_as_unknown(hsr_dataset: Path, tmp_path: Path) -> None:
    """Real-robot recordings have no privileged.focus: their samples say NaN, which the focus loss skips (test_modeling)."""
    import shutil

    import pyarrow.parquet as pq

    copy = tmp_path / "real"
    shutil.copytree(hsr_dataset, copy)
    info_path = copy / "meta" / "info.json"
    info = json.loads(info_path.read_text())
    del info["features"]["privileged.focus"], info["features"]["privileged.focus_uv"]
    info_path.write_text(json.dumps(info))
    for path in (copy / "data").rglob("*.parquet"):
        pq.write_table(pq.read_table(path).drop(["privileged.focus", "privileged.focus_uv"]), path)
    data = frames_of(copy)
    assert data.focus.shape == (len(data), 3) and data.focus.isnan().all()
    assert data.focus_uv.shape == (len(data), 2, 2) and data.focus_uv.isnan().all()


def test_stale_guidance_right_after_a_subtask_ends_is_labelled_done(hsr_dataset: Path) -> None:
    data = frames_of(hsr_dataset)
    index = np.asarray(LeRobotDatasetReader(hsr_dataset).episode(0)["annotation.subtask_index"]).ravel()
    boundary = int(np.flatnonzero(np.diff(index))[0]) + 1
    assert (data.stale[:boundary] == -1).all()
    assert (data.stale[boundary : boundary + 3] == data.text[boundary - 1, 2]).all()  # the subtask that just ended
    assert data.stale[boundary + 3] == -1 or index[boundary + 3] != index[boundary]
    norm = Normalizer.fit(data.state.numpy(), data.actions.numpy())
    frames = torch.tensor([boundary, boundary])
    batch = data.batch(frames, chunk=4, embeddings=torch.eye(len(data.strings)), norm=norm, stale=torch.tensor([False, True]))
    assert batch[DONE].tolist() == [0.0, 1.0]
    assert batch[ACTION_MASK][1].sum() == 0  # no action loss on stale guidance
    assert batch[FOCUS][0].isfinite().all() and batch[FOCUS][1].isnan().all()  # nor focus loss: the frame's focus is the next subtask's
    assert torch.equal(batch[TEXT][1, 2], torch.eye(len(data.strings))[data.text[boundary - 1, 2]])


def test_the_hand_angles_wrap_without_a_jump() -> None:
    encoder = StateEncoder(["j", "ee_roll", "gripper"], ["ee_roll", "gripper"])
    a, b = encoder(np.array([0.3, np.pi - 1e-6, 1.0])), encoder(np.array([0.3, -np.pi + 1e-6, 1.0]))
    assert encoder.dim == 3 and np.abs(a - b).max() < 1e-5
    with pytest.raises(DataError, match="no entries"):
        StateEncoder(["j"], ["ee_x"])


def test_datasets_that_do_not_match_are_refused_by_name(hsr_dataset: Path, tmp_path: Path) -> None:
    from tests.datasets.test_lerobot import make_episode
    from tests.workflows.test_relabel import write

    other = tmp_path / "other"
    write(other, [make_episode(0, 6), make_episode(1, 8)])
    with pytest.raises(DataError, match="has actions .* one action space per run"):
        load_frames([hsr_dataset, other], cameras=["head", "wrist"], image_size=32, state=None, done_window=3)
    with pytest.raises(DataError, match="no 'observation.images.hand'"):
        load_frames([hsr_dataset], cameras=["head", "hand"], image_size=32, state=None, done_window=3)
    # a dataset of someone else's (no subtask index, 32 px images): loads, scaled up, boundaries from the texts
    data = load_frames([other], cameras=["head", "wrist"], image_size=64, state=None, done_window=2)
    assert data.images.shape[-2:] == (64, 64) and len(data) == 14


def test_a_corrupt_dataset_is_one_clear_error(hsr_dataset: Path, tmp_path: Path) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(hsr_dataset, broken)
    data_file = next((broken / "data").rglob("*.parquet"))
    data_file.write_bytes(data_file.read_bytes()[:100])
    with pytest.raises(DataError, match=str(data_file.name)):
        frames_of(broken)


def test_dimensions_that_barely_move_are_not_blown_up_into_noise() -> None:
    rng = np.random.default_rng(0)
    state = np.stack([rng.normal(0.4, 1e-4, 500), rng.normal(0.0, 0.3, 500)], axis=1)  # IK jitter; a real signal
    actions = np.stack([rng.normal(0, 3e-4, 500), rng.normal(0, 0.02, 500)], axis=1)
    norm = Normalizer.fit(state, actions)
    assert np.abs(norm.state(state)[:, 0]).max() < 0.1 and norm.state(state)[:, 1].std() == pytest.approx(1.0, rel=1e-3)
    assert np.abs(norm.action(actions)[:, 0]).max() < 1.5 and norm.action(actions)[:, 1].std() == pytest.approx(1.0, rel=1e-3)
    restored = Normalizer.from_dict(norm.to_dict())
    np.testing.assert_allclose(restored.unaction(norm.action(actions)), actions, atol=1e-6)
