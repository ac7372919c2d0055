"""Commands of the reflection layer: `reflect`, registered into the main parser by `register`.

`reflect` asks the configured model for durable notes drawn from each project's session notes
and keeps them as proposals for review; `--apply` writes the pending proposals through the
eval guard. The work is `anamnesis.curation.reflect`; this module reads arguments and prints.
"""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from anamnesis.cli.output import print_json

if TYPE_CHECKING:  # the parser imports this module; the command's own imports wait until it runs
    from anamnesis.cli.io import IO
    from anamnesis.config import Config
    from anamnesis.curation.proposals import Proposal
    from anamnesis.curation.reflect import Reflection, ReflectionRun

CommandFactory = Callable[..., argparse.ArgumentParser]


def register(sub: Any, command: CommandFactory) -> None:
    """Add this layer's commands with `command(sub, name, summary, details, example, handler)`."""
    reflect = command(
        sub,
        "reflect",
        "turn session notes into durable notes with the configured model",
        """
        For each project with at least --min-notes session notes (episodic, portable) not yet
        reflected on, the reflection model reads them (secrets redacted, size bounded) and
        proposes procedural and semantic notes, each citing the session notes it comes from.
        Without --apply the proposals are shown and kept for review: accept, edit or reject
        each on the dashboard's Reflection page. With --apply every pending proposal is
        written (prov_source reflection, the model as prov_model, confidence 0.6, linked to
        its sources) and its session notes are tagged `reflected`, so session context stops
        repeating them. --apply is refused when the new notes would lower search recall@5 on
        your eval set (<home>/eval/eval.jsonl), unless --force. The model is configuration
        (ANAMNESIS_REFLECTION_PROVIDER, _MODEL, _BASE_URL, _API_KEY, or config.json's
        "reflection" block); without one this says so and changes nothing (exit status 1).
        """,
        """
        anamnesis reflect
        anamnesis reflect --project github.com/acme/quotes-api --apply
        """,
        "reflect",
    )
    reflect.add_argument("--project", "-p", help="only this project key (default: every project that is ready)")
    reflect.add_argument("--apply", action="store_true", help="then write every pending proposal as a note")
    reflect.add_argument("--force", action="store_true", help="with --apply: write even if eval recall@5 drops")
    reflect.add_argument(
        "--min-notes",
        type=_positive,
        default=None,
        metavar="N",
        help="session notes a project needs before it is reflected on (default 5)",
    )
    reflect.add_argument("--json", action="store_true", help="print the run as JSON")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


# -- handler -------------------------------------------------------------------------------------


async def reflect(config: Config, args: argparse.Namespace, io: IO) -> int:
    from anamnesis.curation.proposals import PENDING, ProposalStore
    from anamnesis.curation.reflect import DEFAULT_MIN_NOTES, accept_proposals
    from anamnesis.curation.reflect import reflect as run_reflection
    from anamnesis.errors import CurationRefusedError
    from anamnesis.memory import open_memory

    store = ProposalStore.of(config.layout)
    min_notes = args.min_notes or _min_notes_setting(io) or DEFAULT_MIN_NOTES
    async with open_memory(config) as memory:
        run = await run_reflection(memory, config.reflection, store, project=args.project, min_notes=min_notes)
    pending = await store.list(PENDING, args.project)
    result: dict[str, Any] = {
        "model": run.model,
        "min_notes": min_notes,
        "projects": [_reflection_json(r) for r in run.reflections],
        "waiting": run.waiting,
        "pending": [p.to_json() for p in pending],
        "applied": None,
        "guard": None,
        "refused": None,
    }
    talk = io.err if args.json else io.out
    if not args.json:
        _write_run(io, run, min_notes, args.project)
    status = 1 if run.failed else 0
    if args.apply and pending:
        try:
            guarded = await accept_proposals(config, store, pending, force=args.force)
        except CurationRefusedError as exc:
            result["refused"] = str(exc)
            io.err.write(f"anamnesis: {exc}\n")
            status = 1
        else:
            result["applied"] = [
                {"proposal": p.id, "note": n.id, "title": n.title, "type": n.type, "project": n.project}
                for p, n in zip(pending, guarded.value, strict=True)
            ]
            result["pending"] = []
            result["guard"] = {
                "eval_set": str(guarded.eval_path),
                "recall_before": guarded.recall_before,
                "recall_after": guarded.recall_after,
                "forced": guarded.forced,
            }
            count = len(guarded.value)
            talk.write(f"Wrote {count} note{'s' if count != 1 else ''} from reflection:\n")
            for note in guarded.value:
                talk.write(f"  {note.id}  [{note.type}] {note.title}  ({note.project})\n")
            talk.write(f"Their session notes are tagged reflected. {guarded.describe()}.\n")
    elif args.apply:
        talk.write("No proposal is pending; nothing was written.\n")
    elif pending and not args.json:
        count = len(pending)
        io.out.write(
            f"{count} proposal{'s' if count != 1 else ''} wait{'s' if count == 1 else ''} for review: accept, "
            "edit or reject each on the dashboard's Reflection page (anamnesis serve), or write them all "
            "with `anamnesis reflect --apply`.\n"
        )
    if args.json:
        print_json(io.out, result)
    return status


