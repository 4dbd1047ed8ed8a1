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
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from typing import Any

from .secret_rules import names_a_secret, value_span

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


@functools.lru_cache(maxsize=1)
def _regexes() -> tuple[tuple[re.Pattern[str], Any], ...]:
    """(pattern, detector) for every regex of the chosen detectors; imported on first use
    (detect-secrets takes ~0.1 s to import, and commands that store nothing never need it)."""
    import importlib

    found: list[tuple[re.Pattern[str], Any]] = []
    for dotted in _DETECTORS:
        module_name, class_name = dotted.rsplit(".", 1)
        module = importlib.import_module(f"detect_secrets.plugins.{module_name}")
        detector = getattr(module, class_name)()
        found.extend((pattern, detector) for pattern in detector.denylist)
    return tuple(found)


@functools.lru_cache(maxsize=1)
def _keyword_regexes() -> tuple[tuple[re.Pattern[str], int | None], ...]:
    """The keyword detector's regexes with the group holding the value, plus IBM Cloud IAM's
    (None: every group), whose optional prefix leaves only a `key|pass|token` name to anchor."""
    from detect_secrets.plugins import keyword
    from detect_secrets.plugins.ibm_cloud_iam import IbmCloudIamDetector

    groups: dict[re.Pattern[str], int | None] = {
        **keyword.CONFIG_DENYLIST_REGEX_TO_GROUP,
        **keyword.QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP,
    }
    groups.update((p, None) for p in IbmCloudIamDetector.denylist)
    return tuple(groups.items())


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
    for pattern, detector in _regexes():
        for match in pattern.finditer(text):
            if hasattr(detector, "is_formally_valid") and not detector.is_formally_valid(
                match.group(0)
            ):
                continue  # e.g. an `eyJ…` that does not decode as a JWT
            yield from _group_spans(match)


def keyword_spans(text: str) -> Iterator[tuple[int, int]]:
    """Spans of values assigned to a secret-sounding name (`password = "…"`, `api_key: …`);
    run over a keyword window (secret_rules.keyword_windows)."""
    for pattern, group in _keyword_regexes():
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
