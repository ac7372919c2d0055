"""Secrets out of text: `redact` replaces them with `[REDACTED:<kind>]`; `find_secrets` names them.

Everything a capture writes passes through `redact`, and sync refuses to push a note for which
`find_secrets` is not empty, so the two share one set of rules. The rules are precompiled
regexes written to run in linear time: every repetition is bounded or possessive, each pattern
starts with a literal or a keyword (so the regex engine can skip ahead to candidates; a word
boundary is checked afterwards in Python, since a leading lookbehind would defeat that), and a
rule whose trigger is absent from the text is skipped without a scan (the Telegram and Discord
token shapes have no literal; they start with a digit or one of three capitals, and are bounded).
`redact` is idempotent: a marker never matches a rule. `tests/redaction/` holds the corpus of
secrets that must be caught and look-alikes that must pass.

Precision matters as much as recall, because a false positive blocks a sync: a key name alone
(`max_tokens = 4096`, `author: Ann`, `password: str`) is not a secret, and neither is a value
that looks like code, a placeholder or a path. Secrets are replaced whole; what identifies them
(the user and host of a URL, the name of a variable) is kept.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

MARKER_PREFIX = "[REDACTED:"
# A secret cut in half by a length cap may no longer look like one: `clip_redacted` reads
# this far past the cap, to a line break, before it redacts and cuts.
_CLIP_MARGIN = 512
_NOT_MARKER = r"(?!\[REDACTED:)"
_MARKER_END_RE = re.compile(r"\[REDACTED:[a-z-]{1,40}\]\Z")

Judge = Callable[[re.Match[str]], str | None]


def marker(kind: str) -> str:
    return f"{MARKER_PREFIX}{kind}]"


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


@dataclass(frozen=True, slots=True)
class _Rule:
    """A pattern whose group `secret` is a secret of `kind`.

    `needles`: lower-case strings one of which must occur in the text for the rule to run.
    `judge`: decides per match (None keeps the text). `glue`: unless None, a match right after
    a letter, a digit or one of these characters is part of a longer word and is kept.
    """

    kind: str
    pattern: re.Pattern[str]
    needles: tuple[str, ...] = ()
    judge: Judge | None = None
    glue: str | None = ""


def _looks_random(value: str) -> bool:
    """Tokens mix digits and letters, or upper and lower case at random; words do not.

    CamelCase words (`TokenAuthentication`) have few capitals; a random mixed-case string has
    about as many capitals as small letters.
    """
    has_digit = any(c.isdigit() for c in value)
    upper = sum(1 for c in value if c.isupper())
    lower = sum(1 for c in value if c.islower())
    if has_digit and (upper or lower):
        return True
    return upper >= 3 and lower >= 3 and upper * 4 >= upper + lower


def _random_token(kind: str) -> Judge:
    def judge(match: re.Match[str]) -> str | None:
        return kind if _looks_random(match.group("secret")) else None

    return judge


def _token(kind: str, pattern: str, needles: tuple[str, ...], judge: Judge | None = None, glue: str = "") -> _Rule:
    return _Rule(kind, re.compile(f"(?P<secret>{pattern})"), needles, judge, glue)


# --- provider tokens: a distinctive prefix, so the whole match is the secret -------------------

_PROVIDER_RULES: tuple[_Rule, ...] = (
    _token("anthropic-api-key", r"sk-ant-[A-Za-z0-9_-]{20,}+", ("sk-ant-",)),
    _token("openai-api-key", r"sk-(?:proj|svcacct|admin|None)-[A-Za-z0-9_-]{20,}+", ("sk-",), glue="_-"),
    _token("openai-api-key", r"sk-[A-Za-z0-9]{20,}+(?![_-])", ("sk-",), _random_token("openai-api-key"), "_-"),
    _token("github-token", r"gh[pousr]_[A-Za-z0-9]{20,255}+", ("gh",)),
    _token("github-token", r"github_pat_[A-Za-z0-9_]{20,255}+", ("github_pat_",)),
    _token("gitlab-token", r"gl(?:pat|dt|rt|ptt|cbt|oas|soat|ffct|imt|agent)-[A-Za-z0-9_-]{20,}+", ("gl",)),
    _token(
        "slack-webhook", r"https://hooks\.slack(?:-gov)?\.com/(?:services|workflows|triggers)/[\w/-]{8,}+", ("hooks.",)
    ),
    _token("slack-token", r"xox[abeoprs]-[A-Za-z0-9-]{10,}+", ("xox",)),
    _token("slack-token", r"xapp-[0-9]-[A-Za-z0-9-]{10,}+", ("xapp-",)),
    _token("google-api-key", r"AIza[0-9A-Za-z_-]{35}", ("aiza",), glue="_-"),
    _token("google-oauth-secret", r"GOCSPX-[A-Za-z0-9_-]{20,}+", ("gocspx-",)),
    _token("google-oauth-token", r"ya29\.[0-9A-Za-z_-]{20,}+", ("ya29.",)),
    # Publishable keys (`pk_live_…`) are public by design: they ship in every checkout page.
    _token("stripe-key", r"(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{10,}+", ("_live_", "_test_")),
    _token("stripe-webhook-secret", r"whsec_[A-Za-z0-9]{20,}+", ("whsec_",)),
    _token("npm-token", r"npm_[A-Za-z0-9]{30,}+", ("npm_",), _random_token("npm-token")),
    _token("pypi-token", r"pypi-Ag[A-Za-z0-9_-]{40,}+", ("pypi-",)),
    _token("twilio-api-key", r"SK[0-9a-fA-F]{32}(?![0-9A-Za-z])", ("sk",)),
    _token("twilio-account-sid", r"AC[0-9a-f]{32}(?![0-9A-Za-z])", ("ac",)),
    _token("sendgrid-api-key", r"SG\.[A-Za-z0-9_-]{16,}+\.[A-Za-z0-9_-]{16,}+", ("sg.",)),
    _token("digitalocean-token", r"do[opr]_v1_[a-f0-9]{64}", ("_v1_",)),
    _token("huggingface-token", r"hf_[A-Za-z0-9]{30,}+", ("hf_",), _random_token("huggingface-token")),
    _token(
        "aws-access-key-id",
        r"A(?:KIA|SIA|BIA|CCA|3T[A-Z0-9])[A-Z0-9]{16}(?![A-Z0-9])",
        ("akia", "asia", "abia", "acca", "a3t"),
    ),
    _Rule(
        "aws-secret-key",
        re.compile(
            r"(?:aws|AWS|Aws)[\w.-]{0,30}?(?:secret|Secret|SECRET|private|PRIVATE)[\w.-]{0,30}?[\"']?\s*(?:=>|[:=])"
            r"\s*[\"']?(?P<secret>[A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])"
        ),
        ("aws",),
    ),
    _token("docker-hub-token", r"dckr_(?:pat|oat)_[A-Za-z0-9_-]{20,}+", ("dckr_",)),
    _token("shopify-token", r"shp(?:at|ss|ca|pa)_[a-fA-F0-9]{32}(?![0-9A-Za-z])", ("shp",)),
    _token("mailgun-api-key", r"key-[0-9a-z]{32}(?![0-9A-Za-z])", ("key-",), _random_token("mailgun-api-key"), "_"),
    _token("vault-token", r"hv[sbr]\.[A-Za-z0-9_-]{24,}+", ("hv",), _random_token("vault-token"), "_-"),
    # Telegram bot tokens: the bot's numeric id, a colon, then 35 characters starting with AA;
    # in API URLs they follow `/bot` with nothing in between.
    _Rule("telegram-bot-token", re.compile(r"(?P<secret>[0-9]{6,12}+:AA[A-Za-z0-9_-]{30,40}+)"), (":aa",), glue=None),
    # Discord bot tokens: base64 of the bot's id, a 6-character timestamp, an HMAC.
    _token(
        "discord-bot-token",
        r"[MNO][A-Za-z0-9_-]{23,27}+\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,40}+(?![A-Za-z0-9_-])",
        (),
        _random_token("discord-bot-token"),
        "_-.",
    ),
    _Rule(
        "gcp-private-key-id",
        re.compile(r"private_key_id[\"']?\s*[:=]\s*[\"']?(?P<secret>[0-9a-f]{40})(?![0-9A-Za-z])"),
        ("private_key_id",),
    ),
    # Azure shared access signatures: the `sig` parameter is the HMAC that grants the access.
    _Rule(
        "azure-sas-signature",
        re.compile(r"sig=(?P<secret>[A-Za-z0-9%+/=]{16,256}+)"),
        ("sig=",),
        lambda m: "azure-sas-signature" if m.start() > 0 and m.string[m.start() - 1] in "?&;" else None,
        glue=None,
    ),
    _token("jwt", r"eyJ[A-Za-z0-9_-]{10,}+\.eyJ[A-Za-z0-9_-]{10,}+\.[A-Za-z0-9_-]*+", ("eyj",), glue="_-"),
)

# --- credentials in context: keep what identifies them, drop the secret ------------------------

_SCHEMES = _words("bearer basic token digest bot apikey sso-key negotiate")


def _judge_authorization(match: re.Match[str]) -> str | None:
    return None if match.group("secret").lower() in _SCHEMES else "authorization"


def _judge_bearer(match: re.Match[str]) -> str | None:
    return "bearer-token" if _looks_random(match.group("secret")) else None


def _judge_cli_flag(match: re.Match[str]) -> str | None:
    value = match.group("secret")
    if _is_no_secret(value) or (match.group("sep") != "=" and not _looks_random(value)):
        return None  # "--token flag" is prose; "--token=abc" or "--token 9fK2…" is not
    return secret_name_kind(match.group("flag")) or "password"


_PROSE_WORDS = {
    **dict.fromkeys(("password", "passphrase", "passwd", "passcode", "pwd", "pin"), "password"),
    **dict.fromkeys(("secret", "key", "apikey"), "secret"),
    "token": "token",
}


def _judge_prose(match: re.Match[str]) -> str | None:
    """Accept `<name> is <value>` when the name is a secret's and the value looks like one."""
    text, end = match.string, match.start()
    start = end
    while start > 0 and end - start <= 40 and (text[start - 1].isalnum() or text[start - 1] in "_-"):
        start -= 1
    name = text[start:end]
    kind = _PROSE_WORDS.get(name.lower()) or secret_name_kind(name)
    value = match.group("secret")
    if kind is None or _is_no_secret(value):
        return None
    if not (_looks_random(value) or (value.isdigit() and len(value) >= 8)):
        return None  # "the password is required", "the key is to cache"
    if kind != "password" and _IDENTIFIER_PARTS_RE.fullmatch(value):
        return None  # "the cache key is user:42:profile": words and small numbers, a name
    return kind


