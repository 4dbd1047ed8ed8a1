"""The LLM agents through the real anthropic and openai SDKs, against a local fake endpoint
that answers with canned Messages / Chat Completions JSON."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from memrl_clients.eval import humaneval, memtext, textworld
from memrl_clients.eval.common import Recalled, Task
from memrl_clients.eval.llm import LLMCoder, LLMPlayer, chat_model, pick_action

Reply = Callable[[str, dict[str, Any]], str]


class FakeEndpoint:
    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.requests: list[tuple[str, dict[str, Any]]] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                endpoint.requests.append((self.path, body))
                text = endpoint.reply(self.path, body)
                payload = anthropic_json(text) if self.path.endswith("/messages") else openai_json(text)
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def anthropic_json(text: str) -> dict[str, Any]:
    return {"id": "msg_test", "type": "message", "role": "assistant", "model": "fake",
            "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
            "stop_sequence": None, "usage": {"input_tokens": 10, "output_tokens": 10}}


def openai_json(text: str) -> dict[str, Any]:
    return {"id": "chatcmpl-test", "object": "chat.completion", "created": 0, "model": "fake",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}}


def user_text(body: dict[str, Any]) -> str:
    return body["messages"][-1]["content"]


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Reply], FakeEndpoint]]:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    started: list[FakeEndpoint] = []

    def start(reply: Reply) -> FakeEndpoint:
        started.append(FakeEndpoint(reply))
        return started[-1]

    yield start
    for e in started:
        e.close()


@pytest.fixture(scope="module")
def fib() -> humaneval.Problem:
    return next(p for p in humaneval.load_problems() if p.task_id == "HumanEval/55")


@pytest.mark.parametrize(("provider", "path"), [("anthropic", "/v1/messages"),
                                                ("openai", "/v1/chat/completions")])
def test_coder_through_the_sdk(provider: str, path: str, endpoint, fib) -> None:
    def reply(_path: str, body: dict[str, Any]) -> str:
        if "Complete the function" in json.dumps(body):
            return f"Here it is:\n```python\n{fib.canonical}\n```"
        return "1. Handle n = 0 and n = 1.\n2. Recurse on n - 1 and n - 2."

    fake = endpoint(reply)
    base = fake.url + ("/v1" if provider == "openai" else "")
    chat = chat_model(provider, "fake-model", 0.2, base)
    checker = humaneval.HumanEvalChecker()
    agent = LLMCoder(chat, checker.check)
    task = humaneval.tasks([fib])[0]
    hint = Recalled(3, "failure", "i", "Failed `def fib(n: int):` (approach x): slow\n```python\npass\n```")
    outcome = agent.attempt(task, [hint], ("k", 1))
    draft = agent.write_memory(task, outcome)
    chat.close()
    assert outcome.success and checker.executed == 1  # the tests really ran
    assert [p for p, _ in fake.requests] == [path, path]
    first = fake.requests[0][1]
    assert first["model"] == "fake-model" and first["temperature"] == 0.2
    assert "Failed `def fib(n: int):`" in user_text(first) and "def fib(n: int):" in user_text(first)
    note = memtext.parse(draft.experience)
    assert draft.kind == "success" and note is not None and note.artifact == fib.canonical
    assert "Recurse on n - 1" in draft.experience


def test_player_plays_the_game_through_the_sdk(endpoint, java) -> None:
    world = textworld.TextWorld()
    try:
        game = world.game("simonsays", 1)
        moves = iter(game.gold)
        fake = endpoint(lambda _path, _body: next(moves, "I failed.") + "\n")
        chat = chat_model("openai", "fake-model", None, fake.url + "/v1")
        agent = LLMPlayer(chat, world)
        task = Task(textworld.ENV, "simonsays/seed-1", textworld.describe(game), game)
        outcome = agent.attempt(task, [], ("k", 1))
        draft = agent.write_memory(task, outcome)
        chat.close()
    finally:
        world.close()
    assert outcome.success and outcome.artifact.splitlines() == list(game.gold)
    assert len(fake.requests) == len(game.gold) + 1
    assert "temperature" not in fake.requests[0][1]
    assert "Valid actions:" in user_text(fake.requests[0][1])
    assert draft.kind == "success"


def test_pick_action() -> None:
    valid = ["look around", "take coin", "take coin box"]
    assert pick_action("Take coin", valid) == "take coin"
    assert pick_action("> `take coin box`", valid) == "take coin box"
    assert pick_action("I will take coin box now.", valid) == "take coin box"
    assert pick_action("no idea", valid) == "look around"
