"""Secrets recognised by their name: `password = …`, `API_TOKEN=…`, `"client_secret": "…"`.

A name alone is not a secret (`max_tokens = 4096`, `password: str`): the value must look like
one, not like code, a placeholder, a path, a version or a ticket id (`is_no_secret`). These are
the rules with the most look-alikes, so they are kept together with their judges.
"""

from __future__ import annotations

import re

from anamnesis.capture.secret_rule import MARKER_PREFIX, NOT_MARKER, Rule, looks_random, words

_PASSWORD_WORDS = words("password passwd pwd passphrase pass passcode pw")
_TOKEN_WORDS = words("token accesstoken authtoken refreshtoken bearertoken idtoken")
_AUTH_WORDS = words("auth authorization")
_SECRET_WORDS = words(
    "secret credential credentials creds apikey privatekey secretkey accesskey auth authorization sessionid"
)
# `key` alone is everywhere in code (`sort_key`, `primary_key`); after one of these it is a secret.
_KEY_QUALIFIERS = words(
    "api access private secret signing encryption encrypt master account client app service subscription"
    " storage shared auth webhook license admin deploy consumer session hmac jwt crypt sas ssh"
)
# A last word that makes the name about the secret rather than the secret itself: `token_url`,
# `password_min_length`, `api_key_env`, `session_id`.
_META_WORDS = words(
    "path file dir url uri name names type length len size count max min limit expiry expires expiration ttl"
    " timeout env var field header prefix format hint policy pattern regex label placeholder id ids endpoint"
    " mode strategy provider method required enabled index column rule rules kind flow scope scopes usage hash"
    " reset rotation store manager helper command cmd source location service budget estimate estimator"
    " backend host server domain realm issuer audience scheme algorithm region username email version"
)
_SEGMENT_RE = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


def secret_name_kind(name: str, *, env: bool = False) -> str | None:
    """The kind of secret a variable or key called `name` holds, or None if it is not one.

    With `env` (`.env` lines, shell exports) `STRIPE_KEY` or `APP_KEY` count too.
    """
    words = [w.lower() for w in _SEGMENT_RE.findall(name)]
    if not words or words[-1] in _META_WORDS or "public" in words or "publishable" in words:
        return None
    kind: str | None = None
    for i, word in enumerate(words):
        if word in _PASSWORD_WORDS or word.endswith(("password", "passwd")):
            return "password"
        if word in _TOKEN_WORDS or (len(word) > 5 and word.endswith("token")):
            kind = kind or "token"
        elif word in _AUTH_WORDS and i < len(words) - 1:
            continue  # `AUTH_BACKEND=ldap`, `auth_domain`: about authentication, not a credential
        elif word in _SECRET_WORDS or (len(word) > 6 and word.endswith(("secret", "apikey"))):
            kind = kind or "secret"
        elif word == "key" and (env or (i > 0 and words[i - 1] in _KEY_QUALIFIERS)):
            kind = kind or ("api-key" if i > 0 and words[i - 1] == "api" else "secret")
    return kind


# Values that stand for a secret without being one.
_STAND_IN_WORDS = words(
    "none null nil true false undefined str string int bool bytes number any optional required secret secretstr"
    " password token redacted hidden masked unset empty yes no on off"
)
_PLACEHOLDER_RE = re.compile(
    r"\$\{[^}]*\}?|\$[A-Za-z_]\w*|%[A-Za-z_]\w*%|\{\{.*|<[^>]*>?|(.)\1{2,}|\.\.\.|…"
    r"|(?:~|\.{1,2})?/[\w.~/@+-]*|(?:os\.environ|os\.getenv|process\.env|env\(|getenv\().*"
    # `$(gh auth token)`, `` `pass show x` ``: the secret is fetched when the line runs, not written
    r"|\$\(.*|`.*"
    # f"user:{user_id}:profile": a template filled in by code
    r"|[frbuFRBU]{1,2}[\"'].*|.*\{[A-Za-z_][\w.]*\}.*"
    # Stripe publishable keys are public by design
    r"|pk_(?:live|test)_[0-9A-Za-z]+"
)
_DOTTED_RE = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")
# Versions (`v4.37.7`, `2.1.0-rc1`) and ticket ids (`BUG-6657`, `ACME-3175`) mix letters and
# digits like a token, and follow "auth:" or "key:" in prose all the time.
_VERSION_OR_TICKET_RE = re.compile(r"[vV]?\d+(?:\.\d+)+(?:[-+][0-9A-Za-z.]+)?|[A-Z][A-Z0-9]{1,11}-\d{1,7}")
_CODE_IDENT_RE = re.compile(r"_*[a-z]+(?:_+[a-z]+)+|[a-z]+(?:[A-Z][a-z]*)+")
# `token = await get_token()`, `key = new Key()`: an expression follows, not a value.
_CODE_KEYWORDS = words("await new yield typeof function lambda async not")
_CALL_RE = re.compile(r"[A-Za-z_]\w*\(|\[")


def is_no_secret(value: str) -> bool:
    """A value that stands where a secret could, without being one: `${X}`, `$X`, `<your key>`,
    `***`, `...`, a path, `os.environ[…]`, `None`, `str`, a version or a ticket id."""
    value = value.strip()
    return (
        not value
        or value.startswith(MARKER_PREFIX)
        or value.lower().strip("()[]") in _STAND_IN_WORDS
        or _PLACEHOLDER_RE.fullmatch(value) is not None
        or _VERSION_OR_TICKET_RE.fullmatch(value.rstrip(".,;:!?")) is not None
    )