# A structured name: lower-case words and short numbers joined by `:`, `/`, `.`, `-` or `_`.
_IDENTIFIER_PARTS_RE = re.compile(r"(?:[a-z]+[0-9]{0,3}|[0-9]{1,6})(?:[:/._-](?:[a-z]+[0-9]{0,3}|[0-9]{1,6}|\*))+")


def _judge_given_value(match: re.Match[str]) -> str | None:
    """A value in a place only a password goes (`mysql -p…`, `sshpass -p …`, `.netrc`)."""
    return None if _is_no_secret(match.group("secret")) else "password"


_NETRC_ENTRY_RE = re.compile(r"(?:machine[ \t]+\S{1,253}|default)\s+\Z")


def _judge_netrc(match: re.Match[str]) -> str | None:
    """`login … password …` counts only right after `machine <host>` or `default`."""
    if _NETRC_ENTRY_RE.search(match.string, max(0, match.start() - 300), match.start()) is None:
        return None
    return _judge_given_value(match)


# Words that end a passphrase: function words and the words that describe a password rather
# than spell one ("the password is required and must be at least 12 characters").
_PHRASE_STOP_WORDS = (
    "a an the and or but nor if then than so as at by for from in into of on onto to with without via per"
    " is are was were be been being am do does did has have had can could will would shall should may might"
    " must need needs not no yes this that these those it its there here what which who whom whose when where"
    " why how all any each every some same other such only own too very just also again still even ever never"
    " i you he she we they me him her us them my your his our their mine yours"
    " required optional needed missing empty blank hidden masked hashed salted stored encrypted encoded saved"
    " kept changed reset rotated expired expires expiring incorrect wrong invalid valid weak strong long short"
    " length characters chars letters digits numbers symbols minimum maximum min max least most field prompt"
    " prompted policy rule rules default value see use used using set unset none null"
    " rotation schedule review manager management requirements guidelines flow design notes setup storage"
    " handling change update recovery strength meter"
)
_PHRASE_WORD = r"(?!(?i:" + "|".join(sorted(_PHRASE_STOP_WORDS.split(), key=len, reverse=True)) + r")(?![A-Za-z]))"
_PHRASE_WORD += r"(?:[a-z]{2,24}+|[A-Z][a-z]{1,23}+)(?![A-Za-z0-9_])"


