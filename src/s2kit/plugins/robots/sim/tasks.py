"""Task families, generalization suites, and success predicates from simulator state.

A suite (a YAML file, see ``suites/`` and docs/simulation.md) says which task
families occur, which colours and shapes, how many distractors and look-alikes,
how instructions are phrased, and how the appearance varies. A user's suite may
bring colours of its own (a named palette), containers of its own (a built-in
mesh under a new name) and phrasings of its own (templates over the family's
slots, `SLOTS`). `sample_episode(suite, seed)`
turns a suite and a seed into a `Scene` and a `Task`: the same seed always
gives the same scene and task. The ``semantic`` variant samples exactly the
``id`` scene of that seed and changes the task (another target, relation or
order); ``paraphrase`` keeps the ``id`` task and rewords it.

Subtask success is counted in order: a subtask whose predicate becomes true
before its turn is spoiled, and progress stops there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Literal

import re
import string

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from s2kit.core.config import describe_validation_error, load_yaml
from s2kit.core.errors import ConfigError
from s2kit.plugins.robots.sim.world import (
    COLOURS,
    CONTAINERS,
    SHAPES,
    Item,
    Scene,
    object_half_height,
)

__all__ = [
    "FAMILIES",
    "SLOTS",
    "SUITES",
    "Progress",
    "Subtask",
    "Suite",
    "Task",
    "builtin_suites",
    "load_suite",
    "sample_episode",
]

FAMILIES = ("pick_place", "stack", "push", "sort", "tidy")
#: The built-in suites (``suites/<name>.yaml``): the training distribution first, then the
#: distribution shifts. The one place their names are declared (`SimRobot.suites`).
SUITES = ("id", "distractor", "appearance", "semantic", "paraphrase")
#: Built-in task variants for studies of their own, loaded by name like a suite but not
#: among the shift suites an evaluation runs by default.
VARIANTS = ("twins",)


# --- suites --------------------------------------------------------------------------------


class Appearance(BaseModel):
    """How the look of the scene varies (colours are RGB in [0, 1])."""

    model_config = ConfigDict(extra="forbid")

    table: list[tuple[float, float, float]] = Field(default_factory=lambda: [(0.62, 0.45, 0.30)])
    floor: list[tuple[float, float, float]] = Field(default_factory=lambda: [(0.35, 0.35, 0.38)])
    wall: list[tuple[float, float, float]] = Field(default_factory=lambda: [(0.80, 0.80, 0.78)])
    light: tuple[float, float] = (0.8, 0.8)
    light_dir_jitter: float = Field(0.0, ge=0.0)
    camera_pos_jitter: float = Field(0.0, ge=0.0, description="Metres, uniform per axis.")
    camera_rot_jitter: float = Field(0.0, ge=0.0, description="Radians, uniform per axis.")


#: The slots a phrasing of each family fills, and the task role each names. An
#: object slot (``object``, ``base``, ``first``...) and ``region`` also come as
#: ``<slot>_colour`` and ``<slot>_shape`` (the region: ``region_colour``).
SLOTS: dict[str, dict[str, str]] = {
    "pick_place": {"object": "a", "container": "c"},
    "stack": {"object": "a", "base": "b"},
    "push": {"object": "a", "region": "r"},
    "sort": {"first": "a", "second": "b", "third": "c", "container": "basket"},
    "tidy": {"first": "a", "second": "b", "third": "c", "bowl": "bowl", "plate": "plate", "basket": "basket"},
}
_OBJECT_SLOTS = ("object", "base", "first", "second", "third")
_NAME = re.compile(r"[a-z][a-z-]*")
#: The containers of a suite that names none: each built-in mesh under its own name.
_DEFAULT_CONTAINERS = {mesh: mesh for mesh in CONTAINERS}


def slot_names(family: str) -> list[str]:
    """Every slot a phrasing of ``family`` may use: each role, and an object's or region's colour and shape."""
    names = []
    for slot in SLOTS[family]:
        names.append(slot)
        if slot in _OBJECT_SLOTS:
            names += [f"{slot}_colour", f"{slot}_shape"]
        elif slot == "region":
            names.append("region_colour")
    return names


def check_phrasing(family: str, template: str) -> None:
    """A phrasing fills only its family's slots and names every role; ValueError (one line) otherwise."""
    allowed = slot_names(family)
    try:
        fields = [(name, spec, conv) for _, name, spec, conv in string.Formatter().parse(template) if name is not None]
    except ValueError as err:
        raise ValueError(f"phrasing {template!r} of {family}: {err} (write a literal brace as {{{{ or }}}})") from None
    for name, spec, conv in fields:
        if name not in allowed:
            raise ValueError(f"phrasing {template!r} of {family}: unknown slot {{{name}}} (slots: {', '.join(allowed)})")
        if spec or conv:
            raise ValueError(f"phrasing {template!r} of {family}: slot {{{name}}} takes no format or conversion")
    used = {name.split("_")[0] for name, _, _ in fields}
    missing = [slot for slot in SLOTS[family] if slot not in used]
    if missing:
        raise ValueError(f"phrasing {template!r} of {family} never names {', '.join('{' + m + '}' for m in missing)}")