def _judge_value(name: str, value: str, *, quoted: bool, colon: bool, after: str, env: bool = False) -> str | None:
    """The kind of secret `name = value` assigns, or None when it is code, prose or a stand-in."""
    kind = secret_name_kind(name, env=env)
    if kind is None or is_no_secret(value):
        return None
    if quoted:
        return kind
    if value.isdigit() and len(value) < 8:
        return None  # ports, counts, timeouts
    if len(value) < 4 or after[:1] in ("(", "[", ".") or _CALL_RE.search(value) or value in _CODE_KEYWORDS:
        return None  # a call, an index, an attribute: code, not a value
    has_digit = any(c.isdigit() for c in value)
    if _DOTTED_RE.fullmatch(value) and not has_digit:
        return None  # `settings.SECRET_KEY`, `self.password`
    if value.lower().replace("_", "") == name.lower().replace("_", ""):
        return None  # `password=password`: passing a variable along
    code_style = not name.isupper()  # SHOUTING names are env vars and constants: always values
    if code_style and not has_digit and (_CODE_IDENT_RE.fullmatch(value) or any(c.isspace() for c in value)):
        return None  # `token = next_token`, `secret = a if b else c`
    rest = after.split("\n", 1)[0].strip()
    if colon and rest and not rest.startswith(("#", "//")) and not looks_random(value):
        return None  # "Token: the lexer emits one per word" is prose
    return kind


def name_before(text: str, end: int) -> str:
    start = end
    floor = max(0, end - 64)
    while start > floor and (text[start - 1].isalnum() or text[start - 1] in "_.-"):
        start -= 1
    return text[start:end]


# The keyword comes first so the scan is driven by it, not by every identifier; the rest of the
# name before it is read back by `name_before`. Case variants are spelled out: `(?i)` would
# make the scan twice as slow.
_KEYWORD = (
    r"(?P<kw>[Pp](?:ass|ASS|wd|WD|w|W)|[Ss](?:ecret|ECRET|ession|ESSION)|[Tt](?:oken|OKEN)|[Kk](?:ey|EY)"
    r"|[Aa](?:uth|UTH)|[Cc](?:red|RED))"
)
_ASSIGNMENT_RE = re.compile(
    _KEYWORD + r"(?P<tail>[A-Za-z0-9_.-]{0,40}+)(?P<q>\\?[\"'])?"
    r"(?P<pre>\s*(?::\s*[A-Za-z_][\w.\[\], |]{0,30}?\s*=(?!=)|=>|:=|=(?!=)|:(?![:/]))[ \t]*)"
    + NOT_MARKER
    + r"(?:\"(?P<dq>(?:[^\"\\\n]++|\\.)*+)\""
    r"|'(?P<sq>(?:[^'\\\n]++|\\.)*+)'"
    r"|\\\"(?P<eq>[^\"\\\n]{1,512}+)\\\""
    r"|(?P<uv>[^\s\"'`,;&<>(){}\[\]\\=][^\s\"'`,;&<>(){}\[\]\\]{0,511}+))"
)
_VALUE_GROUPS = ("dq", "sq", "eq", "uv")


def value_group(match: re.Match[str]) -> str:
    return next(g for g in _VALUE_GROUPS if match.group(g) is not None)


def _assignment_judge(match: re.Match[str]) -> str | None:
    text = match.string
    name = name_before(text, match.start()) + match.group("kw") + match.group("tail")
    group = value_group(match)
    return _judge_value(
        name,
        match.group(group),
        quoted=group != "uv",
        colon=":" in match.group("pre") and "=" not in match.group("pre"),
        after=text[match.end() : match.end() + 200],
    )


_ENV_LINE_RE = re.compile(
    r"(?m)^[ \t]*(?:export[ \t]+)?(?P<name>[A-Za-z_][A-Za-z0-9_]{0,80}+)[ \t]*=[ \t]*"
    + NOT_MARKER
    + r"(?P<secret>\"[^\"\n]*+\"|'[^'\n]*+'|[^\s#\"'][^\n]{0,1023}?)(?=[ \t]*(?:[ \t]#[^\n]*)?\r?$)"
)


def _env_judge(match: re.Match[str]) -> str | None:
    value = match.group("secret")
    quoted = len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'"
    inner = value[1:-1] if quoted else value
    # In `NAME=value rest` the value is the first word (`PWD=/home/dev cmd …`); judge that, but
    # when it is a secret, redact to the end of the line, in case the value had spaces.
    judged = inner if quoted else inner.split(maxsplit=1)[0]
    return _judge_value(match.group("name"), judged, quoted=quoted, colon=False, after="", env=True)


# Heroku and others issue bare UUIDs as keys: one is a secret only after a key's name.
_UUID_RE = re.compile(
    r"(?P<secret>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})(?![\w-])"
)
_NAME_THEN_SEPARATOR_RE = re.compile(r"(?P<name>[A-Za-z0-9_.-]{1,60})[\"']?\s*(?:=>|[:=])\s*[\"']?\Z")


def _uuid_key_judge(match: re.Match[str]) -> str | None:
    before = _NAME_THEN_SEPARATOR_RE.search(match.string, max(0, match.start() - 80), match.start())
    if before is None or secret_name_kind(before.group("name"), env=True) is None:
        return None
    return "uuid-key"


ASSIGNMENT_RULES: tuple[Rule, ...] = (
    Rule("uuid-key", _UUID_RE, ("-",), _uuid_key_judge, glue="-"),
    Rule("secret", _ENV_LINE_RE, ("=",), _env_judge, glue=None),
    Rule("secret", _ASSIGNMENT_RE, (), _assignment_judge, glue=None),
)