def _judge_passphrase(match: re.Match[str]) -> str | None:
    """Three or more plain words said or assigned as a password, up to the end of the phrase.

    A passphrase is the words themselves; a description of a password has function words
    ("is required and must…"), which end the phrase early, so it is too short to count.
    """
    name = _name_before(match.string, match.start()) + match.group("kw") + match.group("tail")
    if secret_name_kind(name) != "password":
        return None
    rest = match.string[match.end() : match.end() + 40].lstrip(" \t")
    if rest[:1].isalnum():
        return None  # more words follow: a sentence about the password, not the password
    return "password"


_CONTEXT_RULES: tuple[_Rule, ...] = (
    _Rule(
        "password",  # mysql -uroot -pS3cret (attached: `-p dbname` prompts and names a database)
        re.compile(
            r"(?:mysql|mariadb)(?:dump|admin|import|check|sh)?+[ \t][^\n|;&]{0,200}?[ \t]-p[\"']?+"
            + _NOT_MARKER
            + r"(?P<secret>[^\s\"'`-][^\s\"'`]{0,255}+)"
        ),
        ("mysql", "mariadb"),
        _judge_given_value,
    ),
    _Rule(
        "password",  # sshpass -p 'pw' ssh host
        re.compile(
            r"sshpass[ \t]+(?:-[a-oq-z]\S{0,64}+[ \t]+){0,4}+-p[ \t]*[\"']?+"
            + _NOT_MARKER
            + r"(?P<secret>[^\s\"'`]{1,256}+)"
        ),
        ("sshpass",),
        _judge_given_value,
    ),
    _Rule(
        "password",  # docker login -u me -p pw registry.example.com (podman, helm registry, …)
        re.compile(
            r"(?:docker|podman|nerdctl|buildah|skopeo|oras|helm[ \t]+registry)[ \t]+login[^\n|;&]{0,200}?"
            r"[ \t](?:-p|--password)(?:=|[ \t]+)[\"']?+" + _NOT_MARKER + r"(?P<secret>[^\s\"'`]{1,256}+)"
        ),
        ("docker", "podman", "nerdctl", "buildah", "skopeo", "oras", "helm"),
        _judge_given_value,
    ),
    _Rule(
        "password",  # .netrc: machine host login user password pw (on one line or several)
        re.compile(r"login[ \t]+\S{1,256}+\s+password[ \t]+" + _NOT_MARKER + r"(?P<secret>\S{1,256}+)"),
        ("machine", "default"),
        _judge_netrc,
    ),
    _Rule(
        "password",  # password: correct horse battery staple / the wifi password is purple monkey dishwasher
        re.compile(
            r"(?P<kw>[Pp]ass(?:word|phrase|wd)|PASS(?:WORD|PHRASE|WD))(?P<tail>[A-Za-z0-9_]{0,30}+)"
            r"(?:[\"']?[ \t]*[:=]|[ \t]+(?:is|was|(?:(?:is|was)[ \t]+)?(?:now[ \t]+)?(?:set|changed)[ \t]+to))[ \t]+"
            r"[\"'`\u201c]?+" + _NOT_MARKER + r"(?P<secret>" + _PHRASE_WORD + r"(?:[ \t-]" + _PHRASE_WORD + r"){2,7}+)"
        ),
        ("pass",),
        _judge_passphrase,
        glue=None,
    ),
    _Rule(
        "url-password",  # scheme://user:password@host: the user and the host stay
        re.compile(
            r"://[^\s:/@\"'<>`]{0,256}+:"
            + _NOT_MARKER
            + r"(?P<secret>[^\s/\"'<>`]{1,256})@(?=[^\s@/\"'<>`]{0,256}[A-Za-z0-9])"
        ),
        ("://",),
        glue=None,
    ),
    _Rule(
        "authorization",
        re.compile(
            r"(?:[Pp]roxy-|PROXY-)?(?:[Aa]uthorization|AUTHORIZATION)[\"']?\s*[:=]\s*[\"']?"
            r"(?:(?i:bearer|basic|token|digest|bot|apikey|sso-key|negotiate)\s+)?+"
            + _NOT_MARKER
            + r"(?P<secret>[A-Za-z0-9._~+/=:-]{6,}+)"
        ),
        ("authorization",),
        _judge_authorization,
    ),
    _Rule(
        "bearer-token",
        re.compile(r"(?:[Bb]earer|BEARER)\s+" + _NOT_MARKER + r"(?P<secret>[A-Za-z0-9._~+/=-]{16,}+)"),
        ("bearer",),
        _judge_bearer,
    ),
    _Rule(
        "secret",  # "the staging password is hunter2-Xy9q": said, not assigned; the word is read back
        re.compile(
            r"[ \t](?:is|was|are|IS|WAS|(?:is[ \t]+)?(?:now[ \t]+)?(?:set|changed)[ \t]+to)[ \t]+[\"'`\u201c]?"
            + _NOT_MARKER
            + r"(?P<secret>[^\s\"'`\u201d]{5,199}[^\s\"'`\u201d.,;:!?)])"
        ),
        ("pass", "pwd", "pin", "secret", "token", "key"),
        _judge_prose,
        glue=None,
    ),
    _Rule(
        "password",
        re.compile(
            r"--?(?P<flag>password|passwd|pass|token|api-key|apikey|secret|client-secret|auth-token)"
            r"(?P<sep>=|[ \t]+)[\"']?" + _NOT_MARKER + r"(?P<secret>[^\s\"'`=][^\s\"'`]{2,255}+)"
        ),
        ("-",),
        _judge_cli_flag,
        glue="_-",
    ),
    _Rule(
        "basic-auth",  # curl -u user:password
        re.compile(r"(?:-u|--user)[ \t]+[\"']?[\w.@%+-]{1,128}+:" + _NOT_MARKER + r"(?P<secret>[^\s\"'`]{1,256}+)"),
        ("-u", "--user"),
        glue="_-",
    ),
)

