"""The episode recorder and its reader (numpy only)."""

from __future__ import annotations

from s2kit.core.data.recorder import FORMAT, Recorder, list_episodes, read_episode

__all__ = ["FORMAT", "Recorder", "list_episodes", "read_episode"]
