"""The framework's own cost per control step, next to openpi-client's Runtime loop.

Both loops drive the same nothing: a robot whose observe/apply do no work, a
planner that returns fixed guidance, an executor that returns a fixed chunk.
What is left is each loop's own cost: s2kit's includes the safety layer
(non-finite check, clamping to limits and per-step change), per-stage timing
and progress bookkeeping; openpi-client's is its Runtime with a PolicyAgent
over an ActionChunkBroker, the way its examples run a chunked policy.

    .venv/bin/python benchmarks/runtime_overhead.py [--steps 20000] [--repeats 5] [--json]

Prints the median per-step cost of each and their ratio. Goal: s2kit below
50 µs per step and no slower than openpi-client's loop.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import numpy as np

from s2kit.core import (
    ActionChunk,
    Executor,
    Guidance,
    Observation,
    Planner,
    Robot,
    RobotSpec,
    RobotStatus,
    Runtime,
    RuntimeConfig,
    Subscriber,
    ee_delta_space,
)

HORIZON = 10
IMAGE = np.zeros((96, 96, 3), dtype=np.uint8)
STATE = np.zeros(8, dtype=np.float32)
ACTIONS = np.tile(np.array([0.01, 0, 0, 0, 0, 0, 1], dtype=np.float32), (HORIZON, 1))


# --- s2kit: null robot, null planner, constant executor ------------------------------------


class NullRobot(Robot):
    name = "null"

    def __init__(self) -> None:
        super().__init__()
        self._spec = RobotSpec(name="null", action_spaces=(ee_delta_space(),), control_hz=50.0)
        self._obs = Observation(images={"head": IMAGE, "wrist": IMAGE}, state=STATE)
        self._status = RobotStatus()

    @property
    def spec(self) -> RobotSpec:
        return self._spec

    def reset(self, *, seed: int | None = None) -> Observation:
        return self._obs

    def observe(self) -> Observation:
        return self._obs

    def apply(self, action: np.ndarray, space: str) -> None:
        pass

    def status(self) -> RobotStatus:
        return self._status


class NullPlanner(Planner):
    name = "null"

    def plan(self, instruction, observation, **kwargs) -> Guidance:  # type: ignore[no-untyped-def, override]
        return Guidance(goal=instruction, subtasks=[instruction])


class ConstantExecutor(Executor):
    name = "constant"

    def act(self, observation: Observation, guidance: Guidance) -> ActionChunk:
        return ActionChunk(actions=ACTIONS, period=0.02)


class NullSubscriber(Subscriber):
    def on_step(self, step) -> None:  # type: ignore[no-untyped-def]
        pass


def s2kit_per_step(steps: int, subscribers: int = 0, mode: str = "sync") -> float:
    config = RuntimeConfig(max_steps=steps, execute_horizon=HORIZON, instruction="do nothing", mode=mode)
    rt = Runtime(NullRobot(), NullPlanner(), ConstantExecutor(), config, [NullSubscriber() for _ in range(subscribers)])
    start = time.perf_counter()
    result = rt.run_episode()
    elapsed = time.perf_counter() - start
    assert result.steps == steps, result
    return elapsed / steps


# --- openpi-client: the same nothing through its Runtime -----------------------------------


def openpi_per_step(steps: int) -> float:
    from openpi_client import action_chunk_broker, base_policy
    from openpi_client.runtime import environment, runtime
    from openpi_client.runtime.agents import policy_agent

    observation = {"observation/image": IMAGE, "observation/wrist_image": IMAGE, "observation/state": STATE,
                   "prompt": "do nothing"}  # fmt: skip

    class NullEnvironment(environment.Environment):
        def reset(self) -> None:
            pass

        def is_episode_complete(self) -> bool:
            return False

        def get_observation(self) -> dict:
            return observation

        def apply_action(self, action: dict) -> None:
            pass

    class ConstantPolicy(base_policy.BasePolicy):
        def infer(self, obs: dict) -> dict:
            return {"actions": ACTIONS}

    agent = policy_agent.PolicyAgent(action_chunk_broker.ActionChunkBroker(ConstantPolicy(), action_horizon=HORIZON))
    loop = runtime.Runtime(NullEnvironment(), agent, subscribers=[], max_hz=0, num_episodes=1, max_episode_steps=steps)
    start = time.perf_counter()
    loop.run()
    return (time.perf_counter() - start) / steps


def median_us(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    fn()  # warm up
    return statistics.median(fn() for _ in range(repeats)) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    figures = {
        "s2kit_sync_us": median_us(lambda: s2kit_per_step(args.steps), args.repeats),
        "s2kit_sync_1_subscriber_us": median_us(lambda: s2kit_per_step(args.steps, subscribers=1), args.repeats),
        "s2kit_async_us": median_us(lambda: s2kit_per_step(args.steps, mode="async"), args.repeats),
        "openpi_client_us": median_us(lambda: openpi_per_step(args.steps), args.repeats),
    }
    figures["ratio_s2kit_to_openpi"] = figures["s2kit_sync_us"] / figures["openpi_client_us"]
    meta = {"steps": args.steps, "repeats": args.repeats, "chunk": HORIZON, "python": platform.python_version(),
            "machine": platform.machine(), "cpu_count": __import__("os").cpu_count()}  # fmt: skip
    if args.json:
        print(json.dumps({**figures, **meta}, indent=2))
        return
    print(f"per control step, median of {args.repeats} runs of {args.steps} steps (chunks of {HORIZON}):")
    print(f"  s2kit Runtime, sync              {figures['s2kit_sync_us']:8.2f} µs")
    print(f"  s2kit Runtime, sync + subscriber {figures['s2kit_sync_1_subscriber_us']:8.2f} µs")
    print(f"  s2kit Runtime, async             {figures['s2kit_async_us']:8.2f} µs")
    print(f"  openpi-client Runtime            {figures['openpi_client_us']:8.2f} µs")
    print(f"  ratio s2kit / openpi-client      {figures['ratio_s2kit_to_openpi']:8.2f}")


if __name__ == "__main__":
    main()
