"""Evaluation: a pipeline on several task suites, episodes spread over processes.

Each suite's episodes (seeds ``seed``, ``seed + 1``, ...) are cut into
contiguous blocks, one per worker (`plan_blocks`); a worker process builds its
own runtime for a block and runs it (`run_block`). An episode depends only on
its seed (the simulator is deterministic and every component resets between
episodes), so the results equal a serial run's, wall-clock timings aside;
they are re-indexed as if one runtime had run them all.

Workers are started with ``spawn``: a forked child would inherit the parent's
threads and any MuJoCo/OpenGL or torch state half-initialised. Each sets its
BLAS/OpenMP pools to one thread before any plugin imports torch, so W workers
use W cores rather than W x cores.

With one worker everything runs in this process (no child, no pickling), via
the same `run_block`.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import re
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from s2kit.core.config import PipelineConfig, comma_list
from s2kit.core.errors import ConfigError, S2kitError
from s2kit.core.interfaces import Robot
from s2kit.core.metrics import Summary
from s2kit.core.registry import Registry, get_registry, load_registry, reset_registry
from s2kit.core.runtime import Runtime, build_runtime, ctrl_c_requests_stop
from s2kit.core.types import EpisodeResult

__all__ = [
    "Block",
    "BlockResult",
    "Evaluation",
    "WorkerError",
    "evaluate",
    "plan_blocks",
    "plot_suites",
    "run_block",
    "run_to_end",
    "shift_results",
    "split_episodes",
    "suites_of",
]

# Thread pools a worker limits to one thread (read when torch/NumPy load).
_THREAD_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


class WorkerError(S2kitError):
    """An error in a worker process, carried back as its message, exit code and traceback."""

    def __init__(
        self, message: str, exit_code: int = 1, remote_traceback: str = ""
    ) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.remote_traceback = remote_traceback

    def __reduce__(self) -> tuple[Any, ...]:  # crosses the process boundary whole
        return (type(self), (str(self), self.exit_code, self.remote_traceback))


class _Stop(Protocol):
    def is_set(self) -> bool: ...


# --- blocks --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    """A contiguous run of one suite's episodes.

    ``config`` is the suite's pipeline with ``runtime.seed`` and
    ``runtime.episodes`` set to the block's; ``start`` is the index of its
    first episode within the suite; ``video`` the suite's video folder.
    """

    suite: str
    config: PipelineConfig
    start: int
    video: Path | None = None


@dataclass
class BlockResult:
    """What running a block gave: episodes (indexed within the suite), whether Ctrl-C
    ended it, subscribers that stopped (and why), or the error that ended it."""

    results: list[EpisodeResult] = field(default_factory=list)
    interrupted: bool = False
    warnings: list[str] = field(default_factory=list)
    error: WorkerError | None = None


def split_episodes(episodes: int, parts: int) -> list[tuple[int, int]]:
    """``(start, count)`` of at most ``parts`` contiguous blocks covering ``range(episodes)``.

    Sizes differ by at most one, larger first; empty blocks are left out.
    """
    if parts < 1:
        raise ValueError(f"parts must be >= 1, got {parts}")
    blocks, start = [], 0
    for k in range(parts):
        count = episodes // parts + (k < episodes % parts)
        if count:
            blocks.append((start, count))
        start += count
    return blocks


def plan_blocks(
    configs: Mapping[str, PipelineConfig], workers: int, video: Path | None = None
) -> list[Block]:
    """Every suite's episodes cut into ``workers`` blocks, suite by suite.

    ``video`` is the root of the videos: each suite writes into
    ``video/<suite>/`` (the suite's name made safe for a folder name).
    """
    blocks = []
    for suite, config in configs.items():
        rt = config.runtime
        folder = video / _folder_name(suite) if video is not None else None
        for start, count in split_episodes(rt.episodes, workers):
            runtime = rt.model_copy(update={"seed": rt.seed + start, "episodes": count})
            blocks.append(
                Block(
                    suite, config.model_copy(update={"runtime": runtime}), start, folder
                )
            )
    return blocks


def _folder_name(suite: str) -> str:
    name = Path(suite).stem if suite.endswith((".yaml", ".yml")) else suite
    return re.sub(r"[^\w.-]+", "_", name) or "suite"


# --- running one block ----------------------------------------------------------------------


def run_to_end(
    runtime: Runtime, on_result: Callable[[EpisodeResult], None] | None = None
) -> list[EpisodeResult]:
    """Run every episode of ``runtime``, then close it and its components."""
    try:
        return runtime.run(on_result=on_result)
    finally:
        runtime.close()
        for component in reversed(runtime.components):  # skill, executor, planner, robot
            component.close()


def run_block(
    block: Block,
    registry: Registry,
    on_episode: Callable[[str], None] | None = None,
    stop: _Stop | None = None,
) -> BlockResult:
    """Build ``block``'s runtime, run its episodes and return them indexed within the suite.

    ``on_episode(suite)`` is called as each episode ends; once ``stop`` is
    set the runtime stops at the next control step, as on Ctrl-C.
    """
    options: dict[str, Any] = {}
    if block.video is not None:  # the built-in video subscriber (workflows.subscribers) makes it
        options.update(video=str(block.video), video_start=block.start)  # upscaled and captioned by default
    runtime = build_runtime(block.config, registry, options=options)
    on_result = (lambda _: on_episode(block.suite)) if on_episode is not None else None
    with _stop_watch(runtime, stop):
        results = run_to_end(runtime, on_result)
    return BlockResult(
        results=[
            r.model_copy(update={"index": block.start + r.index}) for r in results
        ],
        interrupted=runtime.interrupted,
        warnings=[
            f"{type(sub).__name__} stopped during the run ({why})"
            for sub, why in runtime.detached
        ],
    )


@contextlib.contextmanager
def _stop_watch(runtime: Runtime, stop: _Stop | None):  # type: ignore[no-untyped-def]
    """While running, a thread that turns ``stop`` into the runtime's stop request.

    It asks again and again: `Runtime.run` clears the request when it starts.
    """
    if stop is None:
        yield
        return
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.05):
            if stop.is_set():
                runtime.stop_requested = True

    thread = threading.Thread(target=watch, name="s2kit-eval-stop", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


# --- worker processes -------------------------------------------------------------------------

_worker: dict[str, Any] = {}


def _init_worker(modules: list[str], events: Any, stop: Any) -> None:
    """Runs first in each worker process: single-threaded maths, Ctrl-C left to the parent, the parent's plugins."""
    for var in _THREAD_VARS:
        os.environ[var] = "1"
    # A Ctrl-C in the terminal reaches every process in the group. Between blocks a
    # worker ignores it (the parent decides); while running, the runtime installs its
    # own handler and stops the episode cleanly.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # S2KIT_PLUGINS's modules are in ``modules`` already, with those the parent loaded by name.
    env = {k: v for k, v in os.environ.items() if k != "S2KIT_PLUGINS"}
    registry = load_registry(modules=modules, env=env)
    reset_registry(registry)  # plugins that call get_registry() see the same one
    _worker.update(registry=registry, events=events, stop=stop)


def _run_in_worker(block: Block) -> BlockResult:
    if _worker["stop"].is_set():
        return BlockResult(interrupted=True)
    # torch is never imported here: its threads are set only if a plugin already did
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)
    events = _worker["events"]
    try:
        return run_block(block, _worker["registry"], events.put, _worker["stop"])
    except Exception as err:  # noqa: BLE001 - carried to the parent, which reports it as one line
        return BlockResult(error=_as_worker_error(err))


