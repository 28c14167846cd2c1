"""Planner ``incontext``: a VLM behind an OpenAI-compatible API writes the guidance.

S2's planner at test time: an off-the-shelf VLM turns the coarse instruction
and the current head-camera image into goal-preserving guidance by few-shot
prompting, so the executor sees at run time the interface it was trained on.

What it sends to ``{base_url}/chat/completions``:

- a system message saying what guidance is and the JSON shape to answer in;
- ``num_exemplars`` few-shot pairs (instruction and scene -> guidance JSON)
  from the exemplar file, the ones whose wording is closest to the
  instruction;
- the instruction, the robot's scene description where it gives one, what
  is already done when re-planning, and the ``camera`` image resized to
  ``image_size`` as a base64 PNG (``image_size: 0`` sends none).

It asks for JSON through the server's ``response_format`` (``json_schema``,
else ``json_object``; with ``auto`` it steps down when the server refuses
one) and parses what comes back robustly either way (code fences and text
around the object are ignored). The reply is validated with pydantic; an
invalid or truncated answer is re-asked once with the validation error,
then the ``fallback`` is used. A timeout, a refused connection or an HTTP
error is retried (``retries``, exponential backoff), then also falls back:
the control loop never sees an exception from the server. Each failure is
logged as a warning and kept in ``failures``.

The goal is always the instruction verbatim, whatever the model writes.
Identical requests are answered from a cache (in memory, and in
``cache_dir`` when set, which makes relabelling a dataset resumable without
asking again). With ``log`` set, every request and reply is appended to a
JSONL file for audit (images as size and hash unless ``log_images``). The
API key is read from the environment variable ``api_key_env``, sent only in
the Authorization header, and never written to logs, caches or messages.

As candidates for a refiner (`propose`, the ``refine`` planner) it gives its
plain answer first, then answers sampled at ``propose_temperature`` with a
request seed each (the best plan so far shown as a draft to improve, where
the refiner gives one). As a judge (`judge`) it scores each subtask of a
plan from 0 to 1 for the instruction and the image.

Events: ``start``, and whatever ``replan`` lists (``subtask``: when a
subtask ends; ``period``: every ``runtime.plan_period`` steps). A re-plan
sends the current image and the subtasks done so far.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from s2kit import hookimpl
from s2kit.core.config import PluginConfig, describe_validation_error
from s2kit.core.interfaces import Planner
from s2kit.core.types import Guidance, Observation, RobotStatus
from s2kit.plugins.planners._exemplars import Exemplar, load_exemplars
from s2kit.plugins.planners._openai import ChatClient, ChatError

__all__ = ["GUIDANCE_SCHEMA", "IncontextPlanner", "PlanReply", "json_object", "parse_reply"]

log = logging.getLogger(__name__)

GUIDANCE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "goal": {"type": "string"},
        "trajectory": {"type": "string"},
        "subtasks": {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1, "maxItems": 16},
    },
    "required": ["goal", "trajectory", "subtasks"],
    "additionalProperties": False,
}

SYSTEM_PROMPT = """\
You are the planner of a robot arm. Turn the user's instruction and the robot's camera image into guidance for \
the robot's low-level policy.
Answer with one JSON object and nothing else:
{"goal": "<the instruction, word for word>",
 "trajectory": "<one sentence: which arm, which objects in which order, and where they go>",
 "subtasks": ["<one short imperative sentence per step, in order>", ...]}
