"""What the tools answer: each result in two forms written for the model, within a budget.

Claude Code hands the model the `structured_content` as JSON when there is one (seen with
Claude Code 2.1.197); other clients show the text `content`. So the structured form holds a
`hint` whenever the model has something to do next (a retired note, a cut body, another page),
and the text says the same in compact lines.

Every response is bounded (`RESPONSE_BUDGET_CHARS`): search gives snippets not bodies, lists page,
`memory_get` cuts a long body and names the file, and fields a note's author controls (project,
tags, snippets) are cut. The note and hit dictionaries are views of the shapes in
`anamnesis.shapes`, so the MCP tools spell every field as the CLI and the dashboard do.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mcp.types import CallToolResult, TextContent

from anamnesis.index import encode_cursor
from anamnesis.notes import MAX_TITLE_CHARS, Note
from anamnesis.queries import NoteSummary
from anamnesis.search import Hit
from anamnesis.shapes import hit_json, note_json, pick, summary_json

# Hand-written or imported notes may be longer; `memory_get` shows this much and names the file.
GET_BODY_CHARS = 10_000
# Upper bound on one result (text + structured content, as JSON): ~6k tokens at chars/4.
RESPONSE_BUDGET_CHARS = 24_000
SNIPPET_CHARS, FIELD_CHARS, TAGS_SHOWN, IDS_SHOWN = 320, 160, 8, 10
TOP_PROJECTS = 15
HIGHLIGHT = "**"
NO_HUB = (
    "No hub is configured, so there is nothing to sync: notes are saved on this machine only. "
    "To sync across machines, the user runs `anamnesis peer add NAME ssh://user@host/path` "
    "in a terminal (any machine with git and sshd can be the hub)."
)

# The views of `anamnesis.shapes` the tools return, key order as shown to the model.
_LISTED = ("id", "type", "title", "project", "scope", "tags", "updated_at")
HIT_KEYS = (*_LISTED, "score", "snippet")
SUMMARY_KEYS = _LISTED
NOTE_KEYS = ("id", "type", "title", "project", "scope", "tags", "machine_id", "created_at", "updated_at", "supersedes")


def cut(text: str, limit: int = FIELD_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def count_notes(count: int) -> str:
    return "1 note" if count == 1 else f"{count} notes"


def where(projects: tuple[str, ...]) -> str:
    return " + ".join(projects) if projects else "all projects"


def result(text: str, structured: dict[str, Any]) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=structured)


def _bounded(view: dict[str, Any]) -> dict[str, Any]:
    """`view` with the fields a note's author controls cut to size."""
    view["project"] = cut(view["project"])
    view["tags"] = [cut(tag, 40) for tag in view["tags"][:TAGS_SHOWN]]
    if "snippet" in view:
        view["snippet"] = cut(view["snippet"], SNIPPET_CHARS)
    if "supersedes" in view:
        view["supersedes"] = view["supersedes"][:IDS_SHOWN]
    return view


def hit_item(hit: Hit) -> dict[str, Any]:
    item = _bounded(pick(hit_json(hit, (HIGHLIGHT, HIGHLIGHT)), HIT_KEYS))
    item["title"] = cut(item["title"], MAX_TITLE_CHARS)
    return item


def summary_item(note: NoteSummary) -> dict[str, Any]:
    item = _bounded(pick(summary_json(note), SUMMARY_KEYS))
    item["title"] = cut(item["title"], MAX_TITLE_CHARS)
    return item


def note_item(note: Note, path: Path, superseded_by: list[str], keys: Sequence[str] = NOTE_KEYS) -> dict[str, Any]:
    return _bounded(pick(note_json(note, str(path), superseded_by), keys))


def line(item: Mapping[str, Any]) -> str:
    tags = f" [{', '.join(item['tags'])}]" if item["tags"] else ""
    return f"- {item['id']} · {item['type']} · {item['project']} · {item['updated_at'][:10]} · {item['title']}{tags}"


def _size(text: str, structured: Mapping[str, Any]) -> int:
    return len(text) + len(json.dumps(structured, ensure_ascii=False))


def _fit(items: list[dict[str, Any]], lines: list[str], overhead: int) -> int:
    """How many of `items` (each rendered as `lines[i]`) fit in the response budget."""
    used = overhead
    for n, (item, rendered) in enumerate(zip(items, lines, strict=True)):
        used += _size(rendered, item) + 8
        if used > RESPONSE_BUDGET_CHARS:
            return n
    return len(items)


# -- one result per tool ----------------------------------------------------------------------


def search_result(query: str, projects: tuple[str, ...], hits: Sequence[Hit]) -> CallToolResult:
    items = [hit_item(hit) for hit in hits]
    lines = [f"{line(item)} (score {item['score']:.3g})\n  {item['snippet']}" for item in items]
    shown = _fit(items, lines, overhead=400 + 2 * len(query))
    place = where(projects)
    structured: dict[str, Any] = {"query": query, "projects": list(projects), "hits": items[:shown]}
    if not items:
        hint = "Try other or fewer words" + (', or project="*" to search every project.' if projects else ".")
        text = f"No notes match {query!r} in {place}. {hint}"
        structured["hint"] = hint
    else:
        text = f"{count_notes(shown)} for {query!r} in {place}, best first:\n" + "\n".join(lines[:shown])
        if shown < len(items):
            hint = f"{len(items) - shown} more hits left out to keep this short; narrow the search."
            text += f"\n({hint})"
            structured |= {"omitted": len(items) - shown, "hint": hint}
        text += "\nRead one in full with memory_get(id)."
    return result(text, structured)


