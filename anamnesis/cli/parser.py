"""The argument parser: every command, its options, and help text with an example."""

from __future__ import annotations

import argparse
import textwrap

from anamnesis import __version__
from anamnesis.edges import EXIT_STATUS_HELP
from anamnesis.notes import NOTE_TYPES, SCOPES

_DESCRIPTION = """\
Anamnesis: a memory for Claude Code that persists between sessions and follows you across
your machines. Every memory is a markdown note in ~/.anamnesis (ANAMNESIS_HOME overrides),
indexed for search on each machine."""


def _command(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    summary: str,
    details: str,
    example: str,
    handler: str,
) -> argparse.ArgumentParser:
    epilog = "example:\n" + textwrap.indent(textwrap.dedent(example).strip(), "  ")
    parser = subparsers.add_parser(
        name,
        help=summary,
        description=f"{summary}\n\n{textwrap.dedent(details).strip()}" if details else summary,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(handler=handler)
    return parser


def _json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON (stable shape, see README)")


def _filters(parser: argparse.ArgumentParser, project_help: str) -> None:
    parser.add_argument("--project", "-p", help=project_help)
    parser.add_argument("--type", "-t", choices=NOTE_TYPES, help="only notes of this type")
    parser.add_argument("--scope", choices=SCOPES, help="only portable (synced) or machine-local notes")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="anamnesis",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"Run `anamnesis COMMAND --help` for the options and an example of each command.\n\n{EXIT_STATUS_HELP}",
    )
    parser.add_argument("--version", action="version", version=f"anamnesis {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    init = _command(
        sub,
        "init",
        "create the memory home (idempotent)",
        """
        Creates ~/.anamnesis: memory/ (a git repo on branch main, synced), local/ (never
        synced), config.json (mode 0600, holding this machine's name) and the search index.
        Then wires Claude Code (CLAUDE_CONFIG_DIR honoured): the hooks in settings.json with
        this installation's absolute path, the MCP server at user scope in .claude.json, and
        permission for the read-only memory tools. Every other setting and hook is kept and
        each changed file is backed up first. Running it again changes nothing and says so.
        """,
        "anamnesis init --machine-id laptop",
        "init",
    )
    init.add_argument("--machine-id", help="this machine's name in history and the fleet (default: host name)")
    init.add_argument("--dry-run", action="store_true", help="show what would change in Claude Code's settings")
    init.add_argument("--no-claude", action="store_true", help="create the home only; leave Claude Code alone")
    _json_flag(init)

    write = _command(
        sub,
        "write",
        "write one note and print its id",
        """
        The body is the BODY argument, or standard input when BODY is omitted or '-'.
        The note belongs to the current project (from the git origin of the working
        directory) unless --project says otherwise; --project global makes it apply
        everywhere. Portable notes are committed to memory/ at once.
        """,
        """
        anamnesis write --type procedural --title "Configs over scripts" --tags convention \\
            "We prefer configuration files over ad-hoc scripts."
        git log -1 --stat | anamnesis write --type episodic --title "Release 2.3" -
        """,
        "write",
    )
    write.add_argument(
        "--type",
        "-t",
        required=True,
        choices=NOTE_TYPES,
        help="procedural: how we do things; semantic: facts, decisions; episodic: what happened",
    )
    write.add_argument("--title", required=True, help="a short, specific title (one line)")
    write.add_argument("body", nargs="?", default=None, help="the note's markdown body (default: stdin)")
    write.add_argument("--project", "-p", help="project key, or 'global' (default: the current project)")
    write.add_argument("--tags", default="", help="comma-separated tags, e.g. testing,ci")
    write.add_argument("--local", action="store_true", help="keep the note on this machine only (local/)")
    write.add_argument("--supersedes", default="", help="comma-separated ids of notes this one replaces")
    _json_flag(write)

    get = _command(sub, "get", "show one note by id", "", "anamnesis get 01JD3W6Q2M8Z4T9K7B5X0R1C2V", "get")
    get.add_argument("id", help="the note's id (as search and list print it)")
    get.add_argument("--raw", action="store_true", help="print the markdown file exactly as stored")
    _json_flag(get)

    list_ = _command(
        sub,
        "list",
        "list notes, newest first, a page at a time",
        "Prints a cursor for the next page when there is one; pass it back with --cursor.",
        "anamnesis list --project github.com/acme/quotes-api --type procedural --limit 20",
        "list",
    )
    _filters(list_, "only notes of this project key (default: all projects)")
    list_.add_argument("--tag", action="append", default=[], help="only notes with this tag (repeatable)")
    list_.add_argument("--limit", "-n", type=int, default=20, help="notes per page, 1-50 (default 20)")
    list_.add_argument("--cursor", help="continue after the page that printed this cursor")
    list_.add_argument("--include-superseded", action="store_true", help="also list notes retired by newer ones")
    _json_flag(list_)

    search = _command(
        sub,
        "search",
        "search notes by meaning words, best first",
        """
        Every word counts (common words like 'how' or 'the' do not); notes with all the
        words rank first, then notes with some of them. Title matches weigh more than body
        matches. Notes retired by a newer note (supersedes) are left out.
        """,
        'anamnesis search "how do we run database migrations" --project github.com/acme/billing',
        "search",
    )
    search.add_argument("query", nargs="+", help="what you are looking for, in plain words")
    _filters(search, "only this project and global notes (default: all projects)")
    search.add_argument("--limit", "-k", type=int, default=8, help="results, 1-50 (default 8)")
    _json_flag(search)

    reindex = _command(
        sub,
        "reindex",
        "bring the search index in step with the note files",
        """
        Reads only what changed since the last look (size, time, content hash); --full
        empties the index and reads every note. Files that do not parse are reported and
        skipped. Edits made by hand in memory/ are committed first.
        """,
        "anamnesis reindex --full",
        "reindex",
    )
    reindex.add_argument("--full", action="store_true", help="rebuild the index from scratch")
    _json_flag(reindex)

    upkeep = _command(
        sub,
        "upkeep",
        "pack the notes' repository, index its history, prune old state",
        """
        Packs memory/.git (every note is a commit, and git's automatic gc is off so that no
        background commit stalls on it), writes the commit-graph that makes a note's history
        fast, and forgets per-session files older than 45 days. The service runs this every
        hour, and so do the background capture and sync; run it by hand after a big import.
        """,
        "anamnesis upkeep --json",
        "upkeep",
    )
    _json_flag(upkeep)

    status = _command(sub, "status", "counts of notes, index and git state", "", "anamnesis status --json", "status")
    _json_flag(status)

    doctor = _command(
        sub,
        "doctor",
        "check the home and report what is wrong, with the fix",
        "Exits 1 when any check finds an error, 0 when there are at most warnings.",
        "anamnesis doctor",
        "doctor",
    )
    _json_flag(doctor)

    eval_ = _command(
        sub,
        "eval",
        "measure search quality over judged queries",
        "`eval run` prints recall@1/3/5/8 and MRR over an eval set (0.1.3's JSONL format).",
        "anamnesis eval run --eval-set evalset/queries.jsonl --corpus evalset/notes",
        "eval",
    )
    eval_sub = eval_.add_subparsers(title="eval commands", metavar="ACTION", dest="eval_action", required=True)
    eval_run = eval_sub.add_parser(
        "run",
        help="score search on an eval set",
        description="Score search on an eval set: recall@1/3/5/8 and MRR.",
        epilog="example:\n  anamnesis eval run --eval-set evalset/queries.jsonl --corpus evalset/notes --json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    eval_run.set_defaults(handler="eval_run")
    eval_run.add_argument("--eval-set", help="the JSONL eval set (default: <home>/eval/eval.jsonl)")
    eval_run.add_argument("--corpus", help="a folder of notes (<type>/<id>.md) to search instead of this home's memory")
    eval_run.add_argument("--include-unreviewed", action="store_true", help="also score cases not approved")
    _json_flag(eval_run)

    mcp = _command(
        sub,
        "mcp",
        "serve the memory to Claude Code as MCP tools over stdio",
        "Claude Code starts this itself once registered (`anamnesis init` registers it).",
        "claude mcp add --scope user anamnesis -- anamnesis mcp",
        "mcp",
    )
    del mcp

    capture = _command(
        sub,
        "capture",
        "capture a Claude Code session transcript into its episodic note",
        """
        The hooks call this detached at session end when a summary model or a hub is
        configured: it writes the model's summary (heuristic on any failure), then syncs.
        Secrets are redacted before anything is written.
        """,
        "anamnesis capture --transcript ~/.claude/projects/x/abc.jsonl --session-id abc",
        "capture",
    )
    capture.add_argument("--transcript", required=True, help="the session's transcript JSONL file")
    capture.add_argument("--session-id", required=True, help="the Claude Code session id")
    capture.add_argument("--project", help="project key (default: the current project)")
    capture.add_argument("--source", default="session-end", help="what triggered the capture (a tag)")
    capture.add_argument("--no-sync", action="store_true", help="no sync in this process (a detached push follows)")
    capture.add_argument("--no-llm", action="store_true", help="heuristic summary even if a model is configured")

    uninstall = _command(
        sub,
        "uninstall",
        "remove what init added to Claude Code (your notes stay)",
        "Removes our hooks, the MCP server entry and the permissions init added; keeps ~/.anamnesis.",
        "anamnesis uninstall --dry-run",
        "uninstall",
    )
    uninstall.add_argument("--dry-run", action="store_true", help="show the change without making it")

    hook = _command(
        sub,
        "hook",
        "handle a Claude Code hook event (JSON on stdin)",
        """
        Claude Code runs this; `anamnesis init` wires it into settings.json. It always exits 0
        and prints only hook protocol output, whatever it is given.
        Events: session-start, user-prompt-submit, pre-compact, post-compact, session-end, stop.
        """,
        """echo '{"cwd": "/path/to/repo", "session_id": "abc"}' | anamnesis hook session-start""",
        "hook",
    )
    hook.add_argument("event", help="the hook event")

    from anamnesis.cli.layers import layer_modules

    for extension in layer_modules():
        extension.register(sub, _command)
    return parser
