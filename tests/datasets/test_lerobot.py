from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from s2kit.datasets.lerobot import INDEX_FEATURES, LeRobotDatasetReader, LeRobotWriter
from s2kit.workflows.video import write_video
from s2kit.core.errors import DataError

HEAD, WRIST = "observation.images.head", "observation.images.wrist"
FEATURES: dict[str, dict[str, Any]] = {
    "observation.state": {"dtype": "float32", "shape": [4], "names": ["x", "y", "z", "gripper"]},
    "action": {"dtype": "float32", "shape": [7], "names": None},
    HEAD: {"dtype": "video", "shape": [32, 32, 3]},
    WRIST: {"dtype": "video", "shape": [32, 32, 3]},
    "annotation.trajectory": {"dtype": "string", "shape": [1]},
    "annotation.subtask": {"dtype": "string", "shape": [1]},
}
LENGTHS = (5, 12, 20)
TASKS = ("pick up the cube", "place it on the plate", "stack the cube")

Episode = list[tuple[dict[str, Any], str]]


def make_episode(seed: int, length: int) -> Episode:
    """Synthetic frames: random state/action, smooth moving images, per-frame strings and tasks."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:32, 0:32]
    frames = []
    for i in range(length):
        # camera-like pictures (little colour detail), 6 grey levels brighter each frame so
        # that a frame decoded in the wrong place is off by more than the codec's error
        base = xx * 3 + yy + 6 * i + 5 * seed
        head = np.stack([base, base * 0.8 + 20, base * 0.5 + 60], axis=-1)
        x0 = (2 * i + 5 * seed) % 24
        head[8:16, x0 : x0 + 8] = 250  # a bright square moving right
        light = yy * 4 + 6 * i + 7 * seed
        wrist = np.stack([light * 0.6 + 30, light, light * 0.9 + 10], axis=-1)
        head, wrist = (np.clip(image, 0, 255).astype(np.uint8) for image in (head, wrist))
        frame = {
            "observation.state": rng.normal(size=4).astype(np.float32),
            "action": rng.normal(size=7).astype(np.float32),
            HEAD: head,
            WRIST: wrist,
            "annotation.trajectory": f"go to ({i}, {seed}) → 🍎",
            "annotation.subtask": f"subtask {i // 4} of episode {seed}",
        }
        # the last episode changes task halfway: tasks are per frame
        task = TASKS[seed % 2] if seed < 2 or i < length // 2 else TASKS[2]
        frames.append((frame, task))
    return frames


def write(root: Path, episodes: list[Episode], *, mode: str = "create", use_videos: bool = True) -> list[int]:
    kwargs: dict[str, Any] = {"fps": 10, "robot_type": "sim_arm", "features": FEATURES, "use_videos": use_videos}
    with LeRobotWriter(root, mode=mode, **kwargs) as writer:
        saved = []
        for episode in episodes:
            for frame, task in episode:
                writer.add_frame(frame, task)
            saved.append(writer.save_episode())
    return saved


@pytest.fixture(scope="module")
def episodes() -> list[Episode]:
    return [make_episode(seed, n) for seed, n in enumerate(LENGTHS)]


@pytest.fixture(scope="module")
def video_dataset(tmp_path_factory: pytest.TempPathFactory, episodes: list[Episode]) -> Path:
    root = tmp_path_factory.mktemp("lerobot") / "dataset"
    assert write(root, episodes) == [0, 1, 2]
    return root


def stacked(episode: Episode, key: str) -> Any:
    values = [frame[key] for frame, _ in episode]
    return values if FEATURES[key]["dtype"] == "string" else np.stack(values)


def assert_episode_equal(read: dict[str, Any], episode: Episode, index: int, start: int, exact_images: bool) -> None:
    n = len(episode)
    for key in ("observation.state", "action", "annotation.trajectory", "annotation.subtask"):
        expected = stacked(episode, key)
        if isinstance(expected, list):
            assert read[key] == expected
        else:
            assert read[key].dtype == np.float32 and np.array_equal(read[key], expected)
    for key in (HEAD, WRIST):
        got, want = read[key], stacked(episode, key)
        assert got.shape == want.shape and got.dtype == np.uint8
        diff = np.abs(got.astype(int) - want.astype(int))
        if exact_images:
            assert diff.max() == 0
        else:
            assert diff.mean() < 4, f"{key}: decoded video is off by {diff.mean():.2f} grey levels"
    assert read["task"] == [task for _, task in episode]
    assert np.array_equal(read["frame_index"], np.arange(n))
    assert np.array_equal(read["episode_index"], np.full(n, index))
    assert np.array_equal(read["index"], np.arange(start, start + n))
    assert np.allclose(read["timestamp"], np.arange(n) / 10)


# --- round trip ------------------------------------------------------------------------


def test_video_dataset_round_trips(video_dataset: Path, episodes: list[Episode]) -> None:
    reader = LeRobotDatasetReader(video_dataset)
    assert (reader.num_episodes, reader.num_frames, reader.fps) == (3, sum(LENGTHS), 10)
    assert reader.tasks == [TASKS[0], TASKS[1], TASKS[2]]
    assert set(reader.features) == set(FEATURES) | set(INDEX_FEATURES)
    start = 0
    for index, episode in enumerate(episodes):
        assert_episode_equal(reader.episode(index), episode, index, start, exact_images=False)
        start += len(episode)
    # a global frame index lands in the right episode
    frame = reader.frame(LENGTHS[0] + 3)
    assert frame["episode_index"] == 1 and frame["frame_index"] == 3 and frame["task"] == TASKS[1]
    assert np.array_equal(frame["action"], episodes[1][3][0]["action"])
    assert frame["annotation.subtask"] == episodes[1][3][0]["annotation.subtask"]
    with pytest.raises(IndexError, match="out of range"):
        reader.episode(3)


def test_image_dataset_round_trips_exactly(tmp_path: Path, episodes: list[Episode]) -> None:
    root = tmp_path / "images"
    write(root, episodes, use_videos=False)
    info = json.loads((root / "meta/info.json").read_text())
    assert info["video_path"] is None and info["features"][HEAD]["dtype"] == "image"
    assert not (root / "videos").exists()
    # PNG files in a {bytes, path} struct, the way datasets.Image stores them
    table = pq.read_table(root / "data/chunk-000/file-001.parquet")
    assert table.schema.field(HEAD).type.names == ["bytes", "path"]
    assert table.column(HEAD)[0].as_py()["bytes"].startswith(b"\x89PNG\r\n\x1a\n")
    assert json.loads(table.schema.metadata[b"huggingface"])["info"]["features"][HEAD] == {"_type": "Image"}
    reader = LeRobotDatasetReader(root)
    start = 0
    for index, episode in enumerate(episodes):
        assert_episode_equal(reader.episode(index), episode, index, start, exact_images=True)
        start += len(episode)


# --- the format -------------------------------------------------------------------------


def test_layout_is_lerobot_v3(video_dataset: Path) -> None:
    info = json.loads((video_dataset / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["robot_type"] == "sim_arm"
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (3, 37, 3)
    assert info["splits"] == {"train": "0:3"} and info["fps"] == 10
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["video_path"] == "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    assert {"chunks_size", "data_files_size_in_mb", "video_files_size_in_mb"} <= set(info)
    assert list(info["features"])[-5:] == list(INDEX_FEATURES)
    assert info["features"]["annotation.subtask"] == {"dtype": "string", "shape": [1], "names": None}
    video = info["features"][HEAD]
    assert video["dtype"] == "video" and video["shape"] == [32, 32, 3]
    assert video["info"]["video.codec"] == "h264" and video["info"]["video.pix_fmt"] == "yuv420p"
    assert video["info"]["video.fps"] == 10

    for index in range(3):
        assert (video_dataset / f"data/chunk-000/file-{index:03d}.parquet").is_file()
        assert (video_dataset / f"videos/{WRIST}/chunk-000/file-{index:03d}.mp4").is_file()
    row = pq.read_table(video_dataset / "meta/episodes/chunk-000/file-002.parquet").to_pylist()[0]
    assert row["episode_index"] == 2 and row["length"] == 20 and row["tasks"] == [TASKS[0], TASKS[2]]
    assert (row["data/chunk_index"], row["data/file_index"]) == (0, 2)
    assert (row["dataset_from_index"], row["dataset_to_index"]) == (17, 37)
    assert row[f"videos/{HEAD}/file_index"] == 2 and row[f"videos/{HEAD}/from_timestamp"] == 0.0
    assert row[f"videos/{HEAD}/to_timestamp"] == pytest.approx(2.0)
    assert np.asarray(row[f"stats/{HEAD}/mean"]).shape == (3, 1, 1)
    assert row["stats/action/count"] == [20] and "stats/annotation.subtask/mean" not in row

    # tasks.parquet is what pandas writes for lerobot's DataFrame indexed by task
    tasks = pq.read_table(video_dataset / "meta/tasks.parquet")
    assert tasks.column("task").to_pylist() == list(TASKS) and tasks.column("task_index").to_pylist() == [0, 1, 2]
    assert json.loads(tasks.schema.metadata[b"pandas"])["index_columns"] == ["task"]

    data = pq.read_table(video_dataset / "data/chunk-000/file-000.parquet")
    assert HEAD not in data.column_names  # frames of videos live in the mp4 files
    state = data.schema.field("observation.state").type  # datasets' Sequence(float32, length=4)
    assert pa.types.is_fixed_size_list(state) and state.list_size == 4 and state.value_type == pa.float32()
    assert data.schema.field("annotation.trajectory").type == pa.string()


def test_stats_match_numpy(video_dataset: Path, episodes: list[Episode]) -> None:
    stats = LeRobotDatasetReader(video_dataset).stats
    assert stats is not None
    for key in ("observation.state", "action"):
        values = np.concatenate([stacked(e, key) for e in episodes]).astype(np.float64)
        got = stats[key]
        assert got["count"].tolist() == [37]
        np.testing.assert_allclose(got["min"], values.min(axis=0), rtol=1e-6)
        np.testing.assert_allclose(got["max"], values.max(axis=0), rtol=1e-6)
        np.testing.assert_allclose(got["mean"], values.mean(axis=0), rtol=1e-6)
        np.testing.assert_allclose(got["std"], values.std(axis=0), rtol=1e-6)
        for name, q in {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}.items():
            np.testing.assert_allclose(got[name], np.quantile(values, q, axis=0), rtol=1e-6)
    assert stats["frame_index"]["max"].tolist() == [19]
    for camera in (HEAD, WRIST):
        mean = stats[camera]["mean"]
        assert mean.shape == (3, 1, 1) and 0 <= stats[camera]["min"].min() <= mean.min() <= 1
        pixels = np.concatenate([stacked(e, camera) for e in episodes]).reshape(-1, 3) / 255
        # every frame was sampled here (episodes are short), so the pooled mean/std are exact
        np.testing.assert_allclose(mean.ravel(), pixels.mean(axis=0), rtol=1e-6)
        np.testing.assert_allclose(stats[camera]["std"].ravel(), pixels.std(axis=0), rtol=1e-6)
    assert "annotation.subtask" not in stats


def pack_into_one_file(source: Path, root: Path, episodes: list[Episode]) -> Path:
    """A copy of ``source`` laid out as lerobot writes it: every episode in one data and one video file."""
    shutil.copytree(source, root)
    data = pa.concat_tables([pq.read_table(p) for p in sorted((root / "data").rglob("*.parquet"))])
    rows = [r for p in sorted((root / "meta/episodes").rglob("*.parquet")) for r in pq.read_table(p).to_pylist()]
    for folder in ("data", "meta/episodes", "videos"):
        for path in (root / folder).rglob("*"):
            if path.is_file():
                path.unlink()
    pq.write_table(data, root / "data/chunk-000/file-000.parquet")
    bounds = np.cumsum((0, *LENGTHS)) / 10
    for camera in (HEAD, WRIST):
        frames = [frame[camera] for episode in episodes for frame, _ in episode]
        write_video(root / f"videos/{camera}/chunk-000/file-000.mp4", frames, fps=10)  # one GOP: seeks must work
        for row, start, end in zip(rows, bounds[:-1], bounds[1:], strict=True):
            row |= {f"videos/{camera}/file_index": 0, f"videos/{camera}/from_timestamp": start}
            row |= {f"videos/{camera}/to_timestamp": end}
    for row in rows:
        row |= {"data/file_index": 0, "meta/episodes/file_index": 0}
    pq.write_table(pa.Table.from_pylist(rows), root / "meta/episodes/chunk-000/file-000.parquet")
    return root


def test_reads_and_extends_datasets_that_pack_episodes_into_one_file(
    tmp_path: Path, video_dataset: Path, episodes: list[Episode]
) -> None:
    # lerobot's own writer puts several episodes in one file; the episode rows say where each is
    root = pack_into_one_file(video_dataset, tmp_path / "packed", episodes)
    start = 0
    reader = LeRobotDatasetReader(root)
    for index, episode in enumerate(episodes):
        assert_episode_equal(reader.episode(index), episode, index, start, exact_images=False)
        start += len(episode)
    extra = make_episode(3, 4)
    assert write(root, [extra], mode="append") == [3]
    assert sorted(p.name for p in (root / "data/chunk-000").iterdir()) == ["file-000.parquet", "file-003.parquet"]
    reader = LeRobotDatasetReader(root)
    assert_episode_equal(reader.episode(2), episodes[2], 2, 17, exact_images=False)
    assert_episode_equal(reader.episode(3), extra, 3, 37, exact_images=False)
    assert reader.stats is not None and reader.stats["action"]["count"].tolist() == [41]


# --- durability -------------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import importlib.util, os, signal, sys
    spec = importlib.util.spec_from_file_location("lerobot_tests", sys.argv[1])
    tests = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tests)
    from s2kit.datasets.lerobot import LeRobotWriter

    root, crash_at = sys.argv[2], int(sys.argv[3])
    writer = LeRobotWriter(root, fps=10, robot_type="sim_arm", features=tests.FEATURES)
    for seed, length in enumerate(tests.LENGTHS):
        if seed == 2:  # die at the crash_at-th file put in place while saving the third episode
            calls, replace = [0], os.replace
            def dying_replace(src, dst):
                calls[0] += 1
                if calls[0] == crash_at:
                    os.kill(os.getpid(), signal.SIGKILL)
                replace(src, dst)
            os.replace = dying_replace
        for frame, task in tests.make_episode(seed, length):
            writer.add_frame(frame, task)
        writer.save_episode()
    """
)


