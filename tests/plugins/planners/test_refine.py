"""The refine planner: Plan2Align-style propose, score windows, keep the best and stitch, around any planner."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from s2kit.core.errors import ConfigError, UnknownPluginError
from s2kit.core.interfaces import Planner
from s2kit.core.registry import load_registry
from s2kit.core.types import Guidance, Observation
from s2kit.plugins.planners._language import Relation, Vocabulary, parse_scene, relations, structure
from s2kit.plugins.planners.refine import RefineConfig, RefinePlanner, score_plan
from s2kit.plugins.planners.retrieval import RetrievalPlanner, bindings

TOWER = "build a tower with the yellow cube at the bottom and the green cube above it"
TOWER_SCENE = "on the table: yellow cube at the front right, green cube at the back of the table, red sphere at the centre left"


def obs(scene: str | None = None) -> Observation:
    return Observation(images={}, state=np.zeros(1, np.float32), scene=scene)


@pytest.fixture(scope="module")
def refine() -> RefinePlanner:
    return RefinePlanner(RefineConfig())


@pytest.mark.parametrize(
    ("instruction", "expected"),
    [
        (TOWER, [("green cube", "yellow cube")]),
        ("stack the green cylinder on the red cube", [("green cylinder", "red cube")]),
        ("set the red cube down on top of the blue cube", [("red cube", "blue cube")]),
        ("the blue cylinder belongs in the plate, move it there", [("blue cylinder", "plate")]),
        ("nudge the red cube until it sits in the brown area", [("red cube", "brown area")]),
        ("first the red cube, next the green sphere, and finally the blue cylinder: all of them go into the basket",
         [("red cube", "basket"), ("green sphere", "basket"), ("blue cylinder", "basket")]),
        ("clean up: the red cube goes in the bowl, the green sphere onto the plate, the blue cylinder into the basket",
         [("red cube", "bowl"), ("green sphere", "plate"), ("blue cylinder", "basket")]),
        ("pick up the red cube", [("red cube", None)]),
    ],
)  # fmt: skip
def test_relations_read_what_moves_where_from_the_words_not_the_order(instruction: str, expected: list) -> None:
    assert relations(instruction, Vocabulary()) == [Relation(o, p) for o, p in expected]


def test_bindings_reorder_moving_objects_and_places_apart() -> None:
    orders = list(bindings(["red cube", "green sphere", "bowl", "plate"]))
    assert orders[0] == ("red cube", "green sphere", "bowl", "plate")  # the order of mention first
    assert len(orders) == 4 and ("green sphere", "red cube", "plate", "bowl") in orders
    assert all({o[0], o[1]} == {"red cube", "green sphere"} for o in orders)  # a place never takes a mover's slot


def test_the_tower_retrieval_plans_backwards_is_refined_into_the_right_order(refine: RefinePlanner) -> None:
    backwards = RetrievalPlanner().plan(TOWER, obs(TOWER_SCENE))
    assert backwards.subtasks[0].startswith("pick up the yellow cube")  # the base first: the inner's mistake
    g = refine.plan(TOWER, obs(TOWER_SCENE))
    assert g.goal == TOWER and g.current == 0
    assert g.subtasks == [
        "pick up the green cube at the back of the table, grasping it from above",
        "carry the green cube to the yellow cube at the front right and set it on top",
    ]
    best = refine.last[0]
    assert best.perfect and best.guidance.subtasks == g.subtasks
    assert any("in the instruction's order" in w.failed for r in refine.last[1:] for w in r.windows)


def test_a_push_onto_a_plate_is_replaced_by_a_pick_and_place(refine: RefinePlanner) -> None:
    """Retrieval's nearest exemplar for this instruction is a push; the verb does not suit a plate."""
    text, scene = "put the blue cylinder in the plate", "on the table: plate at the back of the table, blue cylinder at the centre left"
    checks = score_plan(Guidance(goal=text, subtasks=["push the blue cylinder onto the plate"]), text, parse_scene(scene), Vocabulary())
    assert checks.windows[0].failed == ["verb suits the place"]
    g = refine.plan(text, obs(scene))
    assert [s.split()[0] for s in g.subtasks] == ["pick", "lower"]


class Proposals(Planner):
    """A planner whose candidates are given: to see what refine does with them."""

    name = "given"

    def __init__(self, candidates: list[list[str]]) -> None:
        super().__init__(None)
        self.candidates = candidates
        self.rounds: list[tuple[int, tuple[str, ...]]] = []

    def plan(self, instruction: str, observation: Observation, **_: object) -> Guidance:
        return Guidance(goal=instruction, subtasks=self.candidates[0])

    def propose(self, instruction: str, observation: Observation, count: int, *, round: int = 0, hint: Sequence[str] = (), **_: object) -> list[Guidance]:  # noqa: A002
        self.rounds.append((round, tuple(hint)))
        return [Guidance(goal=instruction, subtasks=c) for c in self.candidates[round * count : (round + 1) * count]]


TIDY = "put the red cube in the bowl, the green sphere on the plate and the blue cylinder in the basket"


def test_the_best_windows_of_different_candidates_are_stitched() -> None:
    a = ["pick up the red cube and put it into the bowl", "pick up the green sphere and put it into the basket",
         "pick up the blue cylinder and put it into the basket"]  # fmt: skip
    b = ["pick up the red cube and put it onto the plate", "pick up the green sphere and put it onto the plate",
         "pick up the blue cylinder and put it into the bowl"]  # fmt: skip
    planner = RefinePlanner(RefineConfig(candidates=1, iterations=4))
    planner.inner = Proposals([a, b])
    g = planner.plan(TIDY, obs())
    assert g.subtasks == [a[0], b[1], a[2]]  # neither candidate alone does all three right
    assert planner.last[0].perfect
    assert planner.inner.rounds == [(0, ()), (1, tuple(a)), (2, tuple(a))]  # each round shown the best so far; stops when the inner runs dry


