"""Commands that tidy the store: `dedup` (retire duplicate notes) and `import` (bring in Claude
Code's own memory files and anamnesis-memory 0.1.3 stores).

Both show what they would do and change nothing unless given `--apply`. `dedup --apply` goes
through the eval guard: a change that lowers eval recall@5 is refused unless `--force`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the parser imports this module; the commands' own imports wait until they run
    from anamnesis.cli.io import IO
    from anamnesis.config import Config
    from anamnesis.curation.dedup import DedupPlan
    from anamnesis.curation.importer import ImportPlan

CommandFactory = Callable[..., argparse.ArgumentParser]

DEFAULT_THRESHOLD = 0.8  # the same as anamnesis.curation.dedup.DEFAULT_THRESHOLD (a test keeps them equal)
LISTED_STORE_ITEMS = 20  # per-file lines shown for a 0.1.3 store in text output; --json has all


def register(sub: Any, command: CommandFactory) -> None:
    """Add this layer's commands with `command(sub, name, summary, details, example, handler)`."""
    dedup = command(
        sub,
        "dedup",
        "find identical and near-identical notes and retire all but one of each",
        f"""
        Compares notes of the same project, type and scope. Identical: the same words once
        case, punctuation and markdown are set aside. Near-identical: of all the two-word
        phrases of the two notes, at least --threshold (default {DEFAULT_THRESHOLD}) are in both.
        Session summaries count only when identical. Of each group it keeps the note with the
        highest confidence, then the most recently updated, then the longest, and says why.

        Without --apply it shows the groups and changes nothing. With --apply the kept note
        supersedes the others, in one git commit: they leave search and session context, and
        `anamnesis get ID` and git history still show them. Nothing is deleted. If an eval
        set exists (~/.anamnesis/eval/eval.jsonl), the change is tried on a copy first and
        refused if it lowers recall@5; --force makes it anyway. Notes already superseded and
        conflict copies (tag `conflict`, see the dashboard) are left alone.
        """,
        """
        anamnesis dedup                      # show what would be retired
        anamnesis dedup --apply              # retire them (checked against the eval set)
        anamnesis dedup --project github.com/acme/quotes-api --threshold 0.9 --json
        """,
        "dedup",
    )
    dedup.add_argument("--apply", action="store_true", help="retire the duplicates (default: only show them)")
    dedup.add_argument("--force", action="store_true", help="apply even if eval recall@5 would drop")
    dedup.add_argument("--project", "-p", help="only notes of this project key (or 'global')")
    dedup.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT_THRESHOLD,
        help=f"how alike near-identical notes are, 0.5-1.0 (default {DEFAULT_THRESHOLD}; 1.0: identical only)",
    )
    dedup.add_argument("--json", action="store_true", help="print JSON")

    import_ = command(
        sub,
        "import",
        "bring in Claude Code's own memory files and anamnesis-memory 0.1.3 stores",
        """
        Reads Claude Code's per-project memory files, <config>/projects/<slug>/memory/*.md
        (<config> is $CLAUDE_CONFIG_DIR, else ~/.claude), with or without front-matter. Each
        becomes a note of its project (found from the folder's transcripts or the directory
        it names), typed from Claude's own kind (feedback: procedural; user, project,
        reference: semantic; user memories are global), tagged import and claude-code, with
        the file it came from recorded in the note. Running it again adds nothing; a file
        that changed updates its note in place. MEMORY.md is skipped when it only indexes
        the other files.

        --from PATH also copies in the notes of an anamnesis-memory 0.1.3 store (its home, or
        its memory/ folder) under their own ids, skipping ids already here; a file that does
        not parse is reported and skipped. Secrets are redacted from everything imported.
        Without --apply it shows what it would do and changes nothing.
        """,
        """
        anamnesis import                     # show what would come in from Claude Code
        anamnesis import --apply
        anamnesis import --from /mnt/old-laptop/.anamnesis --no-claude --apply
        """,
        "import_notes",
    )
    import_.add_argument("--apply", action="store_true", help="import (default: only show what would be)")
    import_.add_argument(
        "--from",
        dest="stores",
        action="append",
        default=[],
        metavar="PATH",
        help="an anamnesis-memory 0.1.3 store to copy notes from (repeatable)",
    )
    import_.add_argument(
        "--claude-dir", metavar="DIR", help="Claude Code's config folder (default: $CLAUDE_CONFIG_DIR or ~/.claude)"
    )
    import_.add_argument("--no-claude", action="store_true", help="skip Claude Code's memory files")
    import_.add_argument("--json", action="store_true", help="print JSON")


