"""The notes' git repository, driven through the real git CLI on asyncio and trio."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import anyio
import pytest

from anamnesis.errors import GitError
from anamnesis.gitrepo import GitRepo
from tests.conftest import both_backends

pytestmark = [both_backends, pytest.mark.anyio]


def git(cwd: Path, *args: str) -> str:
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=30)
    return result.stdout.strip()


@pytest.fixture
async def repo(tmp_path: Path) -> GitRepo:
    repo = GitRepo(tmp_path / "memory", "desktop")
    await repo.init()
    return repo


def write(repo: GitRepo, rel: str, text: str) -> None:
    path = repo.path / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


async def test_init_creates_a_repo_on_branch_main_once(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "memory", "desktop")
    assert not await repo.is_repo()

    assert await repo.init() is True
    assert await repo.init() is False

    assert await repo.is_repo()
    assert await repo.branch() == "main"
    assert await repo.head() is None


async def test_commits_are_authored_and_committed_by_the_machine(repo: GitRepo) -> None:
    write(repo, "semantic/a.md", "a\n")

    head = await repo.commit_all("anamnesis: write a")

    assert head is not None
    assert head == await repo.head()
    assert git(repo.path, "log", "-1", "--format=%an|%ae|%cn|%ce|%s") == (
        "desktop|anamnesis@desktop|desktop|anamnesis@desktop|anamnesis: write a"
    )


async def test_commit_all_with_nothing_changed_makes_no_commit(repo: GitRepo) -> None:
    write(repo, "semantic/a.md", "a\n")
    first = await repo.commit_all("first")

    assert await repo.commit_all("again") is None
    assert await repo.head() == first


async def test_commit_paths_commits_only_those_paths(repo: GitRepo) -> None:
    write(repo, "semantic/mine.md", "mine\n")
    write(repo, "semantic/someone-elses.md", "not yet\n")

    head = await repo.commit_paths(["semantic/mine.md"], "anamnesis: write mine")

    assert head is not None
    assert git(repo.path, "ls-files") == "semantic/mine.md"
    assert await repo.status_paths() == [("??", "semantic/someone-elses.md")]


async def test_commit_paths_records_a_deletion(repo: GitRepo) -> None:
    write(repo, "semantic/a.md", "a\n")
    await repo.commit_all("add")
    (repo.path / "semantic" / "a.md").unlink()

    assert await repo.commit_paths(["semantic/a.md"], "anamnesis: delete a") is not None

    assert git(repo.path, "ls-files") == ""
    assert await repo.status_paths() == []


async def test_commit_paths_without_changes_makes_no_commit(repo: GitRepo) -> None:
    write(repo, "semantic/a.md", "a\n")
    first = await repo.commit_all("add")

    assert await repo.commit_paths(["semantic/a.md"], "nothing") is None
    assert await repo.commit_paths([], "nothing") is None
    assert await repo.head() == first


async def test_status_lists_odd_file_names_exactly(repo: GitRepo) -> None:
    names = ["semantic/with space.md", "semantic/ünïcödé.md", 'semantic/quote".md', "semantic/new\nline.md"]
    for name in names:
        write(repo, name, "x\n")

    assert sorted(await repo.status_paths()) == sorted(("??", name) for name in names)

    await repo.commit_paths(names, "odd names")
    assert await repo.status_paths() == []


async def test_status_reports_a_staged_rename_by_its_new_path(repo: GitRepo) -> None:
    write(repo, "semantic/a.md", "some content long enough to be a rename\n")
    await repo.commit_all("add")
    (repo.path / "procedural").mkdir()
    git(repo.path, "mv", "semantic/a.md", "procedural/a.md")
    write(repo, "episodic/b.md", "b\n")

    status = await repo.status_paths()

    assert sorted(status) == [("??", "episodic/b.md"), ("R ", "procedural/a.md")]


async def test_a_failing_hook_or_signing_setup_never_blocks_a_commit(repo: GitRepo) -> None:
    hook = repo.path / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\necho refused >&2\nexit 1\n")
    hook.chmod(0o755)
    git(repo.path, "config", "commit.gpgSign", "true")
    git(repo.path, "config", "user.signingKey", "NO-SUCH-KEY")
    write(repo, "semantic/a.md", "a\n")

    assert await repo.commit_all("with hostile config") is not None
    assert await repo.commit_paths([], "x") is None


async def test_history_of_a_path_is_newest_first_and_follows_a_rename(repo: GitRepo) -> None:
    write(repo, "semantic/a.md", "first version of a note that is long enough\n")
    await repo.commit_all("one")
    write(repo, "semantic/a.md", "second version of a note that is long enough\n")
    await repo.commit_all("two")
    (repo.path / "procedural").mkdir()
    git(repo.path, "mv", "semantic/a.md", "procedural/a.md")
    await repo.commit_all("three: type changed")

    paths = ["procedural/a.md", "semantic/a.md", "episodic/a.md"]
    history = await repo.note_log(paths)

    assert [c.subject for c in history] == ["three: type changed", "two", "one"]
    assert [c.path for c in history] == ["procedural/a.md", "semantic/a.md", "semantic/a.md"]
    assert not any(c.deleted for c in history)
    assert {c.author for c in history} == {"desktop"}
    assert {c.email for c in history} == {"anamnesis@desktop"}
    assert all(len(c.sha) == 40 for c in history)
    assert await repo.note_log(paths, limit=1) == history[:1]


async def test_history_paths_are_literal_so_a_look_alike_name_is_not_matched(repo: GitRepo) -> None:
    write(repo, "semantic/a*.md", "a file whose name is a glob pattern\n")
    write(repo, "semantic/ab.md", "another note\n")
    await repo.commit_all("two notes")

    assert [c.path for c in await repo.note_log(["semantic/a*.md"])] == ["semantic/a*.md"]


async def test_history_of_an_unknown_path_is_empty(repo: GitRepo) -> None:
    assert await repo.note_log(["semantic/nothing.md"]) == []


async def test_failed_git_command_raises_git_error_with_its_details(repo: GitRepo) -> None:
    with pytest.raises(GitError) as caught:
        await repo.run("rev-parse", "--verify", "no-such-ref")

    error = caught.value
    assert error.argv == ("git", "rev-parse", "--verify", "no-such-ref")
    assert error.code != 0
    assert "no-such-ref" in str(error)


async def test_unchecked_failure_returns_the_result(repo: GitRepo) -> None:
    result = await repo.run("rev-parse", "--verify", "no-such-ref", check=False)

    assert result.returncode != 0


async def test_a_hung_git_command_is_stopped_at_its_deadline(repo: GitRepo) -> None:
    fifo = repo.path / "pipe"
    os.mkfifo(fifo)  # git blocks opening a FIFO that nobody writes to

    with pytest.raises(GitError) as caught:
        await repo.run("hash-object", str(fifo), timeout=0.5)

    assert caught.value.code == -1
    assert "timed out" in str(caught.value)


async def test_a_directory_that_is_not_a_repo_says_so(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path, "desktop")

    assert not await repo.is_repo()
    assert await repo.head() is None


async def test_git_that_is_not_installed_raises_git_error(repo: GitRepo, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(repo.path / "no-bin-here"))

    with pytest.raises(GitError) as caught:
        await repo.run("status")

    assert "not installed" in str(caught.value)


async def test_commit_all_takes_in_every_new_note(repo: GitRepo) -> None:
    for i in range(50):
        write(repo, f"semantic/{i:03}.md", f"note {i}\n")

    with anyio.fail_after(60):
        assert await repo.commit_all("fifty notes") is not None

    assert len(git(repo.path, "ls-files").splitlines()) == 50