def _as_worker_error(err: BaseException) -> WorkerError:
    text = traceback.format_exc()
    if isinstance(err, S2kitError):
        return WorkerError(str(err), err.exit_code, text)
    return WorkerError(f"{type(err).__name__}: {err}", 1, text)


def _extra_modules(registry: Registry) -> list[str]:
    """Plugin modules the registry loaded by name (not through entry points): workers load them too."""
    return [
        p.module
        for p in registry.plugins
        if p.distribution is None and p.status == "ok"
    ]


# --- evaluating --------------------------------------------------------------------------------


@dataclass
class Evaluation:
    """Every suite's scored episodes (in seed order, indexed from 0), and how the evaluation ended.

    An episode Ctrl-C cut short says nothing of the policy: it is kept apart,
    in ``cut``, and left out of ``per_suite`` and so of every mean.
    """

    per_suite: dict[str, list[EpisodeResult]]
    interrupted: bool = False
    warnings: list[str] = field(default_factory=list)
    cut: dict[str, list[EpisodeResult]] = field(default_factory=dict)


def evaluate(
    blocks: Sequence[Block],
    workers: int = 1,
    on_episode: Callable[[str], None] | None = None,
    registry: Registry | None = None,
) -> Evaluation:
    """Run ``blocks`` on ``workers`` processes (in this one for 1) and gather the episodes.

    Components are validated here first, so a config error does not wait for
    a worker to start. A block's error stops the others at their next step
    and is raised (as `WorkerError` from a worker process). Ctrl-C stops
    every block at its next step; the episodes so far are returned with
    ``interrupted`` set. A second Ctrl-C stops at once.
    """
    registry = registry or get_registry()
    for config in {b.suite: b.config for b in blocks}.values():
        for section, component in config.components.items():
            registry.config(section, component["name"], config.options(section))
    if workers <= 1 or len(blocks) <= 1:
        done = _evaluate_here(blocks, registry, on_episode)
    else:
        done = _evaluate_in_pool(
            blocks, min(workers, len(blocks)), registry, on_episode
        )
    evaluation = Evaluation(per_suite={b.suite: [] for b in blocks}, cut={b.suite: [] for b in blocks})
    for block in blocks:
        result = done.get(id(block))
        if result is None:
            evaluation.interrupted = True
            continue
        for episode in result.results:
            (evaluation.cut if episode.status == "interrupted" else evaluation.per_suite)[block.suite].append(episode)
        evaluation.interrupted |= result.interrupted
        evaluation.warnings.extend(result.warnings)
    return evaluation


