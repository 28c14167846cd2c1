"""s2kit relabel: guidance added to every frame of a LeRobot v3.0 dataset, without harm to the source."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from s2kit.datasets.lerobot import LeRobotDatasetReader
from s2kit.workflows.relabel import MANIFEST, relabel, segment_frames
from s2kit.core.errors import DataError
from s2kit.core.interfaces import Planner
from s2kit.core.types import Guidance, Observation, RobotStatus
from s2kit.plugins.executors.s2.executor import default_checkpoint, shipped_robots
from tests.conftest import run_s2kit
from tests.datasets.test_lerobot import HEAD, LENGTHS, pack_into_one_file, write


class Splitter(Planner):
    """Two subtasks per task; remembers what it saw; can be told to fail at its n-th call."""

    name = "splitter"

    def __init__(self, fail_at: int | None = None, word: str = "then") -> None:
        super().__init__()
        self.fail_at, self.word, self.calls, self.seen = fail_at, word, 0, []

    def plan(self, instruction: str, observation: Observation, *, event: str = "start",
             history: Sequence[Guidance] = (), status: RobotStatus | None = None) -> Guidance:  # fmt: skip
        self.calls += 1
        if self.calls == self.fail_at:
            raise KeyboardInterrupt  # as a Ctrl-C in the middle of a run
        self.seen.append((instruction, observation.images["head"].shape))  # keyed by camera role
        return Guidance(goal=instruction, trajectory=f"do: {instruction}", subtasks=[f"{instruction} (a)", f"{instruction} {self.word} (b)"])


def digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    from tests.datasets.test_lerobot import make_episode

    root = tmp_path / "source"
    write(root, [make_episode(seed, n) for seed, n in enumerate(LENGTHS)])
    return root


def check_relabelled(root: Path, source: Path) -> None:
    new, old = LeRobotDatasetReader(root), LeRobotDatasetReader(source)
    assert new.num_episodes == old.num_episodes and new.tasks == old.tasks
    for i in range(new.num_episodes):
        ep, before = new.episode(i), old.episode(i)
        goal = ep["task"][0]
        subtasks = json.loads(ep["annotation.subtasks"][0])
        assert subtasks == [f"{goal} (a)", f"{goal} then (b)"]  # the goal is the episode's task string
        assert set(ep["annotation.trajectory"]) == {f"do: {goal}"}
        index = np.asarray(ep["annotation.subtask_index"])
        assert index[0] == 0 and np.all(np.diff(index) >= 0) and index.max() <= 1
        assert ep["annotation.subtask"] == [subtasks[k] for k in index]
        np.testing.assert_array_equal(ep["action"], before["action"])  # the rest is untouched
        np.testing.assert_array_equal(ep[HEAD], before[HEAD])
    assert new.stats is not None and new.stats["annotation.subtask_index"]["count"].tolist() == [sum(LENGTHS)]


def test_relabels_into_a_new_dataset_and_leaves_the_source_alone(dataset: Path, tmp_path: Path) -> None:
    before = digest(dataset)
    planner = Splitter()
    report = relabel(dataset, planner, out=tmp_path / "out")
    assert digest(dataset) == before
    assert report.episodes == 3 and report.frames == sum(LENGTHS)
    assert [shape for _, shape in planner.seen] == [(32, 32, 3)] * 3  # the head camera's first frame
    check_relabelled(tmp_path / "out", dataset)
    assert not (tmp_path / "out" / MANIFEST).exists()


def test_an_interrupted_relabel_resumes_where_it_stopped(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        relabel(dataset, Splitter(fail_at=3), out=out)
    assert not (out / "meta/info.json").exists()  # not a dataset until finished
    assert len(json.loads((out / MANIFEST).read_text())["done"]) == 2
    with pytest.raises(DataError, match="another planner"):
        relabel(dataset, Splitter(), out=out, planner_id="something else")
    planner = Splitter()
    report = relabel(dataset, planner, out=out)
    assert report.files_skipped == 2 and report.files_done == 1 and planner.calls == 1
    check_relabelled(out, dataset)


def test_in_place_swaps_files_atomically_and_resumes(dataset: Path, tmp_path: Path) -> None:
    pristine = tmp_path / "pristine"
    import shutil

    shutil.copytree(dataset, pristine)
    before = digest(dataset)
    with pytest.raises(KeyboardInterrupt):
        relabel(dataset, Splitter(fail_at=2), in_place=True)
    staged = {k for k in digest(dataset) if k.startswith(".s2kit-relabel")}
    assert {k: v for k, v in digest(dataset).items() if k not in staged} == before  # nothing swapped yet
    LeRobotDatasetReader(dataset).episode(2)  # still the old, readable dataset
    relabel(dataset, Splitter(), in_place=True)
    assert not (dataset / ".s2kit-relabel").exists()
    check_relabelled(dataset, pristine)


def test_relabels_a_dataset_lerobot_packed_into_one_file(tmp_path: Path, dataset: Path) -> None:
    from tests.datasets.test_lerobot import make_episode

    packed = pack_into_one_file(dataset, tmp_path / "packed", [make_episode(s, n) for s, n in enumerate(LENGTHS)])
    report = relabel(packed, Splitter(), out=tmp_path / "out")
    assert report.files_done == 1
    check_relabelled(tmp_path / "out", packed)


def test_refuses_a_folder_that_is_not_its_own_unfinished_work(dataset: Path, tmp_path: Path) -> None:
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="choose an empty folder"):
        relabel(dataset, Splitter(), out=tmp_path / "busy")
    with pytest.raises(DataError, match="is the source dataset"):
        relabel(dataset, Splitter(), out=dataset)
    with pytest.raises(DataError, match="not a LeRobot dataset"):
        relabel(tmp_path / "busy", Splitter(), out=tmp_path / "out")


@pytest.mark.parametrize(
    ("gripper", "count", "expected", "how"),
    [
        # pick then place: close (frame 3), open (frame 7): one boundary at the close
        ([1, 1, 1, 0, 0, 0, 0, 1, 1, 1], 2, [0, 0, 0, 1, 1, 1, 1, 1, 1, 1], "gripper"),
        # three puts: each ends at a release
        ([1, 0, 1, 1, 0, 1, 1, 0, 1, 1], 3, [0, 0, 1, 1, 1, 2, 2, 2, 2, 2], "gripper"),
        # no gripper movement: equal parts
        ([1] * 9, 3, [0, 0, 0, 1, 1, 1, 2, 2, 2], "uniform"),
    ],
)
def test_segment_frames_by_gripper_events(gripper: list[float], count: int, expected: list[int], how: str) -> None:
    index, used = segment_frames(len(gripper), count, gripper=np.array(gripper, float))
    assert used == how and index.tolist() == expected


def test_segment_frames_prefers_the_datasets_own_boundaries() -> None:
    own = np.array([0, 0, 1, 1, 1, 2])
    assert segment_frames(6, 3, annotation=own, gripper=np.ones(6))[1] == "annotation"
    assert segment_frames(6, 2, annotation=own)[1] == "uniform"  # another subtask count: not usable


def test_cli_relabels_a_collected_dataset_with_the_retrieval_planner(tmp_path: Path) -> None:
    collected = tmp_path / "collected"
    done = run_s2kit("collect", "--robot", "hsr", "--out", str(collected), "--episodes", "2", "--seed", "3")
    assert done.returncode == 0, done.stderr
    before = digest(collected)
    result = run_s2kit("relabel", str(collected), "--out", str(tmp_path / "relabelled"), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["episodes_relabelled"] == 2 and report["segmentation"] == {"annotation": 2}
    assert digest(collected) == before
    new, old = LeRobotDatasetReader(tmp_path / "relabelled"), LeRobotDatasetReader(collected)
    for i in range(2):
        a, b = new.episode(i, keys=["annotation.subtask_index"]), old.episode(i, keys=["annotation.subtask_index"])
        np.testing.assert_array_equal(a["annotation.subtask_index"], b["annotation.subtask_index"])
    refused = run_s2kit("relabel", str(collected))
    assert refused.returncode == 2 and refused.stderr.startswith("Error: give --out DIR")


PRIVILEGED_SWITCHES = {"focus_weight": 0, "focus_map": 0, "focus_input": False, "keep_prior": 0}


@pytest.mark.parametrize("robot", shipped_robots())
def test_the_shipped_recipe_trains_on_a_relabelled_dataset_without_privileged_columns(robot: str, dataset: Path, tmp_path: Path) -> None:
    """What a user does with their own robot's LeRobot data: relabel it, then train with the recipe of the checkpoint
    s2kit ships (its training record), which reads no privileged label."""
    from s2kit.learning.checkpoints import read_info
    from s2kit.learning.trainer import TrainConfig, train

    shipped = read_info(default_checkpoint(robot))
    recipe = TrainConfig.model_validate(shipped.train)
    assert {k: getattr(shipped.model, k) for k in PRIVILEGED_SWITCHES} == PRIVILEGED_SWITCHES
    relabel(dataset, Splitter(), out=tmp_path / "relabelled")
    assert not [k for k in LeRobotDatasetReader(tmp_path / "relabelled").info["features"] if k.startswith("privileged.")]
    # a few small steps; state=all: the synthetic data's state is not a robot's hand pose (what state=ee reads)
    config = recipe.model_copy(update={"steps": 2, "batch_size": 4, "val_fraction": 0.34, "threads": 1, "state": "all", "log_every": 1})
    last = train("s2", [tmp_path / "relabelled"], tmp_path / "run", config, log=lambda line: None)
    trained = read_info(last)
    assert trained.step == 2 and trained.model.stem == shipped.model.stem and trained.model.head == shipped.model.head
    assert (tmp_path / "run" / "metrics.jsonl").read_text().count('"loss"') == 2
