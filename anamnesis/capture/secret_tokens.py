"""Secrets recognised by their shape or their place: provider tokens with a distinctive prefix
(`sk-ant-…`, `ghp_…`, `AKIA…`), and credentials in context (a URL's password, an
Authorization header, `mysql -p…`, `--token=…`, "the password is …"), where what identifies
them is kept and only the secret goes.
"""

from __future__ import annotations

import re

from anamnesis.capture.secret_names import is_no_secret, name_before, secret_name_kind
from anamnesis.capture.secret_rule import NOT_MARKER, Rule, looks_random, random_token, token_rule, words

# --- provider tokens: a distinctive prefix, so the whole match is the secret -------------------

PROVIDER_RULES: tuple[Rule, ...] = (
    token_rule("anthropic-api-key", r"sk-ant-[A-Za-z0-9_-]{20,}+", ("sk-ant-",)),
    token_rule("openai-api-key", r"sk-(?:proj|svcacct|admin|None)-[A-Za-z0-9_-]{20,}+", ("sk-",), glue="_-"),
    token_rule("openai-api-key", r"sk-[A-Za-z0-9]{20,}+(?![_-])", ("sk-",), random_token("openai-api-key"), "_-"),
    token_rule("github-token", r"gh[pousr]_[A-Za-z0-9]{20,255}+", ("gh",)),
    token_rule("github-token", r"github_pat_[A-Za-z0-9_]{20,255}+", ("github_pat_",)),
    token_rule("gitlab-token", r"gl(?:pat|dt|rt|ptt|cbt|oas|soat|ffct|imt|agent)-[A-Za-z0-9_-]{20,}+", ("gl",)),
    token_rule(
        "slack-webhook", r"https://hooks\.slack(?:-gov)?\.com/(?:services|workflows|triggers)/[\w/-]{8,}+", ("hooks.",)
    ),
    token_rule("slack-token", r"xox[abeoprs]-[A-Za-z0-9-]{10,}+", ("xox",)),
    token_rule("slack-token", r"xapp-[0-9]-[A-Za-z0-9-]{10,}+", ("xapp-",)),
    token_rule("google-api-key", r"AIza[0-9A-Za-z_-]{35}", ("aiza",), glue="_-"),
    token_rule("google-oauth-secret", r"GOCSPX-[A-Za-z0-9_-]{20,}+", ("gocspx-",)),
    token_rule("google-oauth-token", r"ya29\.[0-9A-Za-z_-]{20,}+", ("ya29.",)),
    # Publishable keys (`pk_live_…`) are public by design: they ship in every checkout page.
    token_rule("stripe-key", r"(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{10,}+", ("_live_", "_test_")),
    token_rule("stripe-webhook-secret", r"whsec_[A-Za-z0-9]{20,}+", ("whsec_",)),
    token_rule("npm-token", r"npm_[A-Za-z0-9]{30,}+", ("npm_",), random_token("npm-token")),
    token_rule("pypi-token", r"pypi-Ag[A-Za-z0-9_-]{40,}+", ("pypi-",)),
    token_rule("twilio-api-key", r"SK[0-9a-fA-F]{32}(?![0-9A-Za-z])", ("sk",)),
    token_rule("twilio-account-sid", r"AC[0-9a-f]{32}(?![0-9A-Za-z])", ("ac",)),
    token_rule("sendgrid-api-key", r"SG\.[A-Za-z0-9_-]{16,}+\.[A-Za-z0-9_-]{16,}+", ("sg.",)),
    token_rule("digitalocean-token", r"do[opr]_v1_[a-f0-9]{64}", ("_v1_",)),
    token_rule("huggingface-token", r"hf_[A-Za-z0-9]{30,}+", ("hf_",), random_token("huggingface-token")),
    token_rule(
        "aws-access-key-id",
        r"A(?:KIA|SIA|BIA|CCA|3T[A-Z0-9])[A-Z0-9]{16}(?![A-Z0-9])",
        ("akia", "asia", "abia", "acca", "a3t"),
    ),
    Rule(
        "aws-secret-key",
        re.compile(
            r"(?:aws|AWS|Aws)[\w.-]{0,30}?(?:secret|Secret|SECRET|private|PRIVATE)[\w.-]{0,30}?[\"']?\s*(?:=>|[:=])"
            r"\s*[\"']?(?P<secret>[A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])"
        ),
        ("aws",),
    ),
    token_rule("docker-hub-token", r"dckr_(?:pat|oat)_[A-Za-z0-9_-]{20,}+", ("dckr_",)),
    token_rule("shopify-token", r"shp(?:at|ss|ca|pa)_[a-fA-F0-9]{32}(?![0-9A-Za-z])", ("shp",)),
    token_rule("mailgun-api-key", r"key-[0-9a-z]{32}(?![0-9A-Za-z])", ("key-",), random_token("mailgun-api-key"), "_"),
    token_rule("vault-token", r"hv[sbr]\.[A-Za-z0-9_-]{24,}+", ("hv",), random_token("vault-token"), "_-"),
    # Telegram bot tokens: the bot's numeric id, a colon, then 35 characters starting with AA;
    # in API URLs they follow `/bot` with nothing in between.
    Rule("telegram-bot-token", re.compile(r"(?P<secret>[0-9]{6,12}+:AA[A-Za-z0-9_-]{30,40}+)"), (":aa",), glue=None),
    # Discord bot tokens: base64 of the bot's id, a 6-character timestamp, an HMAC.
    token_rule(
        "discord-bot-token",
        r"[MNO][A-Za-z0-9_-]{23,27}+\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,40}+(?![A-Za-z0-9_-])",
        (),
        random_token("discord-bot-token"),
        "_-.",
    ),
    Rule(
        "gcp-private-key-id",
        re.compile(r"private_key_id[\"']?\s*[:=]\s*[\"']?(?P<secret>[0-9a-f]{40})(?![0-9A-Za-z])"),
        ("private_key_id",),
    ),
    # Azure shared access signatures: the `sig` parameter is the HMAC that grants the access.
    Rule(
        "azure-sas-signature",
        re.compile(r"sig=(?P<secret>[A-Za-z0-9%+/=]{16,256}+)"),
        ("sig=",),
        lambda m: "azure-sas-signature" if m.start() > 0 and m.string[m.start() - 1] in "?&;" else None,
        glue=None,
    ),
    token_rule("jwt", r"eyJ[A-Za-z0-9_-]{10,}+\.eyJ[A-Za-z0-9_-]{10,}+\.[A-Za-z0-9_-]*+", ("eyj",), glue="_-"),
)

