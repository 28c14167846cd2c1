"""The simulated robots, their world, suites, expert and oracle."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from s2kit.cli.main import build_app
from s2kit.core.config import validate_pipeline
from s2kit.core.errors import ConfigError, PluginError
from s2kit.core.registry import load_registry
from s2kit.core.runtime import build_runtime
from s2kit.core.types import EE_DELTA, Observation, RobotStatus, TaskText
from s2kit.plugins.robots.sim.base import JOINT_POS, SimState
from s2kit.plugins.robots.sim.tasks import (
    FAMILIES,
    VARIANTS,
    builtin_suites,
    load_suite,
    sample_episode,
)
from s2kit.plugins.robots.sim.world import COLOURS, CONTAINERS, SHAPES, scene_xml

REGISTRY = load_registry(env={})
ROBOTS = ("hsr", "txg2")


def runtime(robot: str, suite: str = "id", max_steps: int = 400, approach: str = "gate", **robot_options):
    pipeline = validate_pipeline(
        {
            "robot": {"name": robot, "suite": suite, **robot_options},
            "planner": {"name": "oracle"},
            "executor": {"name": "scripted", "approach": approach},
            "runtime": {"max_steps": max_steps},
        }
    )
    return build_runtime(pipeline, REGISTRY)


def test_world_has_the_required_variety() -> None:
    assert len(COLOURS) >= 8 and set(SHAPES) == {"cube", "cylinder", "sphere"}
    assert set(CONTAINERS) == {"bowl", "plate", "basket"}
    assert set(builtin_suites()) == {"id", "distractor", "appearance", "semantic", "paraphrase"}


@pytest.mark.parametrize("robot", ROBOTS)
def test_each_robot_declares_every_suite_file_the_training_one_first(robot: str) -> None:
    cls = REGISTRY.get("robot", robot).cls
    folder = resources.files("s2kit.plugins.robots.sim").joinpath("suites")
    files = {p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml")}
    assert set(cls.suites()) == files - set(VARIANTS)  # a task variant is loaded by name, not run by default
    assert cls.suites()[0] == "id" and cls.Config().suite == "id"  # eval reports the first apart from the shifts
    cls.check_suite("semantic")
    cls.check_suite("twins")
    with pytest.raises(ConfigError, match="unknown suite 'nope'"):
        cls.check_suite("nope")


def test_the_robot_hands_its_task_texts_to_planners() -> None:
    r = REGISTRY.create("robot", {"name": "hsr", "render": False})
    try:
        obs = r.reset(seed=3)
        assert obs.task == r.task and r.task.instruction == r.instruction == r.sim_task.instruction
        assert r.task.subtasks == tuple(s.text for s in r.sim_task.subtasks) and r.task.current == 0
    finally:
        r.close()


def test_oracle_plans_from_any_robots_task_texts_and_says_when_there_are_none() -> None:
    oracle = REGISTRY.create("planner", {"name": "oracle"})
    task = TaskText("touch red, then blue", ("touch the red square", "touch the blue square"), current=1)
    obs = Observation(images={}, state=np.zeros(2, np.float32), task=task)  # no simulator state
    g = oracle.plan(task.instruction, obs, event="subtask")
    assert g.goal == task.instruction and g.subtasks == list(task.subtasks) and g.current == 1
    assert oracle.plan(task.instruction, obs, status=RobotStatus(subtasks_completed=0)).current == 0
    with pytest.raises(PluginError, match="needs the robot's own subtask texts"):
        oracle.plan("touch red", Observation(images={}, state=np.zeros(2, np.float32)))


def test_every_family_occurs_and_long_horizon_tasks_have_three_ordered_subtasks() -> None:
    suite = load_suite("id")
    seen = {}
    for seed in range(60):
        _, task = sample_episode(suite, seed, table_x=0.6)
        seen.setdefault(task.family, task)
    assert set(seen) == set(FAMILIES)
    for family in ("sort", "tidy"):
        assert len(seen[family].subtasks) == 3
    assert seen["sort"].instruction.count(", then ") == 2


def test_suites_shift_what_they_claim() -> None:
    idsuite, sem, para, dis, app = (load_suite(n) for n in ("id", "semantic", "paraphrase", "distractor", "appearance"))
    changed_task = changed_words = 0
    for seed in range(30):
        s_id, t_id = sample_episode(idsuite, seed, table_x=0.6)
        s_sem, t_sem = sample_episode(sem, seed, table_x=0.6)
        s_para, t_para = sample_episode(para, seed, table_x=0.6)
        # semantic and paraphrase keep the id scene of the same seed
        assert [(i.kind, i.colour, i.xy) for i in s_sem.items] == [(i.kind, i.colour, i.xy) for i in s_id.items]
        assert [(i.kind, i.colour, i.xy) for i in s_para.items] == [(i.kind, i.colour, i.xy) for i in s_id.items]
        changed_task += [(s.kind, s.obj, s.target) for s in t_sem.subtasks] != [(s.kind, s.obj, s.target) for s in t_id.subtasks]
        # paraphrase: same task, unseen wording
        assert [(s.kind, s.obj, s.target) for s in t_para.subtasks] == [(s.kind, s.obj, s.target) for s in t_id.subtasks]
        changed_words += t_para.instruction != t_id.instruction
        s_dis, _ = sample_episode(dis, seed, table_x=0.6)
        assert len(s_dis.items) >= len(s_id.items)
        s_app, _ = sample_episode(app, seed, table_x=0.6)
        assert s_app.table_rgb != s_id.table_rgb or s_app.light != s_id.light
    assert changed_task >= 25 and changed_words == 30


def test_a_user_suite_file_is_loaded_and_checked(tmp_path: Path) -> None:
    text = Path(__file__).parents[4].joinpath("src/s2kit/plugins/robots/sim/suites/id.yaml").read_text()
    mine = tmp_path / "mine.yaml"
    mine.write_text(text.replace("name: id", "name: mine").replace("families: {pick_place: 1, stack: 1, push: 1, sort: 1, tidy: 1}", "families: {push: 1}"))
    suite = load_suite(str(mine))
    assert suite.name == "mine" and sample_episode(suite, 3, table_x=0.6)[1].family == "push"
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("target_colours:", "target_colors:"))
    with pytest.raises(ConfigError, match="unknown option 'target_colors'"):
        load_suite(str(bad))
    with pytest.raises(ConfigError, match="unknown suite 'idd'"):
        load_suite("idd")


#: A user's suite: a colour and a container of its own, and its own phrasings.
USER_SUITE = """
name: kitchen
families: {pick_place: 1, sort: 1, tidy: 1}
target_colours: [crimson, teal, red]
palette: {crimson: [0.6, 0.05, 0.15], teal: [0.0, 0.5, 0.5]}
containers: {dish: plate, bin: basket, bowl: bowl}
instructions:
  pick_place: ["pop the {object} onto the {container}, please"]
  sort: ["tidy away the {first}, the {second} and the {third}, in that order, into the {container}"]
