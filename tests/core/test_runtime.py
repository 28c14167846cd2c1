from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from s2kit.core.config import validate_pipeline
from s2kit.core.data import Recorder, list_episodes, read_episode
from s2kit.core.errors import ConfigError, PluginError
from s2kit.core.interfaces import Subscriber
from s2kit.core.runtime import STAGES, Runtime, build_runtime
from s2kit.core.types import EpisodeInfo, EpisodeResult, Guidance, Step


def make(registry, robot=None, planner=None, executor=None, subscribers=(), skill=None, **runtime: Any) -> Runtime:
    """A runtime over the doubles; ``executor=False`` leaves the executor out (a skill acting alone)."""
    pipeline = validate_pipeline(
        {
            "robot": {"name": "point", **(robot or {})},
            "planner": {"name": "waypoints", **(planner or {})},
            "executor": None if executor is False else {"name": "seek", **(executor or {})},
            "skill": None if skill is None else {"name": "reach", **skill},
            "runtime": runtime,
        }
    )
    return build_runtime(pipeline, registry, subscribers)


class Log(Subscriber):
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def on_episode_start(self, info: EpisodeInfo) -> None:
        self.events.append(("start", info))

    def on_plan(self, step: int, event: str, guidance: Guidance) -> None:
        self.events.append(("plan", (step, event, guidance)))

    def on_step(self, step: Step) -> None:
        self.events.append(("step", step))

    def on_episode_end(self, result: EpisodeResult) -> None:
        self.events.append(("end", result))

    def of(self, kind: str) -> list[Any]:
        return [payload for k, payload in self.events if k == kind]


def test_guided_episode_completes_every_subtask_in_order(registry) -> None:
    log = Log()
    rt = make(registry, subscribers=[log], max_steps=200)
    result = rt.run_episode(0, seed=3)
    assert result.status == "done"
    assert (result.subtasks_completed, result.subtasks_total) == (3, 3)
    assert result.subtask_success == 1.0 and result.task_success is True
    # the planner was asked at the start and at each subtask end but the last
    events = [event for _, event, _ in log.of("plan")]
    assert events == ["start", "subtask", "subtask"]
    currents = [g.current for _, _, g in log.of("plan")]
    assert currents == [0, 1, 2]
    assert all(g.goal == rt.robot.instruction for _, _, g in log.of("plan"))
    assert len(log.of("step")) == result.steps == len(rt.robot.applied)
    assert log.of("end") == [result] and log.of("start")[0].seed == 3


def test_coarse_instruction_alone_gets_stuck_after_the_first_subtask(registry) -> None:
    rt = make(registry, planner={"name": "instruction"}, max_steps=60)
    result = rt.run_episode()
    assert result.status == "max_steps" and result.steps == 60
    assert result.subtasks_completed == 1 and result.subtask_success == pytest.approx(1 / 3)
    assert result.task_success is False


def test_executor_signal_advances_guidance_without_privileged_progress(registry) -> None:
    # The robot cannot tell progress; the executor says when a subtask is done
    # and the runtime moves the guidance on (the planner is asked at "subtask").
    log = Log()
    rt = make(
        registry,
        robot={"report_progress": False},
        executor={"signal_done": True},
        subscribers=[log],
        max_steps=300,
    )
    result = rt.run_episode()
    assert result.status == "done"
    assert result.subtask_success is None and result.task_success is None  # cannot be scored
    assert [g.current for _, _, g in log.of("plan")] == [0, 1, 2]


