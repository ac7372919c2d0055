"""The command line as a user runs it: real subprocesses against a home in tmp."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from anamnesis.cli.parser import build_parser
from tests.terminal import run_in_pty

REPO = Path(__file__).resolve().parent.parent


def anamnesis(*args: str, stdin: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "anamnesis", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        check=False,
    )


def ok(*args: str, stdin: str | None = None, cwd: Path | None = None) -> str:
    result = anamnesis(*args, stdin=stdin, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def home(anamnesis_home: Path) -> Path:
    ok("init", "--machine-id", "desktop")
    return anamnesis_home


def test_init_creates_the_home_and_a_second_run_changes_nothing(anamnesis_home: Path) -> None:
    first = ok("init", "--machine-id", "desktop")
    assert "home ready at" in first
    assert (anamnesis_home / "memory" / ".git").is_dir()
    assert (anamnesis_home / "local").is_dir()
    assert (anamnesis_home / "index.db").is_file()
    config = anamnesis_home / "config.json"
    assert config.stat().st_mode & 0o777 == 0o600
    assert json.loads(config.read_text())["machine_id"] == "desktop"
    branch = subprocess.run(
        ["git", "-C", str(anamnesis_home / "memory"), "symbolic-ref", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert branch == "main"
    before = {p: p.stat().st_mtime_ns for p in anamnesis_home.rglob("*") if ".git" not in p.parts and p.suffix != ".db"}
    second = ok("init")
    assert "nothing changed" in second
    after = {p: p.stat().st_mtime_ns for p in anamnesis_home.rglob("*") if ".git" not in p.parts and p.suffix != ".db"}
    assert before == after


def test_written_note_is_printed_by_id_found_by_search_and_listed(home: Path, tmp_path: Path) -> None:
    note_id = ok(
        "write",
        "--type",
        "procedural",
        "--title",
        "Configs over scripts",
        "--tags",
        "convention,style",
        "--project",
        "github.com/acme/quotes-api",
        stdin="We always prefer configuration files over ad-hoc scripts in this repo.\n",
    ).strip()
    assert len(note_id) == 26
    note = json.loads(ok("get", note_id, "--json"))
    assert note["title"] == "Configs over scripts"
    assert note["body"] == "We always prefer configuration files over ad-hoc scripts in this repo."
    assert note["tags"] == ["convention", "style"]
    assert note["machine_id"] == "desktop"
    assert note["path"] == f"memory/procedural/{note_id}.md"
    found = json.loads(ok("search", "which", "configuration", "do", "we", "prefer", "--json"))
    assert [hit["id"] for hit in found["hits"]] == [note_id]
    assert "«configuration»" in found["hits"][0]["snippet"]
    assert set(found["hits"][0]) >= {"id", "type", "title", "project", "scope", "tags", "score", "snippet"}
    listed = json.loads(ok("list", "--json"))
    assert [n["id"] for n in listed["notes"]] == [note_id]
    assert listed["next_cursor"] is None


def test_write_defaults_to_the_project_of_the_working_directory(home: Path, tmp_path: Path) -> None:
    repo = tmp_path / "checkout"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(
        ["git", "-C", str(repo), "remote", "add", "origin", "git@github.com:Acme/Quotes-API.git"], check=True
    )
    note_id = ok("write", "-t", "semantic", "--title", "Uses Postgres 16", "Postgres 16 behind pgbouncer", cwd=repo)
    note_id = note_id.strip()
    assert json.loads(ok("get", note_id, "--json"))["project"] == "github.com/acme/quotes-api"


def test_list_pages_newest_first_with_a_cursor(home: Path) -> None:
    ids = [
        ok("write", "-t", "semantic", "--title", f"Fact number {i}", f"body {i}", "-p", "p").strip() for i in range(5)
    ]
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(3):
        page = json.loads(ok("list", "--limit", "2", "--json", *(["--cursor", cursor] if cursor else [])))
        seen += [n["id"] for n in page["notes"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(ids)
    assert len(seen) == 5
    bad = anamnesis("list", "--cursor", "not-a-cursor")
    assert bad.returncode == 1
    assert "cursor" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_commands_before_init_say_to_run_init(anamnesis_home: Path) -> None:
    result = anamnesis("search", "anything")
    assert result.returncode == 1
    assert "anamnesis init" in result.stderr
    assert "Traceback" not in result.stderr


def test_get_of_an_unknown_or_hostile_id_is_a_clear_error(home: Path) -> None:
    for note_id in ("01JD3W6Q2M8Z4T9K7B5X0R1C2V", "../../etc/passwd", "a/b"):
        result = anamnesis("get", note_id)
        assert result.returncode == 1
        assert "no note with id" in result.stderr
        assert "Traceback" not in result.stderr


def test_write_rejects_an_empty_title_and_body_without_writing(home: Path) -> None:
    assert anamnesis("write", "-t", "semantic", "--title", " ", "x").returncode == 1
    assert anamnesis("write", "-t", "semantic", "--title", "t", stdin="  \n").returncode == 1
    assert json.loads(ok("list", "--json"))["notes"] == []


def test_doctor_is_clean_on_a_fresh_home_and_fails_naming_a_broken_note(home: Path) -> None:
    assert anamnesis("doctor").returncode == 0
    broken = home / "memory" / "semantic" / "broken.md"
    broken.write_text("---\nid: x\ntype: semantic\ntitle: [unclosed\n---\nbody\n")
    result = anamnesis("doctor", "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False
    errors = [f for f in report["findings"] if f["level"] == "error"]
    assert any("memory/semantic/broken.md" in f["message"] and "YAML" in f["message"] for f in errors)


def test_reindex_reports_skipped_files_and_keeps_good_notes(home: Path) -> None:
    good = ok("write", "-t", "procedural", "--title", "Run tests with tox", "tox -e py311").strip()
    (home / "memory" / "procedural" / "junk.md").write_bytes(b"\x00\xff garbage")
    report = json.loads(ok("reindex", "--full", "--json"))
    assert report["added"] == 1
    assert [p["path"] for p in report["problems"]] == ["memory/procedural/junk.md"]
    assert json.loads(ok("search", "tox", "--json"))["hits"][0]["id"] == good


def test_reindex_shows_a_progress_bar_on_a_terminal_but_not_in_a_pipe(home: Path) -> None:
    for i in range(30):
        (home / "memory" / "semantic" / f"01JD3W6Q2M8Z4T9K7B5X0R1C{i:02d}.md").write_text(
            f"---\nid: 01JD3W6Q2M8Z4T9K7B5X0R1C{i:02d}\ntype: semantic\ntitle: Fact {i}\n---\nbody {i}\n"
        )
    code, _, terminal = run_in_pty(["reindex", "--full"])
    assert code == 0
    assert "indexing [" in terminal
    assert "30/30" in terminal
    piped = anamnesis("reindex", "--full")
    assert piped.returncode == 0
    assert piped.stderr == ""


def test_every_command_has_help_with_an_example() -> None:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    names = list(subparsers.choices)  # type: ignore[attr-defined]
    assert {"init", "write", "get", "list", "search", "reindex", "status", "doctor", "eval", "mcp"} <= set(names)
    for name in names:
        result = anamnesis(name, "--help")
        assert result.returncode == 0, name
        assert "example:" in result.stdout, name


RECALL_AT_5_FLOOR = 0.87
MRR_FLOOR = 0.70


def test_eval_run_scores_the_shipped_eval_set() -> None:
    queries = REPO / "evalset" / "queries.jsonl"
    if not queries.exists():
        pytest.fail("the shipped eval set evalset/queries.jsonl is missing")
    result = anamnesis("eval", "run", "--eval-set", str(queries), "--corpus", str(REPO / "evalset" / "notes"), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["cases"] >= 250
    assert report["recall@1"] <= report["recall@3"] <= report["recall@5"] <= report["recall@8"] <= 1.0
    # The recall gate: a change to search that loses ground on the shipped set fails CI.
    # Measured 2026-12-05 on 258 queries: hybrid recall@5 0.884, MRR 0.721; lexical alone
    # 0.791 / 0.643 (README, "Search quality").
    assert report["recall@5"] >= RECALL_AT_5_FLOOR, report["misses"]
    assert report["mrr"] >= MRR_FLOOR
    assert report["recall@5"] > report["lexical"]["recall@5"]
    # The prompt hook's gate (issue targets: right note shown for 40%, precision 35%, silent for
    # 90% of unrelated prompts; measured 57% / 71% / 98.5%).
    gate = report["prompt_gate"]
    assert gate["right_note_shown"] >= 0.5
    assert gate["precision"] >= 0.6
    assert gate["silent_on_unrelated"] >= 0.95


@pytest.mark.slow
def test_search_finds_what_was_meant_after_reindex_embeds_the_notes(home: None) -> None:
    ok(
        "write",
        "--type",
        "semantic",
        "--title",
        "Nightly export outage",
        "The nightly billing export died because the S3 credentials expired.",
    )
    ok("write", "--type", "procedural", "--title", "Commit style", "Commit messages use the imperative mood.")
    assert "Nothing found" in ok("search", "why did the invoices job fail")  # the vectors are not there yet
    assert "semantic search on: 2/2 notes embedded (2 just now)" in ok("reindex")
    assert "1. Nightly export outage" in ok("search", "why did the invoices job fail").splitlines()[0]
    assert "semantic  semantic search on: 2/2 notes embedded" in ok("status")


# -- JSON for scripts, failures included --------------------------------------------------------


def test_sync_json_without_a_hub_prints_json_with_the_error_and_fails(home: Path) -> None:
    result = anamnesis("sync", "--json")

    assert result.returncode != 0
    shown = json.loads(result.stdout)
    assert shown["ok"] is False
    assert "no hub configured" in shown["error"]


def test_sync_json_with_an_unreachable_hub_prints_json_with_the_error_and_fails(home: Path) -> None:
    from anamnesis.sync.peers import Peer, save_peer
    from tests.ports import unused_port

    save_peer(home / "config.json", Peer(name="home", url=f"ssh://git@127.0.0.1:{unused_port()}/srv/memory.git"))

    result = anamnesis("sync", "--json")

    assert result.returncode != 0
    shown = json.loads(result.stdout)
    assert shown["ok"] is False
    assert shown["error"]


def test_get_json_of_an_unknown_note_prints_json_with_the_error(home: Path) -> None:
    result = anamnesis("get", "01ZZZZZZZZZZZZZZZZZZZZZZZZ", "--json")

    assert result.returncode != 0
    assert "no note with id" in json.loads(result.stdout)["error"]


# -- what reaches the terminal ------------------------------------------------------------------

# Retitle the window, clear the screen, write the clipboard (OSC 52), reverse the text (bidi).
ESCAPES = ("\x1b]0;pwned\x07", "\x1b[2J", "\x1b]52;c;cm0gLXJmIH4=\x07", "\u202e")


def test_get_and_list_never_print_terminal_escapes_from_a_note(home: Path) -> None:
    title, project, tag = "Deploy" + ESCAPES[0] + ESCAPES[3], "acme" + ESCAPES[1], "ops" + ESCAPES[2]
    written = ok("write", "--type", "semantic", "--title", title, "--project", project, "--tags", tag, "Body.")
    note_id = written.strip()

    for args in (("get", note_id), ("list",), ("search", "Deploy", "--project", project)):
        shown = ok(*args)
        assert not {"\x1b", "\x07", "\u202e"} & set(shown), args
        assert "\\x1b" in shown, args  # shown, visibly, rather than dropped


def test_json_and_raw_output_keep_a_notes_text_exact(home: Path) -> None:
    title = "Deploy" + ESCAPES[0]
    note_id = ok("write", "--type", "semantic", "--title", title, "Body " + ESCAPES[1]).strip()

    assert json.loads(ok("get", note_id, "--json"))["title"] == title
    assert "Body " + ESCAPES[1] in ok("get", note_id, "--raw")  # the file, byte for byte


def test_the_cli_keeps_its_own_bold_and_dim_but_no_other_escape() -> None:
    from anamnesis.cli.output import terminal_safe

    styled = "\x1b[1mtitle\x1b[0m \x1b[2mid\x1b[0m\n\tbody"
    assert terminal_safe(styled) == styled
    assert terminal_safe("a\x1b[31mred\rb\x9b2J") == "a\\x1b[31mred\\x0db\\x9b2J"


def test_a_billion_laughs_note_from_a_peer_is_reported_not_expanded(home: Path) -> None:
    note_id = "01JD3W6Q2M8Z4T9K7B5X0R1C2V"
    laughs = ['lol0: &a0 ["lol"]'] + [f"lol{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    front = "\n".join([f"id: {note_id}", "type: semantic", "title: Laughs", *laughs])
    (home / "memory" / "semantic" / f"{note_id}.md").write_text(f"---\n{front}\n---\nbody\n", encoding="utf-8")

    reindexed = json.loads(ok("reindex", "--json"))
    shown = anamnesis("get", note_id, "--json")

    assert any("alias" in problem["reason"] for problem in reindexed["problems"])
    assert shown.returncode != 0
    assert "alias" in json.loads(shown.stdout)["error"]