"""


def user_suite(tmp_path: Path, text: str = USER_SUITE) -> Path:
    path = tmp_path / "kitchen.yaml"
    path.write_text(text)
    return path


def test_a_user_suite_brings_its_own_colours_containers_and_phrasings(tmp_path: Path) -> None:
    suite = load_suite(str(user_suite(tmp_path)))
    episodes = {seed: sample_episode(suite, seed, table_x=0.6) for seed in range(6)}
    _, sort = episodes[1]  # seed 1: sort, the suite's phrasing, into the basket mesh it calls 'bin'
    assert sort.instruction == "tidy away the red cylinder, the red sphere and the teal sphere, in that order, into the bin"
    assert sort.subtask_texts[0] == "put the red cylinder in the bin"
    scene, pick = episodes[2]  # seed 2: pick_place into the plate mesh it calls 'dish': 'on' the dish
    assert pick.instruction == "pop the crimson sphere onto the dish, please"
    assert pick.subtask_texts == ["pick up the crimson sphere", "put the crimson sphere on the dish"]
    dish = scene.item(pick.subtasks[1].target)
    assert (dish.kind, dish.label) == ("plate", "dish")
    _, tidy = episodes[4]  # tidy keeps the training phrasing, with the suite's container names
    assert tidy.instruction == "put the teal cylinder in the bowl, the teal sphere on the dish and the crimson cube in the bin"
    crimson = next(it for it in scene.items if it.colour == "crimson")
    assert crimson.colour_rgb == (0.6, 0.05, 0.15)
    xml = scene_xml(scene, "", table_x=0.6, table_height=0.4, model_name="t")
    assert 'rgba="0.600 0.050 0.150 1.000"' in xml  # drawn in the palette's RGB


def test_a_user_suite_runs_with_oracle_and_scripted_to_full_success(tmp_path: Path) -> None:
    path = user_suite(tmp_path)
    result = CliRunner().invoke(
        build_app(),
        ["run", "--robot", "hsr", "--suite", str(path), "--planner", "oracle", "--executor", "scripted",
         "--episodes", "4", "--seed", "1", "--json"],
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["summary"]["task_success"]["mean"] == 1.0
    instructions = [e["instruction"] for e in out["episodes"]]
    assert instructions[0].startswith("tidy away the red cylinder") and instructions[1].startswith("pop the crimson")


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (("crimson: [0.6, 0.05, 0.15]", "crimson: [1.6, 0.05, 0.15]"), "palette colour 'crimson': RGB must be three numbers in [0, 1], got [1.6, 0.05, 0.15]"),
        (("crimson: [0.6, 0.05, 0.15]", "crimson: [0.6, 0.05]"), "palette colour 'crimson': RGB must be three numbers in [0, 1], got [0.6, 0.05]"),
        (("crimson: [0.6, 0.05, 0.15]", "red: [0.6, 0.05, 0.15]"), "palette colour 'red': the name is already a built-in colour"),
        (("dish: plate", "dish: pot"), "container 'dish': unknown mesh 'pot' (meshes: bowl, plate, basket)"),
        (("dish: plate", "teal: plate"), "the name is already a palette colour"),
        (("dish: plate", "bowl: plate"), "duplicate key 'bowl' (first given at line 6)"),
        (("dish: plate", "plate: bowl"), "container 'plate' would be drawn as a bowl"),
        (("{object} onto", "{colour} onto"), "unknown slot {colour} (slots: object, object_colour, object_shape, container)"),
        (("pop the {object}", "pop it"), "never names {object}"),
        (("{object} onto", "{object!r} onto"), "slot {object} takes no format or conversion"),
        (("[crimson, teal, red]", "[crimson, teal, scarlet]"), "target_colours: unknown colour 'scarlet'"),
        (("[crimson, teal, red]", "[crimson, teal, crimson]"), "target_colours lists 'crimson' twice"),
        (("  pick_place: [", "  pick-place: ["), "instructions: unknown task family 'pick-place'"),
    ],
)
def test_a_user_suites_mistake_is_one_line_naming_it(tmp_path: Path, change: tuple[str, str], error: str) -> None:
    assert change[0] in USER_SUITE
    path = user_suite(tmp_path, USER_SUITE.replace(change[0], change[1], 1))
    with pytest.raises(ConfigError) as err:
        load_suite(str(path))
    assert error in str(err.value) and "\n" not in str(err.value)
    assert str(err.value).startswith(f"{path}: ")


@pytest.mark.parametrize("robot", ROBOTS)
def test_spec_declares_ee_delta_and_native_joints_and_cameras(robot: str) -> None:
    r = REGISTRY.create("robot", {"name": robot, "image_height": 64, "image_width": 80})
    try:
        spaces = {s.name: s for s in r.spec.action_spaces}
        assert set(spaces) == {EE_DELTA, JOINT_POS}
        assert spaces[JOINT_POS].names == tuple(j.name for j in r.spec.joints)
        obs = r.reset(seed=1)
        assert {"head", "wrist"} <= set(obs.images) and obs.images["head"].shape == (64, 80, 3)
        assert obs.images["head"].std() > 5  # a rendered scene, not a blank frame
        assert obs.state.shape == (len(r.spec.state_names),)
        assert isinstance(obs.privileged, SimState) and obs.scene.startswith("on the table:")
    finally:
        r.close()


def test_hsr_joint_limits_are_the_real_robots() -> None:
    r = REGISTRY.create("robot", {"name": "hsr"})
    limits = {j.name: (j.lower, j.upper) for j in r.spec.joints}
    r.close()
    assert limits["arm_lift_joint"] == (0.0, 0.69) and limits["arm_flex_joint"] == (-2.62, 0.0)
    assert limits["arm_roll_joint"] == (-2.09, 3.84) and limits["wrist_flex_joint"] == (-1.92, 1.22)
    assert limits["hand_motor_joint"] == (-0.798, 1.24) and limits["head_tilt_joint"] == (-1.57, 0.52)


def test_txg2_arm_limits_are_the_g2s() -> None:
    r = REGISTRY.create("robot", {"name": "txg2"})
    limits = {j.name: (j.lower, j.upper) for j in r.spec.joints}
    r.close()
    for side in ("left", "right"):
        assert limits[f"{side}_arm_j1"] == (-3.07, 3.07) and limits[f"{side}_arm_j2"] == (-2.06, 2.06)
        assert limits[f"{side}_arm_j4"] == (-2.50, 1.01) and limits[f"{side}_arm_j6"] == (-1.01, 1.01)
        assert limits[f"{side}_arm_j7"] == (-1.54, 1.54) and limits[f"{side}_gripper"] == (0.0, 0.785)
    assert sum(n.startswith("waist_") for n in limits) == 5 and sum(n.startswith("head_") for n in limits) == 3


@pytest.mark.parametrize("robot", ROBOTS)
def test_ee_delta_moves_the_hand_by_the_commanded_amount(robot: str) -> None:
    r = REGISTRY.create("robot", {"name": robot, "render": False})
    try:
        start = r.reset(seed=0).privileged.ee_pos.copy()
        for _ in range(5):
            r.apply(np.array([0.02, 0.0, 0.0, 0, 0, 0, 1.0], np.float32), EE_DELTA)
        for _ in range(5):
            r.apply(np.array([0.0, 0.0, 0.0, 0, 0, 0, 1.0], np.float32), EE_DELTA)  # settle
        moved = r.observe().privileged.ee_pos - start
        assert moved[0] == pytest.approx(0.10, abs=0.015) and abs(moved[1]) < 0.015 and abs(moved[2]) < 0.015
    finally:
        r.close()


@pytest.mark.parametrize("robot", ROBOTS)
def test_focus_uv_lands_on_the_focus_item_in_the_image(robot: str) -> None:
    """`SimState.focus_uv` (S2's focus-map target) is where MuJoCo draws the item, checked by its segmentation."""
    import mujoco

    r = REGISTRY.create("robot", {"name": robot, "image_height": 64, "image_width": 64})
    checked = 0
    try:
        for seed in range(4):
            sim = r.reset(seed=seed).privileged
            geoms = r.item_geoms(sim.focus_item)
            renderer = mujoco.Renderer(r.model, 64, 64)
            renderer.enable_segmentation_rendering()
            renderer.update_scene(r.data, camera=r._cam_ids["head"])
            ys, xs = np.nonzero(np.isin(renderer.render()[..., 0], geoms))
            renderer.close()
            uv = sim.focus_uv["head"]
            if len(xs) < 4 or not np.isfinite(uv).all():
                continue
            centroid = np.array([xs.mean() + 0.5, ys.mean() + 0.5]) / 32 - 1  # pixel centres in [-1, 1]
            assert np.abs(uv - centroid).max() < 3 / 32, (seed, uv, centroid)  # within 1.5 px of 64 (a visible face, not the centre)
            checked += 1
        assert checked >= 2
        assert set(sim.focus_uv) == set(r._cam_ids)  # every camera
    finally:
        r.close()


@pytest.mark.parametrize("robot", ROBOTS)
def test_same_seed_same_scene_trajectory_and_images(robot: str) -> None:
    runs = []
    for _ in range(2):
        rt = runtime(robot, max_steps=25, image_height=32, image_width=32)
        images = []

        class Grab:
            def on_step(self, step):  # noqa: ANN001
                images.append(step.observation.images["head"].copy())

        from s2kit.core.interfaces import Subscriber

        rt.subscribers.append(type("G", (Subscriber,), {"on_step": Grab.on_step})())
        rt.run_episode(0, seed=5)
        runs.append((np.array(rt.robot.data.qpos), np.stack(images)))
        rt.robot.close()
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])


