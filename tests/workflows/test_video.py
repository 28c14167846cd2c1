from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from s2kit.core.config import validate_pipeline
from s2kit.core.errors import DataError
from s2kit.core.runtime import build_runtime
from s2kit.core.types import (
    EE_DELTA,
    CameraSpec,
    EpisodeInfo,
    EpisodeResult,
    Guidance,
    Observation,
    RobotSpec,
    Step,
    ee_delta_space,
)
from s2kit.workflows.video import MIN_HEIGHT, VideoRecorder, caption_bands, tile_frames, video_overlays, write_video


def decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def record(
    video: VideoRecorder,
    frames: list[dict[str, np.ndarray]],
    guidance: Guidance,
    info: dict | None = None,
) -> np.ndarray:
    """One episode of ``frames`` (camera -> image) through ``video`` as the runtime would; its first decoded frame."""
    cameras = tuple(CameraSpec(role=c, height=i.shape[0], width=i.shape[1]) for c, i in frames[0].items())
    robot = RobotSpec(name="test", cameras=cameras, action_spaces=(ee_delta_space(),))
    video.on_episode_start(EpisodeInfo(index=0, seed=0, instruction=guidance.goal, robot=robot, action_space=EE_DELTA))
    action = np.zeros(7, np.float32)
    for k, images in enumerate(frames):
        observation = Observation(images=images, state=np.zeros(1, np.float32))
        video.on_step(Step(k, k / 10, observation, action, action, EE_DELTA, guidance, info=info or {}))
    video.on_episode_end(EpisodeResult(index=0, seed=0, instruction=guidance.goal, status="done", steps=len(frames)))
    return decode(video.written[-1])[0]


