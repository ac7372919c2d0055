"""Redaction: no known secret survives `redact`, ordinary developer text comes through unchanged.

The secrets are built at run time from a seeded generator, so the file holds no real-looking
token for a secret scanner to trip on, and every run uses the same values.
"""

from __future__ import annotations

import random
import re
import string

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from anamnesis.capture.redact import clip_redacted, find_secrets, redact

_RNG = random.Random(20261120)
ALNUM = string.ascii_letters + string.digits
UPPER_DIGITS = string.ascii_uppercase + string.digits
HEX = "0123456789abcdef"
B64 = ALNUM + "+/"


def fake(alphabet: str, n: int) -> str:
    """A random-looking token body that mixes digits and letters, like every real one."""
    body = "".join(_RNG.choice(alphabet) for _ in range(n - 2))
    return body + _RNG.choice(string.digits) + _RNG.choice([c for c in alphabet if c.isalpha()] or ["a"])


def uuid4() -> str:
    h = fake(HEX, 32)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}"


def jwt() -> str:
    return "eyJ" + fake(ALNUM, 30) + ".eyJ" + fake(ALNUM, 60) + "." + fake(ALNUM + "_-", 43)


def pem_body(lines: int = 6) -> str:
    return "\n".join(fake(B64, 64) for _ in range(lines))


AWS_ID = "AKIA" + fake(UPPER_DIGITS, 16)
AWS_SESSION_ID = "ASIA" + fake(UPPER_DIGITS, 16)
AWS_SECRET = fake(B64, 40)
GHP = "ghp_" + fake(ALNUM, 36)
GHO = "gho_" + fake(ALNUM, 36)
GHS = "ghs_" + fake(ALNUM, 36)
GHU = "ghu_" + fake(ALNUM, 36)
GHR = "ghr_" + fake(ALNUM, 36)
GH_PAT = "github_pat_" + fake(ALNUM, 22) + "_" + fake(ALNUM, 59)
GLPAT = "glpat-" + fake(ALNUM + "_-", 20)
XOXB = "xoxb-" + fake(string.digits, 12) + "-" + fake(string.digits, 13) + "-" + fake(ALNUM, 24)
XOXP = "xoxp-" + fake(string.digits, 12) + "-" + fake(string.digits, 12) + "-" + fake(ALNUM, 32)
SLACK_HOOK = (
    "https://hooks.slack.com/services/T" + fake(UPPER_DIGITS, 8) + "/B" + fake(UPPER_DIGITS, 8) + "/" + fake(ALNUM, 24)
)
OPENAI_PROJ = "sk-proj-" + fake(ALNUM + "_-", 100)
OPENAI_LEGACY = "sk-" + fake(ALNUM, 48)
ANTHROPIC = "sk-ant-api03-" + fake(ALNUM + "_-", 93) + "AA"
GOOGLE = "AIza" + fake(ALNUM + "_-", 35)
STRIPE_LIVE = "sk_" + "live_" + fake(ALNUM, 24)
STRIPE_RESTRICTED = "rk_" + "live_" + fake(ALNUM, 24)
STRIPE_TEST = "sk_" + "test_" + fake(ALNUM, 24)
NPM = "npm_" + fake(ALNUM, 36)
PYPI = "pypi-" + "AgEIcHlwaS5vcmc" + fake(ALNUM + "_-", 120)
TWILIO_KEY = "SK" + fake(HEX, 32)
TWILIO_TOKEN = fake(HEX, 32)
SENDGRID = "SG." + fake(ALNUM + "_-", 22) + "." + fake(ALNUM + "_-", 43)
HEROKU = uuid4()
DIGITALOCEAN = "dop_v1_" + fake(HEX, 64)
HUGGINGFACE = "hf_" + fake(ALNUM, 34)
JWT = jwt()
PEM_RSA = pem_body()
PEM_OPENSSH = pem_body(4)
PEM_EC = pem_body(3)
PEM_PGP = pem_body(5)
DB_PASSWORD = "Tr0ub4dor&3x"
YAML_PASSWORD = "s3cr3t-Pa55"
CLIENT_SECRET = fake(ALNUM + "_-", 40)
KWARG_PASSWORD = "p" + fake(ALNUM, 14)
URL_PASSWORD = "Sup3rS3cretPw"
REDIS_PASSWORD = "r3d1sPassw0rd"
MONGO_PASSWORD = fake(ALNUM, 20)
DJANGO_KEY = "django-insecure-" + fake(ALNUM + "!@#%^*(-_=+)", 50)
LARAVEL_KEY = "base64:" + fake(B64, 43) + "="
BASIC = "dXNlcjpwYXNzd29yZA" + fake(ALNUM, 10) + "=="
OPAQUE_BEARER = fake(HEX, 40)
CURL_PASSWORD = "curlPa55w0rd"
FLAG_PASSWORD = "fl4gPassw0rd"
API_KEY_YAML = fake(ALNUM, 32)
JS_API_KEY = fake(ALNUM, 40)
QUERY_TOKEN = fake(ALNUM, 28)
AZURE_KEY = fake(B64, 86) + "=="
PRIVATE_NOTE = "my bank PIN is 4921 and my mother's maiden name is Okafor"
PRIVATE_LINES = "server: vault.internal\nrecovery code: 7741-2290-1185"
UNCLOSED_PRIVATE = "the safe combination is 31-7-22"
SHOUTED_PRIVATE = "home address: 12 Rue des Lilas"
PROSE_PASSWORD = "hunter2-Staging-" + fake(ALNUM, 4)
WIFI_PASSWORD = "Gr33nTea!" + fake(ALNUM, 4)
PIN = "4921" + fake(string.digits, 4)

