"""The control loop: one loop, one place.

observe → planner (at start, at subtask ends, on a period) → the skill (when
the pipeline names one and it accepts the guidance) or else the executor
returns an `ActionChunk` → its first ``execute_horizon`` actions pass the
safety layer and go to the robot at its control rate → repeat, until
``max_steps`` or the robot reports the episode over.

In ``async`` mode the next chunk is computed on a worker thread while the
current one executes; when it arrives, its action ``j`` belongs to control
step ``t0 + j`` (``t0`` the step whose observation it saw), so the actions
whose step has already passed are dropped and the rest replace the queue.
In both modes a subtask end (the robot's count, or a chunk's ``subtask_done``)
drops what was queued for the finished subtask, and the next step runs a chunk
asked for under the new guidance, so async without inference delay executes
exactly what sync does.

Subscribers observe; they never change the loop. A subscriber that raises is
reported and detached, and the run goes on. Every stage is timed and the
timings are in each `EpisodeResult`.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from s2kit.core.config import PipelineConfig, RuntimeConfig
from s2kit.core.errors import ConfigError, EpisodeAborted, PluginError, S2kitError
from s2kit.core.interfaces import Component, Executor, Planner, Robot, Skill, Subscriber
from s2kit.core.registry import Registry
from s2kit.core.safety import SafetyFilter, UnsafeAction
from s2kit.core.types import (
    CHUNK_SKILLS,
    ActionChunk,
    EpisodeInfo,
    EpisodeResult,
    Guidance,
    Observation,
    RobotStatus,
    StageTiming,
    Step,
)

__all__ = ["STAGES", "Runtime", "build_runtime", "ctrl_c_requests_stop"]

log = logging.getLogger(__name__)

#: Timed stages of the loop. ``step`` is one whole control step; ``wait`` is
#: time blocked on an async chunk or sleeping to hold the control rate.
STAGES = ("observe", "plan", "act", "safety", "apply", "status", "subscribers", "wait", "step")


@contextlib.contextmanager
def ctrl_c_requests_stop(requested: Callable[[], bool], request: Callable[[], None]):  # type: ignore[no-untyped-def]
    """Inside, a SIGINT calls ``request()`` instead of raising; once ``requested()``, the next raises KeyboardInterrupt.

    The first Ctrl-C asks to stop where the caller chooses to look; the second
    means it. Off the main thread (where signals cannot be handled) nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        if requested():
            raise KeyboardInterrupt
        request()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class _StageClock:
    """Per-stage wall-clock samples for one episode."""

    __slots__ = ("samples",)

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = {stage: [] for stage in STAGES}

    def summary(self) -> dict[str, StageTiming]:
        return {stage: StageTiming.from_seconds(s) for stage, s in self.samples.items() if s}