@pytest.mark.parametrize("approach", ["gate", "funnel"])
@pytest.mark.parametrize(("robot", "least"), [("hsr", 9), ("txg2", 9)])
def test_scripted_expert_solves_id_episodes(robot: str, least: int, approach: str) -> None:
    # The full measurement (100 episodes per robot) is in docs/simulation.md.
    rt = runtime(robot, approach=approach, image_height=16, image_width=16)
    results = [rt.run_episode(i, seed=100 + i) for i in range(10)]
    rt.robot.close()
    assert sum(r.task_success for r in results) >= least


def test_the_funnel_approach_lowers_the_hand_smoothly_with_the_sideways_error() -> None:
    """A policy that cannot tell 1 cm from 1.5 cm must not be taught two far-apart heights for them."""
    from dataclasses import replace

    from s2kit.plugins.robots.sim.expert import ScriptedConfig, ScriptedExecutor

    r = REGISTRY.create("robot", {"name": "txg2", "render": False})
    try:
        sim = r.reset(seed=next(s for s in range(50) if sample_episode(load_suite("id"), s, table_x=0.6)[1].subtasks[0].kind != "push")).privileged
    finally:
        r.close()
    obj = sim.positions[sim.task.subtasks[0].obj]
    hover = sim.table_height + ScriptedConfig().hover

    def waypoint_z(approach: str, off: float, height: float) -> float | None:
        expert = ScriptedExecutor.__new__(ScriptedExecutor)
        expert.config = ScriptedConfig(approach=approach)
        hand = np.array([obj[0] + off, obj[1], obj[2] + height])
        waypoint, _ = expert._next(replace(sim, ee_pos=hand, held=None))
        return None if waypoint is None else float(waypoint[2])

    # the hand 5 cm above the object: a little too far to the side to descend
    assert waypoint_z("gate", 0.02, 0.05) == pytest.approx(hover)  # gate: back up to travel height
    offsets = np.arange(0.0, 0.049, 0.001)
    heights = [waypoint_z("funnel", off, 0.05) for off in offsets]
    assert heights[0] == pytest.approx(obj[2])  # aligned: straight down to the grasp
    assert all(h is not None and h <= hover + 1e-9 for h in heights)
    steps = np.diff(np.array(heights))
    assert np.all(steps >= -1e-9) and np.all(steps <= 0.0031)  # higher the further off, 3 mm per mm at most
    assert waypoint_z("funnel", 0.005, 0.01) is None  # aligned and low: close in place