Name each object by colour and shape, say where it is on the table, and list every subtask of the task, \
including any already done."""

REASK = "That answer was not valid: {error}. Reply again with only the JSON object."

JUDGE_PROMPT = """\
You check the plan of a robot arm. For each numbered subtask, say how well it serves the user's instruction in \
the scene shown: 1 when it works on the right object, takes it to the right place and comes in the right order; \
0 when it does not.
Answer with one JSON object and nothing else: {"scores": [<one number from 0 to 1 per subtask>, ...]}"""

JUDGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"scores": {"type": "array", "items": {"type": "number", "minimum": 0, "maximum": 1}}},
    "required": ["scores"],
    "additionalProperties": False,
}

_RESPONSE_FORMATS = ("json_schema", "json_object", "none")


class IncontextConfig(PluginConfig):
    # server
    base_url: str = Field("http://127.0.0.1:8000/v1", description="The server's OpenAI-compatible API root (ends in /v1).")
    model: str = Field("default", description="Model name the server knows (vLLM: the served name; Ollama: the tag).")
    api_key_env: str | None = Field("OPENAI_API_KEY", description="Environment variable holding the API key; None: send none.")
    timeout: float = Field(20.0, gt=0, description="Seconds to wait for one reply.")
    retries: int = Field(1, ge=0, description="Extra tries after a timeout, refused connection or 5xx/429.")
    backoff: float = Field(0.5, ge=0, description="Seconds before the first retry; doubles each time.")
    # request
    temperature: float = Field(0.0, ge=0, le=2)
    propose_temperature: float = Field(0.8, ge=0, le=2, description="Temperature of the extra candidates a refiner asks for.")
    max_tokens: int = Field(512, ge=16)
    response_format: Literal["auto", "json_schema", "json_object", "none"] = Field(
        "auto", description="How to ask for JSON; auto steps down json_schema -> json_object -> none when refused."
    )
    extra_body: dict[str, Any] = Field(default_factory=dict, description="Extra request fields (server-specific options).")
    # prompt
    exemplars: Path | None = Field(None, description="Exemplar YAML file; None: the default that ships with s2kit.")
    num_exemplars: int = Field(3, ge=0, description="Few-shot exemplars per request.")
    camera: str = Field("head", description="Camera role whose image is sent.")
    image_size: int = Field(224, ge=0, description="Longer side of the sent image in pixels; 0 sends no image.")
    replan: list[Literal["subtask", "period"]] = Field(
        default_factory=lambda: ["subtask"], description="Events to re-query at besides the start."
    )
    # robustness and audit
    fallback: Literal["keep", "instruction", "retrieval"] = Field(
        "keep", description="When no valid answer comes: keep the last guidance (the instruction at the start), "
        "use the instruction alone, or ask the retrieval planner."
    )  # fmt: skip
    log: Path | None = Field(None, description="JSONL file every request and reply is appended to.")
    log_images: bool = Field(False, description="Write images into the log in full (else size and hash).")
    cache_dir: Path | None = Field(None, description="Folder for answers to identical requests, kept across runs.")


class PlanReply(BaseModel):
    """What the model must answer."""

    model_config = ConfigDict(extra="ignore")

    goal: str | None = None
    trajectory: str = ""
    subtasks: list[str] = Field(min_length=1, max_length=16)

    def model_post_init(self, _: object) -> None:
        if any(not s.strip() for s in self.subtasks):
            raise ValueError("subtasks must not be empty strings")


def json_object(text: str | None, finish_reason: str | None = None) -> Any:
    """The JSON object in a model's answer (code fences and text around it ignored); ValueError saying what is wrong."""
    if finish_reason == "length":
        raise ValueError("the answer was cut off at max_tokens (finish_reason 'length')")
    if not text or not text.strip():
        raise ValueError("the answer is empty")
    body = re.sub(r"^```(?:json)?\s*|\s*```$", "", text.strip())
    start, end = body.find("{"), body.rfind("}")
    if start < 0 or end < start:
        raise ValueError(f"the answer holds no JSON object: {text[:120]!r}")
    try:
        return json.loads(body[start : end + 1])
    except json.JSONDecodeError as err:
        raise ValueError(f"the answer is not valid JSON ({err.msg} at character {err.pos})") from None


def parse_reply(text: str | None, finish_reason: str | None = None) -> PlanReply:
    """The guidance in a model's answer; ValueError saying what is wrong with it."""
    data = json_object(text, finish_reason)
    try:
        return PlanReply.model_validate(data)
    except ValidationError as err:
        raise ValueError(describe_validation_error(err, PlanReply)) from None


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


