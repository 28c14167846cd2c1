"""``s2kit sof flow``: a colour-wheel flow video of a dataset's camera, a video file or a folder of images."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from s2kit.datasets.images import png_encode
from s2kit.datasets.lerobot import LeRobotWriter
from s2kit.workflows.video import write_video
from tests.cli.conftest import invoke  # noqa: F401 - the in-process s2kit app, a fixture
from tests.conftest import ROOT, run_s2kit
from tests.plugins.skills.sof.test_flow import video

HEAD = "observation.images.head"


def frames_in(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LeRobot dataset of two 4- and 6-frame episodes: a drifting head camera and a still wrist one."""
    root = tmp_path_factory.mktemp("sof") / "dataset"
    features = {HEAD: {"dtype": "video", "shape": [64, 64, 3]}, "observation.images.wrist": {"dtype": "video", "shape": [64, 64, 3]}}
    with LeRobotWriter(root, fps=5, robot_type="sim_arm", features=features) as writer:
        for length in (4, 6):
            for frame in video(length):
                writer.add_frame({HEAD: frame, "observation.images.wrist": video(1)[0]}, "watch")
            writer.save_episode()
    return root


def test_a_dataset_camera_becomes_a_flow_video(invoke, dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "videos" / "flow.mp4"  # a folder that does not exist yet is made
    result = invoke("sof", "flow", str(dataset), "--episode", "1", "--camera", "head", "--out", str(out), "--min-height", "0", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["pairs"] == 5 and summary["size"] == [64, 64] and summary["out"] == str(out)
    assert 0.5 < summary["mean_px"] < 2.5  # the drift: 0.3 to 2.7 pixels per frame
    pictures = frames_in(out)
    assert len(pictures) == 5 and pictures[0].shape == (64, 128, 3)
    # the still wrist camera: white flow (no motion) behind the wheel
    still = tmp_path / "still.mp4"
    assert invoke("sof", "flow", str(dataset), "--camera", "observation.images.wrist", "--out", str(still), "--min-height", "0").exit_code == 0
    assert frames_in(still)[0][40:, 80:].mean() > 240


def test_a_video_file_and_a_folder_of_images(invoke, tmp_path: Path) -> None:
    frames = video(4)
    write_video(tmp_path / "clip.mp4", frames, fps=5)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, png in enumerate(png_encode(frames)):
        (folder / f"{i:03d}.png").write_bytes(png)
    for source in (tmp_path / "clip.mp4", folder):
        out = tmp_path / f"{source.stem}_flow.mp4"
        result = invoke("sof", "flow", str(source), "--out", str(out), "--min-height", "0")
        assert result.exit_code == 0, result.output
        assert "3 flows of 64x64 pixels" in result.output
        assert len(frames_in(out)) == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--camera", "top"], "has no camera 'top' (it has head, wrist)"),
        (["--episode", "2"], "has no episode 2 (it has 2)"),
    ],
)
def test_a_missing_camera_or_episode_is_one_line(invoke, dataset: Path, tmp_path: Path, args: list[str], message: str) -> None:
    result = invoke("sof", "flow", str(dataset), *args, "--out", str(tmp_path / "flow.mp4"))
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "flow.mp4").exists()


def test_bad_sources_and_outputs_are_one_line(invoke, tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "0.png").write_bytes(png_encode(video(1))[0])
    one = invoke("sof", "flow", str(folder), "--out", str(tmp_path / "flow.mp4"))
    assert one.exit_code == 2 and "has 1 frame; flow needs two or more" in one.output
    (folder / "1.png").write_bytes(png_encode(np.zeros((1, 32, 32, 3), np.uint8))[0])
    sizes = invoke("sof", "flow", str(folder), "--out", str(tmp_path / "flow.mp4"))
    assert sizes.exit_code == 2 and "1.png is 32x32, 0.png is 64x64" in sizes.output
    episode = invoke("sof", "flow", str(folder), "--episode", "0", "--out", str(tmp_path / "flow.mp4"))
    assert episode.exit_code == 2 and "is not a LeRobot dataset" in episode.output
    # the output is checked before the source is even read
    blocked = invoke("sof", "flow", str(tmp_path / "missing"), "--out", str(folder / "0.png" / "flow.mp4"))
    assert blocked.exit_code == 2 and "--out" in blocked.output and "is a file, not a folder" in blocked.output


def test_the_installed_command_runs(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "flow.mp4"
    result = run_s2kit("sof", "flow", str(dataset), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "3 flows of 64x64 pixels" in result.stdout
    assert frames_in(out)[0].shape == (384, 768, 3)  # upscaled 6x, like episode videos


def test_the_command_group_loads_without_numba() -> None:
    code = "import sys, s2kit.plugins.skills.sof.cli; assert 'numba' not in sys.modules, 'numba imported'"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