# Saving the third episode puts 6 files in place, in order: 2 videos, data, episode row,
# tasks (it brings a new task), info.json. Killed before the 1st, the 4th and the 6th:
# nothing placed yet; videos and data placed; everything placed but info.json.
@pytest.mark.parametrize(("crash_at", "placed"), [(1, 0), (4, 3), (6, 4)])
def test_killed_writer_leaves_the_completed_episodes(
    tmp_path: Path, episodes: list[Episode], crash_at: int, placed: int
) -> None:
    root = tmp_path / "dataset"
    child = subprocess.run(
        [sys.executable, "-c", CHILD, __file__, str(root), str(crash_at)], capture_output=True, text=True
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert len(list(root.rglob("file-002.*"))) == placed  # the kill came where it should

    reader = LeRobotDatasetReader(root)
    assert (reader.num_episodes, reader.num_frames, reader.tasks) == (2, 17, [TASKS[0], TASKS[1]])
    assert_episode_equal(reader.episode(1), episodes[1], 1, 5, exact_images=False)

    # appending clears what the killed save left, and the episode is written again
    replacement = make_episode(7, 6)
    with LeRobotWriter(root, fps=10, robot_type="sim_arm", features=FEATURES, mode="append") as writer:
        assert not list(root.rglob("*.tmp")) and not list(root.rglob("file-002.*"))
        assert pq.read_table(root / "meta/tasks.parquet").num_rows == 2
        for frame, task in replacement:
            writer.add_frame(frame, task)
        assert writer.save_episode() == 2
    reader = LeRobotDatasetReader(root)
    assert reader.num_episodes == 3 and reader.stats is not None and reader.stats["action"]["count"].tolist() == [23]
    assert_episode_equal(reader.episode(2), replacement, 2, 17, exact_images=False)


# --- appending and creating -----------------------------------------------------------------


def test_append_continues_episode_and_task_indices(tmp_path: Path, episodes: list[Episode]) -> None:
    root = tmp_path / "dataset"
    assert write(root, episodes[:2]) == [0, 1]
    assert write(root, episodes[2:], mode="append") == [2]
    reader = LeRobotDatasetReader(root)
    assert reader.tasks == list(TASKS)
    last = reader.episode(2)
    assert_episode_equal(last, episodes[2], 2, 17, exact_images=False)
    assert sorted(set(last["task_index"].tolist())) == [0, 2]  # the old task keeps its index, the new one is next
    assert reader.stats is not None and reader.stats["index"]["max"].tolist() == [36]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"fps": 15}, "fps"),
        ({"robot_type": "other_arm"}, "robot_type"),
        ({"features": {**FEATURES, "action": {"dtype": "float32", "shape": [6]}}}, "'action' has shape"),
        ({"features": {k: v for k, v in FEATURES.items() if k != WRIST}}, WRIST),
        ({"use_videos": False}, "dtype 'video'"),
    ],
)
def test_append_refuses_a_different_dataset(
    tmp_path: Path, episodes: list[Episode], change: dict[str, Any], message: str
) -> None:
    root = tmp_path / "dataset"
    write(root, episodes[:1])
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    kwargs: dict[str, Any] = {"fps": 10, "robot_type": "sim_arm", "features": FEATURES} | change
    with pytest.raises(DataError, match=message):
        LeRobotWriter(root, mode="append", **kwargs)
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before


