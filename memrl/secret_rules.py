"""Project rules on top of detect-secrets: formats it lacks and the prose forms of memories.

detect-secrets (memrl/secret_detectors.py) scans source files line by line and knows vendor
formats and quoted assignments. Memories are prose, shell lines and snippets, so these rules
add what it missed on the test corpus (tests/secret_corpus.py): Google `AIza…`, Hugging Face
`hf_…`, bare npm `npm_…`, PyPI tokens of any registry, Stripe keys of any length and test
mode, an Azure `AccountKey=` of any length, an AWS secret key named in prose, command-line
flags (`--password X`), `token <value>` with a space, URL passwords containing `/`,
private-key blocks, bearer/basic headers, and `name = value` assignments whose name is a
secret (`token`, `auth_token`, `credentials`, which detect-secrets' keyword list does not
have). Each rule marks only the secret part (its `secret` group), so `DB_PASSWORD=` or
`https://bob:` stay readable.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

# A name that says its value is a credential ...
_SECRET_WORD = (
    r"(?:passwords?|passwd|passphrase|pwd|secrets?|tokens?|api[_-]?keys?|apikey|access[_-]?keys?"
    r"|secret[_-]?keys?|private[_-]?keys?|client[_-]?secret|credentials?|auth[_-]?tokens?"
    r"|authorization|signing[_-]?keys?)"
)
# (`Token.Keyword` is an attribute of a token object, not a secret: no `.` after the word)
SECRET_NAME = re.compile(rf"(?i)^[\w.-]*{_SECRET_WORD}$|^[\w.-]*{_SECRET_WORD}[_-][\w-]*$")
# ... unless it names something about the credential, not the credential itself
# (`token_limit = 4096`, `max_tokens`, `password_file`, `secret_name`, `api_key_env`).
_NOT_A_SECRET_NAME = re.compile(
    r"(?i)(?:^|[_.-])(?:limit|limits|count|counts|len|length|size|type|types|url|uri|endpoint"
    r"|path|file|dir|name|names|id|ids|ttl|expiry|expires|expiration|timeout|budget|usage|used"
    r"|max|min|num|env|var|header|prefix|suffix|format|policy|hash|hashed|encoder|encoding"
    r"|tokenizer|reset|field|param|regex|pattern|stdin|prompt|rotation|provider|manager"
    r"|store|vault|scope|scopes|kind|mode|label|version)(?:$|[_.-])"
)


def names_a_secret(name: str) -> bool:
    """`DB_PASSWORD`, `api_key`, `GITHUB_TOKEN` yes; `token_limit`, `max_tokens`, `password_file` no."""
    name = name.strip("\"'`[]{}() ")
    return bool(SECRET_NAME.match(name)) and not _NOT_A_SECRET_NAME.search(name)


_PLACEHOLDER = re.compile(
    r"""(?ix)^(?:
        \$\{?[\w.]+\}?            # $VAR, ${VAR}
      | \$\{\{.*\}\}              # ${{ secrets.X }}
      | <[^<>]*> | \{[^{}]*\} | \[[^\[\]]*\]   # <your token>, {token}, [REDACTED]
      | %\(?\w+\)?s? | %[\w.]+%  # %(password)s, %PASSWORD%
      | x+ | \*+ | \.\.\.+ | …
      | none | null | nil | true | false | undefined | empty | changeme? | redacted
      | required | optional | str | string | bytes | int | secret | password | token
      | bearer | basic | digest | oauth
    )$"""
)
# `self.token`, `os.environ["X"]`, `getpass.getpass()`, `a + b`: code computing the value
_CODE = re.compile(r"[()+|`]|%[sdr(]|^[\[{<]|^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*\[|^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+$")
_IDENTIFIER = re.compile(r"[A-Za-z_]+")  # `Keyword`, `FG_DEFAULT`, `password_ptr`: a name
_COLOUR = re.compile(r"#[0-9A-Fa-f]{3,8}")


def plausible_secret_value(value: str, quoted: bool = False, literal: bool = False) -> bool:
    """Could `value`, found after a secret's name, be the secret itself?

    Rejects placeholders (`$API_KEY`, `<token>`, `None`), code that computes the value
    (`os.environ["X"]`, `getpass.getpass()`, `self.token`, `a + b`; allowed in quotes),
    numbers (`4096`), format strings, and names made of letters alone (`token = Keyword`,
    `password: Unicode`, `private_key: "_RSAPrivateKey"`) unless the place makes the value
    a literal (`literal`: a URL's password, a metadata value under a secret's key). Over
    the 788k lines of Python under /usr/lib/python3* (standard library and Debian's Python
    packages), such names were most of the false hits: 248 lines were marked before these
    checks, 20 after, 17 of them real-format example tokens in oauthlib's docs. A real
    password of letters alone, written in prose, is the price of that precision.
    """
    value = value.strip("\"'`,;:.)]}")
    if len(value) < 4 or _PLACEHOLDER.match(value) or _COLOUR.fullmatch(value):
        return False
    if not re.search(r"[A-Za-z]", value) or re.search(r"%[sdr(]|\{\}", value):
        return False  # a number, or a format string
    if literal:
        return True
    if _IDENTIFIER.fullmatch(value):
        return False
    return quoted or not _CODE.search(value)


def value_span(text: str, start: int, end: int, literal: bool = False) -> tuple[int, int] | None:
    """The secret's span within text[start:end] (trailing punctuation cut), or None when
    the value is no plausible secret. `literal`: the place says the value is a literal
    (a URL's password), so bare words count too, as quoted values do."""
    value = text[start:end].split()[0] if text[start:end].split() else ""
    value = value.rstrip(",;:.)]}")
    quoted = start > 0 and text[start - 1] in "'\"`"
    if not plausible_secret_value(value, quoted, literal):
        return None
    return start, start + len(value)


@dataclass(frozen=True)
class Rule:
    """A regex whose named group `secret` (or the whole match) is the credential."""

    name: str
    pattern: re.Pattern[str]
    keyed: bool = False  # the match has a `name` group: check it with names_a_secret
    check_value: bool = False  # the secret must pass plausible_secret_value
    literal: bool = False  # the value is a literal wherever it stands (a URL's password)

    def spans(self, text: str) -> Iterator[tuple[int, int]]:
        for m in self.pattern.finditer(text):
            group = "secret" if "secret" in self.pattern.groupindex else 0
            if m.group(group) is None:
                continue
            if self.keyed and not names_a_secret(m.group("name")):
                continue
            span: tuple[int, int] | None = m.span(group)
            if self.check_value and span is not None:
                span = value_span(text, *span, literal=self.literal)
            if span is not None:
                yield span


def _rule(name: str, pattern: str, **kw: bool) -> Rule:
    """A Rule from a pattern string (the table below reads as name, regex, checks)."""
    return Rule(name, re.compile(pattern), **kw)


_B64 = r"A-Za-z0-9+/"
RULES: tuple[Rule, ...] = (
    _rule(
        "private key block",
        r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----(?:[\s\S]*?"
        r"-----END [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----|\s*[A-Za-z0-9+/=\s:-]{40,})",
    ),
    _rule("Google API key", r"\bAIza[0-9A-Za-z_\-]{35}(?![\w-])"),
    _rule("Hugging Face token", r"\b(?:hf|api_org)_[A-Za-z0-9]{30,}\b"),
    _rule("npm token", r"\bnpm_[A-Za-z0-9]{36}\b"),
    _rule("PyPI token", r"\bpypi-AgE[A-Za-z0-9_\-]{50,}"),
    _rule("Stripe key", r"\b(?:sk|rk|pk)_(?:live|test)_[0-9A-Za-z]{16,}\b|\bwhsec_[A-Za-z0-9]{24,}\b"),
    _rule("GitHub token", r"\b(?:gh[pousr]_[A-Za-z0-9_]{30,}|github_pat_[A-Za-z0-9_]{30,})\b"),
    _rule("OpenAI/Anthropic key", r"\bsk-(?:ant-|proj-|svcacct-|admin-)?(?=[\w-]*[A-Z0-9])[A-Za-z0-9_\-]{20,}"),
    _rule("Slack app token", r"\bxapp-\d-[A-Za-z0-9-]{10,}|\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    _rule("GitLab token", r"\bglpat-[A-Za-z0-9_\-]{20,}"),
    _rule(
        "Azure storage key",
        r"\b(?:AccountKey|SharedAccessKey|SharedAccessSignature|[Ss]ig)=(?P<secret>[^;\s'\"&]{16,})",
    ),
    _rule(
        "AWS secret key in prose",
        rf"(?i:aws|secret[_ ]access[_ ]key)[\w .:=\"'-]{{0,40}}?(?<![{_B64}])"
        rf"(?P<secret>(?=[{_B64}]*[A-Z])(?=[{_B64}]*[a-z])[{_B64}]{{40}})(?![{_B64}=])",
    ),
    _rule(
        "URL password",
        r"\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s:/@]+:(?P<secret>[^\s?#]+)@"
        r"(?=[\w.\-\[\]]+(?::\d+)?(?:[/?#\s'\"]|$))",
        check_value=True,
        literal=True,
    ),
    _rule("JSON web token", r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    _rule("bearer token", r"(?i)\bbearer[ \t]+(?P<secret>[A-Za-z0-9._~+/=\-]{16,})"),
    _rule("basic auth header", r"(?i)\bauthorization:[ \t]*basic[ \t]+(?P<secret>[A-Za-z0-9+/=]{8,})"),
)


# Rules that start from a secret's name; they run only near such a name (keyword_windows).
KEYED_RULES: tuple[Rule, ...] = (
    _rule(
        "command-line flag",
        rf"(?<![\w-])--(?:[\w-]*-)?(?P<name>{_SECRET_WORD})(?:=|[ \t]+)(['\"]?)"
        r"(?P<secret>(?!-)[^\s'\"]+)\2",
        keyed=True,
        check_value=True,
    ),
    _rule(
        "secret word then value",
        rf"(?i)\b(?P<name>{_SECRET_WORD})(?:[ \t]+(?:is|was|of|=|:))?[ \t]+(['\"]?)"
        r"(?P<secret>(?=[\w+/=.\-]*\d)(?=[\w+/=.\-]*[A-Za-z])[\w+/=.\-]{20,})\2",
        keyed=True,
        check_value=True,
    ),
    _rule(
        "assignment",
        r"(?P<name>[A-Za-z_][\w.-]*)['\"]?[ \t]*(?::=|=>|=(?!=)|:)[ \t]*(['\"]?)"
        r"(?P<secret>[^\s'\"]+)\2",
        keyed=True,
        check_value=True,
    ),
)

# Every name above contains one of these; a text without them has no keyed secret.
_KEYWORD = re.compile(r"(?i)pass|pwd|secret|token|key|credential|auth|contras")


def keyword_windows(text: str, before: int = 200, after: int = 400) -> list[tuple[int, int]]:
    """Stretches of `text` around each secret-sounding word, merged, within its line.

    The keyed scanners (a name, `=` or `:`, a value) try every position of the text, which
    made a 20,000-character experience take 80 ms to filter; run only where a name can be,
    they take a few ms. A window starts at a whitespace so a name is never cut.
    """
    windows: list[tuple[int, int]] = []
    for m in _KEYWORD.finditer(text):
        line_start = text.rfind("\n", 0, m.start()) + 1
        line_end = text.find("\n", m.end())
        line_end = len(text) if line_end < 0 else line_end
        start = max(line_start, m.start() - before)
        if start > line_start:
            space = max(text.rfind(" ", line_start, start), text.rfind("\t", line_start, start))
            start = line_start if space < 0 else space
        end = min(line_end, m.end() + after)
        if windows and start <= windows[-1][1]:
            windows[-1] = (windows[-1][0], max(end, windows[-1][1]))
        else:
            windows.append((start, end))
    return windows


def rule_spans(text: str) -> Iterator[tuple[int, int]]:
    """Spans of the format rules (run over the whole text)."""
    for rule in RULES:
        yield from rule.spans(text)


def keyed_rule_spans(text: str) -> Iterator[tuple[int, int]]:
    """Spans of the keyed rules (run over a keyword window)."""
    for rule in KEYED_RULES:
        yield from rule.spans(text)