# -- dedup -------------------------------------------------------------------------------------


async def dedup(config: Config, args: argparse.Namespace, io: IO) -> int:
    import anyio

    from anamnesis.cli.output import ProgressBar, print_json
    from anamnesis.curation.dedup import dedup_change, plan_dedup
    from anamnesis.curation.guard import guarded_apply
    from anamnesis.errors import CurationRefusedError
    from anamnesis.evaluation import default_eval_path
    from anamnesis.memory import open_memory

    progress = ProgressBar(io.err, "comparing notes")
    async with open_memory(config) as memory:
        plan = await plan_dedup(memory, args.threshold, args.project, progress)
    progress.finish()
    if not args.apply or not plan.groups:
        if args.json:
            print_json(io.out, {"applied": False, "commit": None, "eval_guard": None, **plan.as_json()})
        else:
            _write_dedup_plan(io, plan)
            if plan.groups:
                io.out.write(
                    "\nDry run: nothing changed. `anamnesis dedup --apply` retires them: they leave search "
                    "and session context,\nand `anamnesis get ID` and git history still show them.\n"
                )
        return 0
    eval_set = default_eval_path(config.home)
    if io.err.isatty() and not args.json and await anyio.Path(eval_set).is_file():
        io.err.write(f"Trying the change on a copy against the eval set {eval_set}…\n")
    try:
        guarded = await guarded_apply(config, dedup_change(args.threshold, args.project), force=args.force)
    except CurationRefusedError as exc:
        if args.json:
            print_json(io.out, {"applied": False, "commit": None, "refused": str(exc), **plan.as_json()})
        else:
            _write_dedup_plan(io, plan)
        io.err.write(f"anamnesis: error: {exc}\n")
        return 1
    result = guarded.value
    guard = {
        "eval_set": str(guarded.eval_path),
        "recall_before": guarded.recall_before,
        "recall_after": guarded.recall_after,
        "forced": guarded.forced,
    }
    if args.json:
        print_json(io.out, {"applied": True, "commit": result.commit, "eval_guard": guard, **result.plan.as_json()})
        return 0
    _write_dedup_plan(io, result.plan)
    done = result.plan
    commit = f" (commit {result.commit[:10]})" if result.commit else ""
    io.out.write(
        f"\nRetired {done.retired_count} note{'s' if done.retired_count != 1 else ''} "
        f"in {len(done.groups)} group{'s' if len(done.groups) != 1 else ''}{commit}.\n"
    )
    io.out.write(guarded.describe() + "\n")
    return 0


def _write_dedup_plan(io: IO, plan: DedupPlan) -> None:
    from anamnesis.cli.output import Style

    style = Style(io.out)
    groups, retired = len(plan.groups), plan.retired_count
    if not groups:
        io.out.write(f"Checked {plan.checked} notes: no duplicates (threshold {plan.threshold:g}).\n")
        return
    io.out.write(
        f"Checked {plan.checked} notes (threshold {plan.threshold:g}): {groups} group{'s' if groups != 1 else ''}, "
        f"{retired} note{'s' if retired != 1 else ''} to retire.\n"
    )
    for group in plan.groups:
        keep = group.keep
        io.out.write(
            f"\n{style.bold('keep')}    {keep.id}  {keep.title}\n"
            f"        {style.dim(f'[{keep.type}] {keep.project} ({keep.scope})  {group.reason}')}\n"
        )
        for item in group.retire:
            how = "identical" if item.identical else f"{item.similarity:.0%} alike"
            io.out.write(f"retire  {item.note.id}  {item.note.title}  {style.dim(how)}\n")


# -- import ------------------------------------------------------------------------------------


