"""Diagnostic, not a method: S2 given the privileged focus as an input.

Separates "cannot see where the object is" from "cannot act on it": the
network is S2 as trained by ``s2kit train``, except that the state token also
receives ``privileged.focus`` (where the subtask needs the hand, relative to
it), in training from the dataset and in closed loop from the simulator. If
this policy closes the loop, the action head and chunking work and what is
missing is perception; if not, the problem is downstream of perception.

    python scripts/diagnostics/privileged_focus.py train DATA RUN [--set K=V ...]
    python scripts/diagnostics/privileged_focus.py eval RUN [EPISODES] [SEED] [--bias-cm S]

``--bias-cm S`` adds an error to the focus the policy is given in closed loop:
a constant offset per subtask, drawn from N(0, S cm) along x and y (seeded).
It measures how precise a perceived focus must be for the policy to act on it,
and a constant offset is the hard case: a perception error that does not
average out over the steps of a subtask.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from s2kit.plugins.executors.s2 import executor as s2_executor
from s2kit.plugins.executors.s2 import modeling
from s2kit.plugins.executors.s2.training_data import FOCUS_SCALE
from s2kit.plugins.executors.s2.modeling import FOCUS, S2Policy

#: The focus of the observation being acted on (set per act, read by the network).
LIVE: dict[str, torch.Tensor] = {}
#: ``--bias-cm``: the offset's std in metres, its generator, and the subtask it was drawn for.
BIAS: dict[str, object] = {"std": 0.0, "rng": np.random.default_rng(0), "key": None, "offset": np.zeros(3, np.float32)}


class FocusState(nn.Module):
    """The state projection plus a projection of the focus (decimetres)."""

    def __init__(self, proj: nn.Module, dim: int) -> None:
        super().__init__()
        self.proj, self.focus_in, self.focus = proj, nn.Linear(3, dim), None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x) + self.focus_in(torch.nan_to_num(self.focus))


class PrivilegedFocusPolicy(S2Policy):
    def __init__(self, config) -> None:  # type: ignore[no-untyped-def]
        super().__init__(config)
        self.state_proj = FocusState(self.state_proj, config.dim)

    def encode(self, batch, rho=None):  # type: ignore[no-untyped-def]
        self.state_proj.focus = batch[FOCUS] if FOCUS in batch else LIVE["focus"]
        return super().encode(batch, rho)


modeling.S2Policy = PrivilegedFocusPolicy  # what training and load_policy build
_act = s2_executor.S2Executor.act


def _act_with_focus(self, observation, guidance):  # type: ignore[no-untyped-def]
    sim = observation.privileged
    focus = np.asarray(sim.focus, dtype=np.float32)
    if BIAS["std"] and BIAS["key"] != sim.completed:  # a new offset per subtask (the key is reset per episode)
        BIAS["key"] = sim.completed
        BIAS["offset"] = np.array([*BIAS["rng"].normal(0.0, BIAS["std"], 2), 0.0], dtype=np.float32)  # type: ignore[union-attr]
    LIVE["focus"] = torch.from_numpy((focus + BIAS["offset"])[None] * FOCUS_SCALE)
    return _act(self, observation, guidance)


s2_executor.S2Executor.act = _act_with_focus


def main() -> None:
    if sys.argv[1] == "train":
        from s2kit.plugins.executors.s2 import training

        training.S2Policy = PrivilegedFocusPolicy
        overrides = [a for a in sys.argv[4:] if a != "--set"]
        s2_executor.S2Executor.train([Path(sys.argv[2])], Path(sys.argv[3]), overrides=["model.focus_weight=0", *overrides])
        return
    from s2kit.core.config import compose_pipeline
    from s2kit.core.registry import get_registry
    from s2kit.core.runtime import build_runtime

    args = sys.argv[2:]
    if "--bias-cm" in args:
        at = args.index("--bias-cm")
        BIAS["std"] = float(args[at + 1]) / 100.0
        del args[at : at + 2]
    run, episodes = args[0], int(args[1]) if len(args) > 1 else 10
    seed = int(args[2]) if len(args) > 2 else 100000
    config = compose_pipeline(components={"robot": "hsr", "planner": "oracle", "executor": "s2"},
                              runtime={"episodes": episodes, "seed": seed}, overrides=[f"executor.checkpoint={run}"])  # fmt: skip
    runtime = build_runtime(config, get_registry())
    results = []
    for i in range(episodes):
        BIAS["key"] = None
        results.append(runtime.run_episode(i, seed + i))
    rates = [r.subtask_success for r in results]
    print(f"subtask success {np.mean(rates):.3f} over {episodes} episodes; task success {np.mean([r.task_success for r in results]):.3f}")
    print("per episode:", [round(x, 2) for x in rates])


if __name__ == "__main__":
    main()
