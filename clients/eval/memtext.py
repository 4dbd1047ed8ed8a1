"""The text of the memories the scripted host writes, and how it reads them back.

A memory names what it is about (a function signature, or a game and its seed), the
approach it took (a hash of the submitted code or action list), and carries that artifact
in a fenced block, so a later attempt can reuse it or avoid it:

    Solved `def add(x: int, y: int):` (approach 3f2a9c0d1e).
    Script:
    1. ...
    ```python
    def add(x: int, y: int): ...
    ```
"""

from __future__ import annotations

import re
from dataclasses import dataclass

HEADER = re.compile(r"^(Solved|Failed) `(?P<subject>.+?)` \(approach (?P<approach>\w+)\)", re.MULTILINE)
BLOCK = re.compile(r"```(?:python|text)?\n(?P<body>.*?)\n```", re.DOTALL)


@dataclass(frozen=True)
class Note:
    """A memory as the scripted host understands it."""

    solved: bool
    subject: str
    approach: str
    artifact: str


def parse(experience: str) -> Note | None:
    """The note in a memory's text, or None for text the scripted host did not write."""
    head = HEADER.search(experience)
    block = BLOCK.search(experience)
    if head is None or block is None:
        return None
    return Note(head.group(1) == "Solved", head.group("subject"), head.group("approach"),
                block.group("body"))


def success(subject: str, approach: str, steps: list[str], artifact: str, lang: str) -> str:
    script = "\n".join(f"{i}. {s}" for i, s in enumerate(steps, 1))
    return (
        f"Solved `{subject}` (approach {approach}).\nScript:\n{script}\n"
        f"Solution:\n```{lang}\n{artifact}\n```"
    )


def failure(subject: str, approach: str, detail: str, reflection: str, artifact: str,
            lang: str) -> str:
    return (
        f"Failed `{subject}` (approach {approach}): {detail}\nReflection: {reflection}\n"
        f"Failed attempt (do not repeat it):\n```{lang}\n{artifact}\n```"
    )