def test_progress_executor_keeps_the_robots_count_from_the_loop_and_the_planner_but_scores_with_it(registry, monkeypatch) -> None:
    from tests.doubles import WaypointPlanner

    seen: list[object] = []
    original = WaypointPlanner.plan

    def plan(self, instruction, observation, **kw):  # type: ignore[no-untyped-def]
        seen.append(kw.get("status"))
        return original(self, instruction, observation, **kw)

    monkeypatch.setattr(WaypointPlanner, "plan", plan)
    log = Log()
    rt = make(registry, executor={"signal_done": True}, subscribers=[log], max_steps=300, progress="executor")
    result = rt.run_episode()
    assert result.status == "done" and result.subtask_success == 1.0  # still scored by the robot's count
    assert seen and all(status is None for status in seen)  # the planner never saw it
    assert [event for _, event, _ in log.of("plan")] == ["start", "subtask", "subtask"]  # moved by the executor's signal
    # without the executor's signal nothing moves the guidance on: stuck on the first waypoint
    stuck = make(registry, max_steps=60, progress="executor").run_episode()
    assert stuck.status == "max_steps" and stuck.subtasks_completed == 1


def test_runtime_advances_guidance_itself_when_the_planner_ignores_subtask_events(registry, monkeypatch) -> None:
    from tests.doubles import WaypointPlanner

    monkeypatch.setattr(WaypointPlanner, "events", ("start",))
    log = Log()
    rt = make(registry, subscribers=[log], max_steps=200)
    result = rt.run_episode()
    assert result.status == "done" and result.plans == 1
    assert sorted({s.guidance.current for s in log.of("step")}) == [0, 1, 2]


def test_execute_horizon_sets_how_often_the_executor_is_asked(registry) -> None:
    rt = make(registry, executor={"name": "constant", "horizon": 8}, execute_horizon=3, max_steps=9)
    result = rt.run_episode()
    assert result.steps == 9 and result.chunks == 3 and rt.executor.calls == 3


def test_plan_period_requeries_the_planner(registry) -> None:
    log = Log()
    rt = make(
        registry, executor={"name": "constant"}, planner={"name": "instruction"}, subscribers=[log],
        plan_period=5, max_steps=20,
    )  # fmt: skip
    rt.planner.events = ("start", "period")
    rt.run_episode()
    assert [(step, event) for step, event, _ in log.of("plan")] == [(0, "start"), (5, "period"), (10, "period"), (15, "period")]


def test_every_stage_is_timed(registry) -> None:
    result = make(registry, executor={"name": "clock", "delay": 0.01}, subscribers=[Log()], max_steps=16).run_episode()
    timings = result.timings
    assert {"observe", "plan", "act", "safety", "apply", "status", "subscribers", "step"} <= set(timings)
    assert set(timings) <= set(STAGES)
    assert timings["step"].count == result.steps
    assert timings["act"].count == result.chunks == 2
    # a slow executor shows up where a user looks for it: each 10 ms inference in "act", not spread elsewhere
    assert 10 <= timings["act"].p50_ms <= timings["act"].max_ms
    assert timings["step"].total_ms < timings["act"].total_ms  # chunk requests are not counted inside the steps
    within_steps = sum(timings[s].total_ms for s in ("apply", "status", "subscribers"))
    assert within_steps <= timings["step"].total_ms <= result.duration_s * 1e3


def test_commands_are_clamped_before_they_reach_the_robot(registry) -> None:
    rt = make(registry, executor={"name": "constant", "value": [1, -1, 0.5, 0, 0, 0, 3]}, max_steps=5, safety_scale=0.5)
    result = rt.run_episode()
    assert result.clamped_steps == 5
    for command in rt.robot.applied:
        np.testing.assert_allclose(command, [0.025, -0.025, 0.025, 0, 0, 0, 1.0])


def test_absolute_space_is_rate_limited_from_the_robot_state(registry) -> None:
    rt = make(registry, executor={"name": "constant", "space": "position", "value": [0.5, 0, 0]}, max_steps=6)
    rt.run_episode()
    xs = [float(c[0]) for c in rt.robot.applied]
    np.testing.assert_allclose(xs, [0.1, 0.2, 0.3, 0.4, 0.5, 0.5], rtol=1e-6)