def test_create_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="not empty"):
        LeRobotWriter(tmp_path, fps=10, robot_type="sim_arm", features=FEATURES)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
    with pytest.raises(DataError, match="info.json is missing"):
        LeRobotWriter(tmp_path / "absent", fps=10, robot_type="sim_arm", features=FEATURES, mode="append")


def test_frames_are_checked_and_episodes_can_be_discarded(tmp_path: Path) -> None:
    episode = make_episode(0, 4)
    writer = LeRobotWriter(tmp_path / "d", fps=10, robot_type="sim_arm", features=FEATURES)
    frame = episode[0][0]
    with pytest.raises(ValueError, match="'action' needs shape"):
        writer.add_frame(frame | {"action": np.zeros(6, np.float32)}, "t")
    with pytest.raises(ValueError, match=r"missing \['annotation.subtask'\]"):
        writer.add_frame({k: v for k, v in frame.items() if k != "annotation.subtask"}, "t")
    with pytest.raises(TypeError, match="'annotation.subtask' is a string feature"):
        writer.add_frame(frame | {"annotation.subtask": 3}, "t")
    with pytest.raises(TypeError, match="uint8"):
        writer.add_frame(frame | {HEAD: frame[HEAD].astype(np.float32)}, "t")
    with pytest.raises(ValueError, match="at least one add_frame"):
        writer.save_episode()
    writer.add_frame(make_episode(5, 1)[0][0], "discarded task")
    writer.discard_episode()
    for f, task in episode:
        writer.add_frame(f, task)
    assert writer.save_episode() == 0
    writer.add_frame(frame, "pending")
    with pytest.raises(ValueError, match="not saved"):
        writer.close()
    writer.discard_episode()
    writer.close()
    reader = LeRobotDatasetReader(tmp_path / "d")
    assert reader.tasks == [TASKS[0]] and reader.num_frames == 4
    assert np.array_equal(reader.episode(0)["action"], stacked(episode, "action"))