class Suite(BaseModel):
    """A generalization suite: a distribution over scenes and tasks."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    families: dict[str, float] = Field(description="Task family -> sampling weight.")
    target_colours: list[str]
    shapes: list[str] = Field(default_factory=lambda: list(SHAPES))
    distractors: tuple[int, int] = Field((1, 2), description="Inclusive range of extra random objects.")
    lookalikes: tuple[int, int] = Field((0, 0), description="Distractors differing from a target in one attribute.")
    distractor_colours: list[str] | None = Field(None, description="None: the target colours.")
    palette: dict[str, list[float]] = Field(
        default_factory=dict, description="Colours of this suite's own: name -> RGB in [0, 1]."
    )
    containers: dict[str, str] = Field(
        default_factory=lambda: dict(_DEFAULT_CONTAINERS),
        description="Container name -> mesh (bowl, plate or basket); pick_place uses each, sort and tidy the first of each mesh.",
    )
    instructions: Literal["train", "paraphrase"] | dict[str, list[str]] = Field(
        "train", description="train, paraphrase, or family -> phrasings (templates over SLOTS); unlisted families: train."
    )
    task_variant: Literal["none", "semantic"] = "none"
    twins: bool = Field(
        False,
        description="The task's first object has an identical twin on the table; either one fulfils the task, "
        "and the demonstrator goes for one of the two at random (demonstrations with two modes).",
    )
    appearance: Appearance = Field(default_factory=Appearance)

    @field_validator("instructions", mode="before")
    @classmethod
    def _instructions_shape(cls, value: object) -> object:
        if isinstance(value, (str, dict)):
            return value
        example = "{pick_place: ['drop the {object} in the {container}']}"
        message = f"expected train, paraphrase or task family -> phrasings (e.g. {example}), got a {type(value).__name__}"
        raise PydanticCustomError("suite", "{message}", {"message": message})

    @model_validator(mode="after")
    def _valid(self) -> Suite:
        try:
            self._check()
        except ValueError as err:  # one plain line, without pydantic's "Value error, " prefix
            raise PydanticCustomError("suite", "{message}", {"message": str(err)}) from None
        return self

    def _check(self) -> None:
        unknown = set(self.families) - set(FAMILIES)
        if unknown:
            raise ValueError(f"unknown task families {sorted(unknown)} (known: {', '.join(FAMILIES)})")
        for shape in self.shapes:
            if shape not in SHAPES:
                raise ValueError(f"unknown shape {shape!r} (known: {', '.join(SHAPES)})")
        words: dict[str, str] = {**{c: "a built-in colour" for c in COLOURS}, **{s: "a shape" for s in SHAPES}}
        words.update({"area": "what a push region is called", "region": "what a push region is called"})
        for colour, rgb in self.palette.items():
            _check_name("palette colour", colour, words)
            if len(rgb) != 3 or not all(0.0 <= v <= 1.0 for v in rgb):
                raise ValueError(f"palette colour {colour!r}: RGB must be three numbers in [0, 1], got {rgb}")
            words[colour] = "a palette colour"
        known = [*COLOURS, *self.palette]
        for field_name in ("target_colours", "distractor_colours"):
            colours = getattr(self, field_name) or []
            for colour in colours:
                if colour not in known:
                    raise ValueError(
                        f"{field_name}: unknown colour {colour!r} (known: {', '.join(known)}; or define it under palette)"
                    )
            twice = sorted({c for c in colours if colours.count(c) > 1})
            if twice:
                raise ValueError(f"{field_name} lists {twice[0]!r} twice")
        if len(self.target_colours) < 3:
            raise ValueError("target_colours needs at least 3 colours (long-horizon tasks use three objects)")
        if not self.containers:
            raise ValueError(f"containers names none (e.g. {{dish: plate}}; meshes: {', '.join(CONTAINERS)})")
        for name, mesh in self.containers.items():
            if mesh not in CONTAINERS:
                raise ValueError(f"container {name!r}: unknown mesh {mesh!r} (meshes: {', '.join(CONTAINERS)})")
            if name in CONTAINERS and name != mesh:
                raise ValueError(f"container {name!r} would be drawn as a {mesh}: a mesh's name names that mesh")
            if name not in CONTAINERS:
                _check_name("container", name, words)
            words[name] = "a container"
        if isinstance(self.instructions, dict):
            for family, phrasings in self.instructions.items():
                if family not in FAMILIES:
                    raise ValueError(f"instructions: unknown task family {family!r} (known: {', '.join(FAMILIES)})")
                if not phrasings:
                    raise ValueError(f"instructions: {family} lists no phrasing")
                for template in phrasings:
                    check_phrasing(family, template)

    def container_for(self, mesh: str) -> str:
        """The suite's name for a container of ``mesh`` (its first), or the mesh's own name."""
        return next((name for name, m in self.containers.items() if m == mesh), mesh)

    def phrasings(self, family: str) -> list[str] | None:
        """The templates this suite phrases ``family`` with, where they are not the training ones."""
        if isinstance(self.instructions, dict):
            return self.instructions.get(family)
        return TEMPLATES[self.instructions][family] if self.instructions != "train" else None


def _check_name(what: str, name: str, taken: dict[str, str]) -> None:
    if not _NAME.fullmatch(name):
        raise ValueError(f"{what} {name!r}: a name is one lower-case word (letters and hyphens)")
    if name in taken:
        raise ValueError(f"{what} {name!r}: the name is already {taken[name]}")


def builtin_suites() -> list[str]:
    """Names of the suites that ship with s2kit, in `SUITES` order."""
    return list(SUITES)


def load_suite(name_or_path: str) -> Suite:
    """A built-in suite by name, or a user's suite file by path."""
    if name_or_path.endswith((".yaml", ".yml")) or "/" in name_or_path:
        path = Path(name_or_path)
        if not path.exists():
            raise ConfigError(f"suite file {name_or_path!r} does not exist")
        text, origin = path.read_text(), str(path)
    else:
        known = [*builtin_suites(), *VARIANTS]
        if name_or_path not in known:
            raise ConfigError(f"unknown suite {name_or_path!r} (built in: {', '.join(known)}; or a path to a YAML file)")
        folder = resources.files("s2kit.plugins.robots.sim").joinpath("suites")
        text, origin = folder.joinpath(f"{name_or_path}.yaml").read_text(), f"suite {name_or_path}"
    try:
        data = load_yaml(text)  # a name given twice (two 'dish:' containers) is an error, not the last one winning
        return Suite.model_validate(data)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{origin}: not valid YAML{where}: {problem}") from None
    except ValidationError as err:
        raise ConfigError(f"{origin}: {describe_validation_error(err, Suite)}") from None


