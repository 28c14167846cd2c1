"""SOF's skill tokenizer: FSQ, what it learns, causality, the action-free sources it reads, bad input, checkpoints."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from s2kit.core.config import validate_overrides
from s2kit.core.errors import ConfigError, DataError
from s2kit.datasets.lerobot import LeRobotWriter
from s2kit.learning.batch import IMAGES
from s2kit.learning.checkpoints import CheckpointError, save_checkpoint
from s2kit.plugins.skills.sof.fsq import FSQ
from s2kit.plugins.skills.sof.tokenizer import FLOW, TOKENS, SkillTokenizer, TokenizerConfig
from s2kit.plugins.skills.sof.training import REPORT, TokenizerInfo, TokenizerTrainConfig, load_tokenizer, train_tokenizer
from s2kit.plugins.skills.sof.videos import load_windows, open_sources
from s2kit.workflows.video import write_video
from tests.cli.conftest import invoke  # noqa: F401 - the in-process s2kit app, a fixture
from tests.conftest import run_s2kit
from tests.plugins.skills.sof.conftest import nan_actions

HEAD = "observation.images.head"
#: A network small enough to train in seconds on one thread.
TINY = {"dim": 32, "heads": 2, "channels": 8, "encoder_layers": 1, "decoder_layers": 1}
TINY_SETS = [f"model.{k}={v}" for k, v in TINY.items()]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def config(*sets: str) -> TokenizerTrainConfig:
    return validate_overrides(TokenizerTrainConfig, ["threads=1", "log_every=1000", *sets], "test")  # type: ignore[return-value]


# --- data ----------------------------------------------------------------------------------


def squares(length: int, direction: tuple[int, int], start: tuple[int, int], size: int = 32, side: int = 8, seed: int = 0) -> np.ndarray:
    """(length, size, size, 3) uint8: a still, faintly textured background and a bright textured square of ``side``
    pixels moving one pixel per frame in ``direction`` (dy, dx) from ``start`` (its top left corner)."""
    rng = np.random.default_rng(seed)
    background = (60 + 20 * rng.random((size, size, 1))).repeat(3, axis=2)
    patch = 150 + 100 * rng.random((side, side, 3))
    frames = np.empty((length, size, size, 3), np.uint8)
    for t in range(length):
        frame = background.copy()
        y, x = start[0] + direction[0] * t, start[1] + direction[1] * t
        frame[y : y + side, x : x + side] = patch
        frames[t] = frame
    return frames


DIRECTIONS = ((0, 1), (0, -1), (1, 0), (-1, 0))


def square_episodes(count: int, length: int = 8, size: int = 16, side: int = 4, seed: int = 0) -> list[np.ndarray]:
    """Episodes of one square each, moving in one of four directions across the middle, its path shifted by up to two
    pixels each way: the direction is in the motion alone, the position in the first frame."""
    rng = np.random.default_rng(seed)
    episodes = []
    centre = size // 2 - side // 2
    for e in range(count):
        dy, dx = DIRECTIONS[rng.integers(4)]
        y = centre + rng.integers(-2, 3) - dy * (length // 2)
        x = centre + rng.integers(-2, 3) - dx * (length // 2)
        episodes.append(squares(length, (dy, dx), (int(y), int(x)), size, side, seed=seed * 1000 + e))
    return episodes


@pytest.fixture(scope="module")
def square_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LeRobot dataset of moving squares with a head camera and nothing else: no state, no action."""
    root = tmp_path_factory.mktemp("squares") / "dataset"
    with LeRobotWriter(root, fps=10, robot_type="sim_arm", features={HEAD: {"dtype": "image", "shape": [16, 16, 3]}}, use_videos=False) as writer:
        for frames in square_episodes(48):
            for frame in frames:
                writer.add_frame({HEAD: frame}, "watch")
            writer.save_episode()
    return root


# --- FSQ -----------------------------------------------------------------------------------