def _min_notes_setting(io: IO) -> int | None:
    """0.1.3's ANAMNESIS_REFLECT_MIN_EPISODICS, when set to a positive number."""
    value = io.environ.get("ANAMNESIS_REFLECT_MIN_EPISODICS") or ""
    return int(value) if value.isdigit() and int(value) > 0 else None


def _reflection_json(reflection: Reflection) -> dict[str, Any]:
    return {
        "project": reflection.project,
        "sent": list(reflection.sent_ids),
        "proposals": [p.to_json() for p in reflection.proposals],
        "dropped": list(reflection.dropped),
        "error": reflection.error,
    }


def _write_run(io: IO, run: ReflectionRun, min_notes: int, project: str | None) -> None:
    if not run.reflections:
        if project is not None:
            have = run.waiting.get(project, 0)
            io.out.write(
                f"{project} has {have} new session note{'s' if have != 1 else ''} (not reflected on, not behind a "
                f"pending proposal); reflection needs {min_notes} (--min-notes). Nothing was sent to the model.\n"
            )
        else:
            io.out.write(
                f"No project has {min_notes} new session notes (not reflected on, not behind a pending proposal); "
                "nothing was sent to the model.\n"
            )
    for reflection in run.reflections:
        sent = len(reflection.sent_ids)
        head = f"{reflection.project}: {sent} session note{'s' if sent != 1 else ''} sent to {run.model}"
        if reflection.error:
            io.out.write(f"{head}.\n")
            io.err.write(f"anamnesis: error: {reflection.project}: {reflection.error}\n")
            continue
        count = len(reflection.proposals)
        if count:
            io.out.write(f"{head}; {count} proposal{'s' if count != 1 else ''}:\n\n")
        else:
            io.out.write(f"{head}; no durable note proposed.\n")
        for proposal in reflection.proposals:
            io.out.write(_format_proposal(proposal))
        for reason in reflection.dropped:
            io.out.write(f"  ({reason})\n")
        io.out.write("\n")
    if run.waiting and project is None and run.reflections:
        waiting = ", ".join(f"{key} ({count})" for key, count in sorted(run.waiting.items()))
        io.out.write(f"Not enough new session notes yet (fewer than {min_notes}): {waiting}.\n")


def _format_proposal(proposal: Proposal) -> str:
    tags = f"  #{' #'.join(proposal.tags)}" if proposal.tags else ""
    body = textwrap.indent(proposal.body, "      ")
    return (
        f"  [{proposal.type}] {proposal.title}{tags}\n{body}\n"
        f"      from: {', '.join(proposal.source_ids)}\n"
        f"      proposal {proposal.id}\n\n"
    )
