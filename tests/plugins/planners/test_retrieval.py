"""The retrieval planner: nearest exemplar (MiniLM, offline) adapted to the instruction and the scene."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from s2kit.core.errors import ConfigError
from s2kit.core.registry import load_registry
from s2kit.core.types import Guidance, Observation, RobotStatus
from s2kit.plugins.planners._language import (
    Vocabulary,
    fix_prepositions,
    parse_scene,
    structure,
)
from s2kit.plugins.planners.retrieval import RetrievalConfig, RetrievalPlanner
from tests.plugins.robots.sim.test_sim import user_suite


@pytest.fixture(scope="module")
def planner() -> RetrievalPlanner:
    return RetrievalPlanner()


def obs(scene: str | None = None) -> Observation:
    return Observation(images={}, state=np.zeros(1, np.float32), scene=scene)


def test_adapts_the_nearest_exemplar_to_new_objects_and_their_places(planner: RetrievalPlanner) -> None:
    scene = "on the table: plate at the back left, blue sphere at the front right, red cube at the centre of the table"
    g = planner.plan("put the blue sphere in the plate", obs(scene))
    assert g.goal == "put the blue sphere in the plate"
    assert g.subtasks == [
        "pick up the blue sphere at the front right, grasping it from above",
        "lower the blue sphere onto the plate at the back left and release it",
    ]
    assert "blue sphere" in g.trajectory and g.current == 0


def test_without_a_scene_the_places_are_left_out(planner: RetrievalPlanner) -> None:
    g = planner.plan("put the green cube, then the red sphere, then the blue cylinder in the basket", obs())
    assert g.subtasks == [f"pick up the {o} and put it into the basket" for o in ("green cube", "red sphere", "blue cylinder")]


def test_an_instruction_no_exemplar_fits_becomes_the_only_subtask(planner: RetrievalPlanner) -> None:
    g = planner.plan("wave at the camera", obs())
    assert g == Guidance(goal="wave at the camera", trajectory="", subtasks=["wave at the camera"], current=0)


def test_replanning_moves_on_from_the_history_or_the_robots_progress(planner: RetrievalPlanner) -> None:
    text = "stack the red cube on the blue cube"
    first = planner.plan(text, obs())
    assert planner.plan(text, obs(), event="subtask", history=[first]).current == 1
    assert planner.plan(text, obs(), event="period", history=[first]).current == 0
    assert planner.plan(text, obs(), event="period", history=[first], status=robot_status(1)).current == 1


def robot_status(done: int) -> RobotStatus:
    return RobotStatus(subtasks_completed=done, subtasks_total=2)


@pytest.mark.parametrize("suite", ["id", "semantic"])
def test_matches_the_oracle_on_the_simulated_suites(planner: RetrievalPlanner, suite: str) -> None:
    """What the planner is for: on these suites its subtask sequence is the oracle's nearly always."""
    registry = load_registry(env={})
    robot = registry.create("robot", {"name": "hsr", "suite": suite, "render": False})
    oracle = registry.create("planner", {"name": "oracle"})
    try:
        matches = 0
        for seed in range(20):
            o = robot.reset(seed=seed)
            vocab = Vocabulary().with_labels(list(parse_scene(o.scene)))
            ref, got = oracle.plan(robot.instruction, o), planner.plan(robot.instruction, o)
            matches += structure(ref.subtasks, vocab) == structure(got.subtasks, vocab)
    finally:
        robot.close()
    assert matches >= 18, f"{matches}/20 subtask sequences match the oracle's"


def test_on_a_users_suite_it_reads_the_suites_own_words_and_phrasings(planner: RetrievalPlanner, tmp_path: Path) -> None:
    """A new colour (crimson), a container under a new name (dish) and new phrasings parse like the built-in ones."""
    suite = user_suite(tmp_path)
    registry = load_registry(env={})
    robot = registry.create("robot", {"name": "hsr", "suite": str(suite), "render": False})
    oracle = registry.create("planner", {"name": "oracle"})
    try:
        seen = set()
        for seed in range(1, 5):  # sort and tidy into the 'bin', and 'pop the crimson sphere onto the dish, please'
            o = robot.reset(seed=seed)
            vocab = Vocabulary().with_labels(list(parse_scene(o.scene)))
            ref, got = oracle.plan(robot.instruction, o), planner.plan(robot.instruction, o)
            assert structure(got.subtasks, vocab) == structure(ref.subtasks, vocab), robot.instruction
            seen.update(m.label for m in vocab.mentions(robot.instruction))
    finally:
        robot.close()
    assert {"crimson sphere", "dish", "bin"} <= seen


def test_a_scenes_labels_teach_the_vocabulary_their_colours_and_nouns() -> None:
    vocab = Vocabulary().with_labels(["crimson cube", "dish"])
    assert [m.label for m in vocab.mentions("put the crimson sphere on the dish")] == ["crimson sphere", "dish"]
    assert "crimson" in vocab.colours and "dish" in vocab.nouns


def test_without_a_scene_the_configured_words_join_the_exemplars_own() -> None:
    planner = RetrievalPlanner(RetrievalConfig(colours=["crimson"], nouns=["dish"]))
    g = planner.plan("pop the crimson sphere onto the dish, please", obs())
    vocab = planner.vocabulary
    assert structure(g.subtasks, vocab) == [("pick", ("crimson sphere",)), ("lower", ("crimson sphere", "dish"))]


def test_a_broken_exemplar_file_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "exemplars.yaml"
    bad.write_text("exemplars:\n  - instruction: put the red cube in the bowl\n    subtask: [pick it up]\n")
    with pytest.raises(ConfigError, match=r"exemplars\.yaml: .*subtask"):
        RetrievalPlanner(RetrievalConfig(exemplars=bad))
    with pytest.raises(ConfigError, match="does not exist"):
        RetrievalPlanner(RetrievalConfig(exemplars=tmp_path / "missing.yaml"))


def test_prepositions_follow_the_container() -> None:
    assert fix_prepositions("put it into the plate, then in the red bowl") == "put it onto the plate, then in the red bowl"
    assert fix_prepositions("put it onto the basket; stack it on the blue cube") == "put it into the basket; stack it on the blue cube"


def test_a_bare_noun_names_the_scenes_only_object_of_that_kind() -> None:
    vocab = Vocabulary().with_labels(["red cube", "bowl", "green sphere"])
    assert [m.label for m in vocab.mentions("put the cube in the bowl")] == ["red cube", "bowl"]
    two = Vocabulary().with_labels(["red cube", "blue cube"])
    assert [m.label for m in two.mentions("put the cube down")] == ["cube"]