# (name, text, secrets that must not survive, parts that must)
CORPUS: list[tuple[str, str, tuple[str, ...], tuple[str, ...]]] = [
    ("aws id in .env", f"AWS_ACCESS_KEY_ID={AWS_ID}\nAWS_REGION=eu-west-1", (AWS_ID,), ("AWS_REGION=eu-west-1",)),
    ("aws secret in ini", f"[default]\naws_secret_access_key = {AWS_SECRET}\n", (AWS_SECRET,), ("[default]",)),
    (
        "aws sts json",
        f'{{"Credentials": {{"AccessKeyId": "{AWS_SESSION_ID}", "SecretAccessKey": "{AWS_SECRET}"}}}}',
        (AWS_SESSION_ID, AWS_SECRET),
        ("AccessKeyId",),
    ),
    ("github ghp in prose", f"I rotated the token to {GHP} yesterday, it works now.", (GHP,), ("yesterday",)),
    (
        "github gho in a remote",
        f"git remote set-url origin https://x-access-token:{GHO}@github.com/acme/api.git",
        (GHO,),
        ("github.com/acme/api.git",),
    ),
    ("github pat export", f"export GITHUB_TOKEN={GH_PAT}", (GH_PAT,), ("export GITHUB_TOKEN=",)),
    ("github ghs json", f'{{"token": "{GHS}", "expires_at": "2026-11-20T11:00:00Z"}}', (GHS,), ("expires_at",)),
    ("github ghu and ghr", f"user token {GHU} refresh {GHR}", (GHU, GHR), ("refresh",)),
    ("gitlab in ci yaml", f"variables:\n  GITLAB_TOKEN: {GLPAT}\n", (GLPAT,), ("variables:",)),
    ("slack bot in code", f'client = WebClient(token="{XOXB}")', (XOXB,), ("WebClient",)),
    ("slack user in prose", f"use {XOXP} for the export script", (XOXP,), ("export script",)),
    ("slack webhook json", f'{{"webhook_url": "{SLACK_HOOK}"}}', (SLACK_HOOK,), ("webhook_url",)),
    ("openai project key", f'openai.api_key = "{OPENAI_PROJ}"', (OPENAI_PROJ,), ("openai.api_key",)),
    ("openai legacy key", f"export OPENAI_API_KEY={OPENAI_LEGACY}", (OPENAI_LEGACY,), ("OPENAI_API_KEY",)),
    ("anthropic key", f"ANTHROPIC_API_KEY={ANTHROPIC}", (ANTHROPIC,), ("ANTHROPIC_API_KEY",)),
    (
        "google key in js",
        f'const firebaseConfig = {{ apiKey: "{GOOGLE}", projectId: "demo" }};',
        (GOOGLE,),
        ("projectId",),
    ),
    (
        "stripe live in prose",
        f"The live key {STRIPE_LIVE} was pasted into Slack by mistake.",
        (STRIPE_LIVE,),
        ("mistake",),
    ),
    ("stripe restricted env", f"STRIPE_RESTRICTED_KEY={STRIPE_RESTRICTED}", (STRIPE_RESTRICTED,), ()),
    ("stripe test in a test", f'stripe.api_key = "{STRIPE_TEST}"  # test mode', (STRIPE_TEST,), ("# test mode",)),
    ("npm in .npmrc", f"//registry.npmjs.org/:_authToken={NPM}", (NPM,), ("registry.npmjs.org",)),
    ("pypi in .pypirc", f"[pypi]\nusername = __token__\npassword = {PYPI}\n", (PYPI,), ("username = __token__",)),
    ("twilio api key", f"TWILIO_API_KEY={TWILIO_KEY}", (TWILIO_KEY,), ()),
    ("twilio auth token", f"TWILIO_AUTH_TOKEN={TWILIO_TOKEN}", (TWILIO_TOKEN,), ("TWILIO_AUTH_TOKEN=",)),
    ("sendgrid in code", f"sg = SendGridAPIClient('{SENDGRID}')", (SENDGRID,), ("SendGridAPIClient",)),
    ("heroku uuid after name", f"heroku config:set HEROKU_API_KEY={HEROKU} -a demo", (HEROKU,), ("-a demo",)),
    ("digitalocean token", f"doctl auth init -t {DIGITALOCEAN}", (DIGITALOCEAN,), ("doctl auth init",)),
    ("hugging face token", f"huggingface-cli login --token {HUGGINGFACE}", (HUGGINGFACE,), ("huggingface-cli login",)),
    (
        "jwt in a header",
        f"curl -H 'Authorization: Bearer {JWT}' https://api.example.com/me",
        (JWT,),
        ("api.example.com",),
    ),
    ("jwt in json", f'{{"id_token": "{JWT}", "token_type": "Bearer"}}', (JWT,), ("token_type",)),
    (
        "pem rsa block",
        f"key:\n-----BEGIN RSA PRIVATE KEY-----\n{PEM_RSA}\n-----END RSA PRIVATE KEY-----\nthat was the key",
        (PEM_RSA[:64], PEM_RSA[-64:]),
        ("that was the key",),
    ),
    (
        "pem openssh truncated",
        f"cat ~/.ssh/id_ed25519\n-----BEGIN OPENSSH PRIVATE KEY-----\n{PEM_OPENSSH}",
        (PEM_OPENSSH[:64], PEM_OPENSSH[-64:]),
        ("cat ~/.ssh/id_ed25519",),
    ),
    (
        "pem in a service account json",
        '{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\\n'
        + PEM_EC.replace("\n", "\\n")
        + '\\n-----END PRIVATE KEY-----\\n", "client_email": "bot@demo.iam.gserviceaccount.com"}',
        (PEM_EC[:64], PEM_EC[-64:]),
        ("client_email",),
    ),
    (
        "pgp private block",
        f"-----BEGIN PGP PRIVATE KEY BLOCK-----\n\n{PEM_PGP}\n-----END PGP PRIVATE KEY BLOCK-----",
        (PEM_PGP[:64],),
        (),
    ),
    ("basic auth header", f"Authorization: Basic {BASIC}", (BASIC,), ("Authorization: Basic",)),
    ("opaque bearer in prose", f"call it with Bearer {OPAQUE_BEARER} and see", (OPAQUE_BEARER,), ("and see",)),
    ("password in .env", f"DB_HOST=db.internal\nDB_PASSWORD={DB_PASSWORD}\n", (DB_PASSWORD,), ("DB_HOST=db.internal",)),
    ("password in yaml", f"database:\n  user: app\n  password: {YAML_PASSWORD}\n", (YAML_PASSWORD,), ("user: app",)),
    (
        "client secret json",
        f'{{"client_id": "web-app", "client_secret": "{CLIENT_SECRET}"}}',
        (CLIENT_SECRET,),
        ("web-app",),
    ),
    ("password kwarg", f'db = connect(user="app", passwd="{KWARG_PASSWORD}")', (KWARG_PASSWORD,), ('user="app"',)),
    (
        "postgres url",
        f"DATABASE_URL=postgres://app:{URL_PASSWORD}@db.internal:5432/app",
        (URL_PASSWORD,),
        ("postgres://app:", "@db.internal:5432/app"),
    ),
    ("redis url no user", f"redis://:{REDIS_PASSWORD}@cache:6379/0", (REDIS_PASSWORD,), ("@cache:6379/0",)),
    (
        "mongodb srv url",
        f"client = MongoClient('mongodb+srv://admin:{MONGO_PASSWORD}@cluster0.example.net/test')",
        (MONGO_PASSWORD,),
        ("mongodb+srv://admin:", "@cluster0.example.net/test"),
    ),
    ("django secret key", f"SECRET_KEY = '{DJANGO_KEY}'", (DJANGO_KEY, DJANGO_KEY[16:40]), ("SECRET_KEY",)),
    (
        "laravel app key",
        f"APP_NAME=Demo\nAPP_KEY={LARAVEL_KEY}\n",
        (LARAVEL_KEY, LARAVEL_KEY[7:30]),
        ("APP_NAME=Demo",),
    ),
    ("curl user", f"curl -u admin:{CURL_PASSWORD} https://ci.example.com/api", (CURL_PASSWORD,), ("admin:",)),
    ("cli flag", f"mytool deploy --password {FLAG_PASSWORD} --verbose", (FLAG_PASSWORD,), ("--verbose",)),
    ("api key yaml", f'api_key: "{API_KEY_YAML}"', (API_KEY_YAML,), ("api_key",)),
    ("js api key const", f'const apiKey = "{JS_API_KEY}";', (JS_API_KEY,), ("const apiKey",)),
    (
        "token in a query",
        f"GET https://api.example.com/v1/items?access_token={QUERY_TOKEN}&page=2",
        (QUERY_TOKEN,),
        ("&page=2",),
    ),
    (
        "azure connection string",
        f"DefaultEndpointsProtocol=https;AccountName=acme;AccountKey={AZURE_KEY};EndpointSuffix=core.windows.net",
        (AZURE_KEY, AZURE_KEY[:30]),
        ("AccountName=acme", "EndpointSuffix"),
    ),
    (
        "private inline",
        f"remember <private>{PRIVATE_NOTE}</private> for later",
        (PRIVATE_NOTE, "Okafor"),
        ("for later",),
    ),
    ("private multi-line", f"notes:\n<private>\n{PRIVATE_LINES}\n</private>\ndone", ("7741-2290-1185",), ("done",)),
    (
        "private unclosed",
        f"start <private>{UNCLOSED_PRIVATE}\nand more lines\n",
        (UNCLOSED_PRIVATE, "and more"),
        ("start",),
    ),
    (
        "password said in a prompt",
        f"Remember the staging password is {PROSE_PASSWORD} and keep it out of the repo.",
        (PROSE_PASSWORD,),
        ("staging password is", "keep it out"),
    ),
    ("password set to, quoted", f'The wifi password is now set to "{WIFI_PASSWORD}".', (WIFI_PASSWORD,), ("wifi",)),
    ("pin in prose", f"my pin is {PIN}, do not share", (PIN,), ("do not share",)),
    ("private upper case", f"<PRIVATE>{SHOUTED_PRIVATE}</Private> ok", (SHOUTED_PRIVATE,), ("ok",)),
]