def get_result(note: Note, path: Path, newer: list[str]) -> CallToolResult:
    body = note.body if len(note.body) <= GET_BODY_CHARS else note.body[:GET_BODY_CHARS]
    truncated = len(body) < len(note.body)
    structured = note_item(note, path, newer, (*NOTE_KEYS, "superseded_by")) | {
        "body": body,
        "body_chars": len(note.body),
        "truncated": truncated,
        "path": str(path),
    }
    hints = []
    if newer:
        hints.append(f"Retired: superseded by {', '.join(newer)}; read that note instead.")
    if truncated:
        hints.append(f"Body cut at {GET_BODY_CHARS} of {len(note.body)} characters; the whole note is the file {path}.")
    if hints:
        structured["hint"] = " ".join(hints)
    head = [
        f"# {note.title}",
        f"id {note.id} · {note.type} · {note.project} · {note.scope} · updated {note.updated_at}",
    ]
    if note.tags:
        head.append("tags: " + ", ".join(structured["tags"]))
    if note.supersedes:
        head.append(f"replaces: {', '.join(note.supersedes[:IDS_SHOWN])}")
    head.extend(hints)
    return result("\n".join(head) + "\n\n" + body, structured)


def list_result(projects: tuple[str, ...], notes: Sequence[NoteSummary], next_cursor: str | None) -> CallToolResult:
    items = [summary_item(note) for note in notes]
    lines = [line(item) for item in items]
    shown = _fit(items, lines, overhead=600)
    if shown < len(items):
        # The budget cut the page: continue right after the last note shown.
        last = notes[shown - 1]
        next_cursor = encode_cursor(last.updated_at, last.id)
    place = where(projects)
    if not items:
        text = f"No notes in {place}" + (' (project="*" lists every project).' if projects else ".")
    else:
        text = f"{count_notes(shown)} in {place}, newest first:\n" + "\n".join(lines[:shown])
    structured: dict[str, Any] = {"projects": list(projects), "notes": items[:shown], "next_cursor": next_cursor}
    if next_cursor:
        structured["hint"] = "More notes: call memory_list again with cursor=next_cursor and the same filters."
        text += f'\nMore: memory_list(cursor="{next_cursor}") with the same filters.'
    return result(text, structured)


def status_result(project: str, status: Mapping[str, Any]) -> CallToolResult:
    by_project = dict(list(status.get("by_project", {}).items())[:TOP_PROJECTS])
    others = len(status.get("by_project", {})) - len(by_project)
    git = status.get("git", {})
    structured = {
        "project": project,
        "home": status["home"],
        "machine_id": status["machine_id"],
        "total": status["total"],
        "superseded": status["superseded"],
        "by_type": status["by_type"],
        "by_scope": status["by_scope"],
        "by_project": by_project,
        "other_projects": others,
        "problems": status["problems"],
        "git": git,
        "hub": status["hub"],
        "semantic": status["semantic"],
    }
    semantic = status["semantic"]
    lines = [
        f"project: {project} · machine: {status['machine_id']} · home: {status['home']}",
        f"notes: {status['total']} ({status['superseded']} retired) · "
        + " · ".join(f"{k} {v}" for k, v in {**status["by_type"], **status["by_scope"]}.items()),
        "projects: "
        + ", ".join(f"{cut(k, 80)} {v}" for k, v in by_project.items())
        + (f", and {others} more" if others > 0 else ""),
        f"git: {str(git.get('head') or 'no commits')[:12]} on {git.get('branch')}, "
        f"{git.get('uncommitted', 0)} uncommitted",
        f"hub: {status['hub']}" if status["hub"] else "hub: none (notes stay on this machine)",
        f"semantic search: {semantic['state']}, {semantic['embedded']}/{semantic['notes']} notes embedded"
        + (f" (search is lexical only: {semantic['problem']})" if semantic["problem"] else ""),
    ]
    if status["problems"]:
        lines.append(f"{status['problems']} note files could not be read: the user can run `anamnesis doctor`.")
    return result("\n".join(lines), structured)


def write_result(
    note: Note, path: Path, where_it_goes: str, secrets: Sequence[str], similar: Sequence[Hit]
) -> CallToolResult:
    items = [hit_item(hit) for hit in similar]
    text = f"Saved {note.type} note {note.id} {note.title!r} in {note.project} ({note.scope}: {where_it_goes})."
    if note.supersedes:
        text += f" Retired: {', '.join(note.supersedes)}."
    structured = note_item(note, path, []) | {"path": str(path), "similar": items}
    hints = []
    if secrets:
        hints.append(f"Secrets were replaced by [REDACTED:…] ({', '.join(secrets)}); never store secrets.")
    if items:
        hints.append("Similar notes exist; if one is now wrong or duplicated, write again with supersedes=[its id].")
    if hints:
        structured["hint"] = " ".join(hints)
        text += "\n" + "\n".join(hints)
    if items:
        text += "\n" + "\n".join(line(item) for item in items)
    return result(text, structured)


def no_hub_result() -> CallToolResult:
    return result(NO_HUB, {"synced": False, "hub": None, "message": NO_HUB})


def sync_result(summary: Mapping[str, Any]) -> CallToolResult:
    hub = summary.get("hub")
    shown = {str(k): v for k, v in list(summary.items())[:20]}
    rendered = json.dumps(shown, ensure_ascii=False, default=str)
    if len(rendered) > RESPONSE_BUDGET_CHARS // 2:
        shown = {k: cut(str(v), 300) for k, v in shown.items()}
    text = f"Synced with {hub}: " + "; ".join(f"{k} {cut(str(v), 300)}" for k, v in shown.items())
    return result(text, {"synced": True, "hub": hub, "summary": shown})
