"""detect-secrets' detectors, used as a library: where in a text each one finds a credential.

detect-secrets (Yelp) keeps the vendor formats (AWS, Slack, Stripe, GitHub, GitLab, npm,
PyPI, JWT, Twilio, SendGrid, Azure, ...) up to date; memrl runs its regex detectors and its
keyword detector over each text and marks the spans they find. Left out, for precision on
memories (prose and snippets, not files):
- the high-entropy string detectors: they flag git hashes, sha256 sums and base64 images;
- ArtifactoryDetector: its `AP[0-9A-F]…` password form matches ordinary CamelCase words;
- IPPublicDetector: an IP address is not a credential;
- BasicAuthDetector and PrivateKeyDetector: the project's URL and key-block rules do their
  job with fewer misses (a password containing `/`) and fewer false hits (`<password>`,
  code that names the `-----BEGIN … PRIVATE KEY-----` marker).
The keyword detector's hits pass the same name and value checks as the project's own
assignment rule (memrl/secret_rules.py), so `pwd = os.getcwd()` or `secret: rotated`
stay as written.

The detectors' patterns ship with memrl as plain data (secret_patterns.json), read from the
pinned detect-secrets and keyed by its version and a digest of its sources; while the
installed detect-secrets is that one, a process compiles them without importing it
(`_compiled`).
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.metadata
import importlib.util
import json
import logging
import re
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from .secret_rules import names_a_secret, value_span

log = logging.getLogger(__name__)

PATTERNS_FILE = "secret_patterns.json"  # shipped beside this module
PATTERNS_FORMAT = 1  # of that file

_DETECTORS = (
    "aws.AWSKeyDetector",
    "azure_storage_key.AzureStorageKeyDetector",
    "cloudant.CloudantDetector",
    "discord.DiscordBotTokenDetector",
    "github_token.GitHubTokenDetector",
    "gitlab_token.GitLabTokenDetector",
    "ibm_cos_hmac.IbmCosHmacDetector",
    "jwt.JwtTokenDetector",
    "mailchimp.MailchimpDetector",
    "npm.NpmDetector",
    "openai.OpenAIDetector",
    "pypi_token.PypiTokenDetector",
    "sendgrid.SendGridDetector",
    "slack.SlackDetector",
    "softlayer.SoftlayerDetector",
    "square_oauth.SquareOAuthDetector",
    "stripe.StripeDetector",
    "telegram_token.TelegramBotTokenDetector",
    "twilio.TwilioKeyDetector",
)


Validator = Callable[[str], bool]


@functools.cache
def _detector(dotted: str) -> Any:
    module_name, class_name = dotted.rsplit(".", 1)
    module = importlib.import_module(f"detect_secrets.plugins.{module_name}")
    return getattr(module, class_name)()


def _validator(dotted: str) -> Validator:
    """The detector's `is_formally_valid`, imported on first use (only JWTs have one)."""
    return lambda found: bool(_detector(dotted).is_formally_valid(found))


def _patterns_from_the_library() -> dict[str, Any]:
    """Every pattern of the chosen detectors, as plain data (detect-secrets imported)."""
    from detect_secrets.plugins import keyword
    from detect_secrets.plugins.ibm_cloud_iam import IbmCloudIamDetector

    regexes = [
        {"detector": dotted, "pattern": pattern.pattern, "flags": pattern.flags,
         "validates": hasattr(_detector(dotted), "is_formally_valid")}
        for dotted in _DETECTORS
        for pattern in _detector(dotted).denylist
    ]
    groups: dict[re.Pattern[str], int | None] = {
        **keyword.CONFIG_DENYLIST_REGEX_TO_GROUP,
        **keyword.QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP,
    }
    groups.update((p, None) for p in IbmCloudIamDetector.denylist)
    keywords = [{"pattern": p.pattern, "flags": p.flags, "group": g} for p, g in groups.items()]
    return {"regexes": regexes, "keywords": keywords}


def library_key() -> dict[str, Any] | None:
    """What the patterns depend on: detect-secrets' version and a sha256 of its sources (its
    87 modules, 257 KB: ~2 ms), found without importing the package, whose import is the
    cost; None if it is not installed."""
    spec = importlib.util.find_spec("detect_secrets")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations)))
    sources = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        sources.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return {
        "format": PATTERNS_FORMAT,
        "detect_secrets": importlib.metadata.version("detect-secrets"),
        "sources_sha256": sources.hexdigest(),
        "detectors": list(_DETECTORS),
    }