def test_corpus_has_enough_secrets() -> None:
    assert sum(len(secrets) for _, _, secrets, _ in CORPUS) >= 40


@pytest.mark.parametrize(("name", "text", "secrets", "kept"), CORPUS, ids=[c[0] for c in CORPUS])
def test_no_secret_survives_redaction(name: str, text: str, secrets: tuple[str, ...], kept: tuple[str, ...]) -> None:
    redacted = redact(text)
    for secret in secrets:
        assert secret not in redacted, name
    for part in kept:
        assert part in redacted, name
    assert "[REDACTED:" in redacted
    assert find_secrets(text), name
    assert find_secrets(redacted) == []
    assert redact(redacted) == redacted


def test_url_credentials_keep_user_and_host() -> None:
    assert redact(f"postgres://app:{URL_PASSWORD}@db.internal:5432/app") == (
        "postgres://app:[REDACTED:url-password]@db.internal:5432/app"
    )


def test_key_names_are_kept_and_kinds_are_named() -> None:
    assert redact(f"DB_PASSWORD={DB_PASSWORD}") == "DB_PASSWORD=[REDACTED:password]"
    assert redact(f'"api_key": "{API_KEY_YAML}"') == '"api_key": "[REDACTED:api-key]"'
    assert find_secrets(f"{GHP} and {AWS_ID}") == ["github-token", "aws-access-key-id"]


