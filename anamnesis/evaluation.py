"""The eval harness: recall@1/3/5/8 and MRR of search over judged queries, and the prompt gate.

The gate report replays the prompt hook (`context.prompt_context_plan`, exactly what the hook
runs) for each judged query in its note's project, and for prompts about things the memory
knows nothing of (`unrelated.jsonl` beside the eval set: `{prompt, project}` per line), asked in
their own project and in every project of the corpus: how often the right note is shown, how
much of what is shown is right, and how often an unrelated prompt gets nothing.

The eval set is 0.1.3's JSONL format: one `{query, relevant_ids, note_titles, approved, source}`
per line. A hit that supersedes a relevant note counts as finding it (the old note was retired
in its favour). Curation commands use this as a guard: a change that lowers recall is refused.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anamnesis.errors import EvalSetError
from anamnesis.hybrid import DEFAULT_FUSION, Fusion, Semantic, hybrid_search
from anamnesis.index import SearchIndex
from anamnesis.search import SearchFilters

KS = (1, 3, 5, 8)


def default_eval_path(home: Path) -> Path:
    """Where a home keeps its own eval set: what `eval run` and the curation guard read."""
    return home / "eval" / "eval.jsonl"


@dataclass(frozen=True, slots=True)
class EvalCase:
    query: str
    relevant_ids: tuple[str, ...]
    note_titles: tuple[str, ...] = ()
    approved: bool = True
    source: str = ""


@dataclass(slots=True)
class EvalReport:
    """Aggregate scores and, per query, the rank of the first relevant hit (None: not found)."""

    cases: int
    recall: dict[int, float]
    mrr: float
    ranks: list[tuple[str, int | None]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "cases": self.cases,
            **{f"recall@{k}": round(v, 4) for k, v in self.recall.items()},
            "mrr": round(self.mrr, 4),
            "misses": [query for query, rank in self.ranks if rank is None],
        }


@dataclass(slots=True)
class GateReport:
    """The prompt hook's gate on the eval set: right note shown, precision, silence."""

    prompts: int
    shown_right: float
    precision: float
    unrelated: int
    silent: float

    def as_json(self) -> dict[str, Any]:
        return {
            "prompts": self.prompts,
            "right_note_shown": round(self.shown_right, 4),
            "precision": round(self.precision, 4),
            "unrelated_prompts": self.unrelated,
            "silent_on_unrelated": round(self.silent, 4),
        }


def unrelated_path(eval_path: Path) -> Path:
    return eval_path.with_name("unrelated.jsonl")


def load_unrelated(path: Path) -> list[tuple[str, str]]:
    """(prompt, project) pairs; none when the file is missing."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    pairs = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            pairs.append((str(data["prompt"]), str(data["project"])))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise EvalSetError(f"{path}:{number}: not an unrelated prompt ({exc})") from exc
    return pairs


async def run_gate(index: SearchIndex, cases: Sequence[EvalCase], unrelated: Sequence[tuple[str, str]]) -> GateReport:
    """Replay the prompt hook over `cases` (in their notes' projects) and `unrelated` prompts."""
    from anamnesis.context import prompt_context_plan

    projects = sorted(p for p in (await index.counts())["by_project"] if p != "global")
    right = shown = shown_right = 0
    for case in cases:
        summary = await index.summary(case.relevant_ids[0])
        if summary is None:
            continue
        context = await index.run(prompt_context_plan(summary.project, case.query, set()))
        relevant = set(case.relevant_ids)
        shown += len(context.shown_ids)
        shown_right += sum(1 for note_id in context.shown_ids if note_id in relevant)
        right += any(note_id in relevant for note_id in context.shown_ids)
    asked = silent = 0
    for prompt, own in unrelated:
        for project in dict.fromkeys([own, *projects]):
            context = await index.run(prompt_context_plan(project, prompt, set()))
            asked += 1
            silent += not context.shown_ids
    return GateReport(
        prompts=len(cases),
        shown_right=right / len(cases) if cases else 0.0,
        precision=shown_right / shown if shown else 0.0,
        unrelated=asked,
        silent=silent / asked if asked else 1.0,
    )


def load_eval_set(path: Path, include_unreviewed: bool = False) -> list[EvalCase]:
    """The cases in `path`; unapproved ones only with `include_unreviewed`."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError as exc:
        raise EvalSetError(f"no eval set at {path} (pass --eval-set FILE)") from exc
    cases = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            case = EvalCase(
                query=str(data["query"]),
                relevant_ids=tuple(str(i) for i in data["relevant_ids"]),
                note_titles=tuple(str(t) for t in data.get("note_titles", ())),
                approved=bool(data.get("approved", True)),
                source=str(data.get("source", "")),
            )
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise EvalSetError(f"{path}:{number}: not an eval case ({exc})") from exc
        if case.approved or include_unreviewed:
            cases.append(case)
    if not cases:
        raise EvalSetError(f"{path} has no approved cases")
    return cases


async def run_eval(
    index: SearchIndex,
    cases: Sequence[EvalCase],
    ks: Sequence[int] = KS,
    semantic: Semantic | None = None,
    fusion: Fusion = DEFAULT_FUSION,
) -> EvalReport:
    """Score the search every surface uses (`hybrid_search`: lexical alone without `semantic`)."""
    depth = max(ks)
    found_at: dict[int, float] = dict.fromkeys(ks, 0.0)
    reciprocal = 0.0
    ranks: list[tuple[str, int | None]] = []
    for case in cases:
        # Each relevant note is found by itself or by any note that superseded it.
        accepted = {note_id: {note_id, *await index.superseded_by(note_id)} for note_id in case.relevant_ids}
        hits = await hybrid_search(index, case.query, SearchFilters(), depth, semantic, fusion=fusion)
        ordered = [hit.id for hit in hits]
        any_relevant = set().union(*accepted.values())
        first = next((rank for rank, note_id in enumerate(ordered, start=1) if note_id in any_relevant), None)
        ranks.append((case.query, first))
        if first is not None:
            reciprocal += 1.0 / first
        for k in ks:
            top = set(ordered[:k])
            found = sum(1 for ids in accepted.values() if ids & top)
            found_at[k] += found / len(accepted)
    count = len(cases)
    return EvalReport(
        cases=count,
        recall={k: found_at[k] / count for k in ks},
        mrr=reciprocal / count,
        ranks=ranks,
    )
