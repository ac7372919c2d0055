"""`capture_session`: one episodic note per Claude Code session, updated in place as it goes on.

Hooks call this at PreCompact, PostCompact and SessionEnd, and a detached `anamnesis capture`
may call it again with a model. Each call reads only what the transcript gained since the last
one: a cursor file per session (`<cursor_dir>/sessions/<session id>.json`) holds the byte offset,
the digest so far and what was last written. The note's id is derived from the session (its
first timestamp and a hash of its id), so every call, even one after the cursor was lost,
updates the same note.

The heuristic note is written first, under a per-session lock; the model, when configured, is
asked afterwards without the lock (a hook must never wait on the network), and its answer
replaces the note, or retracts it when the model judges the session not worth one, only if the
session did not go on meanwhile. A note edited by hand is left alone; a session too trivial to
keep leaves no note.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from anamnesis.atomic import atomic_write
from anamnesis.capture.conversation import conversation
from anamnesis.capture.llm import ModelSummary, build_input, summarize
from anamnesis.capture.summary import Summary, facts_section, heuristic_summary, is_trivial
from anamnesis.capture.transcript import SessionDigest, TranscriptCursor, read_transcript
from anamnesis.config import ReflectionSettings
from anamnesis.errors import NoteNotFoundError, NoteValidationError
from anamnesis.ids import encode_ulid
from anamnesis.locks import file_lock
from anamnesis.memory import Memory, NoteDraft
from anamnesis.notes import GLOBAL_PROJECT, Note, normalize_body, normalize_tags
from anamnesis.project import resolve_project

logger = logging.getLogger(__name__)

CURSOR_SUBDIR = "sessions"
CURSOR_VERSION = 1
LOCK_TIMEOUT = 10.0
# Claude Code keeps transcripts 30 days by default; a cursor outliving its transcript is useless.
CURSOR_MAX_AGE = 45 * 24 * 3600

_SAFE_KEY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,100}")


@dataclass(frozen=True, slots=True)
class CaptureState:
    """What the cursor file of one session holds."""

    transcript: TranscriptCursor = field(default_factory=TranscriptCursor)
    note_id: str | None = None
    written_sha: str | None = None  # title and body as last written, to notice hand edits
    written_by: str | None = None  # "heuristic", "model", or "human" once edited by hand

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": CURSOR_VERSION,
            "transcript": self.transcript.to_dict(),
            "note_id": self.note_id,
            "written_sha": self.written_sha,
            "written_by": self.written_by,
        }

    @classmethod
    def from_dict(cls, data: Any) -> CaptureState:
        if not isinstance(data, dict) or data.get("version") != CURSOR_VERSION:
            return cls()
        transcript = data.get("transcript")

        def text(key: str) -> str | None:
            value = data.get(key)
            return value if isinstance(value, str) and value else None

        return cls(
            transcript=TranscriptCursor.from_dict(transcript) if isinstance(transcript, dict) else TranscriptCursor(),
            note_id=text("note_id"),
            written_sha=text("written_sha"),
            written_by=text("written_by"),
        )


def session_note_id(session_id: str, started_at: str | None) -> str:
    """A ULID for the session's note: its first timestamp, then 80 bits of a hash of its id.

    Stable across calls and machines, time-ordered like every other note id.
    """
    ms = _epoch_ms(started_at) or 0
    entropy = int.from_bytes(hashlib.sha256(session_id.encode("utf-8")).digest()[:10], "big")
    return encode_ulid(max(0, min(ms, (1 << 48) - 1)), entropy)


def _epoch_ms(stamp: str | None) -> int | None:
    if not stamp:
        return None
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return max(0, int(moment.timestamp() * 1000))


def cursor_path(cursor_dir: Path, session_id: str) -> Path:
    """The cursor file of a session; ids that are not safe file names are hashed."""
    key = session_id if _SAFE_KEY_RE.fullmatch(session_id) else hashlib.sha256(session_id.encode()).hexdigest()[:40]
    return cursor_dir / CURSOR_SUBDIR / f"{key}.json"


def read_offset(cursor_dir: Path, session_id: str) -> int:
    """How many bytes of the session's transcript earlier captures have read (0 if none).

    For a hook deciding whether the rest can be read within its budget; blocking, but one
    small file.
    """
    return _load_state(cursor_path(cursor_dir, session_id), prune=False).transcript.offset


async def capture_session(
    memory: Memory,
    transcript_path: str | os.PathLike[str] | None,
    session_id: str,
    cwd_project: str | None,
    source: str,
    *,
    cursor_dir: Path,
    llm: ReflectionSettings | None = None,
    compact_summary: str | None = None,
    lock_timeout: float = LOCK_TIMEOUT,
) -> Note | None:
    """Write or update the episodic note of session `session_id`; the note, or None if none.

    `cwd_project` is the project key of the session's cwd (None: resolved from the transcript's
    cwd). `source` becomes a tag (`precompact`, `session-end`…). `cursor_dir` is the home's
    `state/`. With `llm` configured, a model writes the note and the heuristic is the fallback;
    call that from a detached process, not a hook. `compact_summary` is PostCompact's
    `compact_summary`. Raises `BusyError` if another capture of this session holds its lock
    past `lock_timeout`.
    """
    if not session_id.strip():
        raise NoteValidationError("prov_session", "a session id is required to capture a session")
    path = cursor_path(cursor_dir, session_id)
    lock = path.with_suffix(".lock")
    async with file_lock(lock, lock_timeout, "this session's capture"):
        old = await anyio.to_thread.run_sync(_load_state, path)
        cursor = old.transcript
        if transcript_path is not None:
            cursor = (await anyio.to_thread.run_sync(read_transcript, transcript_path, cursor)).cursor
        digest = cursor.digest.with_compact_summary(compact_summary) if compact_summary else cursor.digest
        grew = digest != old.transcript.digest
        state = replace(old, transcript=replace(cursor, digest=digest))
        note: Note | None = None
        if old.note_id and not grew:
            note = await _existing(memory, old.note_id)  # nothing new since it was written
        elif not is_trivial(digest):
            project = cwd_project or await _project_of(digest.cwd)
            note_id = state.note_id or session_note_id(session_id, digest.started_at or _now_stamp())
            note, state = await _write(memory, state, note_id, heuristic_summary(digest), project, source, session_id)
        # Saved only once the note is: after a failure the next call reads the same lines again.
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(_save_state, path, state)

    if llm is None or not llm.configured or transcript_path is None or note is None:
        return note
    if state.written_by in ("model", "human"):
        return note  # the model already summarized all there is, or the user took the note over
    # The model is slow and may not answer: ask it without holding the lock, so that a hook
    # capturing this session meanwhile never waits on the network.
    model = await _model_summary(llm, transcript_path, digest, note.project)
    if model is None:
        return note  # any failure: the heuristic note stands
    async with file_lock(lock, lock_timeout, "this session's capture"):
        state = await anyio.to_thread.run_sync(_load_state, path)
        if state.transcript.digest != digest or state.note_id != note.id or state.written_by != "heuristic":
            return note  # the session went on meanwhile (a later capture summarizes it) or was edited
        if model.skip:
            logger.info("the model judged session %s not worth a note", session_id)
            result, state = await _retract(memory, state, note)
        else:
            summary = Summary(model.title, _with_facts(model.body, digest))
            result, state = await _write(memory, state, note.id, summary, note.project, source, session_id, model)
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(_save_state, path, state)
    return result


async def _retract(memory: Memory, state: CaptureState, note: Note) -> tuple[Note | None, CaptureState]:
    """Delete the heuristic note of a session the model judged trivial, unless edited by hand."""
    current = await _existing(memory, note.id)
    if current is not None and _content_sha(current.title, current.body) != state.written_sha:
        return current, replace(state, written_by="human", written_sha=_content_sha(current.title, current.body))
    if current is not None:
        await memory.delete(note.id)
    # Marked as the model's doing, so that a capture with nothing new does not bring it back.
    return None, replace(state, written_by="model", written_sha=None)


async def _write(
    memory: Memory,
    state: CaptureState,
    note_id: str,
    summary: Summary,
    project: str,
    source: str,
    session_id: str,
    model: ModelSummary | None = None,
) -> tuple[Note | None, CaptureState]:
    existing = await _existing(memory, note_id)
    if existing is not None:
        on_disk = _content_sha(existing.title, existing.body)
        if state.written_sha and on_disk != state.written_sha:
            logger.info("session note %s was edited by hand; leaving it as it is", note_id)
            return existing, replace(state, note_id=note_id, written_sha=on_disk, written_by="human")
        if state.written_by == "human":
            return existing, replace(state, note_id=note_id)
    draft = NoteDraft(
        type="episodic",
        title=summary.title,
        body=summary.body,
        project=project,
        tags=("session", source),
        prov_source="session-end",
        prov_model=model.model if model else None,
        prov_session=session_id,
        note_id=note_id,
    )
    note = existing if existing is not None and _same_content(existing, draft) else await memory.write(draft)
    written = replace(
        state,
        note_id=note.id,
        written_sha=_content_sha(note.title, note.body),
        written_by="model" if model else "heuristic",
    )
    return note, written


async def _model_summary(
    settings: ReflectionSettings | None,
    transcript_path: str | os.PathLike[str] | None,
    digest: SessionDigest,
    project: str | None,
) -> ModelSummary | None:
    if settings is None or transcript_path is None:
        return None
    budget = max(settings.max_tokens, 250) * 4
    text = await anyio.to_thread.run_sync(lambda: build_input(conversation(transcript_path), budget))
    context = "\n".join(
        line
        for line in (
            f"Project: {project}" if project else "",
            f"Branch: {digest.git_branch}" if digest.git_branch else "",
        )
        if line
    )
    return await summarize(settings, text, context)


def _with_facts(body: str, digest: SessionDigest) -> str:
    facts = facts_section(digest)
    return f"{body.rstrip()}\n\n{facts}" if facts else body


async def _existing(memory: Memory, note_id: str) -> Note | None:
    try:
        return await memory.get(note_id)
    except NoteNotFoundError:
        return None


async def _project_of(cwd: str | None) -> str:
    if not cwd:
        return GLOBAL_PROJECT
    return await anyio.to_thread.run_sync(resolve_project, Path(cwd))


def _same_content(note: Note, draft: NoteDraft) -> bool:
    """Whether writing `draft` would change nothing but `updated_at` (and make an empty commit)."""
    return (
        note.title == " ".join(draft.title.split())
        and note.body == normalize_body(draft.body)
        and note.tags == normalize_tags(draft.tags)
        and note.project == draft.project
        and note.prov_model == draft.prov_model
    )


def _content_sha(title: str, body: str) -> str:
    return hashlib.sha256(f"{title}\n\x00\n{body}".encode()).hexdigest()


def _now_stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _load_state(path: Path, prune: bool = True) -> CaptureState:
    """The saved state, or a fresh one when there is none or it cannot be read."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if prune:  # a new session: a good moment to forget very old ones
            _prune(path.parent)
        return CaptureState()
    except (OSError, ValueError):
        logger.warning("unreadable capture cursor %s; reading the transcript from the start", path)
        return CaptureState()
    return CaptureState.from_dict(data)


def _save_state(path: Path, state: CaptureState) -> None:
    """Write the cursor atomically (temp file, fsync, rename), readable by this user only."""
    atomic_write(path, json.dumps(state.to_dict(), ensure_ascii=False, separators=(",", ":")), mode=0o600)


def _prune(directory: Path) -> None:
    """Drop cursors of sessions older than any transcript Claude Code still keeps."""
    cutoff = time.time() - CURSOR_MAX_AGE
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        with contextlib.suppress(OSError):
            if entry.name.endswith((".json", ".lock")) and entry.stat().st_mtime < cutoff:
                os.unlink(entry.path)
