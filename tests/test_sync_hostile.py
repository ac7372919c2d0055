"""A compromised or buggy machine pushes to the hub: what it sends never escapes the home, runs
anything, or carries a secret past the gate.

The attacker is a plain `git` clone of the hub's bare repository that commits what no
Anamnesis machine would write and pushes it; the victims are real machines syncing through
the real SSH hub.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from anamnesis.doctor import run_doctor
from anamnesis.errors import SyncError
from anamnesis.ids import new_ulid
from anamnesis.memory import NoteDraft, open_memory
from anamnesis.search import SearchFilters
from tests.hubserver import Hub, Machine, make_machine

pytestmark = pytest.mark.anyio
SECRET = "ghp_R8x2Lq9ZtV4mN7pK1sW3yB6cD0fH5jE2aG8u"


async def git(cwd: Path, *args: str) -> str:
    result = await anyio.run_process(["git", "-C", str(cwd), *args])
    return result.stdout.decode().strip()


async def hostile_push(hub: Hub, base: Path, change: Callable[[Path], None], message: str) -> str:
    """Clone the hub, let `change` edit the work tree, commit everything and push; the commit."""
    work = base / f"attacker-{new_ulid()}"
    await anyio.run_process(["git", "clone", "-q", str(hub.repo()), str(work)])
    change(work)
    await git(work, "add", "-A")
    await git(work, "commit", "-q", "--no-verify", "-m", message)
    await git(work, "push", "-q", "origin", "HEAD:main")
    return await git(work, "rev-parse", "HEAD")


async def synced_pair(tmp_path: Path, hub: Hub, seed_type: str = "semantic") -> tuple[Machine, Machine]:
    """A laptop and a desktop that both hold one note, synced through the hub."""
    laptop = await make_machine(tmp_path, "laptop", hub)
    desktop = await make_machine(tmp_path, "desktop", hub)
    await laptop.write("Seed", f"the first {seed_type} note", type=seed_type)
    await laptop.sync()
    await desktop.sync()
    return laptop, desktop


async def sync_error(machine: Machine) -> str:
    """The message of the SyncError this machine's sync ends with ("" when it syncs)."""
    try:
        await machine.sync()
    except SyncError as exc:
        return str(exc)
    return ""


async def hub_log(hub: Hub) -> bytes:
    return (await anyio.run_process(["git", "--git-dir", str(hub.repo()), "log", "-p", "--all"])).stdout


async def hub_files(hub: Hub) -> list[str]:
    listing = await anyio.run_process(["git", "--git-dir", str(hub.repo()), "ls-tree", "-r", "--name-only", "main"])
    return listing.stdout.decode().split()


async def titles_found(config: object, words: str) -> list[str]:
    async with open_memory(config) as memory:  # type: ignore[arg-type]
        return [hit.title for hit in await memory.search(words, SearchFilters())]