def test_fsq_is_exact_on_its_grid_and_every_code_has_one_index() -> None:
    fsq = FSQ([8, 5, 3])
    assert fsq.codebook_size == 120
    indices = torch.arange(120)
    codes = fsq.codes(indices)  # (120, 3)
    assert torch.equal(fsq.indices(codes), indices) and len({tuple(c.tolist()) for c in codes}) == 120
    half = fsq.levels // 2
    assert torch.equal(codes * half, torch.round(codes * half))  # integer steps of 1 / (L // 2)
    assert codes.min(0).values.tolist() == [-1, -1, -1] and codes.max(0).values.tolist() == [0.75, 1, 1]
    # a latent whose bounded value is a grid point quantizes to exactly that point
    steps = codes * half
    offset = (fsq.levels % 2 == 0).float() * 0.5
    bound = (fsq.levels - 1) * (1 + 1e-3) / 2
    latents = torch.atanh((steps + offset) / bound) - torch.atanh(offset / bound)
    quantized, found = fsq(latents)
    assert torch.equal(quantized, codes) and torch.equal(found, indices)
    # any latent lands on the grid, and wide latents reach every code
    quantized, found = fsq(torch.randn(20000, 3) * 3)
    assert torch.equal(fsq.codes(found), quantized) and len(found.unique()) == 120