def test_oracle_keeps_the_goal_and_refines_each_subtask() -> None:
    rt = runtime("hsr", max_steps=400, image_height=16, image_width=16)
    plans = []
    from s2kit.core.interfaces import Subscriber

    class Plans(Subscriber):
        def on_plan(self, step, event, guidance):  # noqa: ANN001
            plans.append(guidance)

    rt.subscribers.append(Plans())
    seed = next(s for s in range(50) if sample_episode(load_suite("id"), s, table_x=0.62)[1].family == "sort")
    result = rt.run_episode(0, seed=seed)
    rt.robot.close()
    assert result.task_success
    assert [g.current for g in plans] == [0, 1, 2]  # re-planned at each subtask boundary
    g = plans[0]
    assert g.goal == rt.robot.instruction and "arm" in g.trajectory
    for sub, text in zip(rt.robot.sim_task.subtasks, g.subtasks):
        label = rt.robot.scene.item(sub.obj).label
        assert label in text and ("left" in text or "right" in text or "centre" in text or "middle" in text)


def test_out_of_order_subtasks_are_not_credited() -> None:
    from s2kit.plugins.robots.sim.tasks import Progress, WorldState

    suite = load_suite("id")
    seed = next(s for s in range(50) if sample_episode(suite, s, table_x=0.6)[1].family == "sort")
    scene, task = sample_episode(suite, seed, table_x=0.6)
    basket = scene.item(task.subtasks[0].target)
    pos = {it.name: np.array([*it.xy, 0.42]) for it in scene.items}
    progress = Progress(task)
    # the second object goes into the basket first: out of order
    pos[task.subtasks[1].obj] = np.array([*basket.xy, 0.43])
    assert progress.update(WorldState(pos, None, 0.40), scene) == 0
    pos[task.subtasks[0].obj] = np.array([*basket.xy, 0.43])
    assert progress.update(WorldState(pos, None, 0.40), scene) == 1  # the first counts, the spoiled second never
    pos[task.subtasks[2].obj] = np.array([*basket.xy, 0.43])
    assert progress.update(WorldState(pos, None, 0.40), scene) == 1


