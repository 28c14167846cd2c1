"""What shapes the colour MLP: saved in every checkpoint, so loading needs nothing else."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from s2kit.learning.policy import PolicyConfig


class ColourMlpConfig(PolicyConfig):
    """The kit's inputs (cameras, image size, state, chunk, ...) with this network's own settings."""

    model_config = ConfigDict(extra="forbid")

    cameras: list[str] = Field(default_factory=lambda: ["head"], description="Camera roles, in order.")
    image_size: int = Field(32, ge=16, description="Images are letterboxed to this square size.")
    pool: int = Field(8, ge=1, description="Each image is average-pooled to pool x pool pixels before the MLP.")
    hidden: int = Field(128, ge=8, description="Width of the MLP's two hidden layers.")
    done_weight: float = Field(0.2, ge=0.0, description="Weight of the subtask-done loss.")
