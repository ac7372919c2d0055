"""The commands that report on and look after a home: `status`, `doctor`, `upkeep`, `eval`."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio.to_thread

from anamnesis.cli.io import IO
from anamnesis.cli.output import print_json, semantic_line
from anamnesis.config import Config, Layout
from anamnesis.errors import AnamnesisError, BusyError
from anamnesis.memory import open_memory

if TYPE_CHECKING:
    from anamnesis.evaluation import EvalReport, GateReport
    from anamnesis.hybrid import Semantic
    from anamnesis.index import SearchIndex


async def upkeep(config: Config, args: argparse.Namespace, io: IO) -> int:
    from anamnesis.upkeep import run_upkeep

    record = await run_upkeep(config, force=True)
    if record is None:
        raise BusyError("upkeep is running in another process; try again when it has finished")
    if args.json:
        print_json(io.out, record.as_dict())
    else:
        before, after = record.before, record.after
        io.out.write(
            f"Repository: {before.loose_objects} loose objects and {before.packs} packs before, "
            f"{after.loose_objects} and {after.packs} after ({_mib(after.pack_bytes + after.loose_bytes)}); "
            f"history index {'written' if after.commit_graph else 'missing'}; "
            f"{record.pruned_files} old state files pruned; {record.seconds:.1f} s.\n"
        )
    if record.error:
        raise AnamnesisError(f"upkeep failed: {record.error}")
    return 0


def _mib(size: int) -> str:
    return f"{size / (1 << 20):.1f} MiB"


async def status(config: Config, args: argparse.Namespace, io: IO) -> int:
    async with open_memory(config) as memory:
        state = await memory.state()
    if args.json:
        print_json(io.out, state.as_json())
        return 0
    out = io.out
    out.write(f"home      {state.home} (machine {state.machine_id})\n")
    out.write(f"notes     {state.total} ({state.superseded} superseded)\n")
    out.write("by type   " + ", ".join(f"{k} {v}" for k, v in state.by_type.items()) + "\n")
    out.write("by scope  " + ", ".join(f"{k} {v}" for k, v in state.by_scope.items()) + "\n")
    projects = state.by_project
    shown = ", ".join(f"{k} {v}" for k, v in [*projects.items()][:8])
    out.write(f"projects  {len(projects)}: {shown}{' …' if len(projects) > 8 else ''}\n")
    git = state.git
    out.write(f"git       {git.branch} at {(git.head or 'no commits')[:10]}, {git.uncommitted} uncommitted\n")
    out.write(f"hub       {state.hub or 'none (local only)'}\n")
    if state.hub:
        sync = state.sync
        last = f"last ok {sync.last_ok}" if sync.last_ok else "never synced"
        failed = f"; the last attempt failed: {sync.last_error}" if sync.last_error else ""
        out.write(f"sync      {last}{failed}\n")
        for machine in state.fleet:
            pushed, heard = _ago(machine.pushed_at), _ago(machine.heard_at)
            out.write(f"machine   {machine.machine}: last pushed {pushed}, last heard from the hub {heard}\n")
        if sync.withheld:
            out.write(f"withheld  {len(sync.withheld)} note(s) kept off the hub (secrets): run `anamnesis doctor`\n")
    out.write(f"semantic  {semantic_line(state.semantic)}\n")
    if state.problems:
        out.write(f"problems  {state.problems} file(s) could not be read: run `anamnesis doctor`\n")
    return 0


def _ago(when: str | None) -> str:
    """`2026-11-20T10:00:00Z` as "3 min ago (2026-11-20T10:00:00Z)"; "never" for None."""
    if not when:
        return "never"
    from datetime import UTC, datetime

    from anamnesis.doctor import age

    try:
        seconds = (datetime.now(UTC) - datetime.fromisoformat(when.replace("Z", "+00:00"))).total_seconds()
    except ValueError:
        return when
    return f"{age(seconds)} ago ({when})"


async def doctor(config: Config, args: argparse.Namespace, io: IO) -> int:
    from anamnesis.claude_doctor import claude_checks
    from anamnesis.doctor import run_doctor
    from anamnesis.sync.doctor import check_sync

    findings = await run_doctor(config, [*claude_checks(io.environ), check_sync])
    failed = any(f.is_error for f in findings)
    if args.json:
        print_json(
            io.out,
            {
                "ok": not failed,
                "findings": [
                    {"level": f.level, "check": f.check, "message": f.message, "fix": f.fix} for f in findings
                ],
            },
        )
        return 1 if failed else 0
    marks = {"ok": "ok  ", "warning": "warn", "error": "FAIL"}
    for finding in findings:
        io.out.write(f"[{marks[finding.level]}] {finding.check}: {finding.message}\n")
        if finding.fix and finding.level != "ok":
            io.out.write(f"       fix: {finding.fix}\n")
    io.out.write("Problems found.\n" if failed else "All good.\n")
    return 1 if failed else 0


async def eval_run(config: Config, args: argparse.Namespace, io: IO) -> int:
    from anamnesis.evaluation import default_eval_path, load_eval_set, load_unrelated, unrelated_path
    from anamnesis.index import SearchIndex
    from anamnesis.store import NoteStore

    eval_path = Path(args.eval_set) if args.eval_set else default_eval_path(config.home)
    cases = await anyio.to_thread.run_sync(load_eval_set, eval_path, args.include_unreviewed)
    unrelated = await anyio.to_thread.run_sync(load_unrelated, unrelated_path(eval_path))
    if args.corpus:
        corpus = Path(args.corpus).absolute()  # noqa: ASYNC240 - no I/O, just joins the cwd
        if not await anyio.Path(corpus).is_dir():
            raise AnamnesisError(f"--corpus {corpus} is not a folder")
        with tempfile.TemporaryDirectory(prefix="anamnesis-eval-") as scratch:
            store = NoteStore(Layout(Path(scratch)), roots={"portable": corpus})
            index = await SearchIndex.open(Path(scratch) / "index.db", store)
            try:
                await index.refresh()
                reports = await _eval_reports(index, cases, unrelated, config)
            finally:
                await index.aclose()
    else:
        async with open_memory(config) as memory:
            await memory.ensure_fresh()
            await memory.embed_pending()
            reports = (
                await memory.evaluate(cases, semantic=True),
                await memory.evaluate(cases),
                await memory.evaluate_gate(cases, unrelated),
            )
    report, lexical, gate = reports
    if args.json:
        print_json(io.out, {**report.as_json(), "lexical": lexical.as_json(), "prompt_gate": gate.as_json()})
        return 0
    io.out.write(f"{report.cases} queries from {eval_path}\n")
    io.out.write("           hybrid  lexical\n")
    for k, value in report.recall.items():
        io.out.write(f"recall@{k:<2}  {value:.3f}   {lexical.recall[k]:.3f}\n")
    io.out.write(f"MRR        {report.mrr:.3f}   {lexical.mrr:.3f}\n")
    io.out.write(
        f"prompt hook: right note shown for {gate.shown_right:.1%} of {gate.prompts} prompts, "
        f"precision {gate.precision:.1%}; silent for {gate.silent:.1%} of {gate.unrelated} unrelated prompts\n"
    )
    misses = [query for query, rank in report.ranks if rank is None]
    if misses:
        io.out.write(f"not found in the top {max(report.recall)} ({len(misses)}):\n")
        for query in misses[:20]:
            io.out.write(f"  - {query}\n")
    return 0


async def _eval_reports(
    index: SearchIndex, cases: Any, unrelated: Any, config: Config, semantic: Semantic | None = None
) -> tuple[EvalReport, EvalReport, GateReport]:
    """(the search every surface runs, lexical alone, the prompt gate) on `cases`; a throwaway
    index gets its vectors here (a semantic side that is off or cannot load leaves the two equal)."""
    from anamnesis.evaluation import run_eval, run_gate
    from anamnesis.hybrid import Semantic
    from anamnesis.memory_vectors import semantic_enabled
    from anamnesis.vectorizer import embed_pending

    if semantic is None and semantic_enabled(config):
        semantic = Semantic()
        await semantic.load()
        if semantic.embedder is not None:
            await embed_pending(index, semantic.embedder)
    return (
        await run_eval(index, cases, semantic=semantic),
        await run_eval(index, cases),
        await run_gate(index, cases, unrelated),
    )
