"""Diagnostic: how far an S2 run's focus estimate is from the simulator's focus, in closed loop.

For a run trained with ``model.focus_input`` (the focus estimate is an input to
the action), runs episodes of a simulated robot's ``id`` suite (HSR unless
ROBOT names another) with the oracle
planner and, at every chunk, compares the network's estimate with
``SimState.focus``, and the focus map's position in each camera (over the whole
map) with ``SimState.focus_uv``. The errors are grouped by how far the focus
is, to set beside the held-out expert frames (``focus_map_error.py``), and says
how high the hand is above the focus, and whether it closes, once it is over it.

    python scripts/diagnostics/closed_loop_focus.py RUN [EPISODES] [SEED] [ROBOT]
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import torch

from s2kit.plugins.executors.s2 import executor as s2_executor
from s2kit.plugins.executors.s2.training_data import FOCUS_SCALE
from s2kit.plugins.executors.s2.modeling import S2Policy, focus_map_pixels

#: Per chunk: the estimate and the map's positions (from the network), the truth (from the simulator).
ROWS: list[dict[str, np.ndarray]] = []
#: The network's extras of the chunk being acted on, and its image size.
LAST: dict[str, Any] = {}
DISTANCES = ((0, 3), (3, 10), (10, 30), (30, 1000))  # cm

_sample = S2Policy.sample
_act = s2_executor.S2Executor.act


def _sample_and_keep(self: S2Policy, *args: Any, **kwargs: Any) -> Any:
    out = _sample(self, *args, **kwargs)
    LAST.update(out[2], image_size=self.config.image_size, cameras=self.config.cameras, grid=self.config.grid)
    return out


def _act_and_compare(self: Any, observation: Any, guidance: Any) -> Any:
    chunk = _act(self, observation, guidance)
    sim = observation.privileged
    uv = sim.focus_uv
    truth = torch.tensor(np.stack([np.asarray(uv.get(role, (np.nan, np.nan))) for role in LAST["cameras"]]), dtype=torch.float32)
    ROWS.append({
        "focus": np.asarray(sim.focus, dtype=np.float64),
        "estimate": LAST["focus"][0].double().numpy() / FOCUS_SCALE,
        "map_px": focus_map_pixels(LAST["focus_map"][0], truth, LAST["image_size"]).numpy(),
        "gripper": np.float64(chunk.actions[:, -1].mean()),  # the chunk's mean commanded opening (1: open)
        "z": np.float64(observation.state[LAST["ee_z"]]),  # where the hand is (m, base frame)
        "t": np.float64(observation.timestamp),
        "actions": np.array(chunk.actions),
        "keep": LAST["keep_index"][0].numpy() if "keep_index" in LAST else None,  # (cameras, kept) patch indices
    })  # fmt: skip
    return chunk


S2Policy.sample = _sample_and_keep  # type: ignore[method-assign]
s2_executor.S2Executor.act = _act_and_compare


def main() -> None:
    from s2kit.core.config import compose_pipeline
    from s2kit.core.registry import get_registry
    from s2kit.core.runtime import build_runtime

    run = sys.argv[1]
    episodes = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 100000
    robot = sys.argv[4] if len(sys.argv) > 4 else "hsr"
    config = compose_pipeline(components={"robot": robot, "planner": "oracle", "executor": "s2"},
                              runtime={"episodes": episodes, "seed": seed}, overrides=[f"executor.checkpoint={run}"])  # fmt: skip
    runtime = build_runtime(config, get_registry())
    LAST["ee_z"] = runtime.spec.state_names.index("ee_z")
    rates = [runtime.run_episode(i, seed + i).subtask_success for i in range(episodes)]
    print(f"subtask success per episode: {[round(r, 2) for r in rates]}")
    focus = np.stack([r["focus"] for r in ROWS]) * 100
    estimate = np.stack([r["estimate"] for r in ROWS]) * 100
    error = estimate - focus
    distance = np.linalg.norm(focus[:, :2], axis=1)
    print(f"{len(ROWS)} chunks; focus estimate error x / y (cm), median and RMS, by how far the focus is:")
    for lo, hi in DISTANCES:
        rows = (distance >= lo) & (distance < hi)
        if rows.any():
            median = np.median(np.abs(error[rows, :2]), axis=0)
            rms = np.sqrt(np.mean(error[rows, :2] ** 2, axis=0))
            print(f"  {lo}-{hi} cm ({rows.sum()} chunks): median {median[0]:.1f} / {median[1]:.1f}, RMS {rms[0]:.1f} / {rms[1]:.1f}")
    over = distance < 3  # the hand over the item: how high above it, and is it closing?
    if over.any():
        height = np.percentile(-focus[over, 2], [10, 50, 90])
        opening = np.array([r["gripper"] for r in ROWS])[over]
        commanded = np.array([r["actions"][:, 2].mean() for r in ROWS])[over] * 1000  # mean hand step up per action
        # how far the hand really moved up until the next chunk (NaN at an episode's last chunk)
        z, t = (np.array([r[key] for r in ROWS]) for key in ("z", "t"))
        moved = np.append(np.where(np.diff(t) > 0, np.diff(z), np.nan), np.nan)[over] * 1000
        print(f"hand within 3 cm of the focus in x/y ({over.sum()} chunks): the focus is {height[0]:.1f} / {height[1]:.1f} / "
              f"{height[2]:.1f} cm below it (10th / 50th / 90th percentile); commanded gripper opening {opening.mean():.2f} (1: open)")
        print(f"  there, the estimate puts the focus {np.median(-estimate[over, 2]):.1f} cm below the hand (median; "
              f"z error median {np.median(error[over, 2]):.1f} cm, RMS {np.sqrt(np.mean(error[over, 2] ** 2)):.1f} cm)")
        print(f"  there, commanded hand step up {np.median(commanded):.1f} mm per action (median); the hand moved "
              f"{np.nanmedian(moved):.1f} mm up over the chunk (median)")
    pixels = np.stack([r["map_px"] for r in ROWS])  # (chunks, cameras), NaN where the item is out of frame
    for k, role in enumerate(LAST["cameras"]):
        seen = pixels[:, k][np.isfinite(pixels[:, k])]
        print(f"{role} map (whole map): median {np.median(seen):.1f} px, 90th percentile {np.percentile(seen, 90):.1f} px over {len(seen)} chunks")
    if ROWS[0]["keep"] is not None:
        _report_kept(np.stack([r["keep"] for r in ROWS]), LAST["cameras"], LAST["grid"])


def _report_kept(keep: np.ndarray, cameras: list[str], grid: int) -> None:
    """How often each patch was kept over the chunks (chunks, cameras, kept): a patch kept in nearly every chunk,
    whatever the scene and the subtask, is budget spent on a fixed place rather than on the task."""
    chunks, _, kept = keep.shape
    for k, role in enumerate(cameras):
        counts = np.bincount(keep[:, k].ravel(), minlength=grid * grid) / chunks
        fixed = np.flatnonzero(counts >= 0.9)
        print(f"{role}: {len(fixed)} of the {kept} kept patches are kept in at least 90% of the {chunks} chunks "
              f"(patch indices {fixed.tolist()}); the rest change with the scene")
        for row in counts.reshape(grid, grid):
            print("    " + " ".join(f"{c:4.2f}" for c in row))


if __name__ == "__main__":
    main()
