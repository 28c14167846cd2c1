"""Few-shot exemplars: instructions with the guidance a good planner gives for them.

The ``incontext`` planner shows them to the VLM; the ``retrieval`` planner
adapts the nearest one. They live in a YAML file users edit; the default
(``exemplars.yaml`` beside this module) was written by the oracle on the
simulated HSR (``python scripts/make_exemplars.py``), from seeds that no
evaluation uses.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from s2kit.core.config import describe_validation_error
from s2kit.core.errors import ConfigError

__all__ = ["DEFAULT_EXEMPLARS", "Exemplar", "ExemplarFile", "load_exemplars"]

DEFAULT_EXEMPLARS = "exemplars.yaml"


class Exemplar(BaseModel):
    """One instruction and its guidance."""

    model_config = ConfigDict(extra="forbid")

    instruction: str = Field(min_length=1, description="The coarse instruction, as a user gives it.")
    scene: str | None = Field(None, description="What was on the table, as the robot describes it.")
    trajectory: str = Field(description="Trajectory-level guidance: arm, objects, order.")
    subtasks: list[str] = Field(min_length=1, description="Ordered subtask texts.")


class ExemplarFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    exemplars: list[Exemplar] = Field(min_length=1)


def load_exemplars(path: str | Path | None = None) -> list[Exemplar]:
    """The exemplars in ``path``, or the default file; ConfigError naming the file and the problem."""
    if path is None:
        text = resources.files("s2kit.plugins.planners").joinpath(DEFAULT_EXEMPLARS).read_text()
        origin = "the default exemplars"
    else:
        path = Path(path).expanduser()
        if not path.is_file():
            raise ConfigError(f"exemplar file {str(path)!r} does not exist")
        text, origin = path.read_text(), str(path)
    try:
        return ExemplarFile.model_validate(yaml.safe_load(text)).exemplars
    except yaml.YAMLError as err:
        raise ConfigError(f"{origin}: not valid YAML: {err}") from None
    except ValidationError as err:
        raise ConfigError(f"{origin}: {describe_validation_error(err, ExemplarFile)}") from None