# --- tasks -----------------------------------------------------------------------------------


@dataclass
class Subtask:
    """One step of a task, with the predicate that says it is done.

    ``kind``: ``pick`` (obj held above the table), ``put`` (obj resting in or
    on container ``target``), ``stack`` (obj resting on object ``target``),
    ``push`` (obj inside region ``target``). ``alternatives`` are objects
    identical to ``obj`` that fulfil the subtask as well (a suite with
    ``twins``); ``obj`` is the one the demonstrator goes for.
    """

    kind: str
    obj: str
    target: str | None
    text: str
    alternatives: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.alternatives = tuple(self.alternatives)  # a list when read back from JSON

    @property
    def objects(self) -> tuple[str, ...]:
        """Every object that fulfils this subtask: ``obj`` first, then its alternatives."""
        return (self.obj, *self.alternatives)

    def object_for(self, held: str | None) -> str:
        """The object to work with: the one held where it is one of `objects`, else ``obj``."""
        return held if held is not None and held in self.alternatives else self.obj


@dataclass
class Task:
    family: str
    instruction: str
    subtasks: list[Subtask]

    @property
    def subtask_texts(self) -> list[str]:
        return [s.text for s in self.subtasks]


TEMPLATES: dict[str, dict[str, list[str]]] = {
    "train": {
        "pick_place": ["put the {object} in the {container}", "place the {object} in the {container}"],
        "stack": ["stack the {object} on the {base}", "put the {object} on top of the {base}"],
        "push": ["push the {object} to the {region}", "push the {object} into the {region}"],
        "sort": ["put the {first}, then the {second}, then the {third} in the {container}"],
        "tidy": ["put the {first} in the {bowl}, the {second} on the {plate} and the {third} in the {basket}"],
    },
    # Phrasings the training set never uses.
    "paraphrase": {
        "pick_place": [
            "could you drop the {object} into the {container}?",
            "the {object} belongs in the {container}, move it there",
        ],
        "stack": ["set the {object} down on top of the {base}", "build a tower with the {base} at the bottom and the {object} above it"],
        "push": ["slide the {object} over to the {region}", "nudge the {object} until it sits in the {region}"],
        "sort": ["first the {first}, next the {second}, and finally the {third}: all of them go into the {container}"],
        "tidy": ["clean up: the {first} goes in the {bowl}, the {second} onto the {plate}, the {third} into the {basket}"],
    },
}
for _family_templates in TEMPLATES.values():  # the built-in phrasings obey the rules a user's do
    for _family, _templates in _family_templates.items():
        for _template in _templates:
            check_phrasing(_family, _template)


