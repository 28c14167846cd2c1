"""Planner ``refine``: Plan2Align-style refinement of any planner's guidance.

Plan2Align (arXiv 2502.20795) treats generation as predictive planning; here
the plan is guidance text and a window is one subtask:

1. Propose: ask the inner planner for ``candidates`` different guidances
   (`Planner.propose`: other exemplars and object bindings for
   ``retrieval``, other samples for ``incontext``).
2. Score every window (subtask) against what the instruction asks, with
   nothing privileged (`WindowScore`): the objects it names are the
   instruction's and are in the robot's scene description; it moves an
   object the instruction moves, to the place the instruction gives it, in
   the instruction's order; and its verb suits the place (things are pushed
   into an area, lifted into a bowl or onto a plate). A whole candidate also
   scores how many of the instruction's relations it completes.
3. Keep, per window position, a buffer of the ``buffer`` best windows whose
   score reaches ``threshold``, across rounds.
4. Re-plan: the next round asks the inner for new candidates, given the best
   subtask list so far as a hint; up to ``iterations`` rounds, fewer when a
   candidate satisfies every check.
5. Stitch: the best whole candidate sets the number of windows; each window
   is the buffer's best in the context of the windows stitched before it.
   The stitched plan replaces the best candidate only where it scores
   higher. Then one final refine: each object's location is read again from
   the scene and prepositions follow the place ('onto the plate').

Where ``judge`` names an ``incontext`` planner's server, the VLM also scores
each candidate's windows (0 to 1) and its score is averaged with the checks'
at ``judge_weight``; where the judge fails, every plan is scored by the checks
alone until the next episode (one warning, one failed request per episode
at most: a judge that is down does not stall every re-plan).

The planner asks the inner at the inner's events and keeps its ``current``
logic; ``last`` holds the scores of the latest plan for inspection.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field, field_validator

from s2kit import hookimpl
from s2kit.core.config import PluginConfig
from s2kit.core.interfaces import Planner
from s2kit.core.types import Guidance, Observation, RobotStatus
from s2kit.plugins.planners._language import (
    REGIONS,
    Relation,
    Vocabulary,
    fix_prepositions,
    is_place,
    parse_scene,
    relations,
    relocate,
)

__all__ = ["Refinement", "RefinePlanner", "WindowScore", "score_plan"]

log = logging.getLogger(__name__)


class RefineConfig(PluginConfig):
    inner: dict[str, Any] = Field(
        default_factory=lambda: {"name": "retrieval"}, description="The planner whose guidance is refined: a planner section {name: ..., <options>}."
    )
    candidates: int = Field(8, ge=1, description="Candidates asked of the inner planner per round.")
    iterations: int = Field(3, ge=1, description="Rounds of propose, score and keep at most (Plan2Align: 6).")
    buffer: int = Field(3, ge=1, description="Best windows kept per window position (Plan2Align: 3).")
    threshold: float = Field(0.75, ge=0.0, le=1.0, description="Share of a window's checks it must pass to enter the buffer.")
    judge: dict[str, Any] | None = Field(
        None, description="An incontext planner section whose VLM also scores each window (None: the checks alone)."
    )
    judge_weight: float = Field(0.5, ge=0.0, le=1.0, description="Weight of the judge's score against the checks'.")

    @field_validator("inner")
    @classmethod
    def _names_a_planner(cls, value: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(value.get("name"), str) or not value["name"]:
            raise ValueError("inner needs a 'name' (the planner to refine, e.g. {name: retrieval})")
        if value["name"] == "refine":
            raise ValueError("inner must be another planner than refine")
        return value

    @field_validator("judge")
    @classmethod
    def _judge_is_incontext(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and value.get("name", "incontext") != "incontext":
            raise ValueError(f"judge must be an incontext planner section, got name {value.get('name')!r}")
        return value


# --- scoring --------------------------------------------------------------------------------------


@dataclass
class _Progress:
    """What the windows so far have done: objects delivered (-> where), the object in hand."""

    delivered: dict[str, str] = field(default_factory=dict)
    held: str | None = None


@dataclass(frozen=True)
class WindowScore:
    """One window's checks (each name -> passed) and, where a judge scored it, the judge's score at its weight."""

    text: str
    checks: dict[str, bool]
    judge: float | None = None
    judge_weight: float = 0.0

    @property
    def value(self) -> float:
        share = sum(self.checks.values()) / len(self.checks)
        return share if self.judge is None else (1 - self.judge_weight) * share + self.judge_weight * self.judge

    @property
    def failed(self) -> list[str]:
        return [name for name, ok in self.checks.items() if not ok]


@dataclass
class _Asked:
    """What the instruction asks, read once: its relations and every object it names."""

    relations: list[Relation]
    places: dict[str, str | None]  # each moving object -> its place
    objects: set[str]
    scene: set[str]
    vocabulary: Vocabulary


def _read(instruction: str, scene: dict[str, str], vocabulary: Vocabulary) -> _Asked:
    found = relations(instruction, vocabulary)
    objects = {m.label for m in vocabulary.mentions(instruction)}
    return _Asked(found, {r.obj: r.place for r in found}, objects, set(scene), vocabulary)


def _due(asked: _Asked, progress: _Progress) -> str | None:
    """The object the next window should work on: the one in hand, else the first not delivered."""
    if progress.held is not None:
        return progress.held
    return next((r.obj for r in asked.relations if r.obj not in progress.delivered), None)


def _score_window(text: str, asked: _Asked, progress: _Progress) -> tuple[WindowScore, _Progress]:
    """The window's checks in the context of ``progress``, and the progress after it."""
    mentions = [m.label for m in asked.vocabulary.mentions(text)]
    acted = relations(text, asked.vocabulary)
    obj = acted[0].obj if acted else (mentions[0] if mentions else None)
    place = acted[0].place if acted else None
    verb = text.split()[0].lower() if text.split() else ""
    wanted = asked.places
    checks = {
        "names the instruction's objects": not asked.objects or (bool(mentions) and set(mentions) <= asked.objects),
        "objects in the scene": not asked.scene or set(mentions) <= asked.scene,
        "moves what the instruction moves": not wanted or (obj in wanted),
        "to the instruction's place": place is None or not wanted or wanted.get(obj or "") == place,
        "in the instruction's order": not wanted or obj == _due(asked, progress),
        "verb suits the place": place is None or ((verb == "push") == (place.split()[-1] in REGIONS)),
    }
    after = _Progress(dict(progress.delivered), progress.held)
    if obj is not None and place is not None:
        after.delivered[obj] = place
        after.held = None
    elif obj is not None and not is_place(obj):
        after.held = obj
    return WindowScore(text, checks), after


