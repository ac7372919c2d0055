"""Secrets out of a note before it is written, for writers whose text the user did not type.

A model writing through MCP, or any other writer passing along text it did not author, may copy
a key or a password into a note. Such a note would be read back into every session and would
block the next sync (the push gate refuses secrets), so a writer opts in with
`Memory.write(draft, redact=True)` and the secrets are replaced by `[REDACTED:<kind>]` before
anything reaches the disk. Notes the user types (the dashboard, `anamnesis write`) are theirs
and are written as given.

The rules are those of capture and the push gate (`anamnesis.capture.redact`), applied to every
field a note's reader sees: title, body, project and tags.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from anamnesis.capture.redact import find_secrets, redact

if TYPE_CHECKING:
    from anamnesis.memory import NoteDraft


def _fields(draft: NoteDraft) -> list[str]:
    return [draft.title, draft.body, draft.project, *draft.tags]


def secrets_in(draft: NoteDraft) -> list[str]:
    """The kinds of secret the draft holds, each once: for a writer that says what it redacted."""
    return find_secrets("\n".join(_fields(draft)))


def redact_draft(draft: NoteDraft) -> NoteDraft:
    """`draft` with every secret in its title, body, project and tags replaced by a marker."""
    if not secrets_in(draft):
        return draft
    return replace(
        draft,
        title=redact(draft.title),
        body=redact(draft.body),
        project=redact(draft.project),
        tags=[redact(tag) for tag in draft.tags],
    )
