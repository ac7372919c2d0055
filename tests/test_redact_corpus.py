"""Redaction against a data-driven corpus: every secret in `redaction/secrets.txt` is caught,
every look-alike in `redaction/lookalikes.txt` passes unchanged, in `redact` and in the push gate.

The files hold templates, not values: placeholders such as `{alnum:36}` are filled from a seeded
generator, so the repository holds no real-looking token and every run uses the same values.
"""

from __future__ import annotations

import random
import re
import string
from pathlib import Path

import pytest

from anamnesis.capture.redact import find_secrets, redact
from anamnesis.notes import Note, render_note
from anamnesis.sync.gate import withheld_kinds

CORPUS_DIR = Path(__file__).parent / "redaction"
_ALPHABETS = {
    "alnum": string.ascii_letters + string.digits,
    "hex": "0123456789abcdef",
    "HEX": "0123456789ABCDEF",
    "UPPER": string.ascii_uppercase + string.digits,
    "lower": string.ascii_lowercase + string.digits,
    "digits": string.digits,
    "b64": string.ascii_letters + string.digits + "+/",
    "b64url": string.ascii_letters + string.digits + "_-",
}
_PLACEHOLDER = re.compile(r"\{(?P<kind>[A-Za-z0-9]+)(?::(?P<n>\d+))?\}")
_SECRET_SPAN = re.compile(r"\[\[(.+?)\]\]", re.DOTALL)


def _fill(rng: random.Random, kind: str, n: int) -> str:
    """n random characters; like every real token, a mix of digits and letters when it can."""
    if kind == "uuid":
        h = _fill(rng, "hex", 32)
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}"
    alphabet = _ALPHABETS[kind]
    chars = [rng.choice(alphabet) for _ in range(n)]
    digits = [c for c in alphabet if c.isdigit()]
    letters = [c for c in alphabet if c.isalpha()]
    if n >= 4 and digits and letters:
        chars[-2], chars[-1] = rng.choice(digits), rng.choice(letters)
    return "".join(chars)


def _expand(template: str, rng: random.Random) -> str:
    text = template.replace("\\n", "\n").replace("\\t", "\t")
    return _PLACEHOLDER.sub(
        lambda m: _fill(rng, m["kind"], int(m["n"] or 0)) if m["kind"] in (*_ALPHABETS, "uuid") else m[0], text
    )


def _load(name: str) -> list[str]:
    lines = (CORPUS_DIR / name).read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.strip() and not line.startswith("#")]


def _secret_cases() -> list[tuple[str, tuple[str, ...]]]:
    rng = random.Random(20261205)
    cases = []
    for template in _load("secrets.txt"):
        marked = _expand(template, rng)
        cases.append((_SECRET_SPAN.sub(r"\1", marked), tuple(_SECRET_SPAN.findall(marked))))
    return cases


SECRETS = _secret_cases()
_rng = random.Random(20261206)
LOOK_ALIKES = [_expand(template, _rng) for template in _load("lookalikes.txt")]


def _in_a_note(body: str) -> str:
    note = Note(
        id="01JD3W6Q2M8Z4T9K7B5X0R1C2V",
        type="semantic",
        title="Deploy notes",
        body=body,
        project="github.com/acme/quotes-api",
        machine_id="desktop",
        prov_session="5b1f2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
        created_at="2026-11-20T10:00:00Z",
        updated_at="2026-11-20T10:00:00Z",
        tags=("deploy",),
    )
    return render_note(note)


def test_corpus_holds_at_least_120_secrets_and_120_look_alikes() -> None:
    assert len(SECRETS) >= 120
    assert all(secrets for _, secrets in SECRETS)
    assert len(LOOK_ALIKES) >= 120


@pytest.mark.parametrize(("text", "secrets"), SECRETS, ids=[f"secret-{i}" for i in range(len(SECRETS))])
def test_every_secret_in_the_corpus_is_redacted_and_what_names_it_is_kept(text: str, secrets: tuple[str, ...]) -> None:
    redacted = redact(text)

    for secret in secrets:
        assert secret not in redacted, text
    assert redacted.startswith(text[: text.index(secrets[0])].rstrip("\"'")), redacted
    assert find_secrets(text), text
    assert find_secrets(redacted) == []
    assert redact(redacted) == redacted


@pytest.mark.parametrize("text", LOOK_ALIKES, ids=[f"look-alike-{i}" for i in range(len(LOOK_ALIKES))])
def test_every_look_alike_in_the_corpus_passes_unchanged(text: str) -> None:
    assert redact(text) == text
    assert find_secrets(text) == []


def test_the_push_gate_holds_back_every_corpus_secret_and_no_look_alike() -> None:
    """The gate scans whole note files (front matter included) with the same rules."""
    secrets = {f"s{i}": _in_a_note(text) for i, (text, _) in enumerate(SECRETS)}
    look_alikes = {f"l{i}": _in_a_note(text) for i, text in enumerate(LOOK_ALIKES)}

    assert sorted(withheld_kinds(secrets)) == sorted(secrets)
    assert withheld_kinds(look_alikes) == {}