@dataclass(frozen=True)
class Refinement:
    """A scored plan: its windows' scores and the share of the instruction's relations it completes."""

    guidance: Guidance
    windows: list[WindowScore]
    complete: float

    @property
    def value(self) -> float:
        """Mean window score plus completeness (0 to 2)."""
        mean = sum(w.value for w in self.windows) / len(self.windows) if self.windows else 0.0
        return mean + self.complete

    @property
    def perfect(self) -> bool:
        return self.complete == 1.0 and all(all(w.checks.values()) for w in self.windows)


def score_plan(guidance: Guidance, instruction: str, scene: dict[str, str], vocabulary: Vocabulary) -> Refinement:
    """Every window of ``guidance`` scored in order, and how much of what ``instruction`` asks it completes."""
    return _score(guidance, _read(instruction, scene, vocabulary))


def _score(guidance: Guidance, asked: _Asked) -> Refinement:
    progress, windows = _Progress(), []
    for text in guidance.subtasks:
        window, progress = _score_window(text, asked, progress)
        windows.append(window)
    right = sum(1 for r in asked.relations if r.obj in progress.delivered and r.place in (None, progress.delivered[r.obj]))
    complete = right / len(asked.relations) if asked.relations else 1.0
    return Refinement(guidance, windows, complete)


# --- the planner ---------------------------------------------------------------------------------


