"""Project keys: the same repository gets the same key on every machine (DESIGN section 5)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from anamnesis.project import normalize_remote_url, resolve_project


def git(cwd: Path, *args: str) -> str:
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=30)
    return result.stdout.strip()


def make_repo(path: Path, origin: str | None = None) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    if origin is not None:
        git(path, "remote", "add", "origin", origin)
    return path


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/acme/quotes-api.git",
        "https://github.com/acme/quotes-api",
        "https://github.com/acme/quotes-api/",
        "https://github.com/acme/quotes-api.git/",
        "https://alice@github.com/acme/quotes-api.git",
        "https://alice:s3cret@github.com/acme/quotes-api.git",
        "http://github.com/acme/quotes-api",
        "git@github.com:acme/quotes-api.git",
        "git@github.com:acme/quotes-api",
        "github.com:acme/quotes-api.git",
        "git@github.com:/acme/quotes-api.git",
        "ssh://git@github.com/acme/quotes-api.git",
        "ssh://git@github.com:22/acme/quotes-api.git",
        "ssh://github.com:2222/acme/quotes-api",
        "git://github.com/acme/quotes-api.git",
        "HTTPS://GitHub.com/Acme/Quotes-API.git",
        "Git@GITHUB.COM:ACME/quotes-api.git",
        "  https://github.com/acme/quotes-api.git\n",
    ],
)
def test_every_spelling_of_one_origin_gives_the_same_project_key(url: str) -> None:
    assert normalize_remote_url(url) == "github.com/acme/quotes-api"


def test_nested_group_paths_are_kept() -> None:
    assert normalize_remote_url("git@gitlab.com:acme/backend/quotes.git") == "gitlab.com/acme/backend/quotes"


def test_a_local_path_used_as_origin_keeps_its_path() -> None:
    assert normalize_remote_url("/srv/git/quotes-api.git") == "srv/git/quotes-api"
    assert normalize_remote_url("file:///srv/git/quotes-api.git") == "srv/git/quotes-api"


def test_an_empty_origin_gives_no_key() -> None:
    assert normalize_remote_url("   ") == ""


def test_marker_file_is_found_walking_up_from_a_subdirectory(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "quotes", origin="git@github.com:acme/quotes-api.git")
    (root / ".anamnesis").mkdir()
    (root / ".anamnesis" / "project").write_text("acme/quotes\nsecond line is ignored\n")
    deep = root / "src" / "quotes" / "api"
    deep.mkdir(parents=True)

    assert resolve_project(deep) == "acme/quotes"


def test_nearest_marker_wins(tmp_path: Path) -> None:
    outer = tmp_path / "mono"
    inner = outer / "services" / "billing"
    inner.mkdir(parents=True)
    for directory, key in ((outer, "acme/mono"), (inner, "acme/billing")):
        (directory / ".anamnesis").mkdir()
        (directory / ".anamnesis" / "project").write_text(key + "\n")

    (inner / "src").mkdir()

    assert resolve_project(inner / "src") == "acme/billing"
    assert resolve_project(outer / "services") == "acme/mono"


def test_empty_marker_is_ignored(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "quotes", origin="https://github.com/acme/quotes-api.git")
    (repo / ".anamnesis").mkdir()
    (repo / ".anamnesis" / "project").write_text("  \n")

    assert resolve_project(repo) == "github.com/acme/quotes-api"


def test_origin_url_names_the_project_from_anywhere_in_the_repo(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "checkout-on-laptop", origin="git@github.com:Acme/Quotes-API.git")
    sub = repo / "docs"
    sub.mkdir()

    assert resolve_project(repo) == "github.com/acme/quotes-api"
    assert resolve_project(sub) == "github.com/acme/quotes-api"


def test_two_clones_at_different_paths_share_a_key(tmp_path: Path) -> None:
    desktop = make_repo(tmp_path / "desktop" / "code" / "api", origin="https://github.com/acme/quotes-api.git")
    laptop = make_repo(tmp_path / "laptop" / "src" / "quotes", origin="git@github.com:acme/quotes-api")

    assert resolve_project(desktop) == resolve_project(laptop) == "github.com/acme/quotes-api"


def test_only_the_origin_remote_counts(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "fork")
    git(repo, "remote", "add", "upstream", "https://github.com/upstream/quotes.git")
    git(repo, "remote", "add", "origin", "https://github.com/me/quotes.git")

    assert resolve_project(repo) == "github.com/me/quotes"


def test_linked_worktree_has_the_key_of_its_main_repository(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "quotes", origin="git@github.com:acme/quotes-api.git")
    (repo / "README.md").write_text("hi\n")
    git(repo, "add", "README.md")
    git(repo, "commit", "-q", "-m", "first")
    worktree = tmp_path / "elsewhere" / "quotes-feature"
    git(repo, "worktree", "add", "-q", "-b", "feature", str(worktree))
    assert (worktree / ".git").is_file()

    assert resolve_project(worktree) == "github.com/acme/quotes-api"


def test_repo_without_origin_is_named_by_its_top_level_directory(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "Side-Project")
    sub = repo / "src" / "pkg"
    sub.mkdir(parents=True)

    assert resolve_project(sub) == "side-project"


def test_directory_outside_any_repo_is_named_by_its_basename(tmp_path: Path) -> None:
    scratch = tmp_path / "Scratch"
    scratch.mkdir()

    assert resolve_project(scratch) == "scratch"


def test_home_directory_itself_is_global(isolated_env: Path) -> None:
    assert resolve_project(isolated_env, home=isolated_env) == "global"


def test_the_homes_own_anamnesis_directory_is_not_taken_as_a_marker(isolated_env: Path) -> None:
    store = isolated_env / ".anamnesis"
    store.mkdir()
    # The store lives at ~/.anamnesis, the very path a marker in ~ would have.
    (store / "project").write_text("not-a-project\n")
    scratch = isolated_env / "scratch"
    scratch.mkdir()

    assert resolve_project(scratch, home=isolated_env) == "scratch"
    assert resolve_project(isolated_env, home=isolated_env) == "global"


def test_marker_below_the_home_still_counts(isolated_env: Path) -> None:
    (isolated_env / ".anamnesis").mkdir()
    (isolated_env / ".anamnesis" / "project").write_text("not-a-project\n")
    project = isolated_env / "code" / "quotes"
    (project / ".anamnesis").mkdir(parents=True)
    (project / ".anamnesis" / "project").write_text("acme/quotes\n")

    assert resolve_project(project, home=isolated_env) == "acme/quotes"