def test_a_non_finite_action_stops_the_episode_with_the_robot_holding(registry) -> None:
    log = Log()
    rt = make(registry, executor={"name": "faulty", "fault": "nan", "after": 2}, subscribers=[log], max_steps=100)
    result = rt.run_episode()
    assert result.status == "unsafe" and "non-finite action (chunk row 1) in dz" in result.message
    assert rt.robot.holds == 1
    assert result.steps == 8  # two good chunks of 4; nothing of the broken third one ran
    assert all(np.isfinite(c).all() for c in rt.robot.applied)
    assert log.of("end")[0].status == "unsafe"


@pytest.mark.parametrize(
    ("fault", "message"),
    [("shape", "actions of shape (4, 5); expected (H, 7)"), ("raise", "RuntimeError: model exploded"),
     ("type", "returned str, not ActionChunk")],
)  # fmt: skip
def test_a_broken_executor_ends_the_run_with_a_clear_error(registry, fault: str, message: str) -> None:
    log = Log()
    rt = make(registry, executor={"name": "faulty", "fault": fault, "after": 1}, subscribers=[log])
    with pytest.raises(PluginError) as err:
        rt.run_episode()
    assert message in str(err.value)
    assert rt.robot.holds == 1
    assert log.of("end")[0].status == "error"  # subscribers still hear the end


def test_a_planner_may_not_replace_the_goal(registry, monkeypatch) -> None:
    from tests.doubles import WaypointPlanner

    original = WaypointPlanner.plan

    def rewrite(self, instruction, observation, **kwargs):
        g = original(self, instruction, observation, **kwargs)
        return g.model_copy(update={"goal": "something else"})

    monkeypatch.setattr(WaypointPlanner, "plan", rewrite)
    with pytest.raises(PluginError, match="replaced the goal"):
        make(registry).run_episode()


def test_an_executor_the_robot_cannot_follow_is_a_config_error(registry) -> None:
    with pytest.raises(ConfigError, match="emits 'joint_pos', but robot 'point' does not accept"):
        make(registry, executor={"name": "constant", "space": "joint_pos"})


def test_a_robot_without_a_task_needs_an_instruction(registry, monkeypatch) -> None:
    from tests.doubles import PointRobot

    monkeypatch.setattr(PointRobot, "instruction", property(lambda self: None))
    with pytest.raises(ConfigError, match="no instruction"):
        make(registry).run_episode()
    rt = make(registry, instruction="reach 0.1,0,0")
    assert rt.run_episode().instruction == "reach 0.1,0,0"


def test_a_failing_subscriber_is_detached_and_the_run_goes_on(registry) -> None:
    class Broken(Subscriber):
        def on_step(self, step: Step) -> None:
            raise OSError("disk full")

    log = Log()
    rt = make(registry, subscribers=[Broken(), log], max_steps=200)
    result = rt.run_episode()
    assert result.status == "done" and len(log.of("step")) == result.steps
    assert len(rt.subscribers) == 1


def test_async_splices_chunks_by_time(registry) -> None:
    # Each chunk action says which step it was computed for; after splicing,
    # every command must be executed exactly at its own step.
    rt = make(
        registry,
        executor={"name": "clock", "horizon": 16, "delay": 0.03},
        robot={"control_hz": 100.0},
        mode="async", execute_horizon=4, pace=True, max_steps=40,
    )  # fmt: skip
    result = rt.run_episode()
    assert result.steps == 40 and result.chunks > 2
    assert result.dropped_actions > 0  # inference took ~3 control periods
    intended = [round(float(c[0]) / 1e-4) for c in rt.robot.applied]
    assert intended == list(range(40))