# --- credentials in context: keep what identifies them, drop the secret ------------------------

_SCHEMES = words("bearer basic token digest bot apikey sso-key negotiate")


def _judge_authorization(match: re.Match[str]) -> str | None:
    return None if match.group("secret").lower() in _SCHEMES else "authorization"


def _judge_bearer(match: re.Match[str]) -> str | None:
    return "bearer-token" if looks_random(match.group("secret")) else None


def _judge_cli_flag(match: re.Match[str]) -> str | None:
    value = match.group("secret")
    if is_no_secret(value) or (match.group("sep") != "=" and not looks_random(value)):
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
    if kind is None or is_no_secret(value):
        return None
    if not (looks_random(value) or (value.isdigit() and len(value) >= 8)):
        return None  # "the password is required", "the key is to cache"
    if kind != "password" and _IDENTIFIER_PARTS_RE.fullmatch(value):
        return None  # "the cache key is user:42:profile": words and small numbers, a name
    return kind


# A structured name: lower-case words and short numbers joined by `:`, `/`, `.`, `-` or `_`.
_IDENTIFIER_PARTS_RE = re.compile(r"(?:[a-z]+[0-9]{0,3}|[0-9]{1,6})(?:[:/._-](?:[a-z]+[0-9]{0,3}|[0-9]{1,6}|\*))+")


def _judge_given_value(match: re.Match[str]) -> str | None:
    """A value in a place only a password goes (`mysql -p…`, `sshpass -p …`, `.netrc`)."""
    return None if is_no_secret(match.group("secret")) else "password"


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
    name = name_before(match.string, match.start()) + match.group("kw") + match.group("tail")
    if secret_name_kind(name) != "password":
        return None
    rest = match.string[match.end() : match.end() + 40].lstrip(" \t")
    if rest[:1].isalnum():
        return None  # more words follow: a sentence about the password, not the password
    return "password"