ORDINARY = [
    "The password field is validated on submit and the error is shown under it.",
    "Fix the failing date parser test in tests/test_dates.py",
    "max_tokens = 4096",
    "token_count: 1532",
    "def check_password(password: str) -> bool:",
    "password = getpass.getpass()",
    'api_key = os.environ["OPENAI_API_KEY"]',
    "token = next_token",
    "secret = a if b else c",
    "author: Jane Doe",
    "Token: the lexer emits one per word",
    "Use the `auth` module; it handles session expiry.",
    "sort_keys=True, primary_key=True, key=lambda n: n.title",
    "commit 3f2a9c1b8e7d6f5a4b3c2d1e0f9a8b7c6d5e4f3a (HEAD -> main)",
    "Merged 9fceb02 into main; see 01JD3W6Q2M8Z4T9K7B5X0R1C2V for the note.",
    "request id 123e4567-e89b-12d3-a456-426614174000 failed with a 502",
    '{"sessionId":"11111111-2222-4333-8444-555555555555","uuid":"u0000000-0000-4000-8000-000000000001"}',
    "Edited /home/dev/proj/src/auth/tokens.py and ~/.config/anamnesis/config.json",
    "git@github.com:acme/quotes-api.git and https://github.com/acme/quotes-api.git",
    "ssh://git@hub.tailnet:22/~/memory.git",
    "postgres://localhost:5432/app_test",
    "Bearer authentication is required for the /v1 endpoints.",
    "The basic idea is to cache the key derivation.",
    "Run `pytest -q -k password_reset` before pushing.",
    "PWD=/home/dev/proj",
    "export PATH=/usr/local/bin:$PATH",
    "TOKEN_TTL=3600",
    'password: ""',
    "password = None",
    'token: "${GITHUB_TOKEN}"',
    "API_KEY=<your-api-key>",
    "secret_name: prod/db/password",
    "She passed the keys to the new maintainer.",
    "We use scikit-learn (sk-learn) and a risk-assessment-framework-document for it.",
    "Set `--token` to the value from the dashboard.",
    "The auth_token_url is https://auth.example.com/oauth/token",
    "Timestamps look like 2026-11-20T10:00:00Z in every note.",
    "user@example.com wrote: the key rotation runs nightly",
    "The function returns `{'password': password}` to the caller.",
    "Added a private key check to `doctor` (it looks for BEGIN lines).",
    "The password is required and must be at least 12 characters.",
    "The token is valid for one hour; the key is to refresh it early.",
    "Your password was changed successfully.",
    "The secret is out: we ship on Friday.",
    "The primary key is the id column, and the pin is 1.2.3 for now.",
    # A version or a ticket after "auth:" is a session summary, not a credential (found in a
    # generated 10k store, where it kept notes off the hub).
    "Fixed a transient schema in auth: v4.37.7 was the cause.",
    "Fixed a idempotent schema in auth: BUG-6657 was the cause.",
    "Fixed a eager lockfile in auth: ACME-3175 was the cause; key: 2.1.0-rc1 is pinned.",
    "The token is v2.14.6 of the spec.",
]


