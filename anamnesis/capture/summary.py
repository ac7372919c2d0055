"""The heuristic session note: a `SessionDigest` as a title and a markdown body, redacted.

The format is anamnesis-memory 0.1.3's (`**Ask:**`, `**Branch:**`, `**Files touched (n):**`,
`**Outcome:**`), so notes from both read alike, plus Claude's own compaction summary when the
session had one. `is_trivial` is 0.1.3's gate, so the memory is not filled with sessions that
did nothing; a compaction summary always counts as something.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from anamnesis.capture.redact import clip_redacted, redact
from anamnesis.capture.transcript import SessionDigest

TITLE_CHARS = 80
ASK_CHARS = 600
OUTCOME_CHARS = 600
SUMMARY_CHARS = 2_000
SHOWN_FILES = 30
SHORT_OUTCOME = 40  # 0.1.3: an outcome shorter than this says nothing on its own
DEFAULT_TITLE = "Session summary"

_LONE_COMMAND_RE = re.compile(r"/[A-Za-z][\w:.-]*(?:[ \t][^\n]*)?")


@dataclass(frozen=True, slots=True)
class Summary:
    """What a session note says. Both fields are redacted."""

    title: str
    body: str


def is_trivial(digest: SessionDigest) -> bool:
    """True when the session left nothing worth a note (0.1.3's rules, plus compaction).

    No files touched, no compaction summary, and: no ask and no outcome; or no ask and an
    outcome under 40 characters; or only a slash command and an outcome under 40 characters.
    """
    if digest.files_touched or digest.compact_summary:
        return False
    ask = digest.ask or digest.command
    if not ask or _is_lone_command(ask):
        return len((digest.outcome or "").strip()) < SHORT_OUTCOME
    return False


def _is_lone_command(ask: str) -> bool:
    return _LONE_COMMAND_RE.fullmatch(ask.strip()) is not None


def heuristic_summary(digest: SessionDigest) -> Summary:
    """The note for `digest` without a model: the ask, branch, files, outcome, compaction."""
    ask = digest.ask or digest.command
    parts: list[str] = []
    if ask:
        parts.append(f"**Ask:** {clip_redacted(ask, ASK_CHARS)}")
    if digest.later_asks:
        later = "\n".join(f"- {_one_line(clip_redacted(a, 200))}" for a in digest.later_asks)
        parts.append(f"**Later asks:**\n{later}")
    facts = facts_section(digest)
    if facts:
        parts.append(facts)
    if digest.outcome:
        parts.append(f"**Outcome:** {clip_redacted(digest.outcome, OUTCOME_CHARS)}")
    if digest.compact_summary:
        parts.append(f"**Compaction summary:**\n\n{clip_redacted(digest.compact_summary, SUMMARY_CHARS)}")
    return Summary(title=session_title(digest), body="\n\n".join(parts) or "(no details)")


def session_title(digest: SessionDigest) -> str:
    """What the session was about, so a later search for the topic finds it: the first line of
    the ask (cut to 80 characters); without one, the branch or the files it touched."""
    ask = digest.ask or digest.command or ""
    first = next((line.strip() for line in ask.splitlines() if line.strip()), "")
    title = clip_redacted(" ".join(first.split()), TITLE_CHARS) if first else ""
    if title:
        return title
    if digest.git_branch:
        return clip_redacted(f"Session on branch {digest.git_branch}", TITLE_CHARS) or DEFAULT_TITLE
    if digest.files_touched:
        names = ", ".join(dict.fromkeys(path.rsplit("/", 1)[-1] for path in digest.files_touched))
        return clip_redacted(f"Session editing {names}", TITLE_CHARS) or DEFAULT_TITLE
    return DEFAULT_TITLE


def facts_section(digest: SessionDigest) -> str:
    """`**Branch:**` and `**Files touched (n):**`, also appended under a model's summary."""
    parts: list[str] = []
    if digest.git_branch:
        parts.append(f"**Branch:** {redact(digest.git_branch)}")
    if digest.files_touched:
        total = len(digest.files_touched) + digest.files_dropped
        shown = [f"- {redact(_relative(path, digest.cwd))}" for path in digest.files_touched[:SHOWN_FILES]]
        if total > len(shown):
            shown.append(f"- … and {total - len(shown)} more")
        parts.append(f"**Files touched ({total}):**\n" + "\n".join(shown))
    return "\n\n".join(parts)


def _relative(path: str, cwd: str | None) -> str:
    """Paths inside the project relative to it: the same project sits elsewhere on another machine."""
    if cwd:
        root = cwd.rstrip("/") + "/"
        if path.startswith(root) and len(path) > len(root):
            return path[len(root) :]
    return path


def _one_line(text: str) -> str:
    return " ".join(text.split())