class _Stop(Exception):
    """Ends an episode from inside the loop with a status and a message."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Runtime:
    """Runs episodes of one robot, planner and executor, and optionally a skill.

    The skill gives every chunk whose guidance it accepts, the executor the
    others; ``executor`` may be None when a skill acts alone.
    """

    def __init__(
        self,
        robot: Robot,
        planner: Planner,
        executor: Executor | None,
        config: RuntimeConfig | None = None,
        subscribers: Iterable[Subscriber] = (),
        pipeline: dict[str, Any] | None = None,
        skill: Skill | None = None,
    ) -> None:
        self.robot = robot
        self.planner = planner
        self.executor = executor
        self.skill = skill
        self.config = config or RuntimeConfig()
        self.subscribers = list(subscribers)
        self.pipeline = pipeline or {}
        self.interrupted = False
        self.stop_requested = False
        self.detached: list[tuple[Subscriber, str]] = []  # subscribers that failed, and why

        self.spec = robot.spec
        actors = [a for a in (executor, skill) if a is not None]
        if not actors:
            raise ConfigError("a pipeline needs an executor, a skill, or both")
        for actor in actors:
            try:
                self.spec.action_space(actor.action_space)
            except ValueError as err:
                raise ConfigError(f"{actor.kind} {actor.name!r} emits {actor.action_space!r}, but {err}") from None
        if executor is not None and skill is not None and skill.action_space != executor.action_space:
            # One safety filter, one rate limit from the last command: both actors share a space.
            raise ConfigError(
                f"skill {skill.name!r} emits {skill.action_space!r} but executor {executor.name!r} emits "
                f"{executor.action_space!r}; they take turns on one robot and must share an action space"
            )
        self.space = self.spec.action_space(actors[0].action_space)
        self.safety = SafetyFilter(self.space, self.spec.state_names, self.config.safety_scale)
        self.pace = self.spec.realtime if self.config.pace is None else self.config.pace
        for actor in actors:
            actor.setup(self.spec)

    @property
    def components(self) -> tuple[Component, ...]:
        """The components in the order they were built: robot, planner, executor, skill (absent ones left out).

        Whoever built them closes them, in reverse.
        """
        return tuple(c for c in (self.robot, self.planner, self.executor, self.skill) if c is not None)

    # --- episodes -------------------------------------------------------------------

    def run(
        self,
        episodes: int | None = None,
        seed: int | None = None,
        on_result: Callable[[EpisodeResult], None] | None = None,
    ) -> list[EpisodeResult]:
        """Run ``episodes`` episodes (seeds ``seed``, ``seed + 1``, ...).

        Ctrl-C ends the current episode cleanly at the next control step
        (robot holding, subscribers told, the episode marked ``interrupted``),
        runs no further episodes and sets ``self.interrupted``. A second
        Ctrl-C interrupts at once.
        """
        episodes = self.config.episodes if episodes is None else episodes
        seed = self.config.seed if seed is None else seed
        self.interrupted = self.stop_requested = False
        results = []
        # the first Ctrl-C asks the loop to stop at a step boundary: stopping between
        # steps, never inside a subscriber or a robot call, keeps a recording's last episode whole
        with ctrl_c_requests_stop(lambda: self.stop_requested, self._request_stop):
            for i in range(episodes):
                if self.stop_requested:  # Ctrl-C between two episodes
                    self.interrupted = True
                    break
                result = self.run_episode(i, seed + i)
                results.append(result)
                if on_result is not None:
                    on_result(result)
                if self.interrupted:
                    break
        return results

    def _request_stop(self) -> None:
        self.stop_requested = True

    def run_episode(self, index: int = 0, seed: int | None = None) -> EpisodeResult:
        """Run one episode and return how it went."""
        clock = _StageClock()
        episode = _Episode(self, clock)
        t_start = time.perf_counter()
        status, message = "max_steps", ""
        error: BaseException | None = None
        try:
            episode.start(index, seed)
            episode.loop()
            if episode.done:
                status = "done"
        except _Stop as stop:
            status, message = stop.status, stop.message
            self._hold()
        except EpisodeAborted as err:
            status, message = "aborted", f"step {episode.steps}: {err}"
            self._hold()
        except KeyboardInterrupt:
            status, message = "interrupted", f"interrupted by the user at step {episode.steps}"
            self.interrupted = True
            self._hold()
        except Exception as err:
            status, message = "error", f"{type(err).__name__}: {err}"
            error = err
            self._hold()
        finally:
            episode.shutdown()

        last = episode.last_status
        result = EpisodeResult(
            index=index,
            seed=seed,
            instruction=episode.instruction,
            status=status,
            message=message,
            steps=episode.steps,
            chunks=episode.chunks,
            actors=episode.actors,
            plans=episode.plans,
            skills=episode.skills,
            subtasks_completed=last.subtasks_completed,
            subtasks_total=last.subtasks_total,
            subtask_success=_subtask_success(last),
            task_success=_task_success(last),
            clamped_steps=episode.clamped,
            dropped_actions=episode.dropped,
            duration_s=time.perf_counter() - t_start,
            timings=clock.summary(),
        )
        if episode.started:
            self._notify("on_episode_end", result)
        if error is not None:
            if isinstance(error, S2kitError):
                raise error
            raise PluginError(f"episode {index} failed at step {episode.steps}: {message}") from error
        return result

    def close(self) -> None:
        """Close the subscribers (the components belong to whoever built them)."""
        for sub in self.subscribers:
            try:
                sub.close()
            except Exception as err:
                log.error("subscriber %s failed to close: %s", type(sub).__name__, err)

    def _hold(self) -> None:
        try:
            self.robot.hold()
        except Exception as err:  # reported, but the episode's own error matters more
            log.error("robot %r failed to hold position: %s", self.robot.name, err)

    def _notify(self, method: str, *args: Any) -> None:
        for sub in list(self.subscribers):
            try:
                getattr(sub, method)(*args)
            except Exception as err:
                log.error("subscriber %s failed in %s and was detached: %s: %s",
                          type(sub).__name__, method, type(err).__name__, err)
                self.subscribers.remove(sub)
                self.detached.append((sub, f"{method}: {type(err).__name__}: {err}"))


class _Episode:
    """The state of one running episode; `Runtime.run_episode` drives it."""

    def __init__(self, runtime: Runtime, clock: _StageClock) -> None:
        self.rt = runtime
        self.samples = clock.samples
        self.instruction = ""
        self.started = False
        self.done = False
        self.steps = 0
        self.chunks = 0
        self.actors: dict[str, int] = {}  # chunks per actor kind
        self.skills: list[list[int]] = []  # skill tokens of the chunks that carried them
        self.plans = 0
        self.clamped = 0
        self.dropped = 0
        self.last_status = RobotStatus()
        self.history: list[Guidance] = []
        self.pool: ThreadPoolExecutor | None = None
        self.last_command: np.ndarray | None = None  # the last command the robot executed
        self.info: dict[str, Any] = {}  # the info of the chunk being executed
        self.actor = "executor"  # the kind of actor that gave it

    # --- start -------------------------------------------------------------------------

    def start(self, index: int, seed: int | None) -> None:
        rt = self.rt
        t = time.perf_counter()
        self.obs = rt.robot.reset(seed=seed)
        self.samples["observe"].append(time.perf_counter() - t)
        instruction = rt.robot.instruction or rt.config.instruction
        if not instruction:
            raise ConfigError(
                f"no instruction: robot {rt.robot.name!r} does not set a task; "
                "give one with --set runtime.instruction='...'"
            )
        self.instruction = instruction
        rt.planner.reset()
        for actor in (rt.executor, rt.skill):
            if actor is not None:
                actor.reset()
        rt.safety.reset(self.obs.state)
        self.last_status = rt.robot.status()
        self.started = True
        rt._notify(
            "on_episode_start",
            EpisodeInfo(
                index=index,
                seed=seed,
                instruction=instruction,
                robot=rt.spec,
                action_space=rt.space.name,
                pipeline=rt.pipeline,
            ),
        )
        self.guidance = self.plan("start")
        if rt.config.mode == "async":
            self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="s2kit-act")

    def shutdown(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = None

    # --- planning and acting ---------------------------------------------------------

    def plan(self, event: str) -> Guidance:
        rt = self.rt
        if event != "start" and event not in rt.planner.events:
            # The planner does not want this event: the runtime moves the
            # guidance on by itself at a subtask end, keeps it otherwise.
            return self.guidance.advanced() if event == "subtask" else self.guidance
        t = time.perf_counter()
        # With progress "executor" the planner, like the runtime, learns of progress only from
        # the executor's subtask_done, never from the robot's (a simulator's privileged) count.
        status = self.last_status if rt.config.progress == "robot" else None
        guidance = rt.planner.plan(self.instruction, self.obs, event=event, history=tuple(self.history), status=status)
        self.samples["plan"].append(time.perf_counter() - t)
        if not isinstance(guidance, Guidance):
            raise PluginError(f"planner {rt.planner.name!r} returned {type(guidance).__name__}, not Guidance")
        if guidance.goal != self.instruction:
            # Goal-preserving guidance: the original instruction is the stable goal; refined text is
            # added beside it, never instead of it.
            raise PluginError(f"planner {rt.planner.name!r} replaced the goal {self.instruction!r} with {guidance.goal!r}")
        self.plans += 1
        self.history.append(guidance)
        rt._notify("on_plan", self.steps, event, guidance)
        return guidance

    def actor_for(self, guidance: Guidance) -> Executor | Skill:
        """Who gives the chunk for ``guidance``: the skill where it accepts it, else the executor."""
        rt = self.rt
        if rt.skill is not None and rt.skill.accepts(guidance):
            return rt.skill
        if rt.executor is None:
            assert rt.skill is not None  # the Runtime has at least one actor
            raise ConfigError(
                f"skill {rt.skill.name!r} does not accept the guidance at step {self.steps} "
                f"(subtask {guidance.subtask!r}, skill tokens {guidance.skills}) and the pipeline "
                "names no executor to act instead; name one with --executor"
            )
        return rt.executor

    def act(self, obs: Observation, guidance: Guidance) -> tuple[ActionChunk, str]:
        """Ask the skill or the executor for a chunk and check it; the chunk and the actor's kind.

        Runs on the worker thread in async mode.
        """
        rt = self.rt
        t = time.perf_counter()
        actor = self.actor_for(guidance)
        chunk = actor.act(obs, guidance)
        self.samples["act"].append(time.perf_counter() - t)
        who = f"{actor.kind} {actor.name!r}"
        if not isinstance(chunk, ActionChunk):
            raise PluginError(f"{who} returned {type(chunk).__name__}, not ActionChunk")
        if chunk.space != rt.space.name:
            raise PluginError(f"{who} returned a chunk in {chunk.space!r}, declared {rt.space.name!r}")
        shape = getattr(chunk.actions, "shape", None)
        if shape is None or len(shape) != 2 or shape[0] < 1 or shape[1] != rt.space.dim:
            raise PluginError(f"{who} returned actions of shape {shape}; expected (H, {rt.space.dim})")
        return chunk, actor.kind

    def counted(self, actor: str, info: dict[str, Any]) -> str:
        """Count a chunk from ``actor`` that is about to execute (with ``info``: the skill tokens it acts out)."""
        self.chunks += 1
        self.actors[actor] = self.actors.get(actor, 0) + 1
        tokens = info.get(CHUNK_SKILLS)
        if tokens is not None:
            self.skills.append([int(t) for t in tokens])
        return actor

    def honour_done(self, chunk: ActionChunk, actor: str) -> tuple[ActionChunk, str]:
        """The chunk to run: ``chunk``, or where it says its subtask is done and the guidance moves on, a fresh one
        for the current observation under the new guidance (which replaces ``self.guidance``)."""
        if chunk.subtask_done:
            advanced = self.plan("subtask")
            if advanced != self.guidance:
                self.guidance = advanced
                return self.act(self.obs, self.guidance)
        return chunk, actor

    def fresh_queue(self) -> tuple[np.ndarray, dict[str, Any], str]:
        """A chunk computed now for the current observation (actions to execute, its info, its actor).

        Sync mode runs its first ``execute_horizon`` actions; async mode keeps the whole chunk queued,
        so there is something to run while the next one is computed.
        """
        chunk, actor = self.honour_done(*self.act(self.obs, self.guidance))
        actions = chunk.actions if self.rt.config.mode == "async" else chunk.actions[: self.rt.config.execute_horizon]
        return actions, chunk.info, self.counted(actor, chunk.info)

    def load(self, raw: np.ndarray, info: dict[str, Any], actor: str) -> None:
        """Make ``raw`` (from a chunk with ``info``, given by ``actor``) the queue of commands, passed through the safety layer."""
        t = time.perf_counter()
        try:
            safe, changed = self.rt.safety.filter_chunk(raw, previous=self.last_command)
        except UnsafeAction as err:
            raise _Stop("unsafe", f"step {self.steps}: {err}; robot holding position") from None
        self.samples["safety"].append(time.perf_counter() - t)
        self.raw, self.safe, self.changed, self.cursor, self.info, self.actor = raw, safe, changed, 0, info, actor

    # --- the loop ------------------------------------------------------------------------

    def loop(self) -> None:
        rt = self.rt
        cfg = rt.config
        robot, space = rt.robot, rt.space.name
        samples = self.samples
        s_apply, s_observe, s_status = samples["apply"], samples["observe"], samples["status"]
        s_subs, s_wait, s_step = samples["subscribers"], samples["wait"], samples["step"]
        subscribers = rt.subscribers
        period = rt.spec.control_period
        async_mode = cfg.mode == "async"
        pace = rt.pace
        clock = time.perf_counter
        t_episode = clock()

        self.load(*self.fresh_queue())
        future: Future[tuple[ActionChunk, str]] | None = None
        future_step = 0

        while self.steps < cfg.max_steps:
            if rt.stop_requested:
                raise KeyboardInterrupt
            t0 = clock()
            # -- refill: every command in the queue has passed the safety layer --
            if async_mode:
                if future is None and self.cursor >= min(cfg.execute_horizon, len(self.safe)):
                    future_step = self.steps
                    future = self.pool.submit(self.act, self.obs, self.guidance)  # type: ignore[union-attr]
                if future is not None and (future.done() or self.cursor >= len(self.safe)):
                    tw = clock()
                    arrived, actor = future.result()
                    s_wait.append(clock() - tw)
                    future = None
                    chunk, actor = self.honour_done(arrived, actor)
                    self.counted(actor, chunk.info)
                    # Action j was meant for step future_step + j: drop those whose time has passed
                    # (none of a chunk that honour_done computed just now).
                    stale = self.steps - future_step if chunk is arrived else 0
                    self.dropped += min(stale, len(chunk))
                    self.load(*((chunk.actions[stale:], chunk.info, actor) if stale < len(chunk) else self.fresh_queue()))
                    t0 = clock()
            elif self.cursor >= len(self.safe):
                self.load(*self.fresh_queue())
                t0 = clock()

            i = self.cursor
            self.cursor = i + 1
            command = self.safe[i]
            if self.changed[i]:
                self.clamped += 1

            # -- robot --
            before = self.obs
            t2 = clock()
            robot.apply(command, space)
            self.last_command = command
            self.steps += 1
            t3 = clock()
            s_apply.append(t3 - t2)
            if pace:
                delay = t_episode + self.steps * period - t3
                if delay > 0:
                    time.sleep(delay)
                t3b = clock()
                s_wait.append(t3b - t3)
                t3 = t3b
            self.obs = robot.observe()
            t4 = clock()
            s_observe.append(t4 - t3)
            status = robot.status()
            t5 = clock()
            s_status.append(t5 - t4)

            # -- subscribers --
            if subscribers:
                step = Step(
                    self.steps - 1, t5 - t_episode, self.obs, command, self.raw[i], space, self.guidance, before, self.info,
                    self.actor,
                )  # fmt: skip
                rt._notify("on_step", step)
                s_subs.append(clock() - t5)

            previous, self.last_status = self.last_status, status
            if status.done:
                self.done = True
                s_step.append(clock() - t0)
                return
            if self.steps >= cfg.max_steps:  # no planning for steps that will not run
                s_step.append(clock() - t0)
                return

            # -- planner events --
            if (
                cfg.progress == "robot"
                and status.subtasks_completed is not None
                and previous.subtasks_completed is not None
                and status.subtasks_completed > previous.subtasks_completed
            ):
                self.guidance = self.plan("subtask")
                # The queued actions were meant for the finished subtask, and so were those of a chunk
                # asked for under the old guidance: drop both, so the next step gets a chunk for the new one.
                self.cursor = len(self.safe)
                if future is not None:
                    future.cancel()  # if it is already running, the worker finishes it and nobody reads it
                    future = None
            elif cfg.plan_period is not None and self.steps % cfg.plan_period == 0:
                self.guidance = self.plan("period")
            s_step.append(clock() - t0)


def _subtask_success(status: RobotStatus) -> float | None:
    if status.subtasks_completed is None or not status.subtasks_total:
        return None
    return min(status.subtasks_completed, status.subtasks_total) / status.subtasks_total


def _task_success(status: RobotStatus) -> bool | None:
    if status.subtasks_completed is None or not status.subtasks_total:
        return None
    return status.subtasks_completed >= status.subtasks_total


# --- building a runtime from a pipeline ---------------------------------------------------


def build_runtime(
    pipeline: PipelineConfig,
    registry: Registry,
    subscribers: Sequence[Subscriber] = (),
    options: dict[str, Any] | None = None,
) -> Runtime:
    """Create the pipeline's components and a `Runtime` over them.

    Every section is validated before any component is built, so a config
    error never leaves a half-started robot. Subscribers from plugins
    (``s2kit_subscribers``, given ``options``: the recorder, videos and the
    metrics log are built-in ones) are attached after ``subscribers``; one
    that cannot be made (an output it cannot open) is the caller's error and
    propagates.
    """
    sections = pipeline.components  # robot, planner, executor, skill: the ones it names
    for section in ("executor", "skill"):  # an actor with a `robot` option (its shipped default per robot) learns which
        if section in sections:
            sections[section] = registry.with_robot(section, sections[section], sections["robot"]["name"])
    for section, values in sections.items():
        registry.config(section, values["name"], pipeline.options(section))
    built: dict[str, Any] = {}
    try:
        for section, values in sections.items():
            built[section] = registry.create(section, values)
        extra = [
            sub
            for _, subs in registry.call_each(
                "s2kit_subscribers", raise_errors=True, pipeline=pipeline, options=dict(options or {})
            )
            for sub in subs
        ]
        return Runtime(
            built["robot"],
            built["planner"],
            built.get("executor"),
            pipeline.runtime,
            [*subscribers, *extra],
            pipeline=pipeline.model_dump(mode="json"),
            skill=built.get("skill"),
        )
    except BaseException:
        for component in reversed(built.values()):
            component.close()
        raise
