"""The write gate keeps credentials out of the database."""

from __future__ import annotations

import pytest

from memrl.redaction import MARK, redact

SECRETS = [
    "AKIAIOSFODNN7EXAMPLE",
    "ghp_" + "a" * 36,
    "github_pat_" + "B1" * 20,
    "sk-ant-api03-" + "x" * 40,
    "sk-proj-" + "Y" * 30,
    "xoxb-123456789012-abcdefghij",
    "glpat-" + "z" * 20,
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
]


@pytest.mark.parametrize("secret", SECRETS)
def test_known_credential_formats_are_redacted(secret: str):
    text, n = redact(f"export X={secret} then run the deploy")
    assert secret not in text and MARK in text and n >= 1


@pytest.mark.parametrize(
    ("raw", "kept"),
    [
        ("DB_PASSWORD=hunter2hunter2 make migrate", "DB_PASSWORD="),
        ("api_key: 'abc123def456'", "api_key: '"),
        ("curl -H 'Authorization: Bearer abcdefghijklmnop1234'", "Bearer "),
        ("git clone https://bob:s3cretpass@example.com/r.git", "https://bob:"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----", ""),
    ],
)
def test_assignments_keep_the_name_and_drop_the_value(raw: str, kept: str):
    text, n = redact(raw)
    assert n == 1 and MARK in text and kept in text
    for value in ("hunter2hunter2", "abc123def456", "abcdefghijklmnop1234", "s3cretpass", "MIIEow"):
        assert value not in text


@pytest.mark.parametrize(
    "text",
    [
        "Run pytest -x, then fix the import in tests/conftest.py",
        "the token bucket rate limiter drops requests above 10/s",
        "use a sk- prefix check in validate_key()",
        "password reset flow: send the email, then expire the link after 1 h",
    ],
)
def test_ordinary_text_is_left_alone(text: str):
    assert redact(text) == (text, 0)


def test_secrets_never_reach_the_database(open_memory, sql):
    memory = open_memory()
    secret = "ghp_" + "Q" * 36
    out = memory.store_experience(
        f"push with token {secret}", f"GITHUB_TOKEN={secret} git push", namespace="ns"
    )
    task = memory.recall(f"push using {secret}", "ns")
    memory.report(task.task_id, success=True, reflection=f"token {secret} worked")
    dump = repr(sql(memory.storage, "SELECT * FROM memories")) + repr(
        sql(memory.storage, "SELECT * FROM tasks")
    )
    assert secret not in dump and MARK in dump
    assert out.redacted == 2
