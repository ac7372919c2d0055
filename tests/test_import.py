"""Import: Claude Code's own memory files (under CLAUDE_CONFIG_DIR) and anamnesis-memory 0.1.3
stores come in as notes, once: a second run adds nothing and a changed file updates its note.
Real files, real git, real SQLite; hostile names and links are handled without harm."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from anamnesis.config import Config
from anamnesis.curation.importer import (
    HASH_KEY,
    SOURCE_KEY,
    ImportPlan,
    apply_import,
    plan_import,
)
from anamnesis.errors import ImportSourceError
from anamnesis.memory import Memory, NoteDraft
from anamnesis.search import SearchFilters
from tests.terminal import run_in_pty

pytestmark = pytest.mark.anyio

PROJECT = "github.com/acme/quotes-api"
FEEDBACK = """\
---
name: Integration tests hit a real database
description: never mock the database in integration tests
type: feedback
---
Mocked tests passed last quarter while the real migration failed.
Use the docker postgres fixture in tests/conftest.py.
"""
PLAIN_WITH_HEADING = "# Release checklist\n\nTag from main, then run `make release`.\n"
PLAIN = "The staging database is refreshed from production every Sunday night.\n"
USER = """\
---
name: Who I work with
description: a senior Go engineer, new to React
type: user
---
Explain frontend ideas through backend analogies.
"""
INDEX = "# Memory\n\n- [Integration tests](feedback_tests.md) - real database only\n- [Release](release.md)\n"


def claude_slug(path: Path | str) -> str:
    """The folder name Claude Code gives a project: `/` and `.` become `-`."""
    return re.sub(r"[/.]", "-", str(path))


@pytest.fixture
def claude_dir(isolated_env: Path) -> Path:
    return Path(os.environ["CLAUDE_CONFIG_DIR"])  # conftest points it into tmp


@pytest.fixture
def repo(isolated_env: Path) -> Path:
    """A checkout of the project whose origin gives its key."""
    path = isolated_env / "src" / "quotes-api"
    path.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(path)], check=True, timeout=30)
    subprocess.run(
        ["git", "-C", str(path), "remote", "add", "origin", "git@github.com:acme/quotes-api.git"],
        check=True,
        timeout=30,
    )
    return path


def memory_file(claude_dir: Path, folder: str, name: str, text: str, mtime: float | None = None) -> Path:
    path = claude_dir / "projects" / folder / "memory" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


async def plan(memory: Memory, claude_dir: Path | None, stores: tuple[Path, ...] = ()) -> ImportPlan:
    return await plan_import(memory, claude_dir=claude_dir, stores=stores, user_home=Path(os.environ["HOME"]))


def actions(result: ImportPlan) -> dict[str, str]:
    return {item.source.rsplit("/", 1)[-1]: item.action for item in result.items}


def git(memory: Memory, *args: str) -> str:
    result = subprocess.run(
        ["git", *args], cwd=memory.config.layout.memory_dir, capture_output=True, text=True, check=True, timeout=30
    )
    return result.stdout.strip()


def note_files(memory: Memory) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in memory.config.home.glob("*/*/*.md")}


def anamnesis(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "anamnesis", *args], capture_output=True, text=True, timeout=120, check=False
    )


# -- Claude Code's memory files ------------------------------------------------------------------


async def test_a_dry_run_shows_each_file_and_changes_nothing(memory: Memory, claude_dir: Path, repo: Path) -> None:
    memory_file(claude_dir, claude_slug(repo), "feedback_tests.md", FEEDBACK)
    memory_file(claude_dir, claude_slug(repo), "release.md", PLAIN_WITH_HEADING)
    head, files = git(memory, "rev-parse", "HEAD"), note_files(memory)
    result = await plan(memory, claude_dir)
    assert actions(result) == {"feedback_tests.md": "add", "release.md": "add"}
    assert git(memory, "rev-parse", "HEAD") == head
    assert note_files(memory) == files


async def test_files_with_and_without_front_matter_become_notes_of_their_project(
    memory: Memory, claude_dir: Path, repo: Path
) -> None:
    slug = claude_slug(repo)
    source = memory_file(claude_dir, slug, "feedback_tests.md", FEEDBACK, mtime=1_790_000_000)
    memory_file(claude_dir, slug, "release.md", PLAIN_WITH_HEADING)
    memory_file(claude_dir, slug, "staging_refresh.md", PLAIN)
    memory_file(claude_dir, slug, "user_role.md", USER)

    result = await apply_import(memory, await plan(memory, claude_dir))
    assert result.commit == git(memory, "rev-parse", "HEAD")
    assert git(memory, "log", "-1", "--format=%s") == "anamnesis: import 4 notes, update 0"
    notes = {item.source.rsplit("/", 1)[-1]: await memory.get(item.note.id) for item in result.plan.items if item.note}

    feedback = notes["feedback_tests.md"]
    assert (feedback.type, feedback.title, feedback.project) == (
        "procedural",
        "Integration tests hit a real database",
        PROJECT,
    )
    assert feedback.body.startswith("never mock the database in integration tests\n\nMocked tests passed")
    assert (feedback.prov_source, feedback.scope, feedback.machine_id) == ("import", "portable", "desktop")
    assert feedback.tags == ("import", "claude-code", "kind:feedback")
    assert feedback.extra[SOURCE_KEY] == f"desktop:projects/{slug}/memory/feedback_tests.md"
    assert feedback.extra[HASH_KEY] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert feedback.created_at == feedback.updated_at == "2026-09-21T14:13:20Z"  # the file's mtime

    release = notes["release.md"]
    assert (release.type, release.title, release.body) == ("semantic", "Release checklist", PLAIN_WITH_HEADING[21:-1])
    staging = notes["staging_refresh.md"]
    assert (staging.title, staging.body, staging.project) == ("staging refresh", PLAIN.strip(), PROJECT)
    assert staging.tags == ("import", "claude-code")
    user = notes["user_role.md"]
    assert (user.type, user.project) == ("semantic", "global")  # about the person, not the project

    hits = await memory.search("docker postgres fixture", SearchFilters(projects=(PROJECT,)))
    assert [hit.id for hit in hits] == [feedback.id]


async def test_the_project_comes_from_transcripts_when_the_folder_is_gone_else_from_the_slug(
    memory: Memory, claude_dir: Path
) -> None:
    gone = "/nowhere/work/billing.service"
    memory_file(claude_dir, claude_slug(gone), "notes.md", PLAIN)
    transcript = claude_dir / "projects" / claude_slug(gone) / "0b1c.jsonl"
    transcript.write_text(
        json.dumps({"type": "summary", "summary": "x"}) + "\n" + json.dumps({"type": "user", "cwd": gone}) + "\n"
    )
    memory_file(claude_dir, "-nowhere-at-all-legacy-app", "notes.md", PLAIN)
    # A transcript whose cwd is another folder's is not believed.
    memory_file(claude_dir, "-nowhere-else-tool", "notes.md", PLAIN)
    (claude_dir / "projects" / "-nowhere-else-tool" / "s.jsonl").write_text(json.dumps({"cwd": "/etc"}) + "\n")

    result = await plan(memory, claude_dir)
    projects = {item.source.split("/")[1]: (item.note.project, item.project_from) for item in result.items if item.note}
    assert projects[claude_slug(gone)][0] == "billing.service"
    assert "transcripts" in projects[claude_slug(gone)][1]
    assert projects["-nowhere-at-all-legacy-app"][0] == "nowhere-at-all-legacy-app"
    assert projects["-nowhere-else-tool"][0] == "nowhere-else-tool"


async def test_running_import_twice_adds_nothing(memory: Memory, claude_dir: Path, repo: Path) -> None:
    memory_file(claude_dir, claude_slug(repo), "feedback_tests.md", FEEDBACK)
    memory_file(claude_dir, claude_slug(repo), "staging.md", PLAIN)
    await apply_import(memory, await plan(memory, claude_dir))
    head, files = git(memory, "rev-parse", "HEAD"), note_files(memory)

    again = await plan(memory, claude_dir)
    assert set(actions(again).values()) == {"same"}
    assert (await apply_import(memory, again)).commit is None
    assert git(memory, "rev-parse", "HEAD") == head
    assert note_files(memory) == files


async def test_an_edited_source_updates_its_note_in_place(memory: Memory, claude_dir: Path, repo: Path) -> None:
    source = memory_file(claude_dir, claude_slug(repo), "feedback_tests.md", FEEDBACK)
    first = await apply_import(memory, await plan(memory, claude_dir))
    note_id = first.plan.items[0].note.id  # type: ignore[union-attr]
    imported = await memory.get(note_id)
    await memory.save(imported.with_changes(tags=(*imported.tags, "pinned")))  # the user's own tag
    source.write_text(
        FEEDBACK.replace("docker postgres fixture", "testcontainers postgres fixture").replace("feedback", "project")
    )

    changed = await plan(memory, claude_dir)
    assert actions(changed) == {"feedback_tests.md": "update"}
    await apply_import(memory, changed)

    note = await memory.get(note_id)
    assert "testcontainers postgres fixture" in note.body
    assert note.type == "semantic"  # now a `project` memory
    assert note.tags == ("import", "claude-code", "pinned", "kind:project")
    assert note.extra[HASH_KEY] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert len(note_files(memory)) == 1
    assert [hit.id for hit in await memory.search("testcontainers")] == [note_id]
    assert len(await memory.history(note_id)) == 3  # import, tag, update: what it said before is in git


async def test_the_memory_index_is_skipped_unless_it_holds_memories_itself(
    memory: Memory, claude_dir: Path, repo: Path
) -> None:
    memory_file(claude_dir, claude_slug(repo), "MEMORY.md", INDEX)
    memory_file(claude_dir, "-nowhere-old-style", "MEMORY.md", "# Memory\n\n- Always run ruff before committing.\n")
    result = await plan(memory, claude_dir)
    by_folder = {item.source.split("/")[1]: item for item in result.items}
    assert by_folder[claude_slug(repo)].action == "skip"
    assert "index" in by_folder[claude_slug(repo)].reason
    assert by_folder["-nowhere-old-style"].action == "add"


async def test_the_same_memory_in_two_folders_of_one_project_is_imported_once(
    memory: Memory, claude_dir: Path, repo: Path
) -> None:
    worktree = repo.parent / "quotes-api.worktree"  # another checkout of the same repository
    subprocess.run(["git", "clone", "-q", str(repo), str(worktree)], check=True, timeout=30)
    subprocess.run(
        ["git", "-C", str(worktree), "remote", "set-url", "origin", "https://github.com/acme/quotes-api"],
        check=True,
        timeout=30,
    )
    memory_file(claude_dir, claude_slug(repo), "feedback_tests.md", FEEDBACK)
    memory_file(claude_dir, claude_slug(worktree), "feedback_tests.md", FEEDBACK)
    result = await plan(memory, claude_dir)
    assert sorted(item.action for item in result.items) == ["add", "present"]
    await apply_import(memory, result)
    assert len(note_files(memory)) == 1


async def test_another_machines_import_of_the_same_path_is_not_overwritten(
    memory: Memory, claude_dir: Path, repo: Path
) -> None:
    """Each machine has its own Claude Code memory: the laptop's file at the same path is
    another file. Its note stays as it is; an identical file is not imported twice."""
    slug = claude_slug(repo)
    memory_file(claude_dir, slug, "feedback_tests.md", FEEDBACK)
    memory_file(claude_dir, slug, "staging.md", PLAIN)
    laptop = {}
    for name, text in (("feedback_tests.md", "The laptop learned something else."), ("staging.md", PLAIN)):
        draft = NoteDraft(
            type="semantic",
            title=name,
            body=text,
            project=PROJECT,
            prov_source="import",
            extra={
                SOURCE_KEY: f"laptop:projects/{slug}/memory/{name}",
                HASH_KEY: hashlib.sha256(text.encode()).hexdigest(),
            },
        )
        laptop[name] = await memory.write(draft)  # as if synced from the laptop
    result = await plan(memory, claude_dir)
    assert actions(result) == {"feedback_tests.md": "add", "staging.md": "present"}
    await apply_import(memory, result)
    assert (await memory.get(laptop["feedback_tests.md"].id)).body == "The laptop learned something else."
    assert len(note_files(memory)) == 3


async def test_secrets_in_memory_files_are_redacted(memory: Memory, claude_dir: Path, repo: Path) -> None:
    token = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
    memory_file(claude_dir, claude_slug(repo), "deploy.md", f"# Deploy\n\nThe CI token is {token}.\n")
    result = await apply_import(memory, await plan(memory, claude_dir))
    assert result.plan.items[0].redacted
    assert not any(token.encode() in text for text in note_files(memory).values())


async def test_symbolic_links_are_never_followed(memory: Memory, claude_dir: Path, isolated_env: Path) -> None:
    secret = isolated_env / ".ssh" / "id_ed25519"
    secret.parent.mkdir()
    secret.write_text("-----BEGIN OPENSSH PRIVATE KEY----- secret-material\n")
    outside = isolated_env / "elsewhere" / "memory"
    outside.mkdir(parents=True)
    (outside / "notes.md").write_text("secret-material from a linked folder\n")

    memory_file(claude_dir, "-a-project", "ok.md", PLAIN)
    (claude_dir / "projects" / "-a-project" / "memory" / "key.md").symlink_to(secret)
    (claude_dir / "projects" / "-linked-memory").mkdir()
    (claude_dir / "projects" / "-linked-memory" / "memory").symlink_to(outside)
    (claude_dir / "projects" / "-linked-folder").symlink_to(outside.parent)

    result = await plan(memory, claude_dir)
    assert actions(result) == {"ok.md": "add", "key.md": "problem", "memory": "problem", "-linked-folder": "problem"}
    assert all("symbolic link" in item.reason for item in result.items if item.action == "problem")
    await apply_import(memory, result)
    assert not any(b"secret-material" in text for text in note_files(memory).values())


async def test_hostile_file_names_and_slugs_are_handled_safely(
    memory: Memory, claude_dir: Path, isolated_env: Path
) -> None:
    folder = claude_dir / "projects" / "-..-..-etc"
    (folder / "memory").mkdir(parents=True)
    names = ["a\nb.md", "--help.md", "$(touch pwned).md", "..md", "-..-passwd.md"]  # ..md: hidden, skipped
    for number, name in enumerate(names):
        (folder / "memory" / name).write_text(f"Fact number {number}.\n")
    os.mkdir(os.fsencode(folder / "memory") + b"/\xff\xfe.md")  # a directory named like a note: ignored
    with open(os.fsencode(folder / "memory") + b"/\xff.md", "w") as handle:  # not UTF-8
        handle.write("A name that is not UTF-8.\n")
    outside_before = {p for p in isolated_env.rglob("*") if ".anamnesis" not in p.parts}

    result = await plan(memory, claude_dir)
    assert sorted(item.action for item in result.items) == ["add"] * 5
    for item in result.items:
        assert "\n" not in item.source
        assert item.note is not None
        assert "\n" not in item.note.title
        assert "\n" not in item.note.project
    await apply_import(memory, result)

    home = memory.config.home
    written = [p for p in home.rglob("*.md") if ".git" not in p.parts and p.name != "README.md"]
    assert len(written) == 5
    assert all(re.fullmatch(r"memory/semantic/[0-9A-Z]{26}\.md", p.relative_to(home).as_posix()) for p in written)
    assert {p for p in isolated_env.rglob("*") if ".anamnesis" not in p.parts} == outside_before  # nothing else
    again = await plan(memory, claude_dir)
    assert {item.action for item in again.items} == {"same"}


# -- anamnesis-memory 0.1.3 stores ------------------------------------------------------------------

OLD_NOTE = """\
---
id: 01JD3W6Q2M8Z4T9K7B5X0R1C2V
type: semantic
title: Billing uses Stripe
project: github.com/acme/billing
machine_id: laptop
scope: portable
user_id: self
workspace_id: personal
prov_source: human
confidence: 1.0
supersedes: 01JC0000000000000000000000
created_at: '2026-10-01T09:00:00Z'
updated_at: '2026-10-02T09:00:00Z'
tags:
- billing
---
Stripe is the payment provider; webhooks land in billing/webhooks.py.
"""
LOCAL_NOTE = OLD_NOTE.replace("01JD3W6Q2M8Z4T9K7B5X0R1C2V", "01JD3W6Q2M8Z4T9K7B5X0R1C2W").replace(
    "Billing uses Stripe", "Laptop has the sandbox keys"
)


def old_store(root: Path) -> Path:
    """A 0.1.3 home with good notes, broken files, and one note this home already has."""
    (root / "memory" / "semantic").mkdir(parents=True)
    (root / "memory" / "procedural").mkdir(parents=True)
    (root / "local" / "semantic").mkdir(parents=True)
    (root / "memory" / "semantic" / "01JD3W6Q2M8Z4T9K7B5X0R1C2V.md").write_text(OLD_NOTE)
    (root / "local" / "semantic" / "01JD3W6Q2M8Z4T9K7B5X0R1C2W.md").write_text(LOCAL_NOTE)
    (root / "memory" / "procedural" / "no-front-matter.md").write_text("Just text.\n")
    (root / "memory" / "procedural" / "bad-yaml.md").write_text("---\nid: [unclosed\ntype: semantic\n---\nx\n")
    (root / "memory" / "procedural" / "no-id.md").write_text("---\ntype: procedural\ntitle: T\n---\nx\n")
    (root / "memory" / "semantic" / "01JEXISTING0000000000000000.md").write_text(
        OLD_NOTE.replace("01JD3W6Q2M8Z4T9K7B5X0R1C2V", "01JEXISTING0000000000000000")
    )
    return root


async def test_a_0_1_3_store_is_copied_by_id_and_files_that_do_not_parse_are_reported(
    memory: Memory, isolated_env: Path
) -> None:
    await memory.write(
        NoteDraft(type="semantic", title="Mine", body="Already here.", note_id="01JEXISTING0000000000000000")
    )
    store = old_store(isolated_env / "old-home")
    result = await plan(memory, None, (store,))
    by_file = {item.source: item for item in result.items}
    assert {k: v.action for k, v in by_file.items()} == {
        "memory/semantic/01JD3W6Q2M8Z4T9K7B5X0R1C2V.md": "add",
        "local/semantic/01JD3W6Q2M8Z4T9K7B5X0R1C2W.md": "add",
        "memory/semantic/01JEXISTING0000000000000000.md": "present",
        "memory/procedural/no-front-matter.md": "problem",
        "memory/procedural/bad-yaml.md": "problem",
        "memory/procedural/no-id.md": "problem",
    }
    assert "front-matter" in by_file["memory/procedural/no-front-matter.md"].reason
    assert "'id'" in by_file["memory/procedural/no-id.md"].reason

    await apply_import(memory, result)
    copied = await memory.get("01JD3W6Q2M8Z4T9K7B5X0R1C2V")
    assert (copied.title, copied.machine_id, copied.created_at, copied.prov_source) == (
        "Billing uses Stripe",
        "laptop",
        "2026-10-01T09:00:00Z",
        "human",
    )
    assert copied.supersedes == ("01JC0000000000000000000000",)  # 0.1.3's lone-string form, read as a list
    assert (await memory.get("01JD3W6Q2M8Z4T9K7B5X0R1C2W")).scope == "machine-local"  # the folder decides
    assert (await memory.get("01JEXISTING0000000000000000")).title == "Mine"  # ours is never replaced

    head = git(memory, "rev-parse", "HEAD")
    again = await plan(memory, None, (store,))
    assert again.count("add") == 0
    assert again.count("present") == 3
    assert (await apply_import(memory, again)).commit is None
    assert git(memory, "rev-parse", "HEAD") == head


async def test_a_store_given_by_its_memory_folder_works_and_secrets_are_redacted(
    memory: Memory, isolated_env: Path
) -> None:
    store = old_store(isolated_env / "old-home")
    token = "sk-" + "proj" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6"
    path = store / "memory" / "semantic" / "01JD3W6Q2M8Z4T9K7B5X0R1C2V.md"
    path.write_text(OLD_NOTE.replace("billing/webhooks.py.", f"billing/webhooks.py with key {token}."))
    result = await plan(memory, None, (store / "memory",))
    assert result.count("add") == 2  # memory/ only: the local note is not in it
    await apply_import(memory, result)
    assert token not in (await memory.get("01JD3W6Q2M8Z4T9K7B5X0R1C2V")).body


async def test_importing_from_this_home_or_from_a_folder_that_is_no_store_is_refused(
    memory: Memory, isolated_env: Path, config: Config
) -> None:
    with pytest.raises(ImportSourceError, match="this home"):
        await plan(memory, None, (config.home,))
    (isolated_env / "random").mkdir()
    with pytest.raises(ImportSourceError, match="not an anamnesis store"):
        await plan(memory, None, (isolated_env / "random",))
    with pytest.raises(ImportSourceError, match="no such folder"):
        await plan(memory, None, (isolated_env / "missing",))


# -- the command line ----------------------------------------------------------------------------------


async def test_cli_import_shows_then_applies_then_adds_nothing(config: Config, claude_dir: Path, repo: Path) -> None:
    memory_file(claude_dir, claude_slug(repo), "feedback_tests.md", FEEDBACK)
    store = old_store(config.home.parent / "old-home")

    shown = anamnesis("import", "--from", str(store))
    assert shown.returncode == 0, shown.stderr
    assert f"Claude Code memory files in {claude_dir / 'projects'}:" in shown.stdout
    assert "add      projects/" in shown.stdout
    assert "Integration tests hit a real database" in shown.stdout
    assert "3 to add, 0 already here, 3 not readable" in shown.stdout
    assert "problem  memory/procedural/bad-yaml.md" in shown.stdout
    assert "Dry run: nothing changed. `anamnesis import --apply` adds 4 notes" in shown.stdout

    applied = anamnesis("import", "--from", str(store), "--apply", "--json")
    assert applied.returncode == 0, applied.stderr
    data = json.loads(applied.stdout)
    assert data["applied"] is True
    assert data["commit"]
    assert data["counts"]["add"] == 4
    assert data["counts"]["problem"] == 3

    again = json.loads(anamnesis("import", "--from", str(store), "--json").stdout)
    assert again["counts"]["add"] == again["counts"]["update"] == 0
    search = json.loads(anamnesis("search", "docker", "postgres", "--project", PROJECT, "--json").stdout)
    assert len(search["hits"]) == 1
    assert anamnesis("import", "--no-claude", "--from", str(config.home)).returncode == 1


def test_cli_import_help_explains_and_gives_an_example(anamnesis_home: Path) -> None:
    result = anamnesis("import", "--help")
    assert result.returncode == 0
    for words in ("CLAUDE_CONFIG_DIR", "--from", "--apply", "example:", "anamnesis import --apply"):
        assert words in result.stdout


def test_cli_import_reads_claude_config_dir_not_the_default_folder(
    isolated_env: Path, anamnesis_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert anamnesis("init", "--machine-id", "desktop", "--no-claude").returncode == 0
    moved = isolated_env / "claude-config"
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(moved))
    memory_file(moved, "-nowhere-app", "moved.md", "Memory in the configured folder.\n")
    memory_file(isolated_env / ".claude", "-nowhere-app", "default.md", "Memory in the default folder.\n")
    data = json.loads(anamnesis("import", "--json").stdout)
    assert [item["source"] for item in data["items"]] == ["projects/-nowhere-app/memory/moved.md"]
    assert data["sources"] == [str(moved / "projects")]
    explicit = json.loads(anamnesis("import", "--json", "--claude-dir", str(isolated_env / ".claude")).stdout)
    assert [item["source"] for item in explicit["items"]] == ["projects/-nowhere-app/memory/default.md"]


def test_cli_import_shows_progress_on_a_terminal_and_nothing_in_a_pipe(
    isolated_env: Path, anamnesis_home: Path
) -> None:
    assert anamnesis("init", "--machine-id", "desktop", "--no-claude").returncode == 0
    store = isolated_env / "old" / "memory" / "semantic"
    store.mkdir(parents=True)
    for i in range(30):
        note_id = f"01JD3W6Q2M8Z4T9K7B5X0R1C{i:02d}"
        (store / f"{note_id}.md").write_text(f"---\nid: {note_id}\ntype: semantic\ntitle: Fact {i}\n---\nbody {i}\n")
    piped = anamnesis("import", "--no-claude", "--from", str(isolated_env / "old"))
    assert piped.returncode == 0
    assert piped.stderr == ""
    code, out, terminal = run_in_pty(["import", "--no-claude", "--from", str(isolated_env / "old"), "--apply"])
    assert code == 0
    assert "Imported 30 notes" in out
    assert "reading [" in terminal
    assert "writing [" in terminal
    assert "30/30" in terminal
