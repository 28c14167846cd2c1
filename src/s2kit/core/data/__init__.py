"""Dataset read/write, the episode recorder and episode videos."""

from __future__ import annotations

from s2kit.core.data.recorder import FORMAT, Recorder, list_episodes, read_episode
from s2kit.core.data.video import VideoRecorder

__all__ = ["FORMAT", "Recorder", "VideoRecorder", "list_episodes", "read_episode"]
