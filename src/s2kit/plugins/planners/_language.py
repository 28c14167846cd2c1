"""Reading planner text: object mentions, table locations, scene descriptions.

The retrieval planner adapts an exemplar's guidance to a new instruction by
swapping the objects the two instructions mention, in the order they mention
them, and by re-reading each object's location from the scene description.
Both need to find object names in free text: names the scene lists are
matched first (longest first, so 'red cube' wins over 'cube'), then the
generic pattern *[colour] noun* over a vocabulary the config can extend.
The scene's labels teach that vocabulary their words too: a suite's own
colour ('crimson cube') or container ('dish') is then recognised in any
combination ('the crimson sphere', 'the dish'), not only as listed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = [
    "COLOURS",
    "NOUNS",
    "REGIONS",
    "Mention",
    "Relation",
    "Vocabulary",
    "fix_prepositions",
    "frame",
    "parse_scene",
    "is_place",
    "relations",
    "relocate",
    "structure",
    "substitute",
]

COLOURS = ("red", "green", "blue", "yellow", "orange", "purple", "cyan", "pink", "brown", "white", "black", "gray", "grey")
NOUNS = ("cube", "cylinder", "sphere", "ball", "block", "bowl", "plate", "basket", "area", "box", "cup", "mug", "tray")

#: How `where_on_table` and the scene description say where something is.
LOCATION = r"(?:front|centre|back)(?: left| right| of the table)"
_AT = re.compile(rf" at the {LOCATION}")
_SURFACES = ("plate", "tray")  # one puts things *on* these
_CONTAINERS = ("bowl", "basket", "box", "cup", "mug")  # and *in* these
REGIONS = ("area", "zone", "region")  # and push things *into* these; nothing is lifted into one
# the words before an object that make it where something goes, not what moves: "... on top of the red cube"
_TO = re.compile(r"\b(?:in|into|on|onto|to|top of|over to|sits in|goes in|go into)\s+(?:the\s+)?$")
_BASE = re.compile(r"\s+at the bottom\b")  # "a tower with the blue cube at the bottom ..."


@dataclass(frozen=True)
class Mention:
    start: int
    end: int
    label: str


@dataclass(frozen=True)
class Vocabulary:
    """What counts as an object name: the scene's labels, then [colour] noun."""

    colours: tuple[str, ...] = COLOURS
    nouns: tuple[str, ...] = NOUNS
    labels: tuple[str, ...] = field(default=())

    def with_labels(self, labels: tuple[str, ...] | list[str]) -> Vocabulary:
        """This vocabulary with a scene's labels, and their words (`learn`)."""
        learned = self.learn(labels)
        return Vocabulary(learned.colours, learned.nouns, tuple(labels))

    def learn(self, labels: tuple[str, ...] | list[str]) -> Vocabulary:
        """This vocabulary with the words of object labels: 'crimson cube' adds the colour 'crimson'."""
        colours, nouns = list(self.colours), list(self.nouns)
        for label in labels:
            *words, noun = label.lower().split() or [""]
            if noun and noun not in nouns:
                nouns.append(noun)
            if len(words) == 1 and words[0] not in colours:
                colours.append(words[0])
        return Vocabulary(tuple(colours), tuple(nouns), self.labels)

    def mentions(self, text: str) -> list[Mention]:
        """Object names in ``text``, in the order they appear (lower-cased labels)."""
        lowered = text.lower()
        found: list[Mention] = []
        taken = [False] * len(lowered)
        for label in sorted(set(self.labels), key=len, reverse=True):
            for m in re.finditer(rf"\b{re.escape(label.lower())}\b", lowered):
                if not any(taken[m.start() : m.end()]):
                    found.append(Mention(m.start(), m.end(), label.lower()))
                    taken[m.start() : m.end()] = [True] * (m.end() - m.start())
        colours = "|".join(map(re.escape, self.colours))
        nouns = "|".join(map(re.escape, self.nouns))
        for m in re.finditer(rf"\b(?:(?:{colours}) )?(?:{nouns})\b", lowered):
            if not any(taken[m.start() : m.end()]):
                label = m.group(0)
                found.append(Mention(m.start(), m.end(), self._resolve(label)))
        return sorted(found, key=lambda m: m.start)

    def _resolve(self, label: str) -> str:
        """A bare noun ('cube') names the scene's only object of that kind, where there is one."""
        if " " in label:
            return label
        matches = [known.lower() for known in self.labels if known.lower().split()[-1] == label]
        return matches[0] if len(matches) == 1 else label


