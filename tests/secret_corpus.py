"""Real credential formats that must be redacted, and look-alikes that must be kept.

Each secret is built from its documented shape (prefix, length, alphabet) with made-up
characters; none is a live credential. `CAUGHT` pairs a text with the secret in it;
`KEPT` texts contain nothing secret and must come back unchanged.
"""

from __future__ import annotations

import base64
import random

_rng = random.Random(20261129)
_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def _chars(n: int, alphabet: str = _ALNUM) -> str:
    return "".join(_rng.choice(alphabet) for _ in range(n))


STRIPE = "sk_live_" + _chars(24)
STRIPE_RESTRICTED = "rk_live_" + _chars(99)
GOOGLE = "AIza" + _chars(35, _ALNUM + "_-")
HUGGING_FACE = "hf_" + _chars(34, _ALNUM[:52])
NPM = "npm_" + _chars(36)
PYPI = "pypi-AgEIcHlwaS5vcmc" + _chars(150, _ALNUM + "_-")
SLACK_WEBHOOK = f"https://hooks.slack.com/services/T{_chars(8)}/B{_chars(10)}/{_chars(24)}"
AZURE_KEY = _chars(86, _ALNUM + "+/") + "=="
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + _chars(10)
HEX40 = _chars(40, "0123456789abcdef")
JWT = (
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
    "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
)
ANTHROPIC = "sk-ant-api03-" + _chars(40)
SENDGRID = "SG." + _chars(22) + "." + _chars(43)
PRIVATE_KEY_BODY = "MIIEowIBAAKCAQEA" + _chars(64, _ALNUM + "+/")

CAUGHT: list[tuple[str, str]] = [
    # formats the filter caught before detect-secrets
    ("export AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPL0 then deploy", "AKIAIOSFODNN7EXAMPL0"),
    ("push with ghp_" + "a1B2" * 9, "ghp_" + "a1B2" * 9),
    ("token github_pat_" + "B1" * 20, "github_pat_" + "B1" * 20),
    ("ANTHROPIC_API_KEY " + ANTHROPIC, ANTHROPIC),
    ("client = OpenAI(api_key='sk-proj-" + "Y" * 30 + "')", "sk-proj-" + "Y" * 30),
    ("slack bot xoxb-123456789012-abcdefghij posts", "xoxb-123456789012-abcdefghij"),
    ("git remote uses glpat-" + "z" * 20, "glpat-" + "z" * 20),
    (f"curl -H 'Cookie: session={JWT}'", JWT),
    ("DB_PASSWORD=hunter2hunter2 make migrate", "hunter2hunter2"),
    ("api_key: 'abc123def456'", "abc123def456"),
    ("curl -H 'Authorization: Bearer abcdefghijklmnop1234'", "abcdefghijklmnop1234"),
    ("git clone https://bob:s3cretpass@example.com/r.git", "s3cretpass"),
    (
        f"-----BEGIN RSA PRIVATE KEY-----\n{PRIVATE_KEY_BODY}\n-----END RSA PRIVATE KEY-----",
        PRIVATE_KEY_BODY,
    ),
    # formats that survived before
    (f"charge with stripe key {STRIPE} in the test", STRIPE),
    (f"STRIPE_KEY={STRIPE_RESTRICTED}", STRIPE_RESTRICTED),
    (f"maps.googleapis.com/maps/api/js?key={GOOGLE}", GOOGLE),
    (f"huggingface-cli login --token {HUGGING_FACE}", HUGGING_FACE),
    (f"login with {HUGGING_FACE} before pulling the model", HUGGING_FACE),
    (f"npm publish worked after setting {NPM} in CI", NPM),
    (f"//registry.npmjs.org/:_authToken={NPM}", NPM),
    (f"twine upload -u __token__ -p {PYPI} dist/*", PYPI),
    (f"alerts go to {SLACK_WEBHOOK} now", SLACK_WEBHOOK),
    (
        "DefaultEndpointsProtocol=https;AccountName=acct;"
        f"AccountKey={AZURE_KEY};EndpointSuffix=core.windows.net",
        AZURE_KEY,
    ),
    (f"the aws secret access key is {AWS_SECRET} for the deploy user", AWS_SECRET),
    ("mysql -u root --password hunter2x shop < dump.sql", "hunter2x"),
    ("psql --password=S3cret!x -h db", "S3cret!x"),
    ("gh auth login --with-token ghs_" + "Q" * 36, "ghs_" + "Q" * 36),
    (f"use token {HEX40} for the internal API", HEX40),
    ("postgres://app:s3cr/t+pw@db.example.com:5432/app", "s3cr/t+pw"),
    ("mongodb://admin:p@ss/w0rd@mongo.internal:27017/admin", "p@ss/w0rd"),
    ('{"password": "Tr0ub4dor&3"}', "Tr0ub4dor&3"),
    ("GITHUB_TOKEN=ghp_" + "k" * 36 + " git push", "ghp_" + "k" * 36),
    ("set auth_token: f8Kq2LmN9xZ1 in the config", "f8Kq2LmN9xZ1"),
    (f"SendGrid key {SENDGRID} in the mailer", SENDGRID),
]

_PNG_1X1 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
_IMAGE = base64.b64encode(random.Random(7).randbytes(3000)).decode()

KEPT: list[str] = [
    "token_limit = 4096",
    "max_tokens=512 and token_count: 1800 per request",
    "auth_token_ttl = 3600; password_min_length: 12",
    "git checkout 3f2a9c1d4e5b6a7980c1d2e3f4a5b6c7d8e9f0a1 && git show 3f2a9c1",
    "commit " + "0123456789abcdef" * 2 + "01234567 fixed the flaky test",
    "sha256 8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6 matches",
    "request 123e4567-e89b-12d3-a456-426614174000 failed; retry with a new id",
    "task_id = 550e8400-e29b-41d4-a716-446655440000",
    f"<img src=\"data:image/png;base64,{_PNG_1X1}\">",
    f"embed the logo as data:image/png;base64,{_IMAGE}",
    "password = getpass.getpass()",
    "pwd = os.getcwd()",
    'token = request.headers["Authorization"]',
    'secret = os.environ["APP_SECRET"]',
    "def check_password(password: str) -> bool:",
    "password_hash = bcrypt.hashpw(password, salt)",
    "export API_KEY=$API_KEY",
    "api_key: ${{ secrets.API_KEY }}",
    "token = None",
    "self.token = token",
    '"password": "<your password>"',
    "docker login --password-stdin < token.txt",
    "gh run --token-file ~/.config/tok",
    "Secret: keep credentials in the vault, never in the repo",
    "password reset flow: send the email, then expire the link after 1 h",
    "the token bucket rate limiter drops requests above 10/s",
    "use a sk- prefix check in validate_key()",
    "pip install scikit-learn==1.5.0",
    "postgres://app@localhost/db and https://example.com:8443/path?x=1",
    "ssh git@github.com:org/repo.git",
    "tokenizer = AutoTokenizer.from_pretrained('bert-base-uncased')",
    "api_key_env = 'OPENAI_API_KEY'",
    "Run pytest -x, then fix the import in tests/conftest.py",
    "if not api_key: raise ValueError('set the API_KEY environment variable')",
    "the secret is to await the queue's join() before asserting",
    "rotate the token: kubectl create secret generic app --from-env-file=.env",
    "for (let i = 0; i < tokens.length; i++) { total += tokens[i].length; }",
    "ws://localhost:8765/mcp and http://[::1]:8080/",
    "SELECT id, password_hash FROM users WHERE email = ?",
]