def test_twins_gives_an_identical_second_object_either_of_which_fulfils_the_task() -> None:
    from s2kit.plugins.robots.sim.tasks import Progress, WorldState

    suite = load_suite("twins")
    chosen = []
    for seed in range(12):
        scene, task = sample_episode(suite, seed, table_x=0.6)
        pick, put = task.subtasks
        assert pick.alternatives == put.alternatives and len(pick.alternatives) == 1
        twin = pick.alternatives[0]
        assert scene.item(twin).label == scene.item(pick.obj).label and twin != pick.obj
        assert sum(it.label == scene.item(pick.obj).label for it in scene.items) == 2  # no third look-alike
        chosen.append(pick.obj.startswith("twin"))
    assert 0 < sum(chosen) < len(chosen)  # the demonstrator goes for either of the two

    # the one the demonstrator did not choose fulfils both subtasks as well
    container = scene.item(put.target)
    pos = {it.name: np.array([*it.xy, 0.42]) for it in scene.items}
    progress = Progress(task)
    pos[twin] = np.array([*scene.item(twin).xy, 0.50])
    assert progress.update(WorldState(pos, twin, 0.40), scene) == 1
    pos[twin] = np.array([*container.xy, 0.43])
    assert progress.update(WorldState(pos, None, 0.40), scene) == 2


