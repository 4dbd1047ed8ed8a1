"""English sentences out of Python source text: docstrings and comments, split and filtered.

The real-text tier of the bench needs real, varied sentences, not code. Docstrings and
comments hold both, so this module keeps only what reads as prose: doctest lines, reST
markup and literal blocks, parameter headers (`x : int`, `Args:`) and underlines are
dropped; inline markup (``code``, :func:`name`, *emphasis*) is unwrapped; paragraphs are
split into sentences; a sentence is kept when it has 4-50 tokens, at least 75% of them
plain words, and none of the characters that mark code (`{}<>=[]_\\`). On the standard
library and every package memrl[test,eval] installs, this keeps 169k of 281k pieces
(103k once deduplicated); it drops pieces under 4 or over 50 tokens (45k), pieces with
code characters (37k), a first token that is not a word (15k), too few plain words (11k)
and short pieces without a full stop, mostly headings (4k).
"""

from __future__ import annotations

import ast
import inspect
import re
from collections.abc import Iterator

MIN_TOKENS = 4
MAX_TOKENS = 50
MIN_WORD_SHARE = 0.75

# A line that is markup, not prose: doctest, reST directive/field/table, an underline.
_MARKUP = re.compile(r"^(>>>|\.\.\.|\.\. |:\w[\w ]*:|[-=~^*#\"+|`]{3,}$|\|)")
# A numpy-style parameter header ("x : int, optional") or a section title ("Returns:").
_HEADER = re.compile(r"^(\*{0,2}[\w.]+(,\s*\*{0,2}[\w.]+)*\s+:(\s|$)|[\w ]{1,30}:$)")
# A Google-style argument ("token (str, optional): ...", "name: ..."): name and type dropped.
_ARG_PREFIX = re.compile(r"^\*{0,2}\w+(?: \([^)]{1,60}\))?:(?:\s+|$)")
_BULLET = re.compile(r"^([-*+•]|\d{1,2}[.)]) ")
_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"(])")
_WORD = re.compile(r"^[(\"']?[A-Za-z][a-z]+(?:[-'][a-z]+)*[.,;:!?)\"']*$")
_CODE_CHARS = frozenset("{}<>=[]_\\")
_INLINE = [
    (re.compile(r"``([^`]+)``"), r"\1"),
    (re.compile(r":\w+:`~?([^`]+)`"), r"\1"),
    (re.compile(r"`([^`]+)`_?"), r"\1"),
    (re.compile(r"\*\*?([^*]+)\*\*?"), r"\1"),
]


def paragraphs(text: str) -> Iterator[str]:
    """Runs of prose lines, joined; markup lines and literal blocks (after `::`) end a run."""
    para: list[str] = []
    literal_indent: int | None = None
    for line in text.splitlines():
        s = line.strip()
        indent = len(line) - len(line.lstrip())
        if literal_indent is not None:
            if not s or indent > literal_indent:
                continue
            literal_indent = None
        bullet = _BULLET.match(s)
        if not s or _MARKUP.match(s) or _HEADER.match(s) or bullet or _ARG_PREFIX.match(s):
            if para:
                yield " ".join(para)
                para = []
            if not s or _MARKUP.match(s) or _HEADER.match(s):
                continue
            s = s[bullet.end():] if bullet else _ARG_PREFIX.sub("", s)
            if not s:
                continue
        if s.endswith("::"):
            literal_indent = indent
            s = s[:-1]
        para.append(s)
    if para:
        yield " ".join(para)


def is_sentence(s: str) -> bool:
    """Whether `s` reads as an English sentence rather than code or a heading."""
    toks = s.split()
    if not MIN_TOKENS <= len(toks) <= MAX_TOKENS:
        return False
    if not (s[0].isupper() or _WORD.match(toks[0])):
        return False
    if s[-1] not in ".?!" and len(toks) < 5:
        return False  # a short piece without a full stop is usually a heading
    if _CODE_CHARS.intersection(s):
        return False
    return sum(1 for t in toks if _WORD.match(t)) >= MIN_WORD_SHARE * len(toks)


def split_sentences(text: str) -> Iterator[str]:
    """The sentences of a docstring or comment block that pass `is_sentence`."""
    for para in paragraphs(text):
        for pattern, repl in _INLINE:
            para = pattern.sub(repl, para)
        for piece in _SPLIT.split(para):
            s = " ".join(piece.split())
            if s and is_sentence(s):
                yield s


def dedupe_key(s: str) -> str:
    """Sentences equal up to case, punctuation and spacing embed (almost) alike: one is kept."""
    return re.sub(r"[^a-z0-9]+", " ", s.lower()).strip()


def docstrings(source: str) -> Iterator[tuple[str, str]]:
    """("docstring" | "attribute", text) for every string statement of a module: the first
    statement of a module, class or function body is its docstring; a string statement
    elsewhere in a body documents the attribute above it."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if not isinstance(body, list):
            continue
        for i, stmt in enumerate(body):
            if (
                isinstance(stmt, ast.Expr)
                and isinstance(stmt.value, ast.Constant)
                and isinstance(stmt.value.value, str)
            ):
                yield ("docstring" if i == 0 else "attribute"), inspect.cleandoc(stmt.value.value)


def comment_blocks(source: str) -> Iterator[str]:
    """Runs of whole-line comments on consecutive lines, joined (a sentence often spans
    several). Lines are matched as text, not tokenized: tokenizing the standard library
    took 10.7 s against 0.3 s for this, and a '#' line inside a string is rare."""
    block: list[str] = []
    for line in source.splitlines():
        s = line.strip()
        if s.startswith("#"):
            text = s.lstrip("#").strip()
            if text:
                block.append(text)
                continue
        if block:
            yield " ".join(block)
            block = []
    if block:
        yield " ".join(block)