class IncontextPlanner(Planner):
    """VLM planner over an OpenAI-compatible chat API: few-shot prompt + head image -> guidance JSON."""

    name = "incontext"
    Config = IncontextConfig

    def __init__(self, config: IncontextConfig | None = None) -> None:
        super().__init__(config)
        cfg: IncontextConfig = self.config  # type: ignore[assignment]
        self.events = ("start", *dict.fromkeys(cfg.replan))  # type: ignore[misc]
        self.exemplars = load_exemplars(cfg.exemplars)
        self.client = ChatClient(cfg.base_url, api_key_env=cfg.api_key_env, timeout=cfg.timeout, retries=cfg.retries, backoff=cfg.backoff)
        self.failures: list[str] = []
        self._format = "json_schema" if cfg.response_format == "auto" else cfg.response_format
        self._cache: dict[str, PlanReply] = {}
        self._fallback_planner: Planner | None = None

    # --- the prompt -------------------------------------------------------------------------

    def _nearest(self, instruction: str) -> list[Exemplar]:
        """The exemplars whose wording overlaps the instruction most (Jaccard on words)."""
        query = _words(instruction)

        def overlap(e: Exemplar) -> float:
            words = _words(e.instruction)
            return len(query & words) / max(len(query | words), 1)

        ranked = sorted(range(len(self.exemplars)), key=lambda i: (-overlap(self.exemplars[i]), i))
        return [self.exemplars[i] for i in ranked[: self.config.num_exemplars]]  # type: ignore[attr-defined]

    @staticmethod
    def _user_text(instruction: str, scene: str | None, done: Sequence[str] = (), draft: Sequence[str] = ()) -> str:
        lines = [f"Instruction: {instruction}"]
        if scene:
            lines.append(f"Scene: {scene}")
        if done:
            lines.append("Done so far: " + "; ".join(done))
        if draft:
            lines.append("A draft plan, to keep where it is right and correct where it is wrong: " + "; ".join(draft))
        return "\n".join(lines)

    def _image_part(self, observation: Observation) -> list[dict[str, Any]]:
        """The ``camera`` image as a chat content part (none where there is no image or ``image_size`` is 0)."""
        cfg: IncontextConfig = self.config  # type: ignore[assignment]
        image = observation.images.get(cfg.camera) if observation.images else None
        if not cfg.image_size or image is None:
            return []
        from s2kit.datasets.images import png_encode, resize

        png = png_encode(resize(image, cfg.image_size)[None])[0]
        return [{"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(png).decode()}}]

    def messages(
        self, instruction: str, observation: Observation, done: Sequence[str] = (), draft: Sequence[str] = ()
    ) -> list[dict[str, Any]]:
        """The chat messages for one request (also what ``s2kit plan --json`` can show)."""
        messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM_PROMPT}]
        for e in self._nearest(instruction):
            answer = {"goal": e.instruction, "trajectory": e.trajectory, "subtasks": e.subtasks}
            messages.append({"role": "user", "content": self._user_text(e.instruction, e.scene)})
            messages.append({"role": "assistant", "content": json.dumps(answer)})
        text = self._user_text(instruction, observation.scene, done, draft)
        messages.append({"role": "user", "content": [{"type": "text", "text": text}, *self._image_part(observation)]})
        return messages

    def _body(self, messages: list[dict[str, Any]], variant: int = 0, schema: tuple[str, dict[str, Any]] = ("guidance", GUIDANCE_SCHEMA)) -> dict[str, Any]:
        """The request body; ``variant`` > 0 asks for another sample (``propose_temperature``, seed ``variant``)."""
        cfg: IncontextConfig = self.config  # type: ignore[assignment]
        body: dict[str, Any] = {
            "model": cfg.model,
            "messages": messages,
            "temperature": cfg.propose_temperature if variant else cfg.temperature,
            "max_tokens": cfg.max_tokens,
            **cfg.extra_body,
        }
        if variant:
            body["seed"] = variant
        if self._format == "json_schema":
            body["response_format"] = {"type": "json_schema", "json_schema": {"name": schema[0], "strict": True, "schema": schema[1]}}
        elif self._format == "json_object":
            body["response_format"] = {"type": "json_object"}
        return body

    # --- asking ------------------------------------------------------------------------------

    def _ask(self, messages: list[dict[str, Any]], context: dict[str, Any], **body_options: Any) -> tuple[str | None, str | None]:
        """One request (stepping the response format down where the server refuses it): text, finish reason."""
        cfg: IncontextConfig = self.config  # type: ignore[assignment]
        while True:
            body = self._body(messages, **body_options)
            t = time.perf_counter()
            try:
                reply = self.client.complete(body)
            except ChatError as err:
                refused = err.kind == "http" and err.status in (400, 422) and "response_format" in str(err).lower()
                self._audit(context, body, None, None, str(err), time.perf_counter() - t)
                if refused and cfg.response_format == "auto" and self._format != "none":
                    self._format = _RESPONSE_FORMATS[_RESPONSE_FORMATS.index(self._format) + 1]
                    log.info("planner incontext: the server refused a response_format; now %s", self._format)
                    continue
                raise
            choice = reply["choices"][0] if isinstance(reply["choices"][0], dict) else {}
            message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
            text = message.get("content") if isinstance(message.get("content"), str) else None
            finish = choice.get("finish_reason")
            self._audit(context, body, text, finish, None, time.perf_counter() - t)
            return text, finish

    def _query(
        self, instruction: str, observation: Observation, done: Sequence[str], event: str, variant: int = 0, draft: Sequence[str] = ()
    ) -> PlanReply:
        """A valid reply, from the cache or the server (re-asked once); ChatError or ValueError otherwise."""
        messages = self.messages(instruction, observation, done, draft)
        key = self._cache_key(messages, variant)
        cached = self._cache_get(key)
        context = {"event": event, "instruction": instruction, **({"variant": variant} if variant else {})}
        if cached is not None:
            self._audit({**context, "cached": True}, None, cached.model_dump_json(), None, None, 0.0)
            return cached
        text, finish = self._ask(messages, context, variant=variant)
        try:
            reply = parse_reply(text, finish)
        except ValueError as err:
            messages = [*messages, {"role": "assistant", "content": text or ""}, {"role": "user", "content": REASK.format(error=err)}]
            text, finish = self._ask(messages, {**context, "reask": True}, variant=variant)
            reply = parse_reply(text, finish)
        self._cache_put(key, reply)
        return reply

    def plan(
        self,
        instruction: str,
        observation: Observation,
        *,
        event: str = "start",
        history: Sequence[Guidance] = (),
        status: RobotStatus | None = None,
    ) -> Guidance:
        done: list[str] = []
        if history and event != "start":
            last = history[-1]
            done = last.subtasks[: last.current + (1 if event == "subtask" else 0)]
        try:
            reply = self._query(instruction, observation, done, event)
        except (ChatError, ValueError) as err:
            return self._fall_back(instruction, observation, event, history, status, self.client.redact(str(err)))
        current = self.current_subtask(len(reply.subtasks), event=event, history=history, status=status)
        return Guidance(goal=instruction, trajectory=reply.trajectory, subtasks=reply.subtasks, current=current)

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
        """Candidates ``round * count`` to ``(round + 1) * count - 1``: the plain answer first, then samples (each its
        own seed, ``hint`` as a draft). Failed requests are left out (and kept in ``failures``); where every one of
        round 0 fails, the fallback's guidance is the only candidate."""
        done: list[str] = []
        if history and event != "start":
            last = history[-1]
            done = last.subtasks[: last.current + (1 if event == "subtask" else 0)]
        out: list[Guidance] = []
        for variant in range(round * count, (round + 1) * count):
            try:
                reply = self._query(instruction, observation, done, event, variant, hint if variant else ())
            except (ChatError, ValueError) as err:
                self.failures.append(self.client.redact(str(err)))
                continue
            current = self.current_subtask(len(reply.subtasks), event=event, history=history, status=status)
            out.append(Guidance(goal=instruction, trajectory=reply.trajectory, subtasks=reply.subtasks, current=current))
        if not out and round == 0:
            return [self._fall_back(instruction, observation, event, history, status, "no candidate answer")]
        return out

    def judge(self, instruction: str, observation: Observation, subtasks: Sequence[str]) -> list[float] | None:
        """The VLM's score (0 to 1) of each subtask of a plan for ``instruction``; None when it gives no valid scores."""
        lines = [self._user_text(instruction, observation.scene), "Plan:", *(f"{i + 1}. {s}" for i, s in enumerate(subtasks))]
        content = [{"type": "text", "text": "\n".join(lines)}, *self._image_part(observation)]
        messages = [{"role": "system", "content": JUDGE_PROMPT}, {"role": "user", "content": content}]
        try:
            text, finish = self._ask(messages, {"event": "judge", "instruction": instruction}, schema=("scores", JUDGE_SCHEMA))
            scores = json_object(text, finish)["scores"]
            if len(scores) != len(subtasks) or not all(isinstance(x, int | float) and 0 <= x <= 1 for x in scores):
                raise ValueError(f"expected {len(subtasks)} scores from 0 to 1, got {scores!r}")
        except (ChatError, ValueError, KeyError, TypeError) as err:
            self.failures.append(f"judge: {self.client.redact(str(err))}")
            return None
        return [float(x) for x in scores]

    def _fall_back(
        self,
        instruction: str,
        observation: Observation,
        event: str,
        history: Sequence[Guidance],
        status: RobotStatus | None,
        why: str,
    ) -> Guidance:
        cfg: IncontextConfig = self.config  # type: ignore[assignment]
        self.failures.append(why)
        log.warning("planner incontext: %s; using the %r fallback", why, cfg.fallback)
        if cfg.fallback == "retrieval":
            if self._fallback_planner is None:
                from s2kit.plugins.planners.retrieval import RetrievalPlanner

                self._fallback_planner = RetrievalPlanner()
            return self._fallback_planner.plan(instruction, observation, event=event, history=history, status=status)
        if cfg.fallback == "keep" and history:
            return history[-1].advanced() if event == "subtask" else history[-1]
        return Guidance(goal=instruction, trajectory="", subtasks=[instruction], current=0)

    # --- cache and audit log -------------------------------------------------------------------

    def _cache_key(self, messages: list[dict[str, Any]], variant: int = 0) -> str:
        cfg: IncontextConfig = self.config  # type: ignore[assignment]
        what = {"url": self.client.url, "model": cfg.model, "messages": messages, "temperature": cfg.temperature,
                "max_tokens": cfg.max_tokens, "extra": cfg.extra_body}  # fmt: skip
        if variant:
            what.update(variant=variant, propose_temperature=cfg.propose_temperature)
        return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()

    def _cache_get(self, key: str) -> PlanReply | None:
        if key in self._cache:
            return self._cache[key]
        cache_dir = self.config.cache_dir  # type: ignore[attr-defined]
        if cache_dir is not None and (Path(cache_dir) / f"{key}.json").is_file():
            try:
                self._cache[key] = PlanReply.model_validate_json((Path(cache_dir) / f"{key}.json").read_text())
                return self._cache[key]
            except (ValidationError, OSError):
                return None  # a damaged entry is asked again and overwritten
        return None

    def _cache_put(self, key: str, reply: PlanReply) -> None:
        self._cache[key] = reply
        cache_dir = self.config.cache_dir  # type: ignore[attr-defined]
        if cache_dir is not None:
            folder = Path(cache_dir)
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f".{key}.{os.getpid()}.tmp"
            tmp.write_text(reply.model_dump_json())
            os.replace(tmp, folder / f"{key}.json")

    def _audit(
        self,
        context: dict[str, Any],
        body: dict[str, Any] | None,
        text: str | None,
        finish: str | None,
        error: str | None,
        seconds: float,
    ) -> None:
        cfg: IncontextConfig = self.config  # type: ignore[assignment]
        if cfg.log is None:
            return
        record = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            **context,
            "request": None if body is None else _summarize_images(body, keep=cfg.log_images),
            "response": text,
            "finish_reason": finish,
            "error": error,
            "seconds": round(seconds, 4),
        }
        line = self.client.redact(json.dumps(record))
        path = Path(cfg.log)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as f:
            f.write(line + "\n")

    def close(self) -> None:
        if self._fallback_planner is not None:
            self._fallback_planner.close()


def _summarize_images(body: dict[str, Any], *, keep: bool) -> dict[str, Any]:
    """The request with each data-URL image replaced by its type, size and hash (unless ``keep``)."""
    if keep:
        return body
    out = dict(body)
    out["messages"] = []
    for message in body["messages"]:
        content = message.get("content")
        if isinstance(content, list):
            parts = []
            for part in content:
                url = part.get("image_url", {}).get("url", "") if part.get("type") == "image_url" else ""
                if url.startswith("data:"):
                    raw = base64.b64decode(url.split(",", 1)[1])
                    part = {"type": "image_url", "image": f"{url[5:url.index(';')]}, {len(raw)} bytes, sha256 {hashlib.sha256(raw).hexdigest()[:16]}"}
                parts.append(part)
            message = {**message, "content": parts}
        out["messages"].append(message)
    return out


@hookimpl
def s2kit_planners() -> list[type[Planner]]:
    return [IncontextPlanner]
