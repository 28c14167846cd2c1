"""Diagnostic, not a method: S2 given the privileged focus as an input.

Separates "cannot see where the object is" from "cannot act on it": the
network is S2 as trained by ``s2kit train``, except that the state token also
receives ``privileged.focus`` (where the subtask needs the hand, relative to
it), in training from the dataset and in closed loop from the simulator. If
this policy closes the loop, the action head and chunking work and what is
missing is perception; if not, the problem is downstream of perception.

    python scripts/diagnostics/privileged_focus.py train DATA RUN [--set K=V ...]
    python scripts/diagnostics/privileged_focus.py eval RUN [EPISODES] [SEED]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from s2kit.plugins.executors.s2 import executor as s2_executor
from s2kit.plugins.executors.s2 import modeling
from s2kit.plugins.executors.s2.data import FOCUS_SCALE
from s2kit.plugins.executors.s2.modeling import FOCUS, S2Policy

#: The focus of the observation being acted on (set per act, read by the network).
LIVE: dict[str, torch.Tensor] = {}


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
    LIVE["focus"] = torch.from_numpy(np.asarray(observation.privileged.focus, dtype=np.float32)[None] * FOCUS_SCALE)
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

    run, episodes = sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 10
    seed = int(sys.argv[4]) if len(sys.argv) > 4 else 100000
    config = compose_pipeline(components={"robot": "hsr", "planner": "oracle", "executor": "s2"},
                              runtime={"episodes": episodes, "seed": seed}, overrides=[f"executor.checkpoint={run}"])  # fmt: skip
    runtime = build_runtime(config, get_registry())
    results = [runtime.run_episode(i, seed + i) for i in range(episodes)]
    rates = [r.subtask_success for r in results]
    print(f"subtask success {np.mean(rates):.3f} over {episodes} episodes; task success {np.mean([r.task_success for r in results]):.3f}")
    print("per episode:", [round(x, 2) for x in rates])


if __name__ == "__main__":
    main()