def _evaluate_here(
    blocks: Sequence[Block],
    registry: Registry,
    on_episode: Callable[[str], None] | None,
) -> dict[int, BlockResult]:
    done: dict[int, BlockResult] = {}
    for block in blocks:
        try:
            result = run_block(block, registry, on_episode)
        except KeyboardInterrupt:  # outside an episode (e.g. while a model loads)
            break
        done[id(block)] = result
        if result.interrupted:
            break
    return done


def _evaluate_in_pool(
    blocks: Sequence[Block],
    workers: int,
    registry: Registry,
    on_episode: Callable[[str], None] | None,
) -> dict[int, BlockResult]:
    ctx = multiprocessing.get_context("spawn")
    events, stop = ctx.SimpleQueue(), ctx.Event()
    pool = ProcessPoolExecutor(
        workers,
        mp_context=ctx,
        initializer=_init_worker,
        initargs=(_extra_modules(registry), events, stop),
    )
    with _sigint_ignored():  # the workers start with it ignored (see _init_worker)
        futures: dict[Future[BlockResult], Block] = {
            pool.submit(_run_in_worker, b): b for b in blocks
        }
    handled: set[Future[BlockResult]] = set()
    done: dict[int, BlockResult] = {}
    errors: dict[int, WorkerError] = {}  # by block order
    order = {id(b): i for i, b in enumerate(blocks)}
    interrupted = finished = False

    def halt() -> None:  # ask running blocks to stop; drop those not started
        stop.set()
        for future in futures:
            future.cancel()

    def drain() -> None:
        while not events.empty():
            suite = events.get()
            if on_episode is not None:
                on_episode(suite)

    # The first Ctrl-C only sets a flag, read once per pass: raised as an exception it could
    # land inside a read of the workers' event queue and leave the pipe half-read.
    pressed = threading.Event()
    with ctrl_c_requests_stop(pressed.is_set, pressed.set):
        try:
            while len(handled) < len(futures):
                wait([f for f in futures if f not in handled], timeout=0.1, return_when=FIRST_COMPLETED)
                if pressed.is_set() and not interrupted:
                    interrupted = True
                    halt()
                drain()
                for future, block in futures.items():
                    if future in handled or not future.done():
                        continue
                    if not future.cancelled():
                        result = _result(future, stopping=stop.is_set())
                        if result is None:
                            pass  # stopped before it ran: missing, so interrupted
                        elif result.error is not None:
                            errors[order[id(block)]] = result.error
                            halt()
                        else:
                            done[id(block)] = result
                    handled.add(future)
            drain()
            finished = True
        finally:
            if finished:
                pool.shutdown(wait=True)
            else:  # leaving on a second Ctrl-C: do not wait for the workers
                for process in list((getattr(pool, "_processes", None) or {}).values()):  # no public API before 3.14
                    process.terminate()
                pool.shutdown(wait=False, cancel_futures=True)
    if errors:
        raise errors[
            min(errors)
        ]  # the first block's error, as a serial run would meet it
    return done


