"""SOF's skill planner and translator: each learns a small problem; trained on real recorded episodes by the commands a
user runs, exported with the parity check, and run as the ``sof`` skill on the simulated robot; bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from s2kit.core.errors import ConfigError, DataError
from s2kit.core.types import CHUNK_SKILLS, Guidance
from s2kit.learning.batch import ACTION_MASK, ACTIONS, DONE, IMAGES, STATE, TEXT
from s2kit.learning.checkpoints import CheckpointError
from s2kit.learning.data import load_frames
from s2kit.plugins.skills.sof.labels import PLAN, SKILLS, frame_tokens
from s2kit.plugins.skills.sof.planner import PlannerConfig, SkillPlanner
from s2kit.plugins.skills.sof.plugin import SofConfig, SofSkill, check_tokens, draw_skill_tokens
from s2kit.plugins.skills.sof.training import load_planner, load_tokenizer
from s2kit.plugins.skills.sof.translator import SkillTranslator, TranslatorConfig
from tests.cli.conftest import invoke  # noqa: F401 - the in-process s2kit app, a fixture
from tests.conftest import fit_on_draws, run_s2kit
from tests.plugins.skills.sof.conftest import nan_actions

#: Networks small enough to train in seconds on one thread: 16-pixel images through 3 trunk blocks (4 x 4 cells).
TINY = {"image_size": 16, "trunk_blocks": 3, "dim": 32, "heads": 2, "layers": 1}
ENV = {"MUJOCO_GL": "osmesa"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _images(colour: torch.Tensor) -> torch.Tensor:
    """(B, 1, 3, 16, 16) uint8 frames of one plain colour each (0: red, 1: blue), with a little noise."""
    base = torch.tensor([[200, 30, 30], [30, 30, 200]], dtype=torch.float32)[colour]  # (B, 3)
    noise = torch.randint(-10, 10, (len(colour), 1, 3, 16, 16)).float()
    return (base[:, None, :, None, None] + noise).clamp(0, 255).to(torch.uint8)


# --- the networks learn --------------------------------------------------------------------


def test_the_planner_learns_plans_that_depend_on_the_frame_the_subtask_and_the_tokens_before() -> None:
    """Four plans, one per (frame colour, subtask) pair, each a sequence whose later tokens follow from the earlier:
    greedy decoding recovers them all, which neither input alone could; and the done signal follows its label."""
    torch.manual_seed(0)
    model = SkillPlanner(PlannerConfig(**TINY, horizon=2, tokens=2, codebook=16))
    subtasks = torch.nn.functional.normalize(torch.randn(2, 384), dim=1)
    plans = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15, 0]])

    def draw(size: int = 32) -> dict[str, torch.Tensor]:
        colour, subtask = torch.randint(0, 2, (size,)), torch.randint(0, 2, (size,))
        text = torch.stack([torch.zeros(size, 384), torch.zeros(size, 384), subtasks[subtask]], dim=1)
        return {IMAGES: _images(colour), TEXT: text, PLAN: plans[colour * 2 + subtask], DONE: (subtask == 1).float()}

    fit_on_draws(model, draw, 150)
    batch = draw(64)
    with torch.no_grad():
        out = model.sample(batch)
    assert torch.equal(out[SKILLS], batch[PLAN])
    assert torch.equal((out[DONE] > 0.5).float(), batch[DONE])
    figures = model.validation_metrics([batch], [out])
    assert figures["token_accuracy"] == figures["window_accuracy"] == figures["done_accuracy"] == 1.0


def test_the_translator_learns_to_act_out_tokens_from_the_state() -> None:
    """Actions that are the tokens' own motion plus the state: learnt to a small fraction of their variance."""
    torch.manual_seed(0)
    model = SkillTranslator(TranslatorConfig(**TINY, cameras=["head"], state_dim=3, action_dim=3, chunk=4, tokens=2, codebook=8))
    motion = torch.randn(8, 4, 3)

    def draw(size: int = 32) -> dict[str, torch.Tensor]:
        tokens, state = torch.randint(0, 8, (size, 2)), torch.randn(size, 3)
        actions = motion[tokens[:, 0]] + 0.5 * motion[tokens[:, 1]] + state[:, None]
        return {IMAGES: _images(torch.zeros(size, dtype=torch.long)), STATE: state, SKILLS: tokens, ACTIONS: actions,
                ACTION_MASK: torch.ones(size, 4, dtype=torch.bool)}  # fmt: skip

    fit_on_draws(model, draw, 300)
    batch = draw(256)
    with torch.no_grad():
        error = float(((model.sample(batch)[ACTIONS] - batch[ACTIONS]) ** 2).mean())
    assert error < 0.1 * float(batch[ACTIONS].var()), error