@pytest.mark.parametrize("sentence", ORDINARY)
def test_ordinary_developer_text_is_unchanged(sentence: str) -> None:
    assert redact(sentence) == sentence
    assert find_secrets(sentence) == []


def test_clip_redacted_never_leaves_a_cut_secret() -> None:
    text = "x" * 1990 + f" {GHP} more words\n" + "tail " * 500
    for limit in range(1990, 2030, 3):
        clipped = clip_redacted(text, limit)
        assert len(clipped) <= limit
        assert GHP[:12] not in clipped


def test_redaction_is_linear_on_adversarial_input() -> None:
    # Shapes that make naive patterns backtrack: many openers, no closers, long runs.
    nasty = "<private>" * 2000 + "-----BEGIN RSA PRIVATE KEY-----" * 2000
    assert redact(nasty).startswith("[REDACTED:private]")
    runs = ("password=" + "a" * 600 + " ") * 200 + "ghp_" * 5000 + "A" * 100_000 + "://u:" * 5000
    assert len(redact(runs)) > 0


# --- properties ------------------------------------------------------------------------------

_BODY = st.text(alphabet=ALNUM, min_size=1, max_size=60)


def _mixed(prefix: str, size: int, alphabet: str = ALNUM) -> st.SearchStrategy[str]:
    return st.text(alphabet=alphabet, min_size=size, max_size=size).map(lambda s: prefix + s + "7q")