@contextlib.contextmanager
def _sigint_ignored():  # type: ignore[no-untyped-def]
    """Ignore SIGINT here for a moment, so that the processes started meanwhile inherit it.

    A terminal's Ctrl-C reaches the whole process group; a worker still
    importing would die of it (a broken pool, tracebacks) before its
    initializer could ignore it.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _result(future: Future[BlockResult], stopping: bool) -> BlockResult | None:
    """A finished block's result; a worker that died is an error, unless Ctrl-C killed it (None)."""
    try:
        return future.result()
    except BrokenProcessPool as err:
        # A terminal's Ctrl-C reaches a worker still starting, before it ignores SIGINT.
        if stopping:
            return None
        return BlockResult(
            error=WorkerError(f"a worker process died unexpectedly ({err})")
        )


# --- summaries and the chart -------------------------------------------------------------------


def suites_of(robot: type[Robot], asked: str | None, *, every: bool = False) -> list[str]:
    """The suites a command runs on ``robot``: ``asked`` (comma-separated), checked, or the robot's default.

    The default is the robot's first declared suite, or all of them with
    ``every`` (``s2kit eval``); a robot that declares none runs without one
    (an empty list). A suite the robot cannot run, or an empty name in the
    list (``a,,b``), is a `ConfigError` here, before any episode.
    """
    declared = robot.suites()
    if asked is None:
        return list(declared) if every else list(declared[:1])
    if not asked.replace(",", "").strip():
        example = f" (e.g. {','.join(declared)})" if declared else ""
        raise ConfigError(f"suites {asked!r} names no suite{example}")
    names = comma_list(asked, "suites")
    for name in names:
        robot.check_suite(name)
    return names


def shift_results(
    per_suite: Mapping[str, Sequence[EpisodeResult]], in_distribution: str | None
) -> list[EpisodeResult]:
    """The episodes of every suite but ``in_distribution`` (the robot's first), pooled: the shift mean's."""
    return [
        r for suite, results in per_suite.items() if suite != in_distribution for r in results
    ]


def plot_suites(
    path: str | Path, summaries: Mapping[str, Summary], title: str = ""
) -> Path:
    """A bar chart (PNG) of each suite's mean subtask and task success with 95% CI error bars.

    matplotlib is imported here, and drawn through its Agg canvas without
    pyplot, so no display and no global backend are involved.
    """
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import PercentFormatter

    names = list(summaries)
    x = np.arange(len(names))
    width = 0.38
    fig = Figure(figsize=(max(5.0, 1.3 * len(names) + 2), 3.8))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    bars = (
        ("subtask success", "subtask_success", -width / 2, "#4c72b0"),
        ("task success", "task_success", width / 2, "#dd8452"),
    )
    for label, key, offset, colour in bars:
        estimates = [getattr(summaries[n], key) for n in names]
        means = [e.mean if e is not None else 0.0 for e in estimates]
        err = np.array(
            [
                [e.mean - e.low, e.high - e.mean] if e is not None else [0.0, 0.0]
                for e in estimates
            ]
        ).T
        ax.bar(x + offset, means, width, yerr=err, capsize=3, label=label, color=colour)
    ax.set_xticks(x, names)
    ax.set_ylim(0, 1.22)  # headroom for the legend above the 100% line
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_ylabel("success (95% CI)")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    ax.legend(loc="upper center", ncol=2, fontsize="small", frameon=False)
    if title:
        ax.set_title(title, fontsize="medium")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    return path