def _put_text(label: str, container: Item) -> str:
    return f"put the {label} {'on' if container.kind == 'plate' else 'in'} the {container.label}"


def _slots(family: str, roles: dict[str, str], items: list[Item]) -> dict[str, str]:
    """What each slot of ``family`` says in this episode: labels, and objects' colours and shapes."""
    values = {}
    for slot, role in SLOTS[family].items():
        item = items_by_name(items, roles[role])
        values[slot] = item.label
        values[f"{slot}_colour"], values[f"{slot}_shape"] = item.colour, item.kind
    return values


def _make_task(family: str, items: list[Item], roles: dict[str, str], template: str) -> Task:
    """A task from roles (a, b, c objects; c/r container or region; the containers of sort and tidy) and a template."""
    L = {it.name: it.label for it in items}  # noqa: N806  (item name -> label)
    text = template.format(**_slots(family, roles, items))
    if family == "pick_place":
        a, c = roles["a"], roles["c"]
        subs = [Subtask("pick", a, None, f"pick up the {L[a]}"), Subtask("put", a, c, _put_text(L[a], items_by_name(items, c)))]
    elif family == "stack":
        a, b = roles["a"], roles["b"]
        subs = [Subtask("pick", a, None, f"pick up the {L[a]}"), Subtask("stack", a, b, f"place the {L[a]} on the {L[b]}")]
    elif family == "push":
        a, r = roles["a"], roles["r"]
        subs = [Subtask("push", a, r, f"push the {L[a]} into the {L[r]}")]
    elif family == "sort":
        basket = items_by_name(items, roles["basket"])
        subs = [Subtask("put", roles[o], basket.name, _put_text(L[roles[o]], basket)) for o in ("a", "b", "c")]
    elif family == "tidy":
        pairs = [(roles["a"], roles["bowl"]), (roles["b"], roles["plate"]), (roles["c"], roles["basket"])]
        subs = [Subtask("put", o, c, _put_text(L[o], items_by_name(items, c))) for o, c in pairs]
    else:  # pragma: no cover - families are validated in Suite
        raise ValueError(family)
    return Task(family=family, instruction=text, subtasks=subs)