SECRETS = st.one_of(
    _mixed("ghp_", 36),
    _mixed("gho_", 36),
    _mixed("github_pat_", 60, ALNUM + "_"),
    _mixed("glpat-", 20),
    _mixed("xoxb-", 30, ALNUM + "-"),
    _mixed("sk-proj-", 48, ALNUM),
    _mixed("sk-ant-api03-", 80, ALNUM),
    _mixed("sk_" + "live_", 24),
    _mixed("AIza", 33, ALNUM),
    _mixed("npm_", 34),
    _mixed("hf_", 32),
    st.text(alphabet=HEX, min_size=64, max_size=64).map(lambda s: "dop_v1_" + s),
    st.text(alphabet=UPPER_DIGITS, min_size=16, max_size=16).map(lambda s: "AKIA" + s),
    st.builds(
        lambda a, b, c: f"eyJ{a}7q.eyJ{b}7q.{c}",
        _BODY.filter(lambda s: len(s) >= 10),
        _BODY.filter(lambda s: len(s) >= 10),
        _BODY,
    ),
)
SHAPES = [
    re.compile(p)
    for p in (
        r"gh[pousr]_[A-Za-z0-9]{20,}",
        r"github_pat_[A-Za-z0-9_]{20,}",
        r"glpat-[\w-]{20,}",
        r"xox[abeoprs]-[A-Za-z0-9-]{10,}",
        r"sk-(?:proj|ant)-[\w-]{20,}",
        r"(?:sk|rk|pk)_(?:live|test)_[0-9A-Za-z]{10,}",
        r"AIza[\w-]{35}",
        r"npm_[A-Za-z0-9]{30,}",
        r"hf_[A-Za-z0-9]{30,}",
        r"dop_v1_[a-f0-9]{64}",
        r"AKIA[A-Z0-9]{16}",
        r"eyJ[\w-]{10,}\.eyJ[\w-]{10,}\.",
        r"-----BEGIN [A-Z ]*PRIVATE KEY",
    )
]
SEPARATORS = st.sampled_from([" ", "\n", "\t", "(", ")", '"', "'", "=", ": ", ", ", "`", "/", "\\n"])
CONTEXTS = st.sampled_from(["{}", "token: {}", "export API_TOKEN={}", '{{"key": "{}"}}', "use {} now", "Bearer {}"])


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@example(before="", sep1="\\n", secret="ghp_" + "0" * 36 + "7q", sep2=" ", after="", context="{}")
@given(
    before=st.text(max_size=80),
    sep1=SEPARATORS,
    secret=SECRETS,
    sep2=SEPARATORS,
    after=st.text(max_size=80),
    context=CONTEXTS,
)
def test_redact_never_leaves_a_known_secret_shape(
    before: str, sep1: str, secret: str, sep2: str, after: str, context: str
) -> None:
    text = before + sep1 + context.format(secret) + sep2 + after
    redacted = redact(text)
    assert secret not in redacted
    for shape in SHAPES:
        if shape.search(before) is None and shape.search(after) is None:
            assert shape.search(redacted) is None, shape.pattern
    assert redact(redacted) == redacted