def test_rounds_stop_once_a_candidate_passes_every_check() -> None:
    good = ["pick up the red cube and put it into the bowl", "pick up the green sphere and put it onto the plate",
            "pick up the blue cylinder and put it into the basket"]  # fmt: skip
    planner = RefinePlanner(RefineConfig(candidates=1, iterations=6))
    planner.inner = Proposals([good, list(reversed(good))])
    assert planner.plan(TIDY, obs()).subtasks == good
    assert len(planner.inner.rounds) == 1


def test_a_planner_with_one_answer_is_left_as_it_is() -> None:
    planner = RefinePlanner(RefineConfig(inner={"name": "instruction"}))
    assert planner.plan("wave at the camera", obs()) == Guidance(goal="wave at the camera", subtasks=["wave at the camera"])
    assert planner.events == planner.inner.events


def test_replanning_keeps_the_inner_planners_progress(refine: RefinePlanner) -> None:
    first = refine.plan(TOWER, obs(TOWER_SCENE))
    again = refine.plan(TOWER, obs(TOWER_SCENE), event="subtask", history=[first])
    assert again.current == 1 and again.subtasks == first.subtasks


@pytest.mark.parametrize("suite", ["paraphrase", "id"])
def test_matches_the_oracle_on_the_simulated_suites(refine: RefinePlanner, suite: str) -> None:
    """What refine is for: paraphrases (the tower among them) planned like the oracle, and no loss on id."""
    registry = load_registry(env={})
    robot = registry.create("robot", {"name": "hsr", "suite": suite, "render": False})
    oracle = registry.create("planner", {"name": "oracle"})
    try:
        matches = towers = 0
        for seed in range(30):
            o = robot.reset(seed=seed)
            vocab = Vocabulary().with_labels(list(parse_scene(o.scene)))
            ref, got = oracle.plan(robot.instruction, o), refine.plan(robot.instruction, o)
            matches += structure(ref.subtasks, vocab) == structure(got.subtasks, vocab)
            towers += "tower" in robot.instruction
    finally:
        robot.close()
    assert matches >= 29, f"{matches}/30 subtask sequences match the oracle's"
    assert suite != "paraphrase" or towers >= 2  # the case retrieval alone plans backwards is among them


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"inner": {"name": "nonesuch"}}, UnknownPluginError, "unknown planner 'nonesuch'"),
        ({"inner": {"name": "refine"}}, ConfigError, "another planner than refine"),
        ({"inner": {"top_k": 3}}, ConfigError, "inner needs a 'name'"),
        ({"judge": {"name": "retrieval"}}, ConfigError, "judge must be an incontext planner"),
        ({"candidates": 0}, ConfigError, "candidates"),
    ],
)
def test_a_bad_config_is_one_clear_error(options: dict, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        load_registry(env={}).create("planner", {"name": "refine", **options})


# --- the incontext VLM: candidates and judge, against a real server -----------------------------


@pytest.fixture(scope="module")
def judge_server(tmp_path_factory: pytest.TempPathFactory):
    pytest.importorskip("transformers", reason="the server tests need transformers[serving]")
    from tests.plugins.planners.openai_server import Server, build_model

    root = tmp_path_factory.mktemp("judge")
    answer = json.dumps({"scores": [0.0, 1.0]})
    model = build_model(root / "judge", answer, answer)
    try:
        server = Server(root / "serve.log")
    except RuntimeError as err:
        pytest.skip(f"cannot start transformers serve: {err}")
    yield server, model
    server.stop()


def test_the_vlm_judges_each_window_and_its_score_is_averaged_in(judge_server, tmp_path: Path) -> None:
    server, model = judge_server
    log = tmp_path / "judge.jsonl"
    planner = RefinePlanner(RefineConfig(judge={"base_url": server.base_url, "model": str(model), "api_key_env": None, "log": str(log)},
                                         judge_weight=0.5))  # fmt: skip
    stacks = [p.subtasks for p in RetrievalPlanner().propose(TOWER, obs(TOWER_SCENE), 2)]  # both two subtasks long
    planner.inner = Proposals(stacks)
    g = planner.plan(TOWER, obs(TOWER_SCENE))
    assert g.subtasks == stacks[1]  # the checks still decide: the judge scores both candidates alike
    first, second = planner.last[0].windows
    assert (first.judge, second.judge) == (0.0, 1.0)
    assert first.value == pytest.approx(0.5) and second.value == pytest.approx(1.0)
    request = json.loads(log.read_text().splitlines()[0])["request"]
    assert "1. pick up" in request["messages"][1]["content"][0]["text"]


def test_a_judge_that_fails_leaves_every_plan_to_the_checks_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    from tests.plugins.planners.openai_server import free_port

    judge = {"base_url": f"http://127.0.0.1:{free_port()}/v1", "api_key_env": None, "timeout": 1, "retries": 0}
    planner = RefinePlanner(RefineConfig(judge=judge))
    with caplog.at_level(logging.WARNING):
        g = planner.plan(TOWER, obs(TOWER_SCENE))
        planner.plan(TOWER, obs(TOWER_SCENE))
    assert g.subtasks[0].startswith("pick up the green cube")
    assert sum("judge gave no scores" in r.message for r in caplog.records) == 1  # two plans, one warning
    assert all(w.judge is None for w in planner.last[0].windows)
    assert len(planner.judge.failures) == 1  # the second plan did not ask a judge that is down
    planner.reset()
    planner.plan(TOWER, obs(TOWER_SCENE))
    assert len(planner.judge.failures) == 2  # a new episode asks it again