# Table-local sampling area (relative to the table centre) and footprint radii.
_AREA_U, _AREA_V = 0.12, 0.25
_RADIUS = {"cube": 0.035, "cylinder": 0.035, "sphere": 0.035, "region": 0.07, **{k: v["radius"] + 0.015 for k, v in CONTAINERS.items()}}


class _Placer:
    def __init__(self, rng: np.random.Generator, table_x: float) -> None:
        self.rng = rng
        self.table_x = table_x
        self.placed: list[tuple[float, float, float]] = []

    def place(self, kind: str) -> tuple[float, float]:
        xy = self.try_place(kind)
        if xy is None:
            raise RuntimeError(f"no room on the table for a {kind}")
        return xy

    def try_place(self, kind: str) -> tuple[float, float] | None:
        """A free spot, or None when the table is too full (distractors are then skipped)."""
        r = _RADIUS[kind]
        for _ in range(500):
            x = self.table_x + self.rng.uniform(-_AREA_U, _AREA_U)
            y = self.rng.uniform(-_AREA_V, _AREA_V)
            if all((x - px) ** 2 + (y - py) ** 2 >= (r + pr) ** 2 for px, py, pr in self.placed):
                self.placed.append((x, y, r))
                return float(x), float(y)
        return None


def sample_episode(suite: Suite, seed: int, *, table_x: float) -> tuple[Scene, Task]:
    """The scene and task of episode ``seed`` under ``suite`` (deterministic)."""
    rng = np.random.default_rng([seed, 0])  # scene stream: shared by id, semantic and paraphrase
    families = sorted(suite.families)
    weights = np.array([suite.families[f] for f in families], dtype=float)
    family = families[int(rng.choice(len(families), p=weights / weights.sum()))]
    placer = _Placer(rng, table_x)
    items: list[Item] = []
    used_labels: set[tuple[str, str]] = set()

    def new_object(colours: list[str], shapes: list[str], tag: str, required: bool = True) -> Item | None:
        choices = [(c, s) for c in colours for s in shapes if (c, s) not in used_labels]
        if not choices:
            if required:
                raise RuntimeError(f"no unused colour/shape among {colours} x {shapes}")
            return None
        c, s = choices[int(rng.integers(len(choices)))]
        xy = placer.place(s) if required else placer.try_place(s)
        yaw = float(rng.uniform(-0.6, 0.6))
        if xy is None:
            return None
        used_labels.add((c, s))
        rgb = tuple(suite.palette[c]) if c in suite.palette else None
        it = Item(name=f"{tag}{len(items)}", kind=s, colour=c, xy=xy, yaw=yaw, rgb=rgb)  # type: ignore[arg-type]
        items.append(it)
        return it

    def new_fixture(container: str) -> Item:
        """A container the suite names (drawn with its mesh)."""
        mesh = suite.containers.get(container, container)
        noun = container if container != mesh else None
        it = Item(name=f"{mesh}{len(items)}", kind=mesh, colour="default", xy=placer.place(mesh), noun=noun)
        items.append(it)
        return it

    colours, shapes = suite.target_colours, suite.shapes
    roles: dict[str, str] = {}
    if family == "pick_place":
        roles["c"] = new_fixture(str(rng.choice(list(suite.containers)))).name
        roles["a"] = new_object(colours, shapes, "obj").name
    elif family == "stack":
        roles["b"] = new_object(colours, ["cube"], "obj").name
        roles["a"] = new_object(colours, ["cube", "cylinder"], "obj").name
    elif family == "push":
        region_colour = str(rng.choice([c for c in COLOURS if c not in colours] or list(COLOURS)))
        region = Item(name="region", kind="region", colour=region_colour, xy=placer.place("region"))
        items.append(region)
        roles["r"] = region.name
        roles["a"] = new_object(colours, ["cube", "cylinder"], "obj").name
    elif family == "sort":
        roles["basket"] = new_fixture(suite.container_for("basket")).name
        for role in ("a", "b", "c"):
            roles[role] = new_object(colours, shapes, "obj").name
    else:  # tidy
        for mesh in ("bowl", "plate", "basket"):
            roles[mesh] = new_fixture(suite.container_for(mesh)).name
        for role in ("a", "b", "c"):
            roles[role] = new_object(colours, shapes, "obj").name
    twin = _add_twin(items_by_name(items, roles["a"]), items, placer, rng) if suite.twins else None
    targets = [items_by_name(items, roles[r]) for r in ("a", "b") if r in roles]

    # distractors: look-alikes of a target (one attribute changed), then random ones
    n_look = int(rng.integers(suite.lookalikes[0], suite.lookalikes[1] + 1))
    for _ in range(n_look):
        t = targets[int(rng.integers(len(targets)))]
        if rng.random() < 0.5:  # same shape, another colour
            new_object([c for c in (suite.distractor_colours or colours) if c != t.colour], [t.kind], "look", False)
        else:  # same colour, another shape
            new_object([t.colour], [s for s in SHAPES if s != t.kind], "look", False)
    n_extra = int(rng.integers(suite.distractors[0], suite.distractors[1] + 1))
    for _ in range(n_extra):
        new_object(suite.distractor_colours or colours, shapes, "dis", False)

    template_rng = np.random.default_rng([seed, 1])
    train_template = TEMPLATES["train"][family][int(template_rng.integers(len(TEMPLATES["train"][family])))]
    if suite.task_variant == "semantic":
        roles = _semantic_variant(family, roles, items, np.random.default_rng([seed, 2]))
    template = train_template
    options = suite.phrasings(family)
    if options:  # drawn after the training phrasing, so the scene stream is the id suite's
        template = options[int(template_rng.integers(len(options)))]
    alternatives: tuple[str, ...] = ()
    if twin is not None:  # the demonstrator's choice of the two, from a stream of its own
        original = roles["a"]
        if np.random.default_rng([seed, 4]).random() < 0.5:
            roles["a"], alternatives = twin.name, (original,)
        else:
            alternatives = (twin.name,)
    task = _make_task(family, items, roles, template)
    for sub in task.subtasks:
        if alternatives and sub.obj == roles["a"]:
            sub.alternatives = alternatives
    scene = _appearance(suite, items, np.random.default_rng([seed, 3]))
    return scene, task


