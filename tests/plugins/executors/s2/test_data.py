"""S2's training data on the kit: its privileged focus targets (s2/training_data.py) from a real collection."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch

from s2kit.datasets.lerobot import LeRobotDatasetReader
from s2kit.learning.augment import augment
from s2kit.learning.batch import SHIFT
from s2kit.learning.data import EE_STATE, Normalizer, load_frames
from s2kit.plugins.executors.s2.modeling import ACTION_MASK, DONE, FOCUS, FOCUS_UV, S2Policy


def frames_of(root: Path, **kw):
    return load_frames([root], cameras=["head", "wrist"], image_size=96, state=EE_STATE, done_window=3, columns=S2Policy.extra_columns, **kw)


def test_the_focus_targets_come_from_the_privileged_columns(hsr_dataset: Path) -> None:
    data = frames_of(hsr_dataset)
    reader = LeRobotDatasetReader(hsr_dataset)
    first = reader.episode(0)
    length = len(first["action"])
    assert data.state.shape[1] == 7 + 3  # roll, pitch, yaw as sine and cosine
    assert data.strings[data.text[0, 2]] == json.loads(first["annotation.subtasks"][0])[0]
    norm = Normalizer.fit(data.state.numpy(), data.actions.numpy())
    batch = data.batch(torch.tensor([length - 1]), chunk=5, embeddings=torch.randn(len(data.strings), 384), norm=norm)
    assert batch[ACTION_MASK].tolist() == [[True, False, False, False, False]]
    # the focus target, in decimetres, from the dataset's privileged.focus
    np.testing.assert_allclose(batch[FOCUS][0].numpy(), np.asarray(first["privileged.focus"][-1]) * 10, atol=1e-5)
    # the focus map's target per camera (head, wrist), from privileged.focus_uv (square images: unscaled)
    recorded = np.asarray(first["privileged.focus_uv"]).reshape(length, 2, 2)
    assert data.extras[FOCUS_UV].shape == (len(data), 2, 2) and batch[FOCUS_UV].shape == (1, 2, 2)
    np.testing.assert_allclose(data.extras[FOCUS_UV][:length].numpy(), recorded, atol=1e-6)
    assert np.isfinite(recorded[:, 0]).mean() > 0.5  # the head camera sees the focus item most of the time
    # the map's target moves with the shifted image
    shifted = augment(dict(batch), torch.Generator().manual_seed(0), pad=4, image_positions=S2Policy.extra_columns[0].image_positions)
    assert torch.equal(shifted[FOCUS_UV], batch[FOCUS_UV] + shifted[SHIFT])


def test_a_dataset_without_focus_targets_loads_them_as_unknown(hsr_dataset: Path, tmp_path: Path) -> None:
    """Real-robot recordings have no privileged.focus: their samples say NaN, which the focus loss skips (test_modeling)."""
    import pyarrow.parquet as pq

    copy = tmp_path / "real"
    shutil.copytree(hsr_dataset, copy, ignore=shutil.ignore_patterns(".s2kit-cache"))
    info_path = copy / "meta" / "info.json"
    info = json.loads(info_path.read_text())
    del info["features"]["privileged.focus"], info["features"]["privileged.focus_uv"]
    info_path.write_text(json.dumps(info))
    for path in (copy / "data").rglob("*.parquet"):
        pq.write_table(pq.read_table(path).drop(["privileged.focus", "privileged.focus_uv"]), path)
    data = frames_of(copy)
    assert data.extras[FOCUS].shape == (len(data), 3) and data.extras[FOCUS].isnan().all()
    assert data.extras[FOCUS_UV].shape == (len(data), 2, 2) and data.extras[FOCUS_UV].isnan().all()


def test_stale_guidance_carries_no_focus_target(hsr_dataset: Path) -> None:
    """A stale sample's frame shows the next subtask's focus item, not the one its text names: no focus loss."""
    data = frames_of(hsr_dataset)
    index = np.asarray(LeRobotDatasetReader(hsr_dataset).episode(0)["annotation.subtask_index"]).ravel()
    boundary = int(np.flatnonzero(np.diff(index))[0]) + 1
    norm = Normalizer.fit(data.state.numpy(), data.actions.numpy())
    frames = torch.tensor([boundary, boundary])
    batch = data.batch(frames, chunk=4, embeddings=torch.eye(len(data.strings)), norm=norm, stale=torch.tensor([False, True]))
    assert batch[DONE].tolist() == [0.0, 1.0]
    assert batch[FOCUS][0].isfinite().all() and batch[FOCUS][1].isnan().all()
    assert batch[FOCUS_UV][1].isnan().all()
