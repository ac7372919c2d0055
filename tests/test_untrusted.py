"""Redaction on write is a core option: a writer passing text the user did not type opts in.

Real memory: files, SQLite, git. The index pins these tests to asyncio (the conftest default).
"""

from __future__ import annotations

import pytest

from anamnesis.memory import Memory, NoteDraft
from anamnesis.notes import Note
from anamnesis.untrusted import redact_draft, secrets_in

pytestmark = pytest.mark.anyio

TOKEN = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
AWS = "AKIA" + "IOSFODNN7EXAMPLE"


def on_disk_text(memory: Memory, note: Note) -> str:
    return (memory.config.layout.memory_dir / note.type / f"{note.id}.md").read_text(encoding="utf-8")


def leaky() -> NoteDraft:
    return NoteDraft(
        type="procedural",
        title=f"Push with {TOKEN}",
        body=f"The CI pushes with {TOKEN}; the bucket key is {AWS}.",
        project=f"github.com/acme/{TOKEN}",
        tags=["ci", TOKEN],
    )


async def test_a_write_that_opts_in_keeps_every_secret_out_of_the_file(memory: Memory) -> None:
    note = await memory.write(leaky(), redact=True)

    on_disk = on_disk_text(memory, note)
    assert TOKEN not in on_disk
    assert AWS not in on_disk
    assert "[REDACTED:" in note.title
    assert "[REDACTED:" in note.project
    assert "[REDACTED:" in note.tags[1]
    assert "The CI pushes with [REDACTED:" in (await memory.get(note.id)).body


async def test_a_write_that_does_not_opt_in_keeps_the_text_as_given(memory: Memory) -> None:
    note = await memory.write(leaky())

    assert TOKEN in note.body
    assert AWS in note.body
    assert TOKEN in on_disk_text(memory, note)


def test_a_writer_can_name_what_it_redacted_and_a_clean_draft_is_left_alone() -> None:
    assert set(secrets_in(leaky())) >= {"github-token", "aws-access-key-id"}
    clean = NoteDraft(type="semantic", title="Commit style", body="Imperative mood.", tags=["git"])
    assert secrets_in(clean) == []
    assert redact_draft(clean) is clean