@pytest.mark.parametrize(
    "options",
    [{}, {"robot": {"report_progress": False}, "executor": {"signal_done": True}}],
    ids=["robot-progress", "executor-signal"],
)
def test_async_without_delay_matches_sync(registry, options: dict[str, Any]) -> None:
    # With an instant executor and execute_horizon == the chunk's horizon, async asks for each chunk
    # exactly where sync does: at a subtask end it must re-plan at once, as sync does, and never run
    # the rest of a chunk meant for the finished subtask.
    runs = []
    for mode in ("sync", "async"):
        log = Log()
        rt = make(registry, subscribers=[log], mode=mode, max_steps=200, **options)
        result = rt.run_episode()
        steps = log.of("step")
        runs.append((result, [s.action for s in steps], [(s.guidance.current, s.guidance.subtask) for s in steps]))
    (r_sync, actions_sync, guidance_sync), (r_async, actions_async, guidance_async) = runs
    assert r_sync.status == r_async.status == "done"
    assert r_async.steps == r_sync.steps and r_async.chunks == r_sync.chunks and r_async.plans == r_sync.plans
    assert guidance_async == guidance_sync
    assert [g for g, _ in guidance_sync] == sorted(g for g, _ in guidance_sync) and guidance_sync[-1][0] == 2
    np.testing.assert_array_equal(np.array(actions_async), np.array(actions_sync))
    assert r_async.dropped_actions == 0


def test_pacing_holds_the_control_rate(registry) -> None:
    rt = make(registry, executor={"name": "constant"}, robot={"control_hz": 200.0, "realtime": True}, max_steps=20)
    assert rt.pace  # real-time robots are paced by default
    start = time.perf_counter()
    result = rt.run_episode()
    assert time.perf_counter() - start >= 20 / 200
    assert result.timings["wait"].count == 20


def test_ctrl_c_ends_cleanly_and_keeps_what_was_recorded(registry, tmp_path) -> None:
    class CtrlC(Subscriber):
        def __init__(self) -> None:
            self.steps = 0

        def on_step(self, step: Step) -> None:
            self.steps += 1
            if self.steps == 30:  # during the second episode
                raise KeyboardInterrupt

    rt = make(
        registry, executor={"name": "constant"}, subscribers=[Recorder(tmp_path), CtrlC()], max_steps=25, episodes=5
    )
    results = rt.run()
    assert rt.interrupted and [r.status for r in results] == ["max_steps", "interrupted"]
    assert rt.robot.holds == 1
    entries = list_episodes(tmp_path)
    assert [e["status"] for e in entries] == ["max_steps", "interrupted"]
    second = read_episode(tmp_path / entries[1]["file"])
    # the interrupted step's command had reached the robot: it is counted and kept
    assert results[1].steps == 5 == len(second["action"]) == entries[1]["length"]


def test_episodes_use_consecutive_seeds_and_closing_the_runtime_leaves_the_components_to_their_builder(registry) -> None:
    # Whoever built the components closes them (tests/cli/test_closing.py: run, eval and collect each do,
    # once per component); Runtime.close closes its subscribers only, so nothing is closed twice.
    log = Log()
    closed: list[str] = []
    log.close = lambda: closed.append("log")  # type: ignore[method-assign]
    rt = make(registry, executor={"name": "constant"}, subscribers=[log], max_steps=3, episodes=3, seed=10)
    assert [r.seed for r in rt.run()] == [10, 11, 12]
    assert [info.seed for info in log.of("start")] == [10, 11, 12]
    rt.close()
    assert closed == ["log"] and not rt.robot.closed


def test_an_aborted_episode_ends_and_the_run_goes_on(registry) -> None:
    rt = make(registry, robot={"abort_at": 4}, executor={"name": "constant"}, episodes=2, max_steps=20)
    results = rt.run()
    assert [r.status for r in results] == ["aborted", "aborted"]
    assert results[0].steps == 4 and "fell off the table" in results[0].message
    assert rt.robot.holds == 2 and results[0].task_success is False


# --- a skill in the loop -------------------------------------------------------------


def test_a_skill_gives_every_chunk_whose_guidance_it_accepts(registry) -> None:
    # The waypoints planner names a subtask at every step, which the default rule accepts:
    # the skill reaches every waypoint and the executor (a constant that never would) is never asked.
    log = Log()
    rt = make(registry, executor={"name": "constant"}, skill={}, subscribers=[log], max_steps=200)
    result = rt.run_episode()
    assert result.status == "done" and result.task_success is True
    assert rt.executor.calls == 0 and rt.skill.calls == result.chunks
    assert result.actors == {"skill": result.chunks}
    assert {s.actor for s in log.of("step")} == {"skill"}