def test_the_expert_finishes_twins_with_either_object_and_keeps_the_one_in_hand() -> None:
    from dataclasses import replace

    from s2kit.plugins.robots.sim.expert import ScriptedConfig, ScriptedExecutor

    suite = load_suite("twins")
    seeds = [next(s for s in range(50) if sample_episode(suite, s, table_x=0.62)[1].subtasks[0].obj.startswith(p)) for p in ("obj", "twin")]
    rt = runtime("hsr", suite="twins", approach="funnel", image_height=16, image_width=16)
    results = [rt.run_episode(i, seed=seed) for i, seed in enumerate(seeds)]
    sim = rt.robot.reset(seed=seeds[0]).privileged
    rt.robot.close()
    assert all(r.task_success for r in results)
    # a learner (DAgger) that picked up the other twin is not told to drop it: the expert carries it on
    other = sim.task.subtasks[1].alternatives[0]
    expert = ScriptedExecutor.__new__(ScriptedExecutor)
    expert.config = ScriptedConfig()
    held = replace(sim, completed=1, held=other, ee_pos=sim.positions[other] + np.array([0, 0, 0.1]))
    _, gripper = expert._next(held)
    assert gripper == 0.0  # closed: carrying it to the container
    assert held.focus_item == sim.task.subtasks[1].target


def test_a_task_object_falling_off_the_table_aborts_the_episode() -> None:
    from s2kit.core.errors import EpisodeAborted

    r = REGISTRY.create("robot", {"name": "hsr", "render": False})
    try:
        r.reset(seed=3)
        name = r.sim_task.subtasks[0].obj
        adr = r._obj_qadr[name]
        r.data.qpos[adr : adr + 3] = [1.5, 1.5, 0.05]  # on the floor, beside the table
        with pytest.raises(EpisodeAborted, match=f"the {r.scene.item(name).label} fell off the table"):
            r.apply(np.array([0, 0, 0, 0, 0, 0, 1.0], np.float32), EE_DELTA)
    finally:
        r.close()


# --- commands driven directly, physics failures ---------------------------------------------------


def _frozen(r) -> tuple:
    """What a command that never reaches MuJoCo leaves as it was."""
    return r.steps, r.data.time, r.data.ctrl.copy(), r.data.qpos.copy(), [w.number for w in r.data.warning]