CONTEXT_RULES: tuple[Rule, ...] = (
    Rule(
        "password",  # mysql -uroot -pS3cret (attached: `-p dbname` prompts and names a database)
        re.compile(
            r"(?:mysql|mariadb)(?:dump|admin|import|check|sh)?+[ \t][^\n|;&]{0,200}?[ \t]-p[\"']?+"
            + NOT_MARKER
            + r"(?P<secret>[^\s\"'`-][^\s\"'`]{0,255}+)"
        ),
        ("mysql", "mariadb"),
        _judge_given_value,
    ),
    Rule(
        "password",  # sshpass -p 'pw' ssh host
        re.compile(
            r"sshpass[ \t]+(?:-[a-oq-z]\S{0,64}+[ \t]+){0,4}+-p[ \t]*[\"']?+"
            + NOT_MARKER
            + r"(?P<secret>[^\s\"'`]{1,256}+)"
        ),
        ("sshpass",),
        _judge_given_value,
    ),
    Rule(
        "password",  # docker login -u me -p pw registry.example.com (podman, helm registry, …)
        re.compile(
            r"(?:docker|podman|nerdctl|buildah|skopeo|oras|helm[ \t]+registry)[ \t]+login[^\n|;&]{0,200}?"
            r"[ \t](?:-p|--password)(?:=|[ \t]+)[\"']?+" + NOT_MARKER + r"(?P<secret>[^\s\"'`]{1,256}+)"
        ),
        ("docker", "podman", "nerdctl", "buildah", "skopeo", "oras", "helm"),
        _judge_given_value,
    ),
    Rule(
        "password",  # .netrc: machine host login user password pw (on one line or several)
        re.compile(r"login[ \t]+\S{1,256}+\s+password[ \t]+" + NOT_MARKER + r"(?P<secret>\S{1,256}+)"),
        ("machine", "default"),
        _judge_netrc,
    ),
    Rule(
        "password",  # password: correct horse battery staple / the wifi password is purple monkey dishwasher
        re.compile(
            r"(?P<kw>[Pp]ass(?:word|phrase|wd)|PASS(?:WORD|PHRASE|WD))(?P<tail>[A-Za-z0-9_]{0,30}+)"
            r"(?:[\"']?[ \t]*[:=]|[ \t]+(?:is|was|(?:(?:is|was)[ \t]+)?(?:now[ \t]+)?(?:set|changed)[ \t]+to))[ \t]+"
            r"[\"'`\u201c]?+" + NOT_MARKER + r"(?P<secret>" + _PHRASE_WORD + r"(?:[ \t-]" + _PHRASE_WORD + r"){2,7}+)"
        ),
        ("pass",),
        _judge_passphrase,
        glue=None,
    ),
    Rule(
        "url-password",  # scheme://user:password@host: the user and the host stay
        re.compile(
            r"://[^\s:/@\"'<>`]{0,256}+:"
            + NOT_MARKER
            + r"(?P<secret>[^\s/\"'<>`]{1,256})@(?=[^\s@/\"'<>`]{0,256}[A-Za-z0-9])"
        ),
        ("://",),
        glue=None,
    ),
    Rule(
        "authorization",
        re.compile(
            r"(?:[Pp]roxy-|PROXY-)?(?:[Aa]uthorization|AUTHORIZATION)[\"']?\s*[:=]\s*[\"']?"
            r"(?:(?i:bearer|basic|token|digest|bot|apikey|sso-key|negotiate)\s+)?+"
            + NOT_MARKER
            + r"(?P<secret>[A-Za-z0-9._~+/=:-]{6,}+)"
        ),
        ("authorization",),
        _judge_authorization,
    ),
    Rule(
        "bearer-token",
        re.compile(r"(?:[Bb]earer|BEARER)\s+" + NOT_MARKER + r"(?P<secret>[A-Za-z0-9._~+/=-]{16,}+)"),
        ("bearer",),
        _judge_bearer,
    ),
    Rule(
        "secret",  # "the staging password is hunter2-Xy9q": said, not assigned; the word is read back
        re.compile(
            r"[ \t](?:is|was|are|IS|WAS|(?:is[ \t]+)?(?:now[ \t]+)?(?:set|changed)[ \t]+to)[ \t]+[\"'`\u201c]?"
            + NOT_MARKER
            + r"(?P<secret>[^\s\"'`\u201d]{5,199}[^\s\"'`\u201d.,;:!?)])"
        ),
        ("pass", "pwd", "pin", "secret", "token", "key"),
        _judge_prose,
        glue=None,
    ),
    Rule(
        "password",
        re.compile(
            r"--?(?P<flag>password|passwd|pass|token|api-key|apikey|secret|client-secret|auth-token)"
            r"(?P<sep>=|[ \t]+)[\"']?" + NOT_MARKER + r"(?P<secret>[^\s\"'`=][^\s\"'`]{2,255}+)"
        ),
        ("-",),
        _judge_cli_flag,
        glue="_-",
    ),
    Rule(
        "basic-auth",  # curl -u user:password
        re.compile(r"(?:-u|--user)[ \t]+[\"']?[\w.@%+-]{1,128}+:" + NOT_MARKER + r"(?P<secret>[^\s\"'`]{1,256}+)"),
        ("-u", "--user"),
        glue="_-",
    ),
)