def test_fsq_passes_gradients_straight_through_the_rounding() -> None:
    fsq = FSQ([8, 5, 3])
    z = torch.randn(64, 3, requires_grad=True)
    weights = torch.randn(64, 3)
    (fsq(z)[0] * weights).sum().backward()
    through = z.grad.clone()
    z.grad = None
    (fsq.bound(z) / (fsq.levels // 2) * weights).sum().backward()  # the same without rounding
    assert torch.allclose(through, z.grad) and through.abs().min() > 0


@pytest.mark.parametrize(
    ("levels", "message"),
    [([], "at least one dimension"), ([8, 1], "at least 2 (got 1)"), ([8, 2.5], "integer"), ([256, 256, 2], "at most 65536")],
)
def test_invalid_fsq_levels_are_one_error(levels: list, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate_overrides(TokenizerConfig, [f"levels={levels}"], "tokenizer")


# --- the network ---------------------------------------------------------------------------


def test_a_token_depends_on_nothing_after_its_segment_nor_on_the_frame() -> None:
    torch.manual_seed(0)
    model = SkillTokenizer(TokenizerConfig(image_size=16, window=8, tokens=4, **TINY)).eval()
    flow = torch.randn(3, 8, 2, 16, 16)
    with torch.no_grad():
        before = model.latents(flow)  # (3, 4, d): token k at flows 2k, 2k + 1
        for k in range(4):
            later = flow.clone()
            later[:, 2 * k + 2 :] = torch.randn_like(later[:, 2 * k + 2 :]) * 5  # every flow after token k's segment
            after = model.latents(later)
            assert torch.allclose(after[:, : k + 1], before[:, : k + 1], atol=1e-6), f"token {k} saw a later flow"
            if k < 3:
                assert (after[:, k + 1 :] - before[:, k + 1 :]).abs().max() > 1e-3  # the later tokens do see them
        inside = flow.clone()
        inside[:, 1] += 1.0  # a flow inside token 0's segment changes token 0
        assert (model.latents(inside)[:, 0] - before[:, 0]).abs().max() > 1e-3
        images = torch.randint(0, 255, (3, 1, 3, 16, 16), dtype=torch.uint8)
        batch = {FLOW: flow, IMAGES: images}
        other = {FLOW: flow, IMAGES: torch.randint(0, 255, (3, 1, 3, 16, 16), dtype=torch.uint8)}
        assert torch.equal(model.sample(batch)[TOKENS], model.sample(other)[TOKENS])  # the frame conditions the decoder only


def test_the_tokenizer_learns_the_motion_of_moving_squares(square_dataset: Path, tmp_path: Path) -> None:
    """Held-out windows reconstructed from one token each, far better than zero or mean flow; other windows' tokens
    reconstruct them far worse, so the motion is in the tokens, not in the first frame."""
    out = tmp_path / "run"
    sets = [*TINY_SETS, "model.image_size=16", "model.window=4", "model.tokens=1", "model.levels=[5,5]", "val_fraction=0.25",
            "steps=800", "warmup_steps=20", "batch_size=16", "val_every=1000", "save_every=1000"]  # fmt: skip
    train_tokenizer([square_dataset], out, config(*sets), log=lambda m: None)
    report = json.loads((out / REPORT).read_text())
    assert report["held_out"] and report["episodes"] == 12 and report["windows"] == 12 * (8 - 4)
    # (over six seeds of data and training: 0.05-0.13 of zero flow's; 0.6-0.9 where the tokens merge directions)
    assert report["epe_px"] < 0.3 * report["epe_zero_px"], report
    assert report["epe_px"] < 0.3 * report["epe_mean_px"], report
    assert report["codes_used"] >= 3  # the four directions do not share codes
    model, _, _ = load_tokenizer(out)
    windows = load_windows(open_sources([square_dataset], "head", 4), image_size=16, window=4)
    batch = windows.batch(torch.arange(len(windows)))
    with torch.no_grad():
        codes, _ = model.encode(batch[FLOW])
        own = model.decode(codes, batch[IMAGES][:, 0])
        shuffled = model.decode(codes[torch.randperm(len(codes), generator=torch.Generator().manual_seed(0))], batch[IMAGES][:, 0])
    truth = batch[FLOW].float()
    error = lambda estimate: float(((estimate - truth) ** 2).sum(2).sqrt().mean())  # noqa: E731
    assert error(own) < 0.4 * error(shuffled)


def test_training_runs_on_the_kit_resumes_bit_for_bit_and_records_what_it_read(square_dataset: Path, tmp_path: Path) -> None:
    sets = [*TINY_SETS, "model.image_size=16", "model.window=4", "batch_size=4", "val_fraction=0.25", "save_every=3", "val_every=3"]
    whole = train_tokenizer([square_dataset], tmp_path / "whole", config(*sets, "steps=6"), log=lambda m: None)
    train_tokenizer([square_dataset], tmp_path / "parts", config(*sets, "steps=3"), log=lambda m: None)
    part = train_tokenizer([square_dataset], tmp_path / "parts", config(*sets, "steps=6"), resume=True, log=lambda m: None)
    a, b = load_tokenizer(whole)[0].state_dict(), load_tokenizer(part)[0].state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    _, info, _ = load_tokenizer(tmp_path / "whole")
    assert info.step == 6 and info.model.window == 4 and info.fps == 10
    assert info.sources == [{"path": str(square_dataset), "kind": "lerobot", "camera": HEAD, "episodes": 48, "frames": 48 * 8, "fps": 10.0}]
    lines = [json.loads(line) for line in (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()]
    assert any("val_epe_px" in line and "val_perplexity" in line for line in lines)
    with pytest.raises(ConfigError, match="other settings"):
        train_tokenizer([square_dataset], tmp_path / "parts", config(*sets, "steps=9", "model.levels=[4,4]"), resume=True, log=lambda m: None)


# --- what it reads -------------------------------------------------------------------------


def test_a_collected_dataset_is_read_for_its_video_alone(collected: Path, tmp_path: Path) -> None:
    """The windows of a dataset whose actions are all NaN are those of the dataset: its actions are never read."""
    from s2kit.learning.data import load_frames

    broken = nan_actions(collected, tmp_path / "no_actions")
    with pytest.raises(DataError, match="non-finite state or action"):  # what an executor's training makes of it
        load_frames([broken], cameras=["head"], image_size=16, state=None, done_window=8)
    original = load_windows(open_sources([collected], "head", 4), image_size=16, window=4)
    read = load_windows(open_sources([broken], "head", 4), image_size=16, window=4)
    assert len(read) == len(original) == 2 * (24 - 4)
    everything = torch.arange(len(read))
    for key in (FLOW, IMAGES):
        assert torch.equal(read.batch(everything)[key], original.batch(everything)[key])
    assert read.batch(everything)[FLOW].abs().max() > 0.1  # the robot moves


def test_a_folder_of_videos_is_read_file_by_file_and_cached_until_it_changes(tmp_path: Path) -> None:
    folder = tmp_path / "videos"
    folder.mkdir()
    write_video(folder / "a.mp4", squares(10, (0, 1), (12, 2)), fps=5)
    write_video(folder / "b.mp4", squares(14, (1, 0), (2, 12)), fps=5)
    (folder / "notes.txt").write_text("not a video")
    (source,) = open_sources([folder], "head", 4)
    assert source.kind == "videos" and source.lengths == (10, 14) and source.fps == 5
    windows = load_windows([source], image_size=32, window=4)
    assert len(windows) == (10 - 4) + (14 - 4) and windows.num_episodes == 2
    flow = windows.batch(torch.arange(len(windows)))[FLOW].float()  # (windows, 4, 2, 32, 32)
    moving = flow.norm(dim=2) > 0.5
    right, down = flow[:6, :, 0][moving[:6]].mean(), flow[6:, :, 1][moving[6:]].mean()
    assert 0.6 < right < 1.4 and 0.6 < down < 1.4  # one pixel per frame, right then down
    cached = sorted(p.name for p in (folder / ".s2kit-cache").iterdir())
    assert len(cached) == 4 and any(name.startswith("flow") for name in cached)
    write_video(folder / "c.mp4", squares(8, (0, -1), (12, 20)), fps=5)  # the folder changed: read again
    assert len(load_windows(open_sources([folder], "head", 4), image_size=32, window=4)) == 16 + 4


# --- bad input -----------------------------------------------------------------------------


def test_each_bad_input_is_one_error_before_anything_is_decoded_or_trained(invoke, collected: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    data = tmp_path / "data"
    shutil.copytree(collected, data, ignore=shutil.ignore_patterns(".s2kit-cache"))
    cases = [
        ([str(data), "--camera", "top"], "has no camera 'top' (it has head, wrist)"),
        ([str(empty)], "holds no video files (.mp4"),
        ([str(data), "--window", "24"], "has 24 frame(s), and a window of 24 flow fields needs 25"),
        ([str(data), "--levels", "8,1"], "FSQ levels [8, 1]: each must be an integer of at least 2"),
        ([str(data), "--levels", "8,x"], "--levels '8,x': give integers"),
        ([str(data), "--window", "6", "--tokens", "4"], "window 6 is not a multiple of tokens 4"),
        ([str(tmp_path / "missing")], "does not exist"),
    ]
    for args, message in cases:
        result = invoke("sof", "train-tokenizer", *args, "--out", str(tmp_path / "run"))
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output and "Traceback" not in result.output, (args, result.output)
        assert len(result.output.strip().splitlines()) <= 2, result.output  # one error (a long line may wrap once)
    assert not (tmp_path / "run").exists() and not (data / ".s2kit-cache").exists()


def test_the_installed_command_trains_and_reports(collected: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    sets = [f"--set={s}" for s in (*TINY_SETS, "model.image_size=16", "threads=1", "val_fraction=0.5", "batch_size=4")]
    done = run_s2kit("sof", "train-tokenizer", str(collected), "--out", str(out), "--window", "4", "--steps", "2", "--json", *sets)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report == json.loads((out / REPORT).read_text())
    assert report["episodes"] == 1 and report["windows"] == 20 and report["codebook"] == 125 and report["held_out"]
    assert {"epe_px", "epe_zero_px", "epe_mean_px", "code_usage", "perplexity"} <= report.keys()
    assert "skill tokenizer on 1 held-out episodes (20 windows): EPE" in done.stderr  # the report's line in the log


# --- checkpoints ---------------------------------------------------------------------------


def test_a_checkpoint_round_trip_gives_identical_tokens_and_a_corrupt_one_is_one_error(tmp_path: Path) -> None:
    torch.manual_seed(1)
    model = SkillTokenizer(TokenizerConfig(image_size=16, window=4, **TINY))
    model.flow_scale.fill_(0.7)
    model.mean_flow.normal_()
    info = TokenizerInfo(model=model.config, fps=10, flow="flow1-test")
    folder = save_checkpoint(tmp_path / "ckpt", model, info)
    batch = {FLOW: torch.randn(8, 4, 2, 16, 16) * 2, IMAGES: torch.randint(0, 255, (8, 1, 3, 16, 16), dtype=torch.uint8)}
    loaded, read, _ = load_tokenizer(folder)
    mine, theirs = model.eval().sample(batch), loaded.sample(batch)
    assert torch.equal(mine[TOKENS], theirs[TOKENS]) and torch.equal(mine[FLOW], theirs[FLOW])
    assert len(mine[TOKENS].unique()) > 1 and read.model == model.config
    # a truncated weights file, a config that is not JSON, another kind of checkpoint
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="model.safetensors is corrupt"):
        load_tokenizer(folder)
    weights.write_bytes(data)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not readable JSON"):
        load_tokenizer(folder)
    (folder / "config.json").write_text(json.dumps({"format": 2, "executor": "s2", "model": {}}))
    with pytest.raises(CheckpointError, match="executor 's2''s checkpoint, not a SOF skill tokenizer's"):
        load_tokenizer(folder)