async def test_a_type_directory_turned_into_a_link_on_the_hub_never_reaches_the_work_tree(
    tmp_path: Path, hub: Hub
) -> None:
    _, desktop = await synced_pair(tmp_path, hub, "procedural")
    outside = tmp_path / "outside"
    outside.mkdir()

    def plant(work: Path) -> None:
        shutil.rmtree(work / "procedural")
        (work / "procedural").symlink_to(outside, target_is_directory=True)

    commit = await hostile_push(hub, tmp_path, plant, "procedural is a link now")

    message = await sync_error(desktop)

    assert not (desktop.memory_dir / "procedural").is_symlink()
    assert await titles_found(desktop.config, "seed procedural") == ["Seed"]
    assert "'procedural'" in message
    assert "a symbolic link" in message
    assert commit[:7] in message
    note = await desktop.write("After the attack", "a note written after the hub was tampered with", type="procedural")
    assert (desktop.memory_dir / "procedural" / f"{note.id}.md").is_file()
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize(
    ("plant", "path", "problem"),
    [
        pytest.param(
            lambda work, outside: (work / "semantic" / f"{new_ulid()}.md").symlink_to(outside / "secret.txt"),
            "semantic/",
            "a symbolic link",
            id="linked-note",
        ),
        pytest.param(
            lambda work, outside: (work / ".env").write_text("TOKEN=x\n"),
            ".env",
            "outside the note layout",
            id="stray-file",
        ),
        pytest.param(
            lambda work, outside: (work / "semantic" / "notes.md.bak").write_text("x\n"),
            "semantic/notes.md.bak",
            "outside the note layout",
            id="backup-file",
        ),
    ],
)
async def test_what_no_machine_writes_is_refused_with_the_commit_named_and_nothing_taken_in(
    tmp_path: Path, hub: Hub, plant: Callable[[Path, Path], None], path: str, problem: str
) -> None:
    laptop, desktop = await synced_pair(tmp_path, hub)
    head = await desktop.git("rev-parse", "HEAD")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("---\nid: X\ntype: semantic\ntitle: Stolen\n---\nroot password hunter2\n")
    await laptop.write("Innocent", "written on the laptop just before the attack")
    await laptop.sync()
    commit = await hostile_push(hub, tmp_path, lambda work: plant(work, outside), "hostile")

    message = await sync_error(desktop)

    assert not [p for p in desktop.memory_dir.rglob("*") if p.is_symlink()]
    assert await desktop.git("rev-parse", "HEAD") == head  # nothing taken in, not even the good note
    assert await desktop.git("status", "--porcelain") == ""
    assert problem in message
    assert path in message
    assert commit[:7] in message


async def test_a_hub_gitattributes_cannot_run_a_filter_the_user_configured(
    tmp_path: Path, hub: Hub, isolated_env: Path
) -> None:
    _, desktop = await synced_pair(tmp_path, hub)

    def plant(work: Path) -> None:
        (work / ".gitattributes").write_text("* filter=crypt merge=crypt\n")
        (work / "semantic" / "extra.md").write_text("---\nid: extra\ntype: semantic\ntitle: Extra\n---\nbody\n")

    commit = await hostile_push(hub, tmp_path, plant, "attributes")
    ran = tmp_path / "filter-ran"
    # A filter and a merge driver this user set up for their other repositories (a decryption tool).
    with (isolated_env / ".gitconfig").open("a") as config:
        config.write(f'[filter "crypt"]\n\tsmudge = "touch {ran}; cat"\n\tclean = "touch {ran}; cat"\n')
        config.write(f'[merge "crypt"]\n\tdriver = "touch {ran}; false"\n')
    message = await sync_error(desktop)

    assert not ran.exists()
    assert ".gitattributes" in message
    assert commit[:7] in message
    assert (desktop.memory_dir / ".gitattributes").read_text() == "*.md text eol=lf\n"
    await desktop.write("Later", "written after the refusal")  # commits here run no filter either
    assert not ran.exists()


async def test_files_that_are_not_notes_stay_out_of_commits_and_the_sync_says_so(tmp_path: Path, hub: Hub) -> None:
    laptop = await make_machine(tmp_path, "laptop", hub)
    note = await laptop.write("Real note", "nothing secret here")
    (laptop.memory_dir / ".env").write_text(f"GITHUB_TOKEN={SECRET}\n")
    (laptop.memory_dir / "semantic" / f"{note.id}.md.bak").write_text(f"old copy with {SECRET}\n")

    report = await laptop.sync()

    assert report.pushed
    assert f"semantic/{note.id}.md" in await hub_files(hub)
    assert ".env" not in await hub_files(hub)
    assert SECRET.encode() not in await hub_log(hub)
    assert sorted(report.as_dict()["left_out"]) == [".env", f"semantic/{note.id}.md.bak"]
    assert ".env" in report.summary()
    assert (laptop.memory_dir / ".env").exists()  # left where the user put it
    findings = await run_doctor(laptop.config)
    assert any(f.level == "warning" and ".env" in f.message and "never sends" in f.message for f in findings)


