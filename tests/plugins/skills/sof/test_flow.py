"""SOF's optical flow: known motions recovered, batches equal pairs, one clear error for bad input, the pictures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from s2kit.core.errors import ConfigError
from s2kit.plugins.skills.sof import flow as flow_module
from s2kit.plugins.skills.sof.flow import colour_wheel, flow_to_rgb, optical_flow, warp, write_flow_video

SIZE = 64
Y, X = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
CENTRE = (SIZE - 1) / 2


def texture(seed: int, size: int = SIZE) -> np.ndarray:
    """A camera-like RGB picture: smoothed noise (detail at every position, no sharper than a lens gives)."""
    rng = np.random.default_rng(seed)
    f = np.fft.fftfreq(size)
    lowpass = np.exp(-(f[:, None] ** 2 + f[None, :] ** 2) * (2 * np.pi * 1.5) ** 2 / 2)
    planes = [np.fft.ifft2(np.fft.fft2(rng.normal(size=(size, size))) * lowpass).real for _ in range(3)]
    image = np.stack(planes, axis=-1)
    return np.clip(np.rint((image - image.mean()) / image.std() * 40 + 128), 0, 255).astype(np.uint8)


def rotation(degrees: float) -> np.ndarray:
    a = np.deg2rad(degrees)
    dx, dy = X - CENTRE, Y - CENTRE
    return np.stack([np.cos(a) * dx - np.sin(a) * dy - dx, np.sin(a) * dx + np.cos(a) * dy - dy], axis=-1)


FIELDS = {
    "translation": np.stack([np.full_like(X, 2.3), np.full_like(Y, -1.4)], axis=-1),
    "rotation": rotation(4.0),
    "zoom": np.stack([0.06 * (X - CENTRE), 0.06 * (Y - CENTRE)], axis=-1),
}
#: Mean endpoint error (pixels) each motion is recovered within, on these 64 x 64 pictures.
BOUNDS = {"translation": 0.02, "rotation": 0.18, "zoom": 0.18}


def known_pair(field: np.ndarray, seed: int) -> np.ndarray:
    """Two frames whose flow is ``field``: the second a texture, the first it sampled along the field."""
    second = texture(seed)
    return np.stack([warp(second, field), second])


def endpoint_error(estimate: np.ndarray, truth: np.ndarray) -> float:
    """Mean distance between flow vectors, over the pixels whose match stays inside the frame."""
    tx, ty = X + truth[..., 0], Y + truth[..., 1]
    inside = (tx >= 0) & (tx <= SIZE - 1) & (ty >= 0) & (ty <= SIZE - 1)
    return float(np.linalg.norm(estimate - truth, axis=-1)[inside].mean())


@pytest.mark.parametrize("motion", sorted(FIELDS))
def test_a_known_motion_is_recovered(motion: str) -> None:
    truth = FIELDS[motion]
    errors = [endpoint_error(optical_flow(known_pair(truth, seed))[0], truth) for seed in range(2)]
    assert max(errors) < BOUNDS[motion], errors
    # and it is not the zero field passing by luck
    assert endpoint_error(np.zeros_like(truth), truth) > 5 * BOUNDS[motion]


def test_error_is_at_most_that_of_opencv_farneback() -> None:
    cv2 = pytest.importorskip("cv2", reason="OpenCV is the reference (pip install 's2kit[bench]')")
    for motion, truth in FIELDS.items():
        ours, theirs = [], []
        for seed in range(2):
            pair = known_pair(truth, seed)
            grey = [cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in pair]
            theirs.append(endpoint_error(cv2.calcOpticalFlowFarneback(*grey, None, 0.5, 3, 15, 3, 5, 1.2, 0), truth))
            ours.append(endpoint_error(optical_flow(pair)[0], truth))
        assert np.mean(ours) <= 1.2 * np.mean(theirs), (motion, ours, theirs)


def video(frames: int = 6) -> np.ndarray:
    """A picture drifting right and down, a little faster each frame."""
    first = texture(7)
    return np.stack([warp(first, np.stack([np.full_like(X, -0.6 * t * t / 2), np.full_like(Y, -0.3 * t)], -1)) for t in range(frames)])


def test_a_batch_equals_its_pairs_and_its_chunks(monkeypatch) -> None:
    frames = video()
    batch = optical_flow(frames)
    assert batch.shape == (len(frames) - 1, SIZE, SIZE, 2) and batch.dtype == np.float32
    for t in range(len(frames) - 1):
        np.testing.assert_array_equal(batch[t], optical_flow(frames[t : t + 2])[0])
    # a long video goes in chunks of frames that overlap by one: the same flows
    monkeypatch.setattr(flow_module, "_CHUNK_BYTES", 3 * 4 * SIZE * SIZE * 2)
    np.testing.assert_array_equal(optical_flow(frames), batch)
    # the drift is found: mean flow of pair t is about (0.6 t + 0.3, 0.3)
    centre = batch[:, 16:-16, 16:-16].mean(axis=(1, 2))
    np.testing.assert_allclose(centre, [(0.6 * t + 0.3, 0.3) for t in range(len(frames) - 1)], atol=0.05)


def test_grey_float_and_rgb_uint8_frames_give_the_same_flow() -> None:
    frames = video(3)
    grey = (frames.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)) / 255
    np.testing.assert_allclose(optical_flow(grey), optical_flow(frames), atol=1e-3)
    np.testing.assert_allclose(optical_flow(list(grey)), optical_flow(grey))


@pytest.mark.parametrize(
    ("frames", "error", "message"),
    [
        ([np.zeros((16, 16, 3), np.uint8), np.zeros((16, 20, 3), np.uint8)], ValueError, r"frame 1 has shape \(16, 20, 3\), frame 0 has \(16, 16, 3\)"),
        (np.zeros((1, 16, 16, 3), np.uint8), ValueError, "at least two frames, got 1"),
        (np.zeros((2, 16, 16, 4), np.uint8), ValueError, r"\(T, H, W, 3\) RGB, got shape \(2, 16, 16, 4\)"),
        (np.zeros((2, 4, 16), np.uint8), ValueError, "at least 8 x 8 pixels"),
        (np.zeros((2, 16, 16), np.int32), TypeError, "uint8 .* or float .*, not int32"),
        (np.stack([np.zeros((16, 16)), np.full((16, 16), np.nan)]), ValueError, "frame 1 holds non-finite values"),
    ],
    ids=["mismatched shapes", "one frame", "four channels", "too small", "integer type", "NaN"],
)
def test_bad_frames_are_one_clear_error(frames, error, message) -> None:
    with pytest.raises(error, match=message):
        optical_flow(frames)


def test_warp_moves_pictures_along_the_flow() -> None:
    image = texture(3)
    shifted = warp(image, np.stack([np.full_like(X, 2.0), np.zeros_like(Y)], axis=-1))
    np.testing.assert_array_equal(shifted[:, :-2], image[:, 2:])  # whole pixels: exact
    assert shifted.dtype == np.uint8
    with pytest.raises(ValueError, match="an \\(H, W, 2\\) flow"):
        warp(image, np.zeros((SIZE, SIZE, 3)))


def test_flow_colours_follow_the_wheel() -> None:
    directions = np.array([[[0, 0], [1, 0], [0, 1], [-1, 0], [0, -1], [2, 0]]], np.float32)  # still, right, down, left, up, fast right
    still, right, down, left, up, fast = flow_to_rgb(directions, max_magnitude=1.0)[0].astype(int)
    assert still.tolist() == [255, 255, 255]
    assert right.tolist() == [255, 0, 0]  # Baker et al.'s wheel: rightwards is red
    assert left[0] == 0 and left[1] > 200 and left[2] > 200  # leftwards cyan
    assert len({tuple(c) for c in (right, down, left, up)}) == 4
    assert (fast < right).any() and (fast <= right).all()  # beyond the scale: darker, same hue
    wheel = colour_wheel(33)
    assert wheel[16, 16].tolist() == [255, 255, 255] and wheel[0, 0].tolist() == [0, 0, 0]
    assert wheel[16, 32].tolist() == [255, 0, 0]
    with pytest.raises(ValueError, match="non-finite"):
        flow_to_rgb(np.full((2, 2, 2), np.inf))


def test_the_flow_video_shows_each_frame_beside_its_flow(tmp_path: Path) -> None:
    import av

    frames = video(5)
    path = tmp_path / "flow.mp4"
    flows = write_flow_video(path, frames, fps=5, min_height=128)
    np.testing.assert_array_equal(flows, optical_flow(frames))
    with av.open(str(path)) as container:
        pictures = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(pictures) == len(frames) - 1
    assert pictures[0].shape == (128, 256, 3)  # 64 px upscaled twice, frame | flow
    left = pictures[2][:, :128].reshape(64, 2, 64, 2, 3).mean(axis=(1, 3))
    assert np.abs(left - frames[2]).mean() < 8  # the frame itself (H.264 is lossy)
    # the flow half: the drift (rightwards, a little down) is red-orange, the wheel sits in its corner
    flow_half = pictures[2][48:, 128:].reshape(-1, 3).mean(axis=0)
    assert flow_half[0] > 200 and flow_half[2] < 150


def test_an_unwritable_video_path_is_refused_before_any_flow_is_computed(tmp_path: Path, monkeypatch) -> None:
    def no_work(*args, **kwargs):
        raise AssertionError("flow computed before the path was checked")

    monkeypatch.setattr(flow_module, "optical_flow", no_work)
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="does not exist"):
        write_flow_video(blocker / "flow.mp4", video(3))
    with pytest.raises(ConfigError, match="is a folder"):
        write_flow_video(tmp_path, video(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]
