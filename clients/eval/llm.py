"""Real frozen-LLM agents through the anthropic and openai SDKs.

The LLM reads the injected memories as plain text, attempts the task, and writes the
script or reflection that the host stores; the memory header and the artifact (code or
actions) are added by the host, in the same format the scripted agent uses, so both kinds
of agent can read each other's memories. Keys come from ANTHROPIC_API_KEY /
OPENAI_API_KEY; `base_url` points the SDK at another endpoint (tests use a local fake).
"""

from __future__ import annotations

import os
import re
from typing import Any, Protocol

from . import humaneval, memtext, textworld
from .common import MemoryDraft, Outcome, Recalled, Task, short_hash

DEFAULT_MODELS = {"anthropic": "claude-sonnet-4-5", "openai": "gpt-4o-mini"}
CODE_BLOCK = re.compile(r"```(?:python|py)?\s*\n(.*?)```", re.DOTALL)
HISTORY = 8  # game steps shown to the model


class ChatModel(Protocol):
    def complete(self, system: str, prompt: str) -> str: ...

    def close(self) -> None: ...


class AnthropicChat:
    def __init__(self, model: str | None = None, temperature: float | None = None,
                 base_url: str | None = None, max_tokens: int = 1024) -> None:
        import anthropic

        self.model = model or DEFAULT_MODELS["anthropic"]
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.client = anthropic.Anthropic(api_key=os.environ.get("ANTHROPIC_API_KEY"),
                                          base_url=base_url)

    def complete(self, system: str, prompt: str) -> str:
        extra: dict[str, Any] = {}
        if self.temperature is not None:  # not a named parameter of this SDK's create()
            extra["extra_body"] = {"temperature": self.temperature}
        message = self.client.messages.create(
            model=self.model, max_tokens=self.max_tokens, system=system,
            messages=[{"role": "user", "content": prompt}], **extra,
        )
        return "".join(getattr(block, "text", "") for block in message.content)

    def close(self) -> None:
        self.client.close()


class OpenAIChat:
    def __init__(self, model: str | None = None, temperature: float | None = None,
                 base_url: str | None = None, max_tokens: int = 1024) -> None:
        import openai

        self.model = model or DEFAULT_MODELS["openai"]
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.client = openai.OpenAI(api_key=os.environ.get("OPENAI_API_KEY"), base_url=base_url)

    def complete(self, system: str, prompt: str) -> str:
        extra: dict[str, Any] = {}
        if self.temperature is not None:
            extra["temperature"] = self.temperature
        response = self.client.chat.completions.create(
            model=self.model, max_completion_tokens=self.max_tokens,
            messages=[{"role": "system", "content": system}, {"role": "user", "content": prompt}],
            **extra,
        )
        return response.choices[0].message.content or ""

    def close(self) -> None:
        self.client.close()


def chat_model(provider: str, model: str | None, temperature: float | None,
               base_url: str | None = None) -> ChatModel:
    if provider == "anthropic":
        return AnthropicChat(model, temperature, base_url)
    if provider == "openai":
        return OpenAIChat(model, temperature, base_url)
    raise ValueError(f"unknown LLM provider {provider!r}: use anthropic or openai")


def memory_block(memories: list[Recalled]) -> str:
    if not memories:
        return "No past experience was recalled for this task.\n"
    parts = [f"[{i}] {m.kind} (utility {m.q:+.2f})\n{m.experience}" for i, m in enumerate(memories, 1)]
    return ("Past experiences recalled from memory (they may be wrong; a 'Failed' note says "
            "what to avoid):\n\n" + "\n\n".join(parts) + "\n")


def reused_id(artifact: str, memories: list[Recalled]) -> int | None:
    """The memory whose artifact the model submitted unchanged, if any."""
    for m in memories:
        note = memtext.parse(m.experience)
        if note is not None and short_hash(note.artifact) == short_hash(artifact):
            return m.id
    return None