# --- corrupt input --------------------------------------------------------------------------


def damage(path: Path, how: str) -> None:
    if how == "delete":
        path.unlink()
    elif how == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif how == "garble":
        path.write_text("{")
    else:  # an older dataset
        path.write_text(path.read_text().replace('"v3.0"', '"v2.1"'))


@pytest.mark.parametrize(
    ("name", "how", "message", "opens"),
    [
        ("meta/info.json", "delete", "meta/info.json is missing", False),
        ("meta/info.json", "garble", "meta/info.json is not valid JSON", False),
        ("meta/info.json", "v2.1", "meta/info.json: codebase_version is 'v2.1'", False),
        ("meta/episodes/chunk-000/file-001.parquet", "truncate", "chunk-000/file-001.parquet is corrupt", False),
        ("meta/tasks.parquet", "truncate", "meta/tasks.parquet is corrupt", False),
        ("data/chunk-000/file-001.parquet", "truncate", "data/chunk-000/file-001.parquet is corrupt", True),
        ("data/chunk-000/file-001.parquet", "delete", "data/chunk-000/file-001.parquet is missing", True),
        (f"videos/{HEAD}/chunk-000/file-001.mp4", "truncate", f"{HEAD}/chunk-000/file-001.mp4", True),
    ],
)
def test_corrupt_dataset_is_a_data_error_naming_the_file(
    tmp_path: Path, video_dataset: Path, name: str, how: str, message: str, opens: bool
) -> None:
    root = tmp_path / "copy"
    shutil.copytree(video_dataset, root)
    damage(root / name, how)
    with pytest.raises(DataError, match=message):
        LeRobotDatasetReader(root).episode(1)
    if opens:  # the metadata is intact: only the damaged episode fails
        assert LeRobotDatasetReader(root).episode(0)["index"].tolist() == list(range(LENGTHS[0]))


def test_importing_the_module_stays_light() -> None:
    code = "import sys, s2kit.datasets.lerobot\nprint(','.join(m for m in ('pyarrow', 'av') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
