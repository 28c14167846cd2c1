"""What SOF's skill planner and translator share as kit policies: the frozen trunk they see through
(`s2kit.learning.vision`), and the tokenizer whose tokens label their training frames.

Their configs subclass `SkillConfig`; `SkillPolicy` checks the tokenizer
before any data is loaded (`Policy.check_training`).
"""

from __future__ import annotations

from pydantic import Field

from s2kit.core.errors import ConfigError
from s2kit.learning.vision import FrozenTrunkPolicy, VisionConfig

__all__ = ["SkillConfig", "SkillPolicy"]


class SkillConfig(VisionConfig):
    """A network that plans or acts in skill tokens: the token count and codebook come from the tokenizer that labels
    its training frames (set by training)."""

    tokens: int = Field(2, ge=1, description="Skill tokens per window (set from the tokenizer by training).")
    codebook: int = Field(125, ge=2, description="Skill token values (set from the tokenizer by training).")
    tokenizer: str = Field("", description="The tokenizer checkpoint or run whose tokens label the training frames.")


class SkillPolicy(FrozenTrunkPolicy):
    """A kit policy on the frozen trunk that learns from tokenizer-labelled frames."""

    config_class = SkillConfig

    @classmethod
    def check_training(cls, config: SkillConfig, where: str) -> None:  # type: ignore[override]
        """The tokenizer is named, exists and is a tokenizer's checkpoint, or one error."""
        from s2kit.plugins.skills.sof.training import load_tokenizer

        if not config.tokenizer:
            raise ConfigError(f"{where}: name the skill tokenizer whose tokens label the frames: --set model.tokenizer=TOKENIZER_RUN")
        load_tokenizer(config.tokenizer)