# --- names that say "secret" -------------------------------------------------------------------

_PASSWORD_WORDS = _words("password passwd pwd passphrase pass passcode pw")
_TOKEN_WORDS = _words("token accesstoken authtoken refreshtoken bearertoken idtoken")
_AUTH_WORDS = _words("auth authorization")
_SECRET_WORDS = _words(
    "secret credential credentials creds apikey privatekey secretkey accesskey auth authorization sessionid"
)
# `key` alone is everywhere in code (`sort_key`, `primary_key`); after one of these it is a secret.
_KEY_QUALIFIERS = _words(
    "api access private secret signing encryption encrypt master account client app service subscription"
    " storage shared auth webhook license admin deploy consumer session hmac jwt crypt sas ssh"
)
# A last word that makes the name about the secret rather than the secret itself: `token_url`,
# `password_min_length`, `api_key_env`, `session_id`.
_META_WORDS = _words(
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
_STAND_IN_WORDS = _words(
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
_CODE_KEYWORDS = _words("await new yield typeof function lambda async not")
_CALL_RE = re.compile(r"[A-Za-z_]\w*\(|\[")


def _is_no_secret(value: str) -> bool:
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
    if kind is None or _is_no_secret(value):
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
    if colon and rest and not rest.startswith(("#", "//")) and not _looks_random(value):
        return None  # "Token: the lexer emits one per word" is prose
    return kind


def _name_before(text: str, end: int) -> str:
    start = end
    floor = max(0, end - 64)
    while start > floor and (text[start - 1].isalnum() or text[start - 1] in "_.-"):
        start -= 1
    return text[start:end]


# The keyword comes first so the scan is driven by it, not by every identifier; the rest of the
# name before it is read back by `_name_before`. Case variants are spelled out: `(?i)` would
# make the scan twice as slow.
_KEYWORD = (
    r"(?P<kw>[Pp](?:ass|ASS|wd|WD|w|W)|[Ss](?:ecret|ECRET|ession|ESSION)|[Tt](?:oken|OKEN)|[Kk](?:ey|EY)"
    r"|[Aa](?:uth|UTH)|[Cc](?:red|RED))"
)
_ASSIGNMENT_RE = re.compile(
    _KEYWORD + r"(?P<tail>[A-Za-z0-9_.-]{0,40}+)(?P<q>\\?[\"'])?"
    r"(?P<pre>\s*(?::\s*[A-Za-z_][\w.\[\], |]{0,30}?\s*=(?!=)|=>|:=|=(?!=)|:(?![:/]))[ \t]*)"
    + _NOT_MARKER
    + r"(?:\"(?P<dq>(?:[^\"\\\n]++|\\.)*+)\""
    r"|'(?P<sq>(?:[^'\\\n]++|\\.)*+)'"
    r"|\\\"(?P<eq>[^\"\\\n]{1,512}+)\\\""
    r"|(?P<uv>[^\s\"'`,;&<>(){}\[\]\\=][^\s\"'`,;&<>(){}\[\]\\]{0,511}+))"
)
_VALUE_GROUPS = ("dq", "sq", "eq", "uv")


def _value_group(match: re.Match[str]) -> str:
    return next(g for g in _VALUE_GROUPS if match.group(g) is not None)


def _assignment_judge(match: re.Match[str]) -> str | None:
    text = match.string
    name = _name_before(text, match.start()) + match.group("kw") + match.group("tail")
    group = _value_group(match)
    return _judge_value(
        name,
        match.group(group),
        quoted=group != "uv",
        colon=":" in match.group("pre") and "=" not in match.group("pre"),
        after=text[match.end() : match.end() + 200],
    )


_ENV_LINE_RE = re.compile(
    r"(?m)^[ \t]*(?:export[ \t]+)?(?P<name>[A-Za-z_][A-Za-z0-9_]{0,80}+)[ \t]*=[ \t]*"
    + _NOT_MARKER
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


_ASSIGNMENT_RULES: tuple[_Rule, ...] = (
    _Rule("uuid-key", _UUID_RE, ("-",), _uuid_key_judge, glue="-"),
    _Rule("secret", _ENV_LINE_RE, ("=",), _env_judge, glue=None),
    _Rule("secret", _ASSIGNMENT_RE, (), _assignment_judge, glue=None),
)

# --- spans: <private>…</private> and PEM private keys ------------------------------------------

_PRIVATE_OPEN = re.compile(r"<private>", re.IGNORECASE)
_PRIVATE_CLOSE = re.compile(r"</private>", re.IGNORECASE)
_PEM_BEGIN = re.compile(r"-----BEGIN[ A-Z0-9]{0,40}PRIVATE KEY(?: BLOCK)?-----")
_PEM_END = re.compile(r"-----END[ A-Z0-9]{0,40}PRIVATE KEY(?: BLOCK)?-----")
# What follows a BEGIN line whose END was cut off: base64, escaped newlines, PEM headers.
_PEM_BODY = re.compile(r"(?:[A-Za-z0-9+/=\s]++|\\[nrt]|[A-Za-z-]{1,40}:[^\n\\]*+)*+")


def _redact_spans(
    text: str,
    opener: re.Pattern[str],
    closer: re.Pattern[str],
    kind: str,
    found: list[str],
    body: re.Pattern[str] | None = None,
) -> str:
    """Replace each `opener … closer` span; an unclosed one runs to `body`'s end, or the text's."""
    out: list[str] = []
    pos = 0
    closer_missing = False  # once a search for the closer failed, a later one would too
    while (start := opener.search(text, pos)) is not None:
        end: int | None = None
        if not closer_missing:
            close = closer.search(text, start.end())
            if close is None:
                closer_missing = True
            else:
                end = close.end()
        if end is None:
            tail = body.match(text, start.end()) if body is not None else None
            end = tail.end() if tail is not None else len(text)
        out.append(text[pos : start.start()])
        out.append(marker(kind))
        found.append(kind)
        pos = end
    if not out:
        return text
    out.append(text[pos:])
    return "".join(out)


def _glued(text: str, start: int, glue: str | None) -> bool:
    """Whether a match at `start` continues a longer word (an escape like `\\n` does not count)."""
    if glue is None or start == 0:
        return False
    before = text[start - 1]
    if before in "nrt" and start >= 2 and text[start - 2] == "\\":
        return False  # JSON- or shell-escaped text: `\\nghp_…` starts a new line
    if before == "]" and _MARKER_END_RE.search(text, max(0, start - 64), start):
        return True  # a marker stands for a word: what was glued to that word still is
    return before.isalnum() or before in glue


def _apply(rule: _Rule, text: str, found: list[str]) -> str:
    """Replace the secret of every accepted match of `rule`.

    Unlike `re.sub`, a match that is not accepted does not consume its text: the search
    resumes one character after its start, so `--password --password hunter2` still finds
    the second flag. Matches are bounded, so this stays linear.
    """
    secret_group = "secret" in rule.pattern.groupindex
    out: list[str] = []
    pos = last = 0
    while (match := rule.pattern.search(text, pos)) is not None:
        start = match.start()
        s, e = match.span("secret" if secret_group else _value_group(match))
        kind = None
        # A secret span that holds a marker is already redacted: what makes `redact` idempotent.
        if not _glued(text, start, rule.glue) and MARKER_PREFIX not in text[s:e]:
            kind = rule.judge(match) if rule.judge is not None else rule.kind
        if kind is None:
            pos = start + 1
            continue
        found.append(kind)
        out.append(text[last:s])
        out.append(marker(kind))
        last = pos = max(e, start + 1)
    if not out:
        return text
    out.append(text[last:])
    return "".join(out)


_RULES: tuple[_Rule, ...] = _PROVIDER_RULES + _CONTEXT_RULES + _ASSIGNMENT_RULES


def _scan(text: str, found: list[str]) -> str:
    if not text:
        return text
    text = _redact_spans(text, _PRIVATE_OPEN, _PRIVATE_CLOSE, "private", found)
    text = _redact_spans(text, _PEM_BEGIN, _PEM_END, "private-key", found, _PEM_BODY)
    lowered = text.lower()
    for rule in _RULES:
        if rule.needles and not any(needle in lowered for needle in rule.needles):
            continue
        text = _apply(rule, text, found)
    return text


def redact(text: str) -> str:
    """`text` with every secret it holds replaced by `[REDACTED:<kind>]`."""
    return _scan(text, [])


def find_secrets(text: str) -> list[str]:
    """The kinds of secret `text` holds, each once, in the order the rules found them."""
    found: list[str] = []
    _scan(text, found)
    return list(dict.fromkeys(found))


def clip_redacted(text: str, limit: int) -> str:
    """The redacted text, at most `limit` characters, without redacting more than it needs.

    The raw text is cut before redaction only at a line break (or a space) past the limit,
    so no secret is cut into a fragment that no rule recognises; the redacted text is then
    cut to size, which cannot reveal anything.
    """
    if limit <= 0:
        return ""
    clipped = len(text) > limit + _CLIP_MARGIN
    if clipped:
        window = text[: limit + _CLIP_MARGIN]
        cut = window.rfind("\n", limit)
        if cut == -1:
            cut = max(window.rfind(" ", limit), window.rfind("\t", limit))
        text = window[:cut] if cut > 0 else window
    red = redact(text)
    if len(red) <= limit and not clipped:
        return red
    return red[: max(0, limit - 1)].rstrip() + "…"
