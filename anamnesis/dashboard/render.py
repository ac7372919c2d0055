"""Turning note text into safe HTML: markdown without raw HTML, highlighted snippets, diffs.

A note may hold anything a model or a sync brought in, so nothing in it is ever trusted as
markup: markdown-it-py renders with HTML disabled (a `<script>` shows as text), links keep only
http(s), mailto and in-page targets (no `javascript:`, `data:`, `file:`), and images become
plain links (the CSP would block a remote image anyway, and a note should not phone home).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markupsafe import Markup, escape

from anamnesis.search import HIGHLIGHT_CLOSE, HIGHLIGHT_OPEN

SAFE_SCHEMES = frozenset({"http", "https", "mailto"})
MAX_DIFF_LINES = 4_000


def safe_link(url: str) -> bool:
    """True for http(s)/mailto URLs and links without a scheme (relative, `#anchor`)."""
    cleaned = "".join(ch for ch in url if ch.isprintable() and not ch.isspace())
    try:
        scheme = urlsplit(cleaned).scheme.lower()
    except ValueError:
        return False
    if not scheme:
        return ":" not in cleaned.split("/", 1)[0]  # "javascript&colon;x" style tricks have no scheme
    return scheme in SAFE_SCHEMES


def _link_open(renderer: RendererHTML, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    token = tokens[idx]
    href = str(token.attrGet("href") or "")
    if href and not href.startswith("#"):
        token.attrSet("rel", "nofollow noopener noreferrer")
    return renderer.renderToken(tokens, idx, options, env)


def _image(renderer: RendererHTML, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    token = tokens[idx]
    src = str(token.attrGet("src") or "")
    alt = renderer.renderInlineAsText(token.children or [], options, env) or "image"
    label = f"[image: {escape(alt)}]"
    if src and safe_link(src):
        return f'<a class="image-link" href="{escape(src)}" rel="nofollow noopener noreferrer">{label}</a>'
    return f'<span class="image-link">{label}</span>'


def _build_markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable(["table", "strikethrough"])
    md.validateLink = safe_link  # type: ignore[method-assign]
    md.add_render_rule("link_open", _link_open)
    md.add_render_rule("image", _image)
    return md


_MARKDOWN = _build_markdown()


def render_markdown(text: str) -> Markup:
    """HTML for a note body; safe to insert into a page as is."""
    return Markup(_MARKDOWN.render(text))  # noqa: S704 - markdown-it with html disabled escapes all text


def highlight(snippet: str) -> Markup:
    """A search snippet with its matched words in `<mark>`; everything else escaped."""
    out: list[str] = []
    depth = 0
    for ch in snippet:
        if ch == HIGHLIGHT_OPEN:
            if depth == 0:
                out.append("<mark>")
            depth += 1
        elif ch == HIGHLIGHT_CLOSE:
            if depth == 1:
                out.append("</mark>")
            depth = max(0, depth - 1)
        else:
            out.append(str(escape(ch)))
    if depth:
        out.append("</mark>")
    return Markup("".join(out))  # noqa: S704 - every character of the input went through escape()


@dataclass(frozen=True, slots=True)
class DiffLine:
    """One line of a unified diff: `kind` is add, del, hunk, or same."""

    kind: str
    text: str


def diff_lines(old: str, new: str, old_name: str, new_name: str) -> list[DiffLine]:
    """A unified diff of two versions of a file, as lines to colour."""
    lines: list[DiffLine] = []
    diff = difflib.unified_diff(
        old.splitlines(), new.splitlines(), fromfile=old_name, tofile=new_name, n=3, lineterm=""
    )
    for raw in diff:
        if raw.startswith(("---", "+++")):
            continue
        kind = {"+": "add", "-": "del", "@": "hunk"}.get(raw[:1], "same")
        lines.append(DiffLine(kind, raw))
        if len(lines) >= MAX_DIFF_LINES:
            lines.append(DiffLine("hunk", "… (diff cut here)"))
            break
    return lines