@pytest.mark.parametrize("space", [EE_DELTA, JOINT_POS])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_direct_command_that_is_not_finite_is_refused_before_mujoco(space: str, bad: float) -> None:
    """Custom loops and gym wrappers call `robot.apply` without the runtime's safety layer."""
    from s2kit.core.errors import RobotError

    r = REGISTRY.create("robot", {"name": "hsr", "render": False})
    try:
        obs = r.reset(seed=0)
        command = np.array([0, 0, 0, 0, 0, 0, 1.0]) if space == EE_DELTA else r.joint_positions()
        command[4] = bad  # dpitch / arm_flex_joint
        name = r.spec.action_space(space).names[4]
        before = _frozen(r)
        with pytest.raises(RobotError, match=rf"non-finite {space} command \({name}\)"):
            r.apply(command.astype(np.float32), space)
        after = _frozen(r)
        assert before[:2] == after[:2] and all(np.array_equal(a, b) for a, b in zip(before[2:], after[2:]))
        with pytest.raises(RobotError, match=r"shape \(7,\), got \(6,\)"):
            r.apply(np.zeros(6, np.float32), EE_DELTA)
        r.apply(np.array([0.01, 0, 0, 0, 0, 0, 1.0], np.float32), EE_DELTA)  # the robot still takes good commands
        assert r.steps == 1 and not np.array_equal(r.observe().state, obs.state)
    finally:
        r.close()


def test_a_direct_command_is_clamped_to_the_action_spaces_bounds() -> None:
    r, bound = (REGISTRY.create("robot", {"name": "hsr", "render": False}) for _ in range(2))
    try:
        for robot in (r, bound):
            robot.reset(seed=0)
        space = r.spec.action_space(EE_DELTA)
        r.apply(np.full(7, 10.0, np.float32), EE_DELTA)  # 10 m, 10 rad: more than one step may move
        bound.apply(np.asarray(space.high, np.float32), EE_DELTA)
        assert np.array_equal(r.data.qpos, bound.data.qpos)
        joints = r.spec.action_space(JOINT_POS)
        command = r.joint_positions()
        lift = joints.names.index("arm_lift_joint")
        command[lift] = 5.0  # beyond the lift's 0.69 m
        r.apply(command.astype(np.float32), JOINT_POS)
        assert r.data.ctrl[r._act["arm_lift_joint"]] == pytest.approx(joints.high[lift])
    finally:
        r.close()
        bound.close()


# How to make MuJoCo give up on the physics: a diverged velocity, position, force (acceleration) or control.
DIVERGENCES = {
    "BADQVEL": ("qvel", np.nan),
    "BADQPOS": ("qpos", 1e11),
    "BADQACC": ("qfrc_applied", 1e15),
    "BADCTRL": ("ctrl", np.nan),
}


@pytest.mark.parametrize("warning", list(DIVERGENCES))
def test_a_physics_failure_of_any_kind_aborts_the_episode(warning: str) -> None:
    from s2kit.core.errors import EpisodeAborted

    r = REGISTRY.create("robot", {"name": "hsr", "render": False})
    try:
        r.reset(seed=0)
        field, value = DIVERGENCES[warning]
        # the head's servo: an ee_delta command leaves its ctrl as it is
        index = r._act["head_tilt_joint"] if field == "ctrl" else 0
        getattr(r.data, field)[index] = value
        completed = r.progress.completed
        with pytest.raises(EpisodeAborted, match=f"unstable: MuJoCo's mjWARN_{warning}"):
            r.apply(np.array([0, 0, 0, 0, 0, 0, 1.0], np.float32), EE_DELTA)
        assert r.progress.completed == completed  # nothing credited from the reset state
    finally:
        r.close()


def test_a_diverging_simulation_ends_a_run_episode_as_aborted() -> None:
    from s2kit.core.interfaces import Subscriber

    class Diverge(Subscriber):  # stands for a simulation blowing up on its own at step 3
        def on_step(self, step) -> None:
            if step.index == 2:
                rt.robot.data.qvel[0] = np.nan

    rt = runtime("hsr", max_steps=20, render=False)
    rt.subscribers.append(Diverge())
    (result,) = rt.run()
    assert result.status == "aborted" and result.steps == 3, result  # the 4th command met the diverged state
    assert "mjWARN_BADQVEL" in result.message and result.task_success is False