def lesson(chat: ChatModel, task: Task, outcome: Outcome, what: str) -> str:
    if outcome.success:
        ask = (f"This {what} succeeded. Write 3 to 5 short, reusable high-level steps that made "
               "it work, one per line, no code.")
    else:
        ask = (f"This {what} failed: {outcome.detail}. In one to three sentences, say what went "
               "wrong and what to avoid next time.")
    return chat.complete(
        "You keep concise notes for your future self.",
        f"Task:\n{task.query}\n\nAttempt:\n{outcome.artifact}\n\n{ask}",
    ).strip()


def draft(chat: ChatModel, task: Task, outcome: Outcome, subject: str, lang: str, what: str) -> MemoryDraft:
    text = lesson(chat, task, outcome, what)
    if outcome.success:
        steps = [ln.strip(" -*0123456789.") for ln in text.splitlines() if ln.strip()][:5]
        body = memtext.success(subject, outcome.approach, steps, outcome.artifact, lang)
        return MemoryDraft(task.query, body, "success")
    body = memtext.failure(subject, outcome.approach, outcome.detail, text, outcome.artifact, lang)
    return MemoryDraft(task.query, body, "failure")


class LLMCoder:
    """HumanEval with a real model: one completion per attempt, then the real tests."""

    SYSTEM = ("You are an expert Python programmer. Complete the function. Reply with a single "
              "```python block holding the complete function definition and any imports it needs.")

    def __init__(self, chat: ChatModel, verify: Any) -> None:
        self.chat = chat
        self.verify = verify
        self.name = f"llm:{getattr(chat, 'model', 'model')}"

    def attempt(self, task: Task, memories: list[Recalled], key: tuple[Any, ...]) -> Outcome:
        problem: humaneval.Problem = task.data
        reply = self.chat.complete(
            self.SYSTEM, f"{memory_block(memories)}\nTask:\n```python\n{problem.prompt}```\n"
        )
        blocks = CODE_BLOCK.findall(reply)
        code = (blocks[-1] if blocks else reply).strip()
        result = self.verify(problem, code)
        return Outcome(result.passed, code, short_hash(code), result.detail,
                       reused_id(code, memories))

    def write_memory(self, task: Task, outcome: Outcome) -> MemoryDraft:
        return draft(self.chat, task, outcome, task.data.signature, "python", "solution")


class LLMPlayer:
    """Text games with a real model: one call per step, actions chosen from the valid list."""

    SYSTEM = ("You play a text game. Each turn, reply with exactly one action copied from the "
              "list of valid actions, and nothing else.")

    def __init__(self, chat: ChatModel, world: textworld.TextWorld) -> None:
        self.chat = chat
        self.world = world
        self.name = f"llm:{getattr(chat, 'model', 'model')}"

    def attempt(self, task: Task, memories: list[Recalled], key: tuple[Any, ...]) -> Outcome:
        game: textworld.Game = task.data
        recalled = memory_block(memories)
        history: list[str] = []

        def choose(step: int, obs: str, valid: list[str]) -> str:
            recent = "\n".join(history[-HISTORY:]) or "(none)"
            reply = self.chat.complete(self.SYSTEM, (
                f"{recalled}\nTask: {game.description}\n\nRecent steps:\n{recent}\n\n"
                f"Observation:\n{obs}\n\nValid actions: {', '.join(valid)}\nYour action:"
            ))
            action = pick_action(reply, valid)
            history.append(f"{obs[:200]}\n> {action}")
            return action

        episode = self.world.play(game, choose)
        artifact = "\n".join(episode.actions)
        detail = "won" if episode.success else f"not won (score {episode.score:g})"
        return Outcome(episode.success, artifact, short_hash(artifact), detail,
                       reused_id(artifact, memories))

    def write_memory(self, task: Task, outcome: Outcome) -> MemoryDraft:
        return draft(self.chat, task, outcome, task.data.label, "text", "game")


def pick_action(reply: str, valid: list[str]) -> str:
    """The valid action the reply names: exact line, else the longest one it contains."""
    lines = [ln.strip().strip("`'\".>").strip().lower() for ln in reply.splitlines()]
    by_lower = {a.lower(): a for a in valid}
    for ln in lines:
        if ln in by_lower:
            return by_lower[ln]
    text = reply.lower()
    contained = [a for a in valid if a.lower() in text]
    if contained:
        return max(contained, key=len)
    return "look around" if "look around" in valid or not valid else valid[0]