# --- from recorded episodes to a running skill -----------------------------------------------


@pytest.fixture(scope="module")
def parts(collected: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tokenizer, a planner and a translator trained on the recorded episodes by the installed commands (a few steps)."""
    root = tmp_path_factory.mktemp("sofparts")
    data = root / "data"
    shutil.copytree(collected, data, ignore=shutil.ignore_patterns(".s2kit-cache"))
    small = ["--set=threads=1", "--set=batch_size=8", "--set=model.dim=32", "--set=model.heads=2"]
    runs = {name: root / name for name in ("tokenizer", "planner", "translator")}
    steps = [
        ("sof", "train-tokenizer", str(data), "--out", str(runs["tokenizer"]), "--window", "4", "--steps", "3", *small,
         "--set=model.image_size=16", "--set=model.channels=8", "--set=val_fraction=0"),
        ("sof", "train-planner", str(data), "--tokenizer", str(runs["tokenizer"]), "--out", str(runs["planner"]), "--steps", "3",
         *small, "--set=model.image_size=32", "--set=model.layers=1", "--set=val_fraction=0", "--json"),
        ("train", "--executor", "sof-translator", "--data", str(data), "--out", str(runs["translator"]), "--set=steps=3",
         *small, f"--set=model.tokenizer={runs['tokenizer']}", "--set=model.image_size=32", "--set=model.layers=1",
         "--set=augment=false", "--set=val_fraction=0"),
    ]  # fmt: skip
    for args in steps:
        done = run_s2kit(*args, env=ENV)
        assert done.returncode == 0, (args, done.stderr)
    return runs | {"data": data}


def test_the_parts_train_on_recorded_episodes_and_agree_on_the_tokens(parts: dict[str, Path]) -> None:
    tokenizer, info, _ = load_tokenizer(parts["tokenizer"])
    planner, planner_info, _ = load_planner(parts["planner"])
    labels = frame_tokens(parts["tokenizer"], [parts["data"]])
    assert labels.window == 4 and labels.tokens.shape == (48, 2) and labels.tokens.max() < 125
    assert int(labels.whole.sum()) == 2 * (24 - 4)  # the last window's frames of each episode start no whole window
    assert (planner_info.model.tokens, planner_info.model.codebook, planner_info.model.window) == (2, 125, 4)  # set by training
    translator = json.loads((sorted((parts["translator"] / "checkpoints").iterdir())[-1] / "config.json").read_text())
    assert translator["executor"] == "sof-translator"
    assert (translator["model"]["tokens"], translator["model"]["codebook"], translator["model"]["chunk"]) == (2, 125, 4)
    assert planner_info.datasets[0]["episodes"] == 2 and info.model.window == 4


def test_the_translator_exports_to_onnx_with_the_tokens_as_an_input(parts: dict[str, Path]) -> None:
    out = parts["translator"] / "model.onnx"
    done = run_s2kit("export", str(parts["translator"]), "--out", str(out), "--json", env=ENV)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["max_abs_actions"] < 1e-3 and "observations of robot 'hsr'" in report["check"]
    import onnxruntime as ort

    assert [i.name for i in ort.InferenceSession(str(out)).get_inputs()] == ["images", "state", SKILLS]


def test_the_sof_skill_drives_the_simulated_robot_and_reports_its_tokens(parts: dict[str, Path], tmp_path: Path) -> None:
    """Alone (no executor), with the oracle planner: every chunk comes from the skill, the episode result lists the
    tokens it acted out, and the video shows them."""
    translator = sorted((parts["translator"] / "checkpoints").iterdir())[-1]
    exported = run_s2kit("export", str(translator), "--out", str(translator / "model.onnx"), "--set", "check=false", env=ENV)
    assert exported.returncode == 0, exported.stderr
    results = {}
    for backend in ("torch", "onnxruntime"):
        done = run_s2kit(
            "run", "--robot", "hsr", "--planner", "oracle", "--skill", "sof", "--episodes", "1", "--json",
            "--set", f"skill.planner={parts['planner']}", "--set", f"skill.translator={parts['translator']}",
            "--set", f"skill.backend={backend}", "--set", "runtime.max_steps=12", "--set", "runtime.execute_horizon=4",
            "--set", "robot.image_height=32", "--set", "robot.image_width=32",
            *(["--video", str(tmp_path / "video")] if backend == "torch" else []), env=ENV,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        (episode,) = json.loads(done.stdout)["episodes"]
        results[backend] = episode
        assert episode["status"] == "max_steps" and episode["actors"] == {"skill": 3}
        assert len(episode["skills"]) == 3 and all(len(t) == 2 and all(0 <= v < 125 for v in t) for t in episode["skills"])
    # the same plan at reset (later observations may part by the backends' rounding)
    assert results["torch"]["skills"][0] == results["onnxruntime"]["skills"][0]
    assert list((tmp_path / "video").glob("*.mp4"))


def test_eval_scores_the_skill_acting_alone(parts: dict[str, Path]) -> None:
    done = run_s2kit(
        "eval", "--robot", "hsr", "--skill", "sof", "--suites", "id", "--episodes", "2", "--workers", "1", "--json",
        "--set", f"skill.planner={parts['planner']}", "--set", f"skill.translator={parts['translator']}",
        "--set", "runtime.max_steps=8", "--set", "robot.image_height=32", "--set", "robot.image_width=32", env=ENV,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    episodes = report["suites"]["id"]["episodes"]
    assert report["settings"]["skill"] == "sof" and report["pipeline"]["executor"] is None
    assert len(episodes) == 2 and all(e["actors"] == {"skill": 2} and len(e["skills"]) == 2 for e in episodes)


def test_the_skill_acts_out_given_tokens_and_encodes_clips(parts: dict[str, Path], collected: Path) -> None:
    from s2kit.core.registry import get_registry

    registry = get_registry()
    robot = registry.create("robot", {"name": "hsr", "image_height": 32, "image_width": 32})
    skill = SofSkill(SofConfig(planner=parts["planner"], translator=parts["translator"], tokenizer=parts["tokenizer"]))
    try:
        skill.setup(robot.spec)
        skill.reset()
        observation = robot.reset(seed=0)
        chunk = skill.act(observation, Guidance(goal="tidy the table", skills=[7, 9]))
        assert chunk.info[CHUNK_SKILLS] == [7, 9] and chunk.actions.shape == (4, 7) and np.isfinite(chunk.actions).all()
        planned = skill.act(observation, Guidance(goal="tidy the table", subtasks=["pick up the red cube"]))
        assert len(planned.info["skill_plan"]) == 4 and planned.info[CHUNK_SKILLS] == planned.info["skill_plan"][:2]
        frames = load_frames([collected], cameras=["head"], image_size=32, state=None, done_window=8)
        clip = frames.frames(torch.arange(24))[:, 0].permute(0, 2, 3, 1).numpy()  # episode 0: 24 frames
        tokens = skill.encode(clip)
        labels = frame_tokens(parts["tokenizer"], [collected])
        assert tokens.tolist() == labels.tokens[[0, 4, 8, 12, 16]].flatten().tolist()  # windows at frames 0, 4, ..., 16
        with pytest.raises(ConfigError, match="holds no window of 4 flows"):
            skill.encode(clip[:4])
    finally:
        skill.close()
        robot.close()


def test_the_overlay_draws_one_block_per_token_on_the_head_camera() -> None:
    image = np.zeros((32, 32, 3), np.uint8)
    drawn = draw_skill_tokens(image, "head", {CHUNK_SKILLS: [3, 3]})
    assert drawn is not None and drawn[0, 0].any() and (drawn[0, 0] == drawn[0, 8]).all() and not drawn[10:].any()
    other = draw_skill_tokens(image, "head", {CHUNK_SKILLS: [3, 4]})
    assert not (other[0, 0] == other[0, 8]).all()  # another token, another colour
    assert draw_skill_tokens(image, "wrist", {CHUNK_SKILLS: [3, 3]}) is None and draw_skill_tokens(image, "head", {}) is None


# --- data and bad input ------------------------------------------------------------------------


def test_the_planner_reads_no_actions(collected: Path, tmp_path: Path) -> None:
    """Frames loaded without actions come from a dataset whose actions are all NaN, which an executor's training refuses."""
    broken = nan_actions(collected, tmp_path / "nan_actions")
    with pytest.raises(DataError, match="non-finite state or action"):
        load_frames([broken], cameras=["head"], image_size=16, state=None, done_window=8)
    frames = load_frames([broken], cameras=["head"], image_size=16, state=None, done_window=8, actions=False)
    assert len(frames) == 48 and frames.actions.shape == (48, 0) and frames.action_names == []
    batch = frames.batch(torch.arange(4), chunk=4, embeddings=torch.zeros(len(frames.strings), 384), norm=_norm(frames))
    assert ACTIONS not in batch and ACTION_MASK not in batch and batch[TEXT].shape == (4, 3, 384)


def _norm(frames):
    from s2kit.learning.inputs import Normalizer

    return Normalizer.fit(frames.state.numpy(), frames.actions.numpy())


def test_bad_input_is_one_error(parts: dict[str, Path], invoke, tmp_path: Path) -> None:
    assert check_tokens([1, 2, 3], 2, 125, "x") == [1, 2]
    for tokens, message in ((None, "carries no skill tokens"), ([4], r"1 skill token\(s\) given, a window takes 2"), ([4, 125], r"\[125\] outside 0..124")):
        with pytest.raises(ConfigError, match=message):
            check_tokens(tokens, 2, 125, "x")
    with pytest.raises(ConfigError, match="needs planner and translator"):
        SofSkill(SofConfig())
    with pytest.raises(CheckpointError, match="executor 'sof-translator'.s checkpoint, not a SOF skill planner's"):
        SofSkill(SofConfig(planner=parts["translator"], translator=parts["translator"]))
    with pytest.raises(CheckpointError, match="not a SOF skill tokenizer's"):
        load_tokenizer(parts["planner"])
    cases = [
        (("sof", "train-planner", str(parts["data"]), "--tokenizer", str(parts["planner"])), "not a SOF skill tokenizer's"),
        (("sof", "train-planner", str(parts["data"]), "--tokenizer", str(tmp_path / "none")), "does not exist"),
        (("train", "--executor", "sof-translator", "--data", str(parts["data"])), "--set model.tokenizer=TOKENIZER_RUN"),
        (("train", "--executor", "sof-translator", "--data", str(parts["data"]), "--set", f"model.tokenizer={parts['translator']}"),
         "not a SOF skill tokenizer's"),
    ]  # fmt: skip
    for args, message in cases:
        result = invoke(*args, "--out", str(tmp_path / "run"))
        assert result.exit_code == 2, (args, result.output)
        assert message in " ".join(result.output.split()) and "Traceback" not in result.output, (args, result.output)
    assert not (tmp_path / "run").exists()