def frame(text: str, vocabulary: Vocabulary) -> str:
    """The instruction's structure: each object name cut down to its noun ('the red cube' -> 'the cube')."""
    out, last = [], 0
    for m in vocabulary.mentions(text):
        out += [text[last : m.start], m.label.split()[-1]]
        last = m.end
    return "".join(out) + text[last:]


def substitute(text: str, mapping: dict[str, str], vocabulary: Vocabulary) -> str:
    """Replace each mentioned object that ``mapping`` names, all at once (no chains)."""
    out, last = [], 0
    for m in vocabulary.mentions(text):
        if m.label in mapping:
            out += [text[last : m.start], mapping[m.label]]
            last = m.end
    return "".join(out) + text[last:]


def parse_scene(description: str | None) -> dict[str, str]:
    """Label -> location ('' where none is given) from 'on the table: red cube at the front left, ...'."""
    if not description:
        return {}
    body = description.split(":", 1)[1] if ":" in description else description
    scene: dict[str, str] = {}
    for part in body.split(","):
        part = part.strip().lower()
        if not part:
            continue
        label, _, where = part.partition(" at the ")
        scene.setdefault(label.strip(), where.strip())
    return scene


def relocate(text: str, scene: dict[str, str], vocabulary: Vocabulary) -> str:
    """Each 'OBJECT at the LOCATION' gets the scene's location for OBJECT, or loses it if unknown."""
    out, last = [], 0
    for m in vocabulary.mentions(text):
        tail = _AT.match(text, m.end)
        if tail is None:
            continue
        where = scene.get(m.label, "")
        out += [text[last : m.end], f" at the {where}" if where else ""]
        last = tail.end()
    return "".join(out) + text[last:]


def fix_prepositions(text: str) -> str:
    """'into the plate' -> 'onto the plate', 'onto the bowl' -> 'into the bowl' after a swap."""
    kinds = "|".join((*_SURFACES, *_CONTAINERS))

    def repair(m: re.Match[str]) -> str:
        prep, obj = m.group(1), m.group(2)
        swap = {"in": "on", "into": "onto"} if obj.split()[-1] in _SURFACES else {"on": "in", "onto": "into"}
        return f"{swap.get(prep, prep)} the {obj}"

    return re.sub(rf"\b(in|into|on|onto) the ((?:\w+ )?(?:{kinds}))\b", repair, text)


def is_place(label: str) -> bool:
    """Whether ``label`` names something objects go to rather than something that moves (a bowl, a plate, an area)."""
    return label.split()[-1] in (*_SURFACES, *_CONTAINERS, *REGIONS) if label else False


@dataclass(frozen=True)
class Relation:
    """One thing an instruction asks for: ``obj`` goes to ``place`` (None where it names none)."""

    obj: str
    place: str | None


def relations(instruction: str, vocabulary: Vocabulary) -> list[Relation]:
    """What the instruction asks to move where, in the order it asks, read from the words around each object.

    An object is a place when its noun is one (`is_place`), when the words
    before it lead to it ('on top of the', 'into the') or when it is 'at the
    bottom'; every other object moves. Each moving object goes to the first
    place named after it ('the cube, then the sphere in the basket'), else
    to the nearest place before it ('with the blue cube at the bottom and
    the red cube above it').
    """
    mentions = vocabulary.mentions(instruction)
    lowered = instruction.lower()
    kinds: list[bool] = []  # True: a place
    for i, m in enumerate(mentions):
        before = lowered[mentions[i - 1].end if i else 0 : m.start]
        kinds.append(is_place(m.label) or bool(_TO.search(before)) or bool(_BASE.match(lowered, m.end)))
    out = []
    for i, m in enumerate(mentions):
        if kinds[i]:
            continue
        after = [mentions[j].label for j in range(i + 1, len(mentions)) if kinds[j]]
        before = [mentions[j].label for j in range(i - 1, -1, -1) if kinds[j]]
        out.append(Relation(m.label, after[0] if after else before[0] if before else None))
    return out


def structure(subtasks: list[str], vocabulary: Vocabulary) -> list[tuple[str, tuple[str, ...]]]:
    """What each subtask does, wording aside: its verb and the objects it names, in order.

    Two subtask lists with the same structure send the robot to the same
    objects and destinations in the same order; 'with the closed gripper
    behind it' vs 'in front of it' or a reworded location do not count.
    """
    out = []
    for text in subtasks:
        words = text.lower().split()
        out.append((words[0] if words else "", tuple(m.label for m in vocabulary.mentions(text))))
    return out
