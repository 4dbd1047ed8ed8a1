"""The write gate keeps credentials out of the database, on every write path.

The corpus (tests/secret_corpus.py) holds real credential formats that must be caught and
look-alikes that must be kept (hashes, UUIDs, base64 images, ordinary code).
"""

from __future__ import annotations

import io
import json

import pytest
from secret_corpus import CAUGHT, KEPT

from memrl import MemoryConfig
from memrl.redaction import MARK, redact, redact_json
from memrl.secret_rules import names_a_secret
from memrl.transfer import import_jsonl


def leaks(secret: str, text: str) -> bool:
    """True if the secret, or any 12-character piece of it, is still in `text`."""
    if len(secret) < 12:
        return secret in text
    return any(secret[i : i + 12] in text for i in range(len(secret) - 11))


@pytest.mark.parametrize(("text", "secret"), CAUGHT, ids=[t[:40] for t, _ in CAUGHT])
def test_credential_formats_are_redacted(text: str, secret: str):
    out, n = redact(text)
    assert n >= 1 and MARK in out
    assert not leaks(secret, out), out


@pytest.mark.parametrize("text", KEPT, ids=[t[:40] for t in KEPT])
def test_look_alikes_are_kept(text: str):
    assert redact(text) == (text, 0)


@pytest.mark.parametrize(
    ("raw", "kept"),
    [
        ("DB_PASSWORD=hunter2hunter2 make migrate", "DB_PASSWORD="),
        ("api_key: 'abc123def456'", "api_key: '"),
        ("curl -H 'Authorization: Bearer abcdefghijklmnop1234'", "Authorization: Bearer "),
        ("git clone https://bob:s3cretpass@example.com/r.git", "https://bob:"),
        ("postgres://app:s3cr/t+pw@db.example.com:5432/app", "@db.example.com:5432/app"),
        ("mysql --password hunter2x shop", "mysql --password "),
    ],
)
def test_the_name_stays_readable(raw: str, kept: str):
    text, n = redact(raw)
    assert n == 1 and kept in text


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("DB_PASSWORD", True),
        ("api_key", True),
        ("GITHUB_TOKEN", True),
        ("client_secret", True),
        ("token_limit", False),
        ("max_tokens", False),
        ("password_file", False),
        ("api_key_env", False),
        ("Token.Keyword", False),
        ("tokenizer", False),
    ],
)
def test_names_that_say_secret(name: str, secret: bool):
    assert names_a_secret(name) is secret


def test_metadata_keys_and_values_are_redacted():
    token = "ghp_" + "Z9" * 18
    value, n = redact_json(
        {
            "password": "hunter2",  # nothing in the value says so: the key does
            "nested": {"env": [f"GITHUB_TOKEN={token}", "plain"]},
            token: "a secret used as a key",
            "token_limit": 4096,
            "ticket": "JIRA-123",
        }
    )
    dump = json.dumps(value)
    assert token not in dump and "hunter2" not in dump
    assert value["password"] == MARK and value["token_limit"] == 4096
    assert value["ticket"] == "JIRA-123" and value["nested"]["env"][1] == "plain"
    assert n == 3


def _every_text_column(memory, sql) -> str:
    return repr(sql(memory.storage, "SELECT * FROM memories")) + repr(
        sql(memory.storage, "SELECT * FROM tasks")
    )


def test_secrets_never_reach_the_database(open_memory, sql):
    memory = open_memory()
    secret = "ghp_" + "Q" * 36
    out = memory.store_experience(
        f"push with token {secret}",
        f"GITHUB_TOKEN={secret} git push",
        namespace="ns",
        metadata={"token": secret, secret: 1, "note": f"used {secret}"},
    )
    task = memory.recall(f"push using {secret}", "ns")
    memory.report(task.task_id, success=True, reflection=f"token {secret} worked")
    dump = _every_text_column(memory, sql)
    assert secret not in dump and MARK in dump
    assert out.redacted == 5  # intent, experience, and three in the metadata


@pytest.mark.parametrize(("text", "secret"), CAUGHT[::4])
def test_the_corpus_never_reaches_the_database(open_memory, sql, text: str, secret: str):
    memory = open_memory()
    memory.store_experience(f"deploy: {text}", text, namespace="ns", metadata={"cmd": text})
    memory.recall(text, "ns")
    assert not leaks(secret, _every_text_column(memory, sql))


def test_import_is_filtered_like_every_other_write(open_memory, sql):
    memory = open_memory()
    secret = "npm_" + "a1B2c3" * 6
    line = json.dumps(
        {
            "namespace": "ns",
            "intent": f"publish with {secret}",
            "experience": f"NPM_TOKEN={secret} npm publish",
            "metadata": {"token": secret},
        }
    )
    report = import_jsonl(memory, io.StringIO(line + "\n"))
    assert report.created == 1 and report.redacted == 3
    assert secret not in _every_text_column(memory, sql)


def test_the_filter_can_be_turned_off(open_memory, sql):
    memory = open_memory(config=MemoryConfig(redact_secrets=False))
    secret = "ghp_" + "Q" * 36
    out = memory.store_experience("push", f"GITHUB_TOKEN={secret}", namespace="ns")
    assert out.redacted == 0 and secret in _every_text_column(memory, sql)


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ('const accessToken = "eyJ0eXAi.x9Kq2LmN0pZ7"', "const accessToken = "),
        ("clientSecret: Zx81-Qw0p-77aa", "clientSecret: "),
        ("tokenLimit: 4096 and apiKeyEnv: OPENAI_API_KEY", "tokenLimit: 4096"),
    ],
)
def test_camel_case_names(text: str, kept: str):
    out, _ = redact(text)
    assert kept in out
    assert ("[REDACTED]" in out) is (not text.startswith("tokenLimit"))
