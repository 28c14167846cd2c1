"""The incontext planner against a real OpenAI-compatible server (`transformers serve`) on loopback."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from s2kit.core.config import validate_pipeline
from s2kit.core.interfaces import Subscriber
from s2kit.core.registry import load_registry
from s2kit.core.runtime import build_runtime
from s2kit.core.types import Guidance, Observation
from s2kit.plugins.planners.incontext import (
    IncontextConfig,
    IncontextPlanner,
    parse_reply,
)
from tests.plugins.planners.openai_server import Server, build_model, free_port

KEY = "sk-test-0123456789abcdef"
INSTRUCTION = "put the red cube in the bowl"
GOOD = {"goal": "something else", "trajectory": "use the right arm; pick place: red cube",
        "subtasks": ["pick up the red cube at the front left", "lower the red cube into the bowl and release it"]}  # fmt: skip
WAYPOINTS = {"goal": "-", "trajectory": "visit both points", "subtasks": ["reach 0.1,0,0", "reach 0.1,0.1,0"]}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pytest.importorskip("transformers", reason="the server tests need transformers[serving]")
    root = tmp_path_factory.mktemp("models")
    return {
        "good": build_model(root / "good", json.dumps(GOOD), json.dumps(GOOD)),
        "reask": build_model(root / "reask", json.dumps({"trajectory": "half an answer"}), json.dumps(GOOD)),
        "prose": build_model(root / "prose", "I would pick up the cube first.", "Sorry, the cube."),
        "ramble": build_model(root / "ramble", "and", "and", ramble=True),
        "waypoints": build_model(root / "waypoints", json.dumps(WAYPOINTS), json.dumps(WAYPOINTS)),
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, models: dict[str, Path]):
    try:
        s = Server(tmp_path_factory.mktemp("server") / "serve.log")
    except RuntimeError as err:
        pytest.skip(f"cannot start transformers serve: {err}")
    yield s
    s.stop()


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S2KIT_TEST_KEY", KEY)


def planner(base_url: str, model: Path | str, **options) -> IncontextPlanner:
    options.setdefault("api_key_env", "S2KIT_TEST_KEY")
    options.setdefault("timeout", 30)
    return IncontextPlanner(IncontextConfig(base_url=base_url, model=str(model), **options))


def observation(seed: int = 0) -> Observation:
    image = np.random.default_rng(seed).integers(0, 255, (96, 96, 3), dtype=np.uint8)
    return Observation(images={"head": image}, state=np.zeros(4, np.float32), timestamp=0.0,
                       scene="on the table: red cube at the front left, bowl at the back right")  # fmt: skip


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_plans_from_a_real_server_keeping_the_goal_verbatim(server: Server, models, tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    p = planner(server.base_url, models["good"], log=log)
    g = p.plan(INSTRUCTION, observation())
    assert g == Guidance(goal=INSTRUCTION, trajectory=GOOD["trajectory"], subtasks=GOOD["subtasks"], current=0)
    assert p.failures == []
    (record,) = records(log)
    request = record["request"]
    assert request["response_format"]["type"] == "json_schema"
    assert request["response_format"]["json_schema"]["schema"]["required"] == ["goal", "trajectory", "subtasks"]
    first, *shots, final = request["messages"]
    assert first["role"] == "system" and len(shots) == 2 * 3  # three exemplars, as user/assistant pairs
    assert INSTRUCTION in final["content"][0]["text"] and "red cube at the front left" in final["content"][0]["text"]
    assert final["content"][1]["image"].startswith("image/png,")  # summarized in the log, sent in full
    assert json.loads(record["response"]) == GOOD
    assert KEY not in log.read_text()


def test_identical_requests_are_cached_in_memory_and_on_disk(server: Server, models, tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    p = planner(server.base_url, models["good"], log=log, cache_dir=tmp_path / "cache")
    first = p.plan(INSTRUCTION, observation())
    assert p.plan(INSTRUCTION, observation()) == first
    assert p.plan(INSTRUCTION, observation(seed=1)) == first  # another image is another request
    asked = [r for r in records(log) if not r.get("cached")]
    assert len(asked) == 2 and sum(bool(r.get("cached")) for r in records(log)) == 1
    # a new process (planner) with the same cache folder asks nothing
    again = planner(server.base_url, models["good"], log=tmp_path / "again.jsonl", cache_dir=tmp_path / "cache")
    assert again.plan(INSTRUCTION, observation()) == first
    assert [r.get("cached") for r in records(tmp_path / "again.jsonl")] == [True]
    assert KEY not in "".join(f.read_text() for f in (tmp_path / "cache").iterdir())


def test_an_invalid_answer_is_re_asked_once_with_the_error(server: Server, models, tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    p = planner(server.base_url, models["reask"], log=log)
    g = p.plan(INSTRUCTION, observation())
    assert g.subtasks == GOOD["subtasks"] and p.failures == []
    first, second = records(log)
    assert json.loads(first["response"]) == {"trajectory": "half an answer"}
    reask = second["request"]["messages"][-1]["content"]
    assert second["reask"] and "was not valid" in reask and "subtasks" in reask


def test_a_reply_that_is_not_json_falls_back(server: Server, models) -> None:
    p = planner(server.base_url, models["prose"], fallback="instruction")
    g = p.plan(INSTRUCTION, observation())
    assert g == Guidance(goal=INSTRUCTION, trajectory="", subtasks=[INSTRUCTION], current=0)
    (why,) = p.failures
    assert "no JSON object" in why


def test_a_truncated_answer_falls_back(server: Server, models) -> None:
    p = planner(server.base_url, models["ramble"], max_tokens=20, fallback="instruction")
    assert p.plan(INSTRUCTION, observation()).subtasks == [INSTRUCTION]
    assert "cut off at max_tokens" in p.failures[0]


def test_a_slow_server_hits_the_timeout_and_the_loop_goes_on(server: Server, models) -> None:
    p = planner(server.base_url, models["ramble"], max_tokens=8000, timeout=0.3, retries=1, backoff=0.05)
    g = p.plan(INSTRUCTION, observation())
    assert g.subtasks == [INSTRUCTION]  # 'keep' has nothing to keep at the start: the instruction
    assert "did not answer within 0.3 s (after 2 tries)" in p.failures[0]


def test_a_refused_connection_is_reported_without_the_key(models) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    p = planner(url, models["good"], retries=1, backoff=0.01, fallback="retrieval")
    g = p.plan(INSTRUCTION, observation())
    assert g.goal == INSTRUCTION and len(g.subtasks) == 2  # the retrieval planner's adapted guidance
    assert "cannot reach" in p.failures[0] and url in p.failures[0] and KEY not in p.failures[0]


def test_an_http_error_is_reported(server: Server, tmp_path: Path) -> None:
    p = planner(server.base_url, tmp_path / "no-such-model", fallback="instruction")
    assert p.plan(INSTRUCTION, observation()).subtasks == [INSTRUCTION]
    assert "answered HTTP" in p.failures[0]


def test_the_server_going_away_mid_episode_does_not_stop_the_episode(models, tmp_path: Path) -> None:
    own = Server(tmp_path / "serve.log")  # this one gets killed

    class KillAfterFirstPlan(Subscriber):
        def on_plan(self, step: int, event: str, guidance: Guidance) -> None:
            own.stop()

    try:
        registry = load_registry(modules=["tests.doubles"], env={})
        pipeline = validate_pipeline({
            "robot": {"name": "point", "task": "reach 0.1,0,0; reach 0.1,0.1,0"},
            "planner": {"name": "incontext", "base_url": own.base_url, "model": str(models["waypoints"]),
                        "api_key_env": "S2KIT_TEST_KEY", "retries": 0, "image_size": 32},
            "executor": {"name": "seek"},
            "runtime": {"episodes": 1, "max_steps": 100},
        })  # fmt: skip
        runtime = build_runtime(pipeline, registry, subscribers=[KillAfterFirstPlan()])
        try:
            (result,) = runtime.run()
        finally:
            runtime.close()
    finally:
        own.stop()
    assert result.task_success and result.subtasks_completed == 2
    planner_ = runtime.planner
    assert result.plans == 2 and len(planner_.failures) == 1 and "cannot reach" in planner_.failures[0]


class _RefusesResponseFormat(BaseHTTPRequestHandler):
    """A server that, like some older OpenAI-compatible ones, rejects response_format."""

    seen: list[dict] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append({"body": body, "auth": self.headers.get("Authorization")})
        if "response_format" in body:
            payload, status = {"error": {"message": f"response_format {body['response_format']['type']} is not supported"}}, 400
        else:
            payload, status = {"choices": [{"message": {"content": "```json\n" + json.dumps(GOOD) + "\n```"}, "finish_reason": "stop"}]}, 200
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


def test_response_format_steps_down_when_the_server_refuses_it() -> None:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _RefusesResponseFormat)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        p = planner(f"http://127.0.0.1:{httpd.server_port}/v1", "m")
        assert p.plan(INSTRUCTION, observation()).subtasks == GOOD["subtasks"]
        assert p.plan("put the blue sphere in the bowl", observation()).subtasks == GOOD["subtasks"]
    finally:
        httpd.shutdown()
    formats = [s["body"].get("response_format", {}).get("type") for s in _RefusesResponseFormat.seen]
    assert formats == ["json_schema", "json_object", None, None]  # remembered for the next request
    assert {s["auth"] for s in _RefusesResponseFormat.seen} == {f"Bearer {KEY}"}


@pytest.mark.parametrize(
    ("text", "finish", "error"),
    [
        ('Sure! ```json\n{"trajectory": "t", "subtasks": ["a"]}\n``` Anything else?', "stop", None),
        ('{"trajectory": "t", "subtasks": []}', "stop", "subtasks"),
        ('{"trajectory": "t", "subtasks": ["a", ""]}', "stop", "empty"),
        ('{"trajectory": "t", "subtasks": ["a"', "stop", "no JSON object"),
        ('{"trajectory": "t", "subtasks": ["a"]}', "length", "cut off"),
        ("", "stop", "empty"),
        ('{"trajectory": "t", "subtasks": ["a"],}', "stop", "not valid JSON"),
    ],
)
def test_parse_reply(text: str, finish: str, error: str | None) -> None:
    if error is None:
        assert parse_reply(text, finish).subtasks == ["a"]
    else:
        with pytest.raises(ValueError, match=error):
            parse_reply(text, finish)


def test_a_replan_sends_what_is_done_and_moves_on(server: Server, models, tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    p = planner(server.base_url, models["good"], log=log)
    assert p.events == ("start", "subtask")
    first = p.plan(INSTRUCTION, observation())
    again = p.plan(INSTRUCTION, observation(seed=2), event="subtask", history=[first])
    assert again.current == 1 and again.subtasks == GOOD["subtasks"]
    text = records(log)[-1]["request"]["messages"][-1]["content"][0]["text"]
    assert text.endswith(f"Done so far: {GOOD['subtasks'][0]}")
    assert planner(server.base_url, models["good"], replan=["period", "subtask"]).events == ("start", "period", "subtask")


def test_candidates_for_a_refiner_are_samples_with_a_seed_each_and_the_draft(server: Server, models, tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    p = planner(server.base_url, models["good"], log=log, propose_temperature=0.9)
    first = p.propose(INSTRUCTION, observation(), 2)
    assert [g.subtasks for g in first] == [GOOD["subtasks"]] * 2 and all(g.goal == INSTRUCTION for g in first)
    later = p.propose(INSTRUCTION, observation(), 2, round=1, hint=["pick up the red cube"])
    assert len(later) == 2
    requests = [r["request"] for r in records(log)]
    assert [(r["temperature"], r.get("seed")) for r in requests] == [(0.0, None), (0.9, 1), (0.9, 2), (0.9, 3)]
    assert "A draft plan" not in requests[0]["messages"][-1]["content"][0]["text"]
    assert "A draft plan, to keep where it is right and correct where it is wrong: pick up the red cube" in requests[2]["messages"][-1]["content"][0]["text"]
    assert p.propose(INSTRUCTION, observation(), 2, round=1, hint=["pick up the red cube"]) == later  # cached like any request
    assert len(records(log)) == 6 and all(r.get("cached") for r in records(log)[4:])
