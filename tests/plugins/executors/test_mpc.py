"""The mpc executor: candidates around any executor, clamped, scored (the simulator's rollouts), the best executed."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from s2kit.core.checkpoints import CheckpointError
from s2kit.core.errors import ConfigError, UnknownPluginError
from s2kit.core.registry import Registry, get_registry, load_registry
from s2kit.core.types import Guidance, Observation
from s2kit.plugins.executors.mpc.executor import MpcConfig, MpcExecutor
from s2kit.plugins.executors.mpc.scorers import Scorer
from tests.conftest import run_s2kit
from tests.learning.compat_inputs import SPEC, observations

GUIDANCE = Guidance(goal="put the red cube in the bowl", subtasks=["pick up the red cube"])
LIMIT = 0.05  # the compat robot's largest translation per step (ee_delta_space's default)


class Recording(Scorer):
    """Scores by a function of the candidates and keeps what it was given."""

    def __init__(self, score) -> None:  # noqa: ANN001
        self.function, self.seen = score, []

    def score(self, observation: Observation, guidance: Guidance, candidates: np.ndarray) -> np.ndarray:
        self.seen.append(candidates.copy())
        return self.function(candidates)


def mpc(scorer: Scorer | None = None, **options) -> MpcExecutor:
    executor = MpcExecutor(MpcConfig(scorer="sim", **options))
    if scorer is not None:
        executor.scorer = scorer
    executor.setup(SPEC)
    executor.reset()
    return executor


def test_every_candidate_passes_the_safety_layer_before_it_is_scored(cli_registry: Registry) -> None:
    """The inner asks for 8 cm a step; no candidate the scorer sees, and no chunk executed, moves more than 5 cm."""
    pushy = Recording(lambda c: c[:, :, 0].sum(axis=1))  # the further in x, the better
    executor = mpc(pushy, inner={"name": "constant", "value": [0.08, 0, 0, 0, 0, 0, 1], "horizon": 6}, candidates=12, noise=3.0)
    chunk = executor.act(observations()[0], GUIDANCE)
    (seen,) = pushy.seen
    assert seen.shape == (12, 5, 7)  # every candidate, its first `window` steps
    assert np.abs(seen[:, :, :3]).max() <= LIMIT + 1e-7 and chunk.actions.shape == (6, 7)
    assert np.abs(chunk.actions[:, :3]).max() <= LIMIT + 1e-7
    assert chunk.info["mpc"]["candidates"] == 12 and chunk.info["mpc"]["score"] >= chunk.info["mpc"]["inner_score"]


def test_the_best_candidate_is_executed_and_the_best_kept_for_the_next_step(cli_registry: Registry) -> None:
    toward = Recording(lambda c: -np.abs(c[:, :, 1] - 0.02).sum(axis=1))  # the scorer wants dy = 2 cm every step
    executor = mpc(toward, inner={"name": "constant", "value": [0, 0, 0, 0, 0, 0, 1]}, candidates=16, noise=1.0, buffer=2)
    first_obs, second_obs = observations()[0], observations()[1]  # 0.1 s apart: one step executed in between
    chunk = executor.act(first_obs, GUIDANCE)
    assert chunk.info["mpc"]["source"] == "perturbed" and chunk.info["mpc"]["score"] > chunk.info["mpc"]["inner_score"]
    assert abs(chunk.actions[0, 1] - 0.02) < abs(0 - 0.02)  # closer to what the scorer wants than the inner's chunk
    executor.act(second_obs, GUIDANCE)
    kept = toward.seen[1][1:3]  # after the inner's chunk (the inner gives one): the two kept, shifted by one step
    np.testing.assert_allclose(kept[0, :4], chunk.actions[1:5, :], atol=1e-7)


def test_more_iterations_refine_around_the_best(cli_registry: Registry) -> None:
    target = Recording(lambda c: -np.abs(c[:, :, 0] - 0.013).sum(axis=1))
    one = mpc(target, inner={"name": "constant"}, candidates=8, noise=1.0, seed=1).act(observations()[0], GUIDANCE)
    target = Recording(target.function)
    three = mpc(target, inner={"name": "constant"}, candidates=8, noise=1.0, iterations=3, seed=1).act(observations()[0], GUIDANCE)
    assert len(target.seen) == 3 and three.info["mpc"]["candidates"] == 24
    assert three.info["mpc"]["score"] >= one.info["mpc"]["score"]


def test_a_scorer_that_fails_falls_back_to_the_inner_chunk_and_says_so_once(cli_registry: Registry, caplog: pytest.LogCaptureFixture) -> None:
    def broken(candidates: np.ndarray) -> np.ndarray:
        raise RuntimeError("critic exploded")

    executor = mpc(Recording(broken), inner={"name": "constant", "value": [0.01, 0, 0, 0, 0, 0, 1]})
    with caplog.at_level(logging.WARNING):
        chunks = [executor.act(o, GUIDANCE) for o in observations()]
    assert all(np.allclose(c.actions[:, 0], 0.01) for c in chunks)
    assert chunks[0].info["mpc"]["fallback"] == "RuntimeError: critic exploded"
    assert sum("critic exploded" in r.message for r in caplog.records) == 1
    nan = mpc(Recording(lambda c: np.full(len(c), np.nan)), inner={"name": "constant"})
    assert "no candidate got a finite score" in nan.act(observations()[0], GUIDANCE).info["mpc"]["fallback"]


def test_a_non_finite_inner_chunk_reaches_the_runtime_unchanged_to_be_refused(cli_registry: Registry) -> None:
    executor = mpc(Recording(lambda c: np.zeros(len(c))), inner={"name": "faulty", "after": 0})
    chunk = executor.act(observations()[0], GUIDANCE)
    assert np.isnan(chunk.actions).any() and "mpc" not in chunk.info  # the runtime's safety layer stops the episode


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"inner": {"name": "nonesuch"}}, UnknownPluginError, "unknown executor 'nonesuch'"),
        ({"inner": {"name": "mpc"}}, ConfigError, "another executor than mpc"),
        ({"scorer": "critic"}, ConfigError, "needs a trained critic: --set executor.critic=RUN"),
        ({"scorer": "oracle"}, ConfigError, "scorer"),
        ({"critic": str(Path(__file__).parents[2] / "learning" / "compat" / "flow_s2")}, ConfigError, "is a checkpoint of executor 's2'"),
        ({"critic": "/nonexistent/critic"}, CheckpointError, "/nonexistent/critic does not exist"),
    ],
)
def test_a_bad_config_is_one_clear_error_before_any_episode(options: dict, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        load_registry(env={}).create("executor", {"name": "mpc", "inner": {"name": "scripted"}, **options})


def test_perturbing_a_dimension_the_actions_lack_is_refused_at_setup(cli_registry: Registry) -> None:
    with pytest.raises(ConfigError, match=r"perturb names dimensions \[9\]"):
        mpc(inner={"name": "constant"}, perturb=[0, 9])


def test_the_sim_scorer_needs_the_simulator(cli_registry: Registry) -> None:
    with pytest.raises(ConfigError, match="scorer 'sim' needs the simulator"):
        mpc(inner={"name": "constant"}).act(observations()[0], GUIDANCE)


def test_a_generative_head_gives_samples_in_one_batch_and_a_regression_head_one_chunk() -> None:
    compat = Path(__file__).parents[2] / "learning" / "compat"
    flow = get_registry().create("executor", {"name": "s2", "checkpoint": str(compat / "flow_s2")})
    flow.setup(SPEC)
    flow.reset()
    alone = flow.act(observations()[0], GUIDANCE)
    flow.reset()
    samples = flow.propose(observations()[0], GUIDANCE, 4)
    assert len(samples) == 4
    np.testing.assert_allclose(samples[0].actions, alone.actions, atol=1e-5)  # act's chunk first, the same noise
    assert min(np.abs(s.actions - samples[0].actions).max() for s in samples[1:]) > 1e-4
    regression = get_registry().create("executor", {"name": "baseline", "checkpoint": str(compat / "baseline_regression")})
    regression.setup(SPEC)
    assert len(regression.propose(observations()[0], GUIDANCE, 4)) == 1


def test_the_sim_scorer_takes_the_hand_to_the_object_an_inner_that_holds_still_does_not(cli_registry: Registry) -> None:
    """In the simulator: around an executor that never moves, mpc with rollouts reaches for the first subtask's object."""
    robot = get_registry().create("robot", {"name": "hsr", "suite": "id", "render": False})
    oracle = get_registry().create("planner", {"name": "oracle"})
    try:
        distances = {}
        for inner_only in (True, False):
            obs = robot.reset(seed=5)
            executor = mpc(inner={"name": "constant", "value": [0, 0, 0, 0, 0, 0, 1]}, candidates=8, noise=1.0)
            executor.setup(robot.spec)
            guidance = oracle.plan(robot.instruction, obs)
            start = robot.progress_potential()
            for _ in range(6):
                chunk = executor.act(obs, guidance) if not inner_only else executor.inner.act(obs, guidance)
                for action in chunk.actions[:4]:
                    robot.apply(action, "ee_delta")
                obs = robot.observe()
            distances[inner_only] = robot.progress_potential() - start
        assert distances[True] == pytest.approx(0.0, abs=0.01)
        assert distances[False] > 0.05  # five centimetres or more of progress in 24 steps
    finally:
        robot.close()


def test_mpc_runs_in_the_loop_from_the_command_line(tmp_path: Path) -> None:
    done = run_s2kit("eval", "--robot", "hsr", "--executor", "mpc", "--suites", "id", "--episodes", "1", "--workers", "1",
                     "--set", "executor.scorer=sim", "--set", "executor.inner.name=scripted", "--set", "executor.candidates=4",
                     "--set", "runtime.max_steps=40", "--json", env={"MUJOCO_GL": "osmesa"})  # fmt: skip
    assert done.returncode == 0, done.stderr
    (episode,) = json.loads(done.stdout)["suites"]["id"]["episodes"]
    assert episode["steps"] == 40 or episode["status"] == "done"