def shipped_patterns() -> dict[str, Any]:
    """The patterns file shipped in the package ({"key": ..., "patterns": ...})."""
    return dict(json.loads((resources.files("memrl") / PATTERNS_FILE).read_text()))


Regexes = tuple[tuple[re.Pattern[str], Validator | None], ...]
KeywordRegexes = tuple[tuple[re.Pattern[str], int | None], ...]


def _compile(patterns: dict[str, Any]) -> tuple[Regexes, KeywordRegexes]:
    """(pattern, validator or None) for every regex of the chosen detectors, and the keyword
    detector's regexes with the group holding the value, plus IBM Cloud IAM's (None: every
    group), whose optional prefix leaves only a `key|pass|token` name to anchor."""
    regexes = tuple(
        (re.compile(r["pattern"], r["flags"]), _validator(r["detector"]) if r["validates"] else None)
        for r in patterns["regexes"]
    )
    keywords = tuple((re.compile(k["pattern"], k["flags"]), k["group"]) for k in patterns["keywords"])
    return regexes, keywords


@functools.lru_cache(maxsize=1)
def _compiled() -> tuple[Regexes, KeywordRegexes]:
    """The patterns shipped with memrl (secret_patterns.json, written from the pinned
    detect-secrets) when the installed detect-secrets is that one, byte for byte; else those
    read from the library. Importing detect-secrets costs ~0.14 s, mostly `requests`, which
    its plugins import to verify keys online, which memrl never does; compiling the patterns
    ~6 ms. The file lives beside the code, so it is trusted as the code is."""
    try:
        key = library_key()
        if key is not None:
            shipped = shipped_patterns()
            if shipped.get("key") == key:
                return _compile(shipped["patterns"])
            log.debug("detect-secrets is not the version the shipped patterns were read from")
    except (OSError, ValueError, TypeError, KeyError, re.error,
            importlib.metadata.PackageNotFoundError) as e:
        log.debug("shipped secret patterns unusable (%s): reading detect-secrets", e)
    return _compile(_patterns_from_the_library())


def write_shipped_patterns() -> None:
    """Print the patterns file for the installed detect-secrets (to refresh the shipped one:
    `python -m memrl.secret_detectors > memrl/secret_patterns.json`)."""
    print(json.dumps({"key": library_key(), "patterns": _patterns_from_the_library()}, indent=1))


def _group_spans(match: re.Match[str]) -> Iterator[tuple[int, int]]:
    """What detect-secrets reports as the secret: every non-empty group, else the match."""
    if match.re.groups == 0:
        yield match.span()
        return
    for index in range(1, match.re.groups + 1):
        if match.group(index):
            yield match.span(index)


def detector_spans(text: str) -> Iterator[tuple[int, int]]:
    """Spans of credentials found by detect-secrets' vendor detectors."""
    for pattern, validator in _compiled()[0]:
        for match in pattern.finditer(text):
            if validator is not None and not validator(match.group(0)):
                continue  # e.g. an `eyJ…` that does not decode as a JWT
            yield from _group_spans(match)


def keyword_spans(text: str) -> Iterator[tuple[int, int]]:
    """Spans of values assigned to a secret-sounding name (`password = "…"`, `api_key: …`);
    run over a keyword window (secret_rules.keyword_windows)."""
    for pattern, group in _compiled()[1]:
        for match in pattern.finditer(text):
            if group is None:
                yield from _group_spans(match)
                continue
            if not match.group(group) or not names_a_secret(_name_before(text, match.start())):
                continue
            span = value_span(text, *match.span(group))  # its value runs to the line's end
            if span is not None:
                yield span


def _name_before(text: str, at: int) -> str:
    """The whole identifier the keyword detector matched inside (`DB_PASSWORD`, not `PASSWORD`)."""
    match = re.match(r"[\w.-]*", text[at:])
    head = re.search(r"[\w.-]*$", text[:at])
    return (head.group(0) if head else "") + (match.group(0) if match else "")


if __name__ == "__main__":
    write_shipped_patterns()
