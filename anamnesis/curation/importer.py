"""Import: Claude Code's own per-project memory files, and anamnesis-memory 0.1.3 stores.

Each Claude Code memory file (see `claude_memory`) becomes a note:

- type: feedback → procedural (how to work); user, project, reference, none → semantic;
- project: the folder's slug names a path: the `cwd` in that folder's transcripts, else a
  directory on this machine whose path spells the slug, and `anamnesis.project` gives its key
  (so the note joins the notes written there). A `user` memory is about the person, not the
  project, so it is global. When no path is found, the slug itself is the key;
- title: `name`, else the first heading, else the file name; body: `description`, then text;
- `prov_source: import`, tags `import`, `claude-code` and `kind:<type>`, the file's
  modification time as created and updated, and two front-matter fields: `import_source` (this
  machine, then the file relative to the config dir, so moving the config dir changes nothing)
  and `import_sha256` (its content). A second run finds the note by `import_source` and adds
  nothing; a changed file updates that note in place (git keeps what it said before); a file
  whose content was already imported for the same project (on another machine, say) is not
  imported twice. `MEMORY.md` is skipped when it only indexes the other files.

A 0.1.3 store (`--from PATH`: its home, or its `memory/` folder) is already in our format: each
note is read, validated and copied in under its own id, skipping ids already here. A file that
does not parse is reported and skipped; it never stops the import.

Everything imported passes through `redact` first: secrets never land in a note (0.1.3 stored
them verbatim). Notes get their own ids, so no name read from disk becomes a path we write.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio.to_thread

from anamnesis.capture.redact import redact
from anamnesis.curation.claude_memory import (
    INDEX_FILE,
    MAX_SOURCE_BYTES,
    ClaudeMemoryFile,
    ProjectResolver,
    Resolver,
    convert_claude_memory,
    display_name,
    is_index_only,
    list_dir,
    read_capped,
    scan_claude_memory,
)
from anamnesis.errors import ImportSourceError, NoteFormatError
from anamnesis.ids import new_ulid
from anamnesis.memory import Memory
from anamnesis.notes import GLOBAL_PROJECT, MAX_BODY_CHARS, NOTE_TYPES, Note, parse_note
from anamnesis.shapes import ref_json
from anamnesis.store import NOTE_SUFFIX

logger = logging.getLogger(__name__)

CLAUDE_ORIGIN = "claude-code"
STORE_ORIGIN = "anamnesis-0.1.3"
SOURCE_KEY = "import_source"
HASH_KEY = "import_sha256"

ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class ImportItem:
    """One source file and what importing it does.

    action: `add` (a new note), `update` (the source changed since it was imported), `same`
    (imported before, unchanged), `present` (a note with this id or content is already here),
    `skip` (nothing to import: empty, an index file, a link) or `problem` (unreadable).
    """

    origin: str  # CLAUDE_ORIGIN or STORE_ORIGIN
    source: str  # the file, as shown to the user
    action: str
    reason: str = ""
    note: Note | None = None  # the note to write (add, update) or the one already here
    project_from: str = ""  # how the project was found (Claude Code files)
    redacted: bool = False
    store: str = ""  # the 0.1.3 store it is in (`source` is relative to it)

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"origin": self.origin, "source": self.source, "action": self.action}
        if self.reason:
            data["reason"] = self.reason
        if self.note is not None:
            data["note"] = ref_json(self.note)
        if self.project_from:
            data["project_from"] = self.project_from
        if self.redacted:
            data["redacted"] = True
        if self.store:
            data["store"] = self.store
        return data


@dataclass(slots=True)
class ImportPlan:
    """What an import would do, file by file; `writes` are the notes it would write."""

    items: list[ImportItem] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    @property
    def writes(self) -> list[Note]:
        return [i.note for i in self.items if i.action in ("add", "update") and i.note is not None]

    def count(self, action: str) -> int:
        return sum(1 for i in self.items if i.action == action)

    def as_json(self) -> dict[str, Any]:
        actions = ("add", "update", "same", "present", "skip", "problem")
        return {
            "sources": self.sources,
            "counts": {a: self.count(a) for a in actions},
            "items": [i.as_json() for i in self.items],
        }


@dataclass(frozen=True, slots=True)
class ImportResult:
    plan: ImportPlan
    commit: str | None


def plan_claude_files(
    files: Sequence[ClaudeMemoryFile],
    resolver: Resolver,
    existing: dict[str, Note],
    machine_id: str,
    progress: ProgressCallback | None = None,
) -> list[ImportItem]:
    """What to do with each Claude Code memory file, given the notes imported before
    (`existing`, by `import_source`). Blocking (project resolution reads the disk)."""
    by_content = {(n.project, n.extra.get(HASH_KEY)): n for n in existing.values()}
    items = []
    for done, source in enumerate(files, start=1):
        items.append(_plan_one(source, resolver, existing, by_content, machine_id))
        by_item = items[-1]
        if by_item.action == "add" and by_item.note is not None:
            by_content[(by_item.note.project, source.sha256)] = by_item.note
        if progress is not None:
            progress(done, len(files))
    return items


def _plan_one(
    source: ClaudeMemoryFile,
    resolver: Resolver,
    existing: dict[str, Note],
    by_content: dict[tuple[str, Any], Note],
    machine_id: str,
) -> ImportItem:
    if source.name == INDEX_FILE and is_index_only(source.text):
        return ImportItem(CLAUDE_ORIGIN, source.key, "skip", "Claude Code's index of the other memory files")
    converted = convert_claude_memory(source.text, source.name)
    if not converted.body.strip():
        return ImportItem(CLAUDE_ORIGIN, source.key, "skip", "empty")
    project, how = resolver(source.slug, source.folder)
    if converted.kind == "user":
        project, how = GLOBAL_PROJECT, "global: a memory about you, not the project"
    title, body = redact(converted.title), redact(converted.body)
    redacted = (title, body) != (converted.title, converted.body)
    if len(body) > MAX_BODY_CHARS:
        reason = f"{len(body)} characters; a note holds at most {MAX_BODY_CHARS}"
        return ImportItem(CLAUDE_ORIGIN, source.key, "problem", reason)
    key = source_key(machine_id, source.key)
    previous = existing.get(key)
    if previous is not None and previous.extra.get(HASH_KEY) == source.sha256:
        return ImportItem(CLAUDE_ORIGIN, source.key, "same", "imported before, unchanged", previous, how)
    twin = by_content.get((project, source.sha256))
    if previous is None and twin is not None:
        reason = f"the same file was imported from {twin.extra.get(SOURCE_KEY, 'elsewhere')}"
        return ImportItem(CLAUDE_ORIGIN, source.key, "present", reason, twin, how)
    extra = {SOURCE_KEY: key, HASH_KEY: source.sha256}
    kind_tag = (f"kind:{converted.kind}"[:64],) if converted.kind else ()
    if previous is not None:
        kept_tags = tuple(t for t in previous.tags if not t.startswith("kind:"))  # the user's own stay
        note = previous.with_changes(
            type=converted.type,
            title=title,
            body=body,
            project=project,
            machine_id=machine_id,
            updated_at=max(source.mtime, previous.created_at),
            tags=(*kept_tags, *kind_tag),
            extra={**previous.extra, **extra},
        )
        reason = "the file changed since it was imported"
        return ImportItem(CLAUDE_ORIGIN, source.key, "update", reason, note, how, redacted)
    note = Note(
        id=new_ulid(_epoch_ms(source.mtime)),
        type=converted.type,
        title=title,
        body=body,
        project=project,
        machine_id=machine_id,
        prov_source="import",
        created_at=source.mtime,
        updated_at=source.mtime,
        tags=("import", CLAUDE_ORIGIN, *kind_tag),
        extra=extra,
    )
    return ImportItem(CLAUDE_ORIGIN, source.key, "add", "", note, how, redacted)


def source_key(machine_id: str, relative: str) -> str:
    """What `import_source` holds: the machine, then the file relative to Claude's config dir.

    The machine is part of it because each machine has its own Claude Code memory: the same
    path on the laptop is another file, which must not overwrite the desktop's import (and
    the desktop's next import put it back). Identical files are still imported once.
    """
    return f"{machine_id}:{relative}"


def _epoch_ms(stamp: str) -> int:
    return int(datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp() * 1000)


# -- anamnesis-memory 0.1.3 stores ----------------------------------------------------------------


def store_roots(path: Path) -> dict[str, Path]:
    """The scope directories of the 0.1.3 store at `path` (its home, or its memory/ folder)."""
    if not path.is_dir():
        raise ImportSourceError(f"--from {path}: no such folder")
    roots = {scope: path / name for scope, name in (("portable", "memory"), ("machine-local", "local"))}
    roots = {scope: root for scope, root in roots.items() if root.is_dir() and not root.is_symlink()}
    if roots:
        return roots
    if any((path / t).is_dir() for t in NOTE_TYPES):
        return {"portable": path}
    raise ImportSourceError(
        f"--from {path}: not an anamnesis store (no memory/ or local/ folder, and no {', '.join(NOTE_TYPES)} folders)"
    )


def plan_store(
    path: Path,
    present: Callable[[str], bool],
    progress: ProgressCallback | None = None,
    planned: dict[str, str] | None = None,
) -> list[ImportItem]:
    """What to do with each note file of the store at `path`. Blocking.

    `present(id)` says whether this home has that id already; `planned` (id → file) holds the
    ids earlier stores of the same import bring in, so an id is only ever imported once.
    """
    roots = store_roots(path)
    files = list(_store_files(roots))
    items = []
    planned = {} if planned is None else planned
    for done, (scope, file) in enumerate(files, start=1):
        item = _plan_store_file(path, scope, file, present, planned)
        items.append(replace(item, store=str(path)))
        if progress is not None:
            progress(done, len(files))
    return items


def _store_files(roots: dict[str, Path]) -> Iterator[tuple[str, Path]]:
    for scope, root in roots.items():
        for note_type in NOTE_TYPES:
            for entry in list_dir(root / note_type):
                if entry.name.startswith(".") or not entry.name.endswith(NOTE_SUFFIX):
                    continue
                yield scope, Path(entry.path)


def _plan_store_file(
    base: Path, scope: str, file: Path, present: Callable[[str], bool], planned: dict[str, str]
) -> ImportItem:
    shown = display_name(str(file.relative_to(base)))
    if file.is_symlink():
        return ImportItem(STORE_ORIGIN, shown, "problem", "a symbolic link: not followed")
    try:
        raw = read_capped(file)
    except OSError as exc:
        return ImportItem(STORE_ORIGIN, shown, "problem", f"cannot be read: {exc.strerror or exc}")
    if raw is None:
        return ImportItem(STORE_ORIGIN, shown, "problem", f"longer than {MAX_SOURCE_BYTES} bytes")
    try:
        note = parse_note(raw.decode("utf-8", errors="replace"))
    except NoteFormatError as exc:
        return ImportItem(STORE_ORIGIN, shown, "problem", exc.reason)
    if note.scope != scope:
        note = note.with_changes(scope=scope)  # the folder is authoritative, as in our own store
    if note.id in planned:
        return ImportItem(STORE_ORIGIN, shown, "problem", f"id {note.id} again (first in {planned[note.id]})")
    planned[note.id] = shown
    if present(note.id):
        return ImportItem(STORE_ORIGIN, shown, "present", f"note {note.id} is already here", note)
    title, body = redact(note.title), redact(note.body)
    redacted = (title, body) != (note.title, note.body)
    if redacted:
        note = note.with_changes(title=title, body=body)
    return ImportItem(STORE_ORIGIN, shown, "add", "", note, redacted=redacted)


# -- on a memory ----------------------------------------------------------------------------------


async def imported_notes(memory: Memory) -> dict[str, Note]:
    """Notes imported from Claude Code before, by their `import_source`."""
    await memory.ensure_fresh()
    found: dict[str, Note] = {}
    for note in await memory.notes_from("import"):
        key = note.extra.get(SOURCE_KEY)
        if isinstance(key, str):
            found.setdefault(key, note)
    return found


def _refuse_this_home(memory: Memory, stores: Sequence[Path]) -> None:
    own = {memory.config.home.resolve(), memory.config.layout.memory_dir.resolve()}
    for store in stores:
        if store.resolve() in own:
            raise ImportSourceError(f"--from {store} is this home: there is nothing to import")


async def plan_import(
    memory: Memory,
    *,
    claude_dir: Path | None,
    stores: Sequence[Path] = (),
    user_home: Path | None = None,
    progress: ProgressCallback | None = None,
) -> ImportPlan:
    """What importing would do; changes nothing. `claude_dir` None skips Claude Code's files."""
    plan = ImportPlan()
    await anyio.to_thread.run_sync(_refuse_this_home, memory, stores)
    if claude_dir is not None:
        plan.sources.append(str(claude_dir / "projects"))
        existing = await imported_notes(memory)
        files, unread = await anyio.to_thread.run_sync(scan_claude_memory, claude_dir)
        resolver = ProjectResolver(user_home)
        items = await anyio.to_thread.run_sync(
            plan_claude_files, files, resolver, existing, memory.config.machine_id, progress
        )
        problems = [ImportItem(CLAUDE_ORIGIN, key, "problem", reason) for key, reason in unread]
        plan.items.extend(sorted([*items, *problems], key=lambda i: i.source))
    planned: dict[str, str] = {}

    for store in stores:
        plan.sources.append(str(store))
        plan.items.extend(await anyio.to_thread.run_sync(plan_store, store, memory.note_exists, progress, planned))
    return plan


async def apply_import(memory: Memory, plan: ImportPlan, progress: ProgressCallback | None = None) -> ImportResult:
    """Write every note the plan adds or updates, in one commit."""
    notes = plan.writes
    if not notes:
        return ImportResult(plan, None)
    await memory.save_all(notes, commit_message(plan), progress)
    head = await memory.head() if any(n.scope == "portable" for n in notes) else None
    logger.info("imported %d notes, updated %d", plan.count("add"), plan.count("update"))
    return ImportResult(plan, head)


def commit_message(plan: ImportPlan, listed: int = 200) -> str:
    """A summary line, then one line per note written (the first `listed` of them)."""
    added, updated = plan.count("add"), plan.count("update")
    lines = [f"anamnesis: import {added} note{'s' if added != 1 else ''}, update {updated}", ""]
    written = [i for i in plan.items if i.note is not None and i.action in ("add", "update")]
    lines.extend(f"{i.action} {i.note.id} from {i.source}" for i in written[:listed] if i.note is not None)
    if len(written) > listed:
        lines.append(f"… and {len(written) - listed} more")
    return "\n".join(lines)