def test_guidance_the_skill_does_not_accept_goes_to_the_executor(registry) -> None:
    # The planner carries the subtask's index as a skill token; the skill takes only token 1.
    log = Log()
    rt = make(registry, planner={"tokens": True}, skill={"token": 1}, subscribers=[log], max_steps=200)
    result = rt.run_episode()
    assert result.status == "done" and result.task_success is True
    by_subtask = {}
    for step in log.of("step"):
        by_subtask.setdefault(step.guidance.current, set()).add(step.actor)
    assert by_subtask == {0: {"executor"}, 1: {"skill"}, 2: {"executor"}}
    assert result.actors["skill"] == rt.skill.calls and result.actors["executor"] + rt.skill.calls == result.chunks


def test_default_acceptance_is_skill_tokens_or_a_current_subtask() -> None:
    from tests.doubles import ReachSkill

    skill = ReachSkill()
    assert skill.accepts(Guidance(goal="g", subtasks=["reach 0,0,0"]))
    assert skill.accepts(Guidance(goal="g", skills=[3]))
    assert not skill.accepts(Guidance(goal="g"))


def test_a_skill_acting_alone_needs_no_executor(registry) -> None:
    rt = make(registry, executor=False, skill={}, mode="async", max_steps=200)
    assert rt.executor is None and rt.components == (rt.robot, rt.planner, rt.skill)
    result = rt.run_episode()
    assert result.status == "done" and result.task_success is True
    assert set(result.actors) == {"skill"}


def test_a_lone_skill_that_refuses_the_guidance_is_one_clear_error(registry) -> None:
    rt = make(registry, executor=False, skill={"token": 5})
    with pytest.raises(ConfigError, match="skill 'reach' does not accept the guidance .* names no executor"):
        rt.run_episode()
    assert rt.robot.applied == [] and rt.robot.holds == 1


def test_the_skill_is_set_up_once_and_reset_every_episode(registry) -> None:
    rt = make(registry, skill={}, max_steps=5, episodes=3)
    rt.run()
    assert (rt.skill.setups, rt.skill.resets) == (1, 3) and rt.skill.spec == rt.robot.spec
    assert rt.components[-1] is rt.skill  # closed first by whoever built it


def test_a_failed_build_closes_every_component_it_made_once(registry, monkeypatch) -> None:
    from tests.closing import count_closes

    made = count_closes(monkeypatch)
    with pytest.raises(ConfigError, match="they take turns on one robot and must share an action space"):
        make(registry, executor={"name": "constant", "space": "position", "value": [0, 0, 0]}, skill={})
    assert [(c.kind, c.closes_seen) for c in made] == [("robot", 1), ("planner", 1), ("executor", 1), ("skill", 1)]
    assert made[0].closed  # the robot's own close ran


def test_a_skills_actions_are_clamped_before_they_reach_the_robot(registry) -> None:
    rt = make(registry, executor=False, skill={"value": [1, -1, 0.5, 0, 0, 0, 3]}, max_steps=5, safety_scale=0.5)
    result = rt.run_episode()
    assert result.clamped_steps == 5 and result.actors == {"skill": 1}
    for command in rt.robot.applied:
        np.testing.assert_allclose(command, [0.025, -0.025, 0.025, 0, 0, 0, 1.0])


def test_a_skills_non_finite_action_never_reaches_the_robot(registry) -> None:
    rt = make(registry, executor={"name": "constant"}, skill={"value": [0, float("nan"), 0, 0, 0, 0, 1]})
    result = rt.run_episode()
    assert result.status == "unsafe" and "non-finite action (chunk row 0) in dy" in result.message
    assert rt.robot.applied == [] and rt.robot.holds == 1


def test_a_broken_skill_chunk_is_named_as_the_skills(registry) -> None:
    with pytest.raises(PluginError, match=r"skill 'reach' returned actions of shape \(8, 3\); expected \(H, 7\)"):
        make(registry, skill={"value": [0, 0, 0]}).run_episode()
