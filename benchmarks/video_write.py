"""What writing an episode video costs: a 300-step, two-camera HSR episode.

    .venv/bin/python benchmarks/video_write.py [--steps 300] [--repeat 3] [--json]

The frames are rendered once (HSR at its default 96 x 96 cameras, head and
wrist, the hand swept over the table so the images change), then handed to
`VideoRecorder` as the runtime would: ``on_step`` per step, ``on_episode_end``
encodes. Reported per configuration: the time ``on_episode_end`` takes
(upscaling, captions, overlays, H.264 encoding; best of ``--repeat``), the
control loop's share per step (``on_step``), the frame size and the file size.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("MUJOCO_GL", "osmesa")

from s2kit.core.registry import load_registry  # noqa: E402
from s2kit.core.types import EE_DELTA, EpisodeInfo, EpisodeResult, Guidance, Step  # noqa: E402
from s2kit.workflows.video import VideoRecorder  # noqa: E402


def episode(steps: int) -> tuple[EpisodeInfo, list[Step]]:
    robot = load_registry(env={}).create("robot", {"name": "hsr"})
    obs = robot.reset(seed=0)
    task = robot.task
    subtasks = list(task.subtasks) or [task.instruction]
    info = EpisodeInfo(index=0, seed=0, instruction=task.instruction, robot=robot.spec, action_space=EE_DELTA)
    out = []
    for t in range(steps):
        action = np.array([0.01 * np.sin(t / 15), 0.01 * np.cos(t / 15), 0, 0, 0, 0, 1], np.float32)
        robot.apply(action, EE_DELTA)
        obs = robot.observe()
        current = min(len(subtasks) - 1, t * len(subtasks) // steps)
        guidance = Guidance(goal=task.instruction, subtasks=subtasks, current=current)
        out.append(Step(index=t, time=t / 10, observation=obs, action=action, raw_action=action, space=EE_DELTA, guidance=guidance))
    robot.close()
    return info, out


def measure(name: str, options: dict, info: EpisodeInfo, steps: list[Step], repeat: int) -> dict:
    best, per_step, size, shape = float("inf"), float("inf"), 0, None
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(repeat):
            video = VideoRecorder(Path(tmp) / str(k), **options)
            video.on_episode_start(info)
            t0 = time.perf_counter()
            for step in steps:
                video.on_step(step)
            per_step = min(per_step, (time.perf_counter() - t0) / len(steps))
            t0 = time.perf_counter()
            video.on_episode_end(EpisodeResult(index=0, seed=0, instruction=info.instruction, status="done", steps=len(steps)))
            best = min(best, time.perf_counter() - t0)
            size = video.written[0].stat().st_size
            import av

            with av.open(str(video.written[0])) as container:
                stream = container.streams.video[0]
                shape = (stream.height, stream.width)
    return {"config": name, "encode_s": round(best, 3), "on_step_us": round(per_step * 1e6, 2),
            "frame": f"{shape[1]}x{shape[0]}", "file_kib": round(size / 1024, 1)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    info, steps = episode(args.steps)
    configs = {
        "default": {},
        "caption, 384 px": {"caption": True, "min_height": 384},
        "native size, no caption": {"caption": False, "min_height": 0},
    }
    rows = [measure(name, options, info, steps, args.repeat) for name, options in configs.items()]
    if args.json:
        print(json.dumps({"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "rows": rows}))
        return
    print(f"{args.steps} steps, cameras {', '.join(c.role for c in info.robot.cameras)}")
    for row in rows:
        print(f"{row['config']:<26} encode {row['encode_s']:.2f} s  on_step {row['on_step_us']:.1f} us  "
              f"{row['frame']:>9}  {row['file_kib']:.0f} KiB")  # fmt: skip


if __name__ == "__main__":
    main()