def upscaled(image: np.ndarray, factor: int) -> np.ndarray:
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def test_one_video_per_episode_with_every_step(registry, tmp_path: Path) -> None:
    pipeline = validate_pipeline(
        {
            "robot": {"name": "point", "image_size": 32},
            "planner": {"name": "waypoints"},
            "executor": {"name": "seek"},
            "runtime": {"episodes": 2, "max_steps": 200},
        }
    )
    video = VideoRecorder(tmp_path)
    results = build_runtime(pipeline, registry, [video]).run()
    assert [p.name for p in video.written] == [
        "episode_000000.mp4",
        "episode_000001.mp4",
    ]
    frames = decode(video.written[0])
    assert len(frames) == results[0].steps and frames[0].shape[1] == 384  # 32 px, 12 times
    # the point is drawn white; the episode ends on the last waypoint (0, 0.2, 0.1)
    size = 32
    x, y = round((0 + 1) / 2 * (size - 1)), round((0.2 + 1) / 2 * (size - 1))
    last = frames[-1][:384].sum(axis=-1)  # the camera, above the caption
    by, bx = np.unravel_index(np.argmax(last), last.shape)
    assert abs(bx // 12 - x) <= 1 and abs(by // 12 - y) <= 1


def test_cameras_are_tiled_and_odd_sizes_padded(tmp_path: Path) -> None:
    head = np.full((9, 8, 3), 200, np.uint8)
    wrist = np.full((7, 5, 3), 50, np.uint8)
    tiled = tile_frames({"head": head, "wrist": wrist}, ["head", "wrist"])
    assert tiled.shape == (9, 13, 3) and tiled[8, 12].tolist() == [0, 0, 0]
    write_video(tmp_path / "v.mp4", [tiled] * 5, fps=10)
    frames = decode(tmp_path / "v.mp4")
    assert len(frames) == 5 and frames[0].shape == (10, 14, 3)
    assert (
        abs(int(frames[2][4, 3].mean()) - 200) < 12
    )  # lossy, but the head is still bright
    with pytest.raises(DataError, match="none of the cameras"):
        tile_frames({"head": head}, ["left_wrist"])


# --- overlays, captions, numbering ------------------------------------------------------


def test_plugin_overlays_draw_on_each_camera_with_the_steps_info(registry, tmp_path: Path) -> None:
    pipeline = validate_pipeline(
        {
            "robot": {"name": "point", "image_size": 16, "background": 200},
            "planner": {"name": "waypoints"},
            "executor": {"name": "masked", "grid": 4},  # its chunks' info carries "keep"
            "runtime": {"episodes": 1, "max_steps": 5},
        }
    )
    seen: list[tuple[str, bool]] = []

    def blacken(image: np.ndarray, camera: str, info: dict) -> np.ndarray | None:
        seen.append((camera, "keep" in info))
        return np.zeros_like(image) if "keep" in info else None

    drawn, plain = VideoRecorder(tmp_path / "drawn", overlays=[blacken]), VideoRecorder(tmp_path / "plain", overlay=False)
    (result,) = build_runtime(pipeline, registry, [drawn, plain]).run()
    assert seen == [("head", True)] * result.steps
    assert decode(drawn.written[0])[0][:MIN_HEIGHT].max() < 20 and decode(plain.written[0])[0][:MIN_HEIGHT].mean() > 150


def test_the_installed_plugins_overlays_are_the_default() -> None:
    from s2kit.plugins.executors.s2.overlay import draw_kept_patches

    assert draw_kept_patches in video_overlays()


def test_captions_show_the_goal_and_subtask_under_upscaled_frames(
    registry, tmp_path: Path
) -> None:
    pipeline = validate_pipeline(
        {
            "robot": {"name": "point", "image_size": 16, "background": 0},
            "planner": {"name": "waypoints"},
            "executor": {"name": "seek"},
            "runtime": {"episodes": 1, "max_steps": 5},
        }
    )
    plain, captioned = (
        VideoRecorder(tmp_path / "plain", caption=False, min_height=0),
        VideoRecorder(tmp_path / "cap", caption=True, min_height=40),
    )
    build_runtime(pipeline, registry, [plain, captioned]).run()
    frame = decode(captioned.written[0])[0]
    assert decode(plain.written[0])[0].shape == (16, 16, 3)
    assert (
        frame.shape[1] == 48 and frame.shape[0] > 48
    )  # 16 px upscaled 3x, a band below
    assert frame[48:].max() > 150  # text in the band


def test_videos_are_watchable_by_default_each_camera_upscaled_to_384_px_with_a_caption(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    # blocks of 4 pixels, so the codec keeps them; a square head camera and a short, wide wrist camera
    head = upscaled(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8), 4)  # 96 x 96: 4 times
    wrist = upscaled(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8), 4)  # 48 x 64: 8 times
    guidance = Guidance(goal="put the red cube in the bowl", subtasks=["pick up the red cube", "place it"], current=1)
    frame = record(VideoRecorder(tmp_path), [{"head": head, "wrist": wrist}] * 3, guidance)
    assert frame.shape[1] == 384 + 512 and frame.shape[0] > 384 + 2 * 14  # both 384 px tall, two lines below
    for camera, image, x in (("head", head, 0), ("wrist", wrist, 384)):  # nearest neighbour: the blocks stay sharp
        factor = 384 // image.shape[0]
        shown = frame[:384, x : x + image.shape[1] * factor].astype(int)
        assert np.abs(shown - upscaled(image, factor)).mean() < 6, camera
    band = frame[384:].max(axis=(1, 2)) > 150  # rows of the caption with text in them
    lines = np.flatnonzero(np.diff(band.astype(int)) == 1)
    assert len(lines) == 2 and band.sum() >= 2 * 10  # the instruction and the subtask, 10+ px glyphs each
    # a camera already tall enough is left as it is; 0 and no caption: the cameras' own size
    tall = record(VideoRecorder(tmp_path / "tall"), [{"head": np.zeros((400, 300, 3), np.uint8)}], guidance)
    assert tall.shape[1] == 300 and tall.shape[0] > 400
    assert record(VideoRecorder(tmp_path / "own", caption=False, min_height=0), [{"head": head}], guidance).shape == (96, 96, 3)


def test_a_long_instruction_wraps_instead_of_being_cut() -> None:
    short = Guidance(goal="put the red cube in the bowl")
    long = Guidance(goal="put the red cube in the bowl, then stack the blue cylinder on the green cube and push the ball left")
    one, two = caption_bands([short, long], MIN_HEIGHT)
    assert one.shape[1] == two.shape[1] == MIN_HEIGHT and one.shape == two.shape  # one size for the whole episode
    rows = lambda band: band.max(axis=(1, 2)) > 150  # noqa: E731
    assert rows(two).sum() > 1.6 * rows(one).sum()  # the long goal takes two lines of text
    right = two[:, MIN_HEIGHT // 2 :].max(axis=(0, 2))
    assert (right > 150).sum() > 20  # the second half of the line is written too: wrapped, not a cut-off first line