def _add_twin(item: Item, items: list[Item], placer: _Placer, rng: np.random.Generator) -> Item:
    """An object identical to ``item`` (colour, shape, size) elsewhere on the table."""
    twin = Item(
        name=f"twin{len(items)}",
        kind=item.kind,
        colour=item.colour,
        xy=placer.place(item.kind),
        yaw=float(rng.uniform(-0.6, 0.6)),
        rgb=item.rgb,
    )
    items.append(twin)
    return twin


def items_by_name(items: list[Item], name: str) -> Item:
    return next(it for it in items if it.name == name)


def _semantic_variant(family: str, roles: dict[str, str], items: list[Item], rng: np.random.Generator) -> dict[str, str]:
    """Same scene, a semantically close but different task."""
    roles = dict(roles)
    others = [it.name for it in items if it.is_object and it.name not in roles.values()]
    if family == "stack":  # another relation: the other way round, when the base can be stacked on
        if items_by_name(items, roles["a"]).kind == "cube":
            roles["a"], roles["b"] = roles["b"], roles["a"]
        elif others:
            roles["a"] = others[int(rng.integers(len(others)))]
    elif family in ("pick_place", "push"):  # another target object
        if others:
            roles["a"] = others[int(rng.integers(len(others)))]
    elif family == "sort":  # another order
        roles["a"], roles["c"] = roles["c"], roles["a"]
    else:  # tidy: another assignment of objects to containers
        roles["a"], roles["b"] = roles["b"], roles["a"]
    return roles


