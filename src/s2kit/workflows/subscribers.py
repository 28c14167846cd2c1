"""Built-in plugin ``subscribers``: the recorder, episode videos and the metrics log.

`s2kit run`, `s2kit eval` and any caller of `build_runtime` ask for them
through ``options`` (the ``s2kit_subscribers`` hook's argument); none of
them builds one by hand:

| option | subscriber |
| --- | --- |
| ``record``: folder | `Recorder`: every episode, as it ends (`s2kit.core.data`) |
| ``video``: folder | `VideoRecorder`: one MP4 per episode, with the overlays plugins draw |
| ``metrics``: file | `MetricsLog`: one JSON line per episode |

Video options: ``video_start`` (number of the first file), ``video_caption``
(the band with the instruction and the subtask; on by default),
``video_min_height`` (each camera upscaled to at least this height; 384 by
default, 0 for the cameras' own size). The order above is the order they are
attached in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from s2kit import hookimpl
from s2kit.core.config import PipelineConfig
from s2kit.core.data import Recorder
from s2kit.core.interfaces import Subscriber
from s2kit.core.metrics import MetricsLog
from s2kit.workflows.video import MIN_HEIGHT, VideoRecorder

__all__ = ["builtin_subscribers", "s2kit_subscribers"]


def builtin_subscribers(options: Mapping[str, Any]) -> list[Subscriber]:
    """The recorder, video and metrics subscribers ``options`` asks for (keys absent or None: not wanted)."""
    subscribers: list[Subscriber] = []
    if options.get("record") is not None:
        subscribers.append(Recorder(options["record"]))
    if options.get("video") is not None:
        subscribers.append(
            VideoRecorder(
                options["video"],
                start=options.get("video_start"),
                caption=bool(options.get("video_caption", True)),
                min_height=int(options.get("video_min_height", MIN_HEIGHT)),
            )
        )
    if options.get("metrics") is not None:
        subscribers.append(MetricsLog(options["metrics"]))
    return subscribers


@hookimpl
def s2kit_subscribers(pipeline: PipelineConfig, options: dict[str, Any]) -> list[Subscriber]:
    return builtin_subscribers(options)
