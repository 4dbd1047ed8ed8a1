"""The write gate's secret filter: credentials never reach the database.

Memories are replayed into future prompts and shared by every host on the file, so a
token pasted into an experience would leak far from where it was written. Known secret
shapes are replaced by a marker before anything is stored (memories, reflections and the
queries kept in the task ledger). The patterns favour precision: they match credential
formats and `key = value` assignments whose key names a secret, not arbitrary long strings.
"""

from __future__ import annotations

import re

MARK = "[REDACTED]"

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (
        re.compile(
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)",
            re.S,
        ),
        MARK,
    ),
    (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), MARK),  # AWS access key id
    (
        re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})\b"),
        MARK,
    ),
    (
        re.compile(r"\bsk-(?:ant-)?[A-Za-z0-9_-]{20,}"),
        MARK,
    ),  # OpenAI / Anthropic style keys
    (re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"), MARK),  # Slack
    (re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}"), MARK),  # GitLab
    (
        re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
        MARK,
    ),  # JWT
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{16,}"), rf"\1 {MARK}"),
    (
        re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s:/@]+):[^\s@/]+@"),
        rf"\1:{MARK}@",
    ),  # url creds
    (
        re.compile(
            r"(?i)\b([A-Za-z0-9_.-]*(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key"
            r"|private[_-]?key|client[_-]?secret)[A-Za-z0-9_.-]*)(\s*[:=]\s*)(['\"]?)(?!\[REDACTED\])"
            r"[^\s'\"]{4,}\3"
        ),
        rf"\1\2\3{MARK}\3",
    ),
]


def redact(text: str) -> tuple[str, int]:
    """`text` with secrets replaced by [REDACTED], and how many were replaced."""
    total = 0
    for pattern, replacement in _PATTERNS:
        text, n = pattern.subn(replacement, text)
        total += n
    return text, total