def _appearance(suite: Suite, items: list[Item], rng: np.random.Generator) -> Scene:
    app = suite.appearance

    def pick(options: list[tuple[float, float, float]]) -> tuple[float, float, float]:
        return tuple(options[int(rng.integers(len(options)))])  # type: ignore[return-value]

    jitter = {}
    for cam in ("head", "wrist", "wrist_left", "wrist_right"):
        pos = rng.uniform(-app.camera_pos_jitter, app.camera_pos_jitter, 3) if app.camera_pos_jitter else np.zeros(3)
        rot = rng.uniform(-app.camera_rot_jitter, app.camera_rot_jitter, 3) if app.camera_rot_jitter else np.zeros(3)
        jitter[cam] = [float(v) for v in (*pos, *rot)]
    d = app.light_dir_jitter
    light_dir = (float(rng.uniform(-d, d)), float(0.3 + rng.uniform(-d, d)), -1.0)
    return Scene(
        items=items,
        table_rgb=pick(app.table),
        floor_rgb=pick(app.floor),
        wall_rgb=pick(app.wall),
        light=float(rng.uniform(*app.light)),
        light_dir=light_dir,
        camera_jitter=jitter,
    )


# --- progress ----------------------------------------------------------------------------------


@dataclass
class WorldState:
    """What the predicates read: item positions, what is held, the table height."""

    positions: dict[str, np.ndarray]
    held: str | None
    table_height: float


def predicate(sub: Subtask, world: WorldState, scene: Scene) -> bool:
    """Whether ``sub`` is fulfilled: by its object, or by any of its alternatives."""
    return any(_fulfils(sub, obj, world, scene) for obj in sub.objects)


def _fulfils(sub: Subtask, obj: str, world: WorldState, scene: Scene) -> bool:
    p = world.positions[obj]
    half = object_half_height(scene.item(obj).kind)
    if sub.kind == "pick":
        return world.held == obj and p[2] - half > world.table_height + 0.03
    if world.held == obj:
        return False
    target = world.positions[sub.target] if sub.target else None
    assert target is not None
    if sub.kind == "put":
        spec = CONTAINERS[scene.item(sub.target).kind]
        inside = np.hypot(*(p[:2] - target[:2])) <= spec["inner"]
        return bool(inside and p[2] - half < world.table_height + spec["wall"] + 0.02)
    if sub.kind == "stack":
        base_half = object_half_height(scene.item(sub.target).kind)
        on_top = np.hypot(*(p[:2] - target[:2])) <= 0.025
        return bool(on_top and abs((p[2] - half) - (target[2] + base_half)) < 0.015)
    if sub.kind == "push":
        return bool(abs(p[0] - target[0]) <= 0.06 and abs(p[1] - target[1]) <= 0.06)
    raise ValueError(sub.kind)


@dataclass
class Progress:
    """Subtasks completed in the required order."""

    task: Task
    completed: int = 0
    spoiled: set[int] = field(default_factory=set)

    def update(self, world: WorldState, scene: Scene) -> int:
        n = len(self.task.subtasks)
        while self.completed < n and self.completed not in self.spoiled:
            if not predicate(self.task.subtasks[self.completed], world, scene):
                break
            self.completed += 1
        for j in range(self.completed + 1, n):
            # done before its turn: out of order, never credited
            if j not in self.spoiled and self.task.subtasks[j].kind != "pick" and predicate(self.task.subtasks[j], world, scene):
                self.spoiled.add(j)
        return self.completed

    @property
    def done(self) -> bool:
        return self.completed >= len(self.task.subtasks)