class RefinePlanner(Planner):
    """Plan2Align-style refinement around any planner: propose, score windows, keep the best, stitch."""

    name = "refine"
    Config = RefineConfig

    def __init__(self, config: RefineConfig | None = None) -> None:
        super().__init__(config)
        from s2kit.core.registry import get_registry

        cfg: RefineConfig = self.config  # type: ignore[assignment]
        self.inner: Planner = get_registry().create("planner", cfg.inner)  # type: ignore[assignment]
        self.events = self.inner.events  # type: ignore[misc]
        self.judge: Planner | None = None
        if cfg.judge is not None:
            self.judge = get_registry().create("planner", {"name": "incontext", **{k: v for k, v in cfg.judge.items() if k != "name"}})  # type: ignore[assignment]
        self._judge_failed = self._judge_warned = False
        self.last: list[Refinement] = []

    def reset(self) -> None:
        self.inner.reset()
        self._judge_failed = False  # a judge that failed is asked again from the next episode on

    def close(self) -> None:
        self.inner.close()
        if self.judge is not None:
            self.judge.close()

    def _vocabulary(self, scene: dict[str, str]) -> Vocabulary:
        base = getattr(self.inner, "vocabulary", None)  # retrieval's knows its exemplars' words
        return (base if isinstance(base, Vocabulary) else Vocabulary()).with_labels(list(scene))

    def _judged(self, refinement: Refinement, instruction: str, observation: Observation) -> Refinement:
        """The refinement with the judge's window scores averaged in; unchanged without a judge, once the judge has
        failed in this episode (one failed request per episode at most), or when it fails now (warned once)."""
        if self.judge is None or self._judge_failed:
            return refinement
        scores = self.judge.judge(instruction, observation, refinement.guidance.subtasks)  # type: ignore[attr-defined]
        if scores is None:
            self._judge_failed = True
            if not self._judge_warned:
                self._judge_warned = True
                log.warning("planner refine: the judge gave no scores (%s); those plans are scored by the checks alone",
                            self.judge.failures[-1] if self.judge.failures else "no answer")  # type: ignore[attr-defined]  # fmt: skip
            return refinement
        weight = self.config.judge_weight  # type: ignore[attr-defined]
        windows = [WindowScore(w.text, w.checks, s, weight) for w, s in zip(refinement.windows, scores, strict=True)]
        return Refinement(refinement.guidance, windows, refinement.complete)

    def plan(
        self,
        instruction: str,
        observation: Observation,
        *,
        event: str = "start",
        history: Sequence[Guidance] = (),
        status: RobotStatus | None = None,
    ) -> Guidance:
        cfg: RefineConfig = self.config  # type: ignore[assignment]
        scene = parse_scene(observation.scene)
        vocabulary = self._vocabulary(scene)
        asked = _read(instruction, scene, vocabulary)
        scored: list[Refinement] = []
        seen: set[tuple[str, ...]] = set()
        hint: Sequence[str] = ()
        for round_ in range(cfg.iterations):
            proposed = self.inner.propose(
                instruction, observation, cfg.candidates, round=round_, hint=hint, event=event, history=history, status=status
            )
            fresh = [g for g in proposed if tuple(g.subtasks) not in seen]
            if not fresh:
                break
            seen.update(tuple(g.subtasks) for g in fresh)
            scored += [self._judged(_score(g, asked), instruction, observation) for g in fresh]
            if self._judge_failed:  # every plan of this call by the same measure: the checks alone
                scored = [_score(r.guidance, asked) for r in scored]
            best = max(scored, key=lambda r: r.value)  # first of the best: the inner's preference breaks ties
            hint = best.guidance.subtasks
            if best.perfect:
                break
        if not scored:  # the inner proposed nothing: its own plan
            return self.inner.plan(instruction, observation, event=event, history=history, status=status)
        best = max(scored, key=lambda r: r.value)
        final = best
        stitched = self._stitch(best, _buffers(scored, cfg.buffer, cfg.threshold), asked)
        if stitched.guidance.subtasks != best.guidance.subtasks:
            stitched = self._judged(stitched, instruction, observation)
            if self._judge_failed:  # compared by the same measure
                best, stitched = _score(best.guidance, asked), _score(stitched.guidance, asked)
            final = stitched if stitched.value > best.value else best
        self.last = [final, *sorted(scored, key=lambda r: -r.value)]
        subtasks = [fix_prepositions(relocate(text, scene, vocabulary)) for text in final.guidance.subtasks]
        current = self.current_subtask(len(subtasks), event=event, history=history, status=status)
        return Guidance(goal=instruction, trajectory=final.guidance.trajectory, subtasks=subtasks, current=current)

    @staticmethod
    def _stitch(best: Refinement, buffers: dict[tuple[int, int], list[WindowScore]], asked: _Asked) -> Refinement:
        """The best candidate's windows, each replaced by the buffer's best window in the stitched context."""
        length, progress, texts = len(best.windows), _Progress(), []
        for i, own in enumerate(best.windows):
            options = [own.text, *(w.text for w in buffers.get((length, i), []))]
            ranked = [(_score_window(text, asked, progress), text) for text in options]
            (window, after), text = max(ranked, key=lambda item: item[0][0].value)
            texts.append(text)
            progress = after
        return _score(best.guidance.model_copy(update={"subtasks": texts, "current": 0}), asked)


def _buffers(scored: list[Refinement], size: int, threshold: float) -> dict[tuple[int, int], list[WindowScore]]:
    """Per (plan length, window position): the ``size`` best distinct windows scoring at least ``threshold``,
    earlier candidates first among equals."""
    buffers: dict[tuple[int, int], list[WindowScore]] = {}
    for refinement in scored:
        for i, window in enumerate(refinement.windows):
            kept = buffers.setdefault((len(refinement.windows), i), [])
            if window.value >= threshold and all(k.text != window.text for k in kept):
                kept.append(window)
    return {key: sorted(kept, key=lambda w: -w.value)[:size] for key, kept in buffers.items()}


@hookimpl
def s2kit_planners() -> list[type[Planner]]:
    return [RefinePlanner]