@settings(max_examples=500)
@given(st.text())
@example("password=abc12345 x")
@example("<private>")
@example("-----BEGIN RSA PRIVATE KEY-----\nabc")
@example("https://u:p@h token: x1y2z3 Authorization: Bearer abcdefabcdef1234")
def test_redact_is_idempotent(text: str) -> None:
    once = redact(text)
    assert redact(once) == once
    assert find_secrets(once) == []


@settings(max_examples=200)
@given(st.lists(st.sampled_from(ORDINARY), min_size=1, max_size=6), st.sampled_from(["\n", " ", "\n\n"]))
@example(["PWD=/home/dev/proj", ORDINARY[0]], " ")
@example(["token = next_token", ORDINARY[13]], " ")
def test_ordinary_text_stays_unchanged_when_combined(sentences: list[str], joiner: str) -> None:
    text = joiner.join(sentences)
    assert redact(text) == text


FRAGMENTS = st.sampled_from(
    [
        "password",
        "DB_PASSWORD",
        "token",
        "api_key",
        "Authorization",
        "Bearer",
        "secret",
        "auth",
        "key",
        "=",
        ": ",
        ":",
        " ",
        "\n",
        "\\n",
        '"',
        "'",
        "`",
        "(",
        ")",
        "@",
        "://",
        "/",
        "-",
        "_",
        ",",
        ";",
        "&",
        "export ",
        "--password ",
        "-u ",
        "admin",
        "hunter2",
        "abcDEF123456",
        "9f86d081884c7d659a2feaa0c55ad015",
        "<private>",
        "</private>",
        "-----BEGIN RSA PRIVATE KEY-----",
        "-----END RSA PRIVATE KEY-----",
        "ghp_",
        "AKIA",
        "sk-",
        "eyJ",
        "xoxb-",
        "123e4567-e89b-12d3-a456-426614174000",
        "[REDACTED:token]",
        "None",
        " is ",
        " was ",
        " now set to ",
        "pin",
        "PASSWORD",
        "Gr33nTea!x",
        "12345678",
        "${X}",
        "/home/dev",
        "x",
        "ZZZZ",
        "0000",
    ]
)


@settings(max_examples=400)
@given(st.lists(FRAGMENTS, max_size=30).map("".join))
# Cases Hypothesis found once; kept so every run checks them.
@example("password: hunter2: passwordpassword")
@example("-u password=DB_PASSWORD")
@example("--password =passwordpassword")
@example("\\npassword=--password --password hunter2")
@example("AKIAPASSWORDPASSWORDghp_passwordpasswordpassword")
def test_redact_is_idempotent_on_secret_like_fragments(text: str) -> None:
    once = redact(text)
    assert redact(once) == once
    assert find_secrets(once) == []