def _user_path(text: str | None, io: IO) -> Path | None:
    """A path typed by the user: `~` is their HOME, a relative path is from their cwd."""
    if not text:
        return None
    home = io.environ.get("HOME")
    if home and (text == "~" or text.startswith("~/")):
        text = home + text[1:]
    return io.cwd / text


async def import_notes(config: Config, args: argparse.Namespace, io: IO) -> int:
    from anamnesis.claude_setup import claude_config_dir
    from anamnesis.cli.output import ProgressBar, print_json
    from anamnesis.curation.importer import apply_import, plan_import
    from anamnesis.memory import open_memory

    if args.no_claude and not args.stores:
        io.err.write("anamnesis: error: nothing to import: --no-claude, and no --from PATH\n")
        return 2
    claude_dir = None if args.no_claude else _user_path(args.claude_dir, io) or claude_config_dir(io.environ)
    stores = [path for text in args.stores if (path := _user_path(text, io)) is not None]
    home = io.environ.get("HOME")
    progress = ProgressBar(io.err, "reading")
    async with open_memory(config) as memory:
        plan = await plan_import(
            memory, claude_dir=claude_dir, stores=stores, user_home=Path(home) if home else None, progress=progress
        )
        progress.finish()
        commit = None
        if args.apply and plan.writes:
            writing = ProgressBar(io.err, "writing")
            commit = (await apply_import(memory, plan, writing)).commit
            writing.finish()
    if args.json:
        print_json(io.out, {"applied": bool(args.apply), "commit": commit, **plan.as_json()})
        return 0
    _write_import_plan(io, plan, claude_dir, stores)
    added, updated = plan.count("add"), plan.count("update")
    if not (added or updated):
        io.out.write("Nothing to import.\n")
    elif args.apply:
        where = f" (commit {commit[:10]})" if commit else ""
        io.out.write(f"Imported {added} note{'s' if added != 1 else ''} and updated {updated}{where}.\n")
    else:
        io.out.write(
            f"Dry run: nothing changed. `anamnesis import --apply` adds {added} note{'s' if added != 1 else ''} "
            f"and updates {updated}.\n"
        )
    return 0


def _write_import_plan(io: IO, plan: ImportPlan, claude_dir: Path | None, stores: list[Path]) -> None:
    from anamnesis.cli.output import Style
    from anamnesis.curation.importer import CLAUDE_ORIGIN, STORE_ORIGIN

    style = Style(io.out)
    if claude_dir is not None:
        items = [i for i in plan.items if i.origin == CLAUDE_ORIGIN]
        if not items:
            io.out.write(f"No Claude Code memory files in {claude_dir / 'projects'}.\n")
        else:
            io.out.write(f"Claude Code memory files in {claude_dir / 'projects'}:\n")
        for item in items:
            line = f"  {item.action:<8} {item.source}"
            if item.note is not None and item.action in ("add", "update"):
                line += f"\n           → [{item.note.type}] {item.note.title}  {style.dim(item.note.project)}"
            elif item.reason:
                line += f"  {style.dim(item.reason)}"
            if item.redacted:
                line += style.dim("  (secrets redacted)")
            io.out.write(line + "\n")
    for store in stores:
        store_items = [i for i in plan.items if i.origin == STORE_ORIGIN and i.store == str(store)]
        io.out.write(f"anamnesis-memory 0.1.3 store {store}:\n")
        # Problems first: they are what the user has to act on.
        shown = [i for i in store_items if i.action == "problem"] + [i for i in store_items if i.action == "add"]
        counts = {a: sum(1 for i in store_items if i.action == a) for a in ("add", "present", "problem")}
        io.out.write(f"  {counts['add']} to add, {counts['present']} already here, {counts['problem']} not readable\n")
        for item in shown[:LISTED_STORE_ITEMS]:
            detail = item.reason or (item.note.title if item.note else "")
            io.out.write(f"  {item.action:<8} {item.source}  {style.dim(detail)}\n")
        if len(shown) > LISTED_STORE_ITEMS:
            io.out.write(f"  … and {len(shown) - LISTED_STORE_ITEMS} more (--json lists them all)\n")
