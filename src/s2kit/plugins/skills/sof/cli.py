"""``s2kit sof``: SOF's commands. ``s2kit sof flow`` shows a video's optical flow."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from s2kit import hookimpl
from s2kit.cli._common import JsonOption, check_output, command, console, print_json
from s2kit.core.errors import DataError

app = typer.Typer(help="SOF, skills from optical flow (docs/skills.md).", no_args_is_help=True)


@app.command("flow")
@command
def flow(
    source: Annotated[
        Path, typer.Argument(metavar="SOURCE", help="A LeRobot v3 dataset, a video file, or a folder of images (name order).")
    ],
    out: Annotated[Path, typer.Option(help="The MP4 to write: each frame beside its flow's colours.")],
    episode: Annotated[int | None, typer.Option(min=0, help="The dataset's episode (default 0).")] = None,
    camera: Annotated[str | None, typer.Option(help="The dataset's camera: a role (head, wrist, ...) or a feature key (default head).")] = None,
    fps: Annotated[float | None, typer.Option(min=0.1, help="Frames per second of the video (default: the source's; 10 for images).")] = None,
    max_magnitude: Annotated[
        float | None, typer.Option(min=1e-6, help="Speed in pixels per frame shown at full colour (default: the video's 99th percentile, at least 1).")
    ] = None,
    min_height: Annotated[int, typer.Option(min=0, help="Upscale (nearest) to at least this many pixels tall; 0: native size.")] = 384,
    json: JsonOption = False,
) -> None:
    """Compute the optical flow between consecutive frames and write it as a colour-wheel video beside the frames.

    Hue is the direction of motion and saturation its speed (white: still);
    the wheel in the corner is the key. Prints how fast the frames move.
    """
    check_output(out, "--out", folder=False)
    from s2kit.plugins.skills.sof.flow import optical_flow, write_flow_video
    from s2kit.plugins.skills.sof.frames import read_frames

    clip = read_frames(source, episode=episode, camera=camera)
    if len(clip.frames) < 2:
        raise DataError(f"{clip.name} has {len(clip.frames)} frame; flow needs two or more")
    flows = optical_flow(clip.frames)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_flow_video(out, clip.frames, flows, fps=fps or clip.fps, max_magnitude=max_magnitude, min_height=min_height)
    speed = np.hypot(flows[..., 0], flows[..., 1])
    summary = {
        "source": clip.name,
        "out": str(out),
        "pairs": len(flows),
        "size": list(clip.frames.shape[1:3]),
        "mean_px": round(float(speed.mean()), 3),
        "p99_px": round(float(np.percentile(speed, 99)), 3),
    }
    if json:
        print_json(summary)
        return
    console.print(
        f"{summary['source']}: {summary['pairs']} flows of {summary['size'][1]}x{summary['size'][0]} pixels, "
        f"mean speed {summary['mean_px']:.2f} px/frame (99th percentile {summary['p99_px']:.2f}) -> {out}",
        highlight=False,
        soft_wrap=True,
    )


@hookimpl
def s2kit_register_commands(cli: typer.Typer) -> None:
    cli.add_typer(app, name="sof")