async def test_a_copy_of_a_note_under_another_name_cannot_carry_its_secret_past_the_gate(
    tmp_path: Path, hub: Hub
) -> None:
    laptop = await make_machine(tmp_path, "laptop", hub)
    desktop = await make_machine(tmp_path, "desktop", hub)
    leaky = await laptop.write("CI setup", f"The CI token is {SECRET}")
    note_path = f"semantic/{leaky.id}.md"
    # Byte for byte the same blob at a path git lists first (`.fleet/` sorts before `semantic/`).
    (laptop.memory_dir / ".fleet" / "aaa.json").parent.mkdir(exist_ok=True)
    (laptop.memory_dir / ".fleet" / "aaa.json").write_bytes((laptop.memory_dir / note_path).read_bytes())
    # And a file committed by hand outside the layout, holding another secret.
    (laptop.memory_dir / "notes.txt").write_text("aws AKIAIOSFODNN7EXAMPLQ and token glpat-Zx8Kq2Lm9Np4Rt7Vw1Yb\n")
    await laptop.git("add", "notes.txt")
    await laptop.git("commit", "-q", "-m", "by hand")

    report = await laptop.sync()

    log = await hub_log(hub)
    assert SECRET.encode() not in log
    assert b"glpat-" not in log
    assert "notes.txt" not in await hub_files(hub)
    withheld = {w.path: w.kinds for w in report.withheld}
    assert withheld[note_path] == ("github-token",)
    assert withheld[".fleet/aaa.json"] == ("github-token",)
    assert "notes.txt" in withheld
    await desktop.sync()  # and what the hub holds is taken in elsewhere without complaint
    assert await titles_found(desktop.config, "CI setup") == []


async def test_a_note_whose_id_is_not_its_file_name_is_edited_in_place(tmp_path: Path, hub: Hub) -> None:
    laptop = await make_machine(tmp_path, "laptop", hub)
    desktop = await make_machine(tmp_path, "desktop", hub)
    note = await laptop.write("Shared note", "the old walrus text")
    await laptop.sync()
    other_id = new_ulid()

    def rename_inside(work: Path) -> None:
        path = work / "semantic" / f"{note.id}.md"
        path.write_text(path.read_text().replace(f"id: {note.id}", f"id: {other_id}"))

    await hostile_push(hub, tmp_path, rename_inside, "id changed inside the file")
    await desktop.sync()

    async with open_memory(desktop.config) as memory:
        read = await memory.get(note.id)
        assert read.id == note.id
        await memory.write(NoteDraft(note_id=read.id, type=read.type, title=read.title, body="the new narwhal text"))
        files = sorted(p.name for p in (desktop.memory_dir / "semantic").glob("*.md"))
        assert files == [f"{note.id}.md"]
        assert [h.id for h in await memory.search("narwhal", SearchFilters())] == [note.id]
        assert await memory.search("walrus", SearchFilters()) == []


async def test_a_gitattributes_already_in_the_work_tree_runs_no_filter_or_driver_and_is_not_sent(
    tmp_path: Path, hub: Hub, isolated_env: Path
) -> None:
    laptop, desktop = await synced_pair(tmp_path, hub)
    ran = tmp_path / "filter-ran"
    with (isolated_env / ".gitconfig").open("a") as config:
        config.write(f'[filter "crypt"]\n\tsmudge = "touch {ran}; cat"\n\tclean = "touch {ran}; cat"\n')
        config.write(f'[merge "crypt"]\n\tdriver = "touch {ran}; false"\n')
    # Taken in before the hub check existed, or edited by hand.
    (desktop.memory_dir / ".gitattributes").write_text("* filter=crypt merge=crypt diff=crypt\n")
    seed = next(iter(desktop.note_files()))
    await laptop.write("Seed", "edited on the laptop", note_id=seed.rpartition("/")[2].removesuffix(".md"))
    await laptop.sync()
    await desktop.write("Desktop note", "so the desktop has to merge")

    report = await desktop.sync()

    assert not ran.exists()
    assert report.pushed
    assert report.left_out == [".gitattributes"]
    assert "crypt" not in await git(hub.repo(), "show", "main:.gitattributes")
