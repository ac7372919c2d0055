"""The dashboard's pages and JSON API through Quart's test client, on a real home (files, SQLite, git)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from quart import Quart
from quart.testing import QuartClient
from quart.wrappers import Response

from anamnesis.config import Config
from anamnesis.dashboard import DashboardSettings, create_app
from anamnesis.embedding import MODEL_PATH_ENV
from anamnesis.memory import Memory, NoteDraft
from anamnesis.notes import Note, render_note

pytestmark = pytest.mark.anyio

HOST = "127.0.0.1:8765"
ORIGIN = f"http://{HOST}"


class Browser:
    """The test client as a browser on the dashboard's own origin: its Host, its cookies, its CSRF token."""

    def __init__(self, client: QuartClient, host: str = HOST) -> None:
        self.client = client
        self.host = host
        self._csrf: str | None = None

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {"Host": self.host, **(extra or {})}

    async def get(self, path: str, headers: dict[str, str] | None = None) -> Response:
        return await self.client.get(path, headers=self.headers(headers))

    async def html(self, path: str, status: int = 200) -> str:
        response = await self.get(path)
        text = await response.get_data(as_text=True)
        assert response.status_code == status, (path, response.status_code, text[:2000])
        return text

    async def json(self, path: str, status: int = 200) -> Any:
        response = await self.get(path, {"Accept": "application/json"})
        assert response.status_code == status, (path, response.status_code, await response.get_data(as_text=True))
        assert response.content_type.startswith("application/json")
        return await response.get_json()

    async def csrf(self) -> str:
        if self._csrf is None:  # every JSON answer carries it, a 401 too (the login form needs one)
            response = await self.get("/health", {"Accept": "application/json"})
            self._csrf = (await response.get_json())["csrf_token"]
        return self._csrf

    async def post(
        self,
        path: str,
        form: dict[str, str] | None = None,
        *,
        json_body: Any = None,
        origin: str | None = ORIGIN,
        csrf: bool = True,
        headers: dict[str, str] | None = None,
    ) -> Response:
        extra = dict(headers or {})
        if origin is not None:
            extra["Origin"] = origin
        if json_body is not None:
            if csrf:
                extra["X-CSRF-Token"] = await self.csrf()
            extra.setdefault("Accept", "application/json")
            return await self.client.post(path, json=json_body, headers=self.headers(extra))
        data = dict(form or {})
        if csrf:
            data.setdefault("csrf_token", await self.csrf())
        return await self.client.post(path, form=data, headers=self.headers(extra))


def make_app(config: Config, memory: Memory, **settings: Any) -> Quart:
    return create_app(config, DashboardSettings(host="127.0.0.1", port=8765, **settings), memory=memory)


@pytest.fixture
def browser(config: Config, memory: Memory) -> Browser:
    return Browser(make_app(config, memory).test_client())


async def write(memory: Memory, title: str, body: str = "A body.", **fields: Any) -> Note:
    return await memory.write(NoteDraft(type=fields.pop("type", "semantic"), title=title, body=body, **fields))


def git(memory: Memory, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(memory.config.layout.memory_dir), *args], capture_output=True, text=True, check=True
    ).stdout


def note_file(memory: Memory, note: Note) -> Path:
    return memory.note_file(note)


def location(response: Response) -> str:
    return response.headers["Location"]


# -- notes, search, one note -----------------------------------------------------------------------


async def test_notes_page_lists_newest_first_with_counts_per_project_and_type(browser: Browser, memory: Memory) -> None:
    await write(memory, "Alembic migrations", project="github.com/acme/api", type="procedural")
    await write(memory, "Postgres is the store", project="github.com/acme/api")
    await write(memory, "Prefer short titles", type="procedural")
    html = await browser.html("/")
    assert html.index("Prefer short titles") < html.index("Postgres is the store") < html.index("Alembic migrations")
    data = await browser.json("/")
    assert [n["title"] for n in data["notes"]] == ["Prefer short titles", "Postgres is the store", "Alembic migrations"]
    assert data["counts"]["total"] == 3
    assert data["counts"]["by_type"] == {"procedural": 2, "semantic": 1}
    assert data["counts"]["by_project"] == {"github.com/acme/api": 2, "global": 1}
    assert 'href="/?project=github.com/acme/api"' in html


async def test_notes_filter_by_project_type_scope_and_tag(browser: Browser, memory: Memory) -> None:
    await write(memory, "API convention", project="github.com/acme/api", type="procedural", tags=["style"])
    await write(memory, "API fact", project="github.com/acme/api", tags=["style", "db"])
    await write(memory, "Laptop only", project="github.com/acme/api", scope="machine-local", tags=["db"])
    await write(memory, "Global fact", tags=["db"])

    async def titles(query: str) -> set[str]:
        return {n["title"] for n in (await browser.json(f"/?{query}"))["notes"]}

    assert await titles("project=github.com/acme/api") == {"API convention", "API fact", "Laptop only"}
    assert await titles("project=github.com/acme/api&type=semantic") == {"API fact", "Laptop only"}
    assert await titles("scope=machine-local") == {"Laptop only"}
    assert await titles("tag=db&scope=portable") == {"API fact", "Global fact"}
    assert await titles("tag=style&type=procedural") == {"API convention"}
    bad = await browser.json("/?type=opinion", status=400)
    assert "type must be one of" in bad["error"]["message"]


async def test_notes_are_paged_newest_first_with_a_cursor(browser: Browser, memory: Memory) -> None:
    for number in range(7):
        await write(memory, f"Note number {number}")
    first = await browser.json("/?limit=3")
    assert len(first["notes"]) == 3
    assert first["next_cursor"]
    seen = [n["title"] for n in first["notes"]]
    cursor = first["next_cursor"]
    while cursor:
        page = await browser.json(f"/?limit=3&cursor={cursor}")
        seen += [n["title"] for n in page["notes"]]
        cursor = page["next_cursor"]
    assert len(seen) == 7
    assert len(set(seen)) == 7
    html = await browser.html("/?limit=3")
    assert 'rel="next"' in html
    assert "cursor=" in html
    assert (await browser.json("/?cursor=not-a-cursor", status=400))["error"]["status"] == 400


async def test_search_page_is_the_same_search_as_the_cli_with_highlighted_snippets(
    browser: Browser, memory: Memory
) -> None:
    await write(memory, "Database migrations", "We run alembic migrations before every deploy.")
    await write(memory, "Deploy checklist", "Tag the release, then deploy from CI.")
    await write(memory, "Lunch", "Nothing to do with it.")
    expected = [hit.id for hit in await memory.search("how do we deploy migrations", limit=20)]
    data = await browser.json("/search?q=how+do+we+deploy+migrations")
    assert [hit["id"] for hit in data["hits"]] == expected
    assert "«" in data["hits"][0]["snippet"]
    html = await browser.html("/search?q=alembic")
    assert "<mark>alembic</mark>" in html
    assert "Database migrations" in html
    assert "Lunch" not in html
    empty = await browser.html("/search?q=zzzyzx")
    assert "Nothing found" in empty


async def test_note_page_renders_markdown_front_matter_and_links_to_history(browser: Browser, memory: Memory) -> None:
    note = await write(
        memory,
        "Markdown note",
        "# Heading\n\nSome **bold** text and a [link](https://example.com/docs).\n\n```\ncode block\n```",
        tags=["docs"],
    )
    html = await browser.html(f"/notes/{note.id}")
    assert "<h1>Heading</h1>" in html
    assert "<strong>bold</strong>" in html
    assert '<a href="https://example.com/docs" rel="nofollow noopener noreferrer">link</a>' in html
    assert "<pre><code>code block" in html
    assert f"id: {note.id}" in html
    assert "prov_source: human" in html
    assert f'href="/notes/{note.id}/history"' in html
    assert f'href="/notes/{note.id}/edit"' in html
    data = await browser.json(f"/notes/{note.id}")
    assert data["note"]["body"].startswith("# Heading")
    assert data["note"]["path"] == f"memory/semantic/{note.id}.md"
    assert (await browser.json("/notes/01JD3W6Q2M8Z4T9K7B5X0R1C2V", status=404))["error"]["status"] == 404


async def test_a_retired_note_says_which_note_replaced_it(browser: Browser, memory: Memory) -> None:
    old = await write(memory, "Use tox")
    new = await write(memory, "Use nox", supersedes=[old.id])
    html = await browser.html(f"/notes/{old.id}")
    assert "Retired" in html
    assert f'href="/notes/{new.id}"' in html
    assert old.id not in {n["id"] for n in (await browser.json("/"))["notes"]}
    assert old.id in {n["id"] for n in (await browser.json("/?superseded=1"))["notes"]}


# -- edit and new ----------------------------------------------------------------------------------


async def test_an_edit_writes_the_file_commits_it_and_the_search_finds_it(browser: Browser, memory: Memory) -> None:
    note = await write(memory, "Release steps", "Tag, then deploy.", tags=["release"])
    form_page = await browser.json(f"/notes/{note.id}/edit")
    response = await browser.post(
        f"/notes/{note.id}/edit",
        {
            "base": form_page["base"],
            "title": "Release steps (revised)",
            "type": "procedural",
            "scope": "portable",
            "project": "github.com/acme/api",
            "tags": "release, ci",
            "body": "Tag, run the smoke tests,\r\nthen deploy.",
        },
    )
    assert response.status_code == 303
    assert location(response) == f"/notes/{note.id}"
    moved = memory.note_file(note.with_changes(type="procedural"))
    assert not note_file(memory, note).exists()
    saved = moved.read_text()
    assert "title: Release steps (revised)" in saved
    assert "tags: [release, ci]" in saved
    assert saved.endswith("Tag, run the smoke tests,\nthen deploy.\n")
    assert git(memory, "status", "--porcelain") == ""
    assert "in the dashboard" in git(memory, "log", "-1", "--format=%s")
    assert git(memory, "log", "-1", "--format=%an").strip() == "desktop"
    hits = await memory.search("smoke tests")
    assert [h.id for h in hits] == [note.id]


async def test_an_edit_on_a_copy_changed_by_hand_is_refused_with_both_versions_shown(
    browser: Browser, memory: Memory
) -> None:
    note = await write(memory, "Shared note", "The original text.")
    base = (await browser.json(f"/notes/{note.id}/edit"))["base"]
    path = note_file(memory, note)
    # Another machine's version arrives (a sync) or the user edits the file by hand meanwhile.
    theirs = note.with_changes(body="The text another machine wrote.", machine_id="laptop")
    path.write_text(render_note(theirs))
    response = await browser.post(
        f"/notes/{note.id}/edit", {"base": base, "title": "Shared note", "body": "My text from the stale form."}
    )
    html = await response.get_data(as_text=True)
    assert response.status_code == 409
    assert "changed since you opened it" in html
    assert "My text from the stale form." in html  # the user's version is kept in the form…
    assert "The text another machine wrote." in html  # …beside the version on disk now
    assert path.read_text() == render_note(theirs)  # nothing overwritten
    # Saving again from the refusal page (its base is the current version) is a deliberate overwrite.
    new_base = html.split('name="base" value="', 1)[1].split('"', 1)[0]
    again = await browser.post(f"/notes/{note.id}/edit", {"base": new_base, "title": "Shared note", "body": "Merged."})
    assert again.status_code == 303
    assert path.read_text().endswith("Merged.\n")


async def test_an_edit_that_makes_a_note_machine_local_moves_it_out_of_git(browser: Browser, memory: Memory) -> None:
    note = await write(memory, "Laptop path", "/home/me/src")
    base = (await browser.json(f"/notes/{note.id}/edit"))["base"]
    fields = {"base": base, "title": "Laptop path", "body": "/home/me/src", "scope": "machine-local"}
    assert (await browser.post(f"/notes/{note.id}/edit", fields)).status_code == 303
    local = memory.note_file(note.with_changes(scope="machine-local"))
    assert local.is_file()
    assert not note_file(memory, note).exists()
    assert git(memory, "status", "--porcelain") == ""  # the removal from memory/ is committed
    assert (await browser.json(f"/notes/{note.id}"))["note"]["path"] == f"local/semantic/{note.id}.md"


async def test_two_tabs_editing_the_same_note_cannot_overwrite_each_other(browser: Browser, memory: Memory) -> None:
    note = await write(memory, "Tabbed note", "v1")
    base = (await browser.json(f"/notes/{note.id}/edit"))["base"]
    first = await browser.post(f"/notes/{note.id}/edit", {"base": base, "title": "Tabbed note", "body": "tab one"})
    assert first.status_code == 303
    second = await browser.post(
        f"/notes/{note.id}/edit", json_body={"base": base, "title": "Tabbed note", "body": "tab two"}
    )
    assert second.status_code == 409
    refused = await second.get_json()
    assert refused["current"]["body"] == "tab one"
    assert refused["form"]["body"] == "tab two"
    assert note_file(memory, note).read_text().endswith("tab one\n")


async def test_an_edit_of_a_note_deleted_meanwhile_is_refused(browser: Browser, memory: Memory) -> None:
    note = await write(memory, "Soon gone", "text")
    base = (await browser.json(f"/notes/{note.id}/edit"))["base"]
    await memory.delete(note.id)
    response = await browser.post(f"/notes/{note.id}/edit", {"base": base, "title": "Soon gone", "body": "edit"})
    assert response.status_code == 409
    assert "deleted since you opened it" in await response.get_data(as_text=True)
    assert not note_file(memory, note).exists()


async def test_an_invalid_edit_is_refused_and_keeps_what_the_user_typed(browser: Browser, memory: Memory) -> None:
    note = await write(memory, "Valid title", "text")
    base = (await browser.json(f"/notes/{note.id}/edit"))["base"]
    response = await browser.post(
        f"/notes/{note.id}/edit", {"base": base, "title": "   ", "body": "A long body I do not want to lose."}
    )
    html = await response.get_data(as_text=True)
    assert response.status_code == 400
    assert "title: must not be empty" in html
    assert "A long body I do not want to lose." in html
    assert note_file(memory, note).read_text().endswith("text\n")
    no_base = await browser.post(f"/notes/{note.id}/edit", json_body={"title": "x", "body": "y"})
    assert no_base.status_code == 400
    assert "base is required" in (await no_base.get_json())["error"]["message"]


async def test_the_new_note_form_writes_and_commits_a_note(browser: Browser, memory: Memory) -> None:
    html = await browser.html("/new?project=github.com/acme/api")
    assert 'value="github.com/acme/api"' in html
    response = await browser.post(
        "/new",
        {
            "title": "Written in the dashboard",
            "type": "procedural",
            "scope": "portable",
            "project": "github.com/acme/api",
            "tags": "ui",
            "body": "Hello from the browser.",
        },
    )
    assert response.status_code == 303
    note_id = location(response).rsplit("/", 1)[1]
    note = await memory.get(note_id)
    assert (note.title, note.type, note.project, note.tags, note.machine_id) == (
        "Written in the dashboard",
        "procedural",
        "github.com/acme/api",
        ("ui",),
        "desktop",
    )
    assert git(memory, "status", "--porcelain") == ""
    created = await browser.post("/new", json_body={"title": "By script", "body": "x", "tags": ["a", "b"]})
    assert created.status_code == 201
    assert (await created.get_json())["note"]["tags"] == ["a", "b"]
    invalid = await browser.post("/new", {"title": "t", "body": "b", "type": "opinion"})
    assert invalid.status_code == 400


# -- history --------------------------------------------------------------------------------------


async def test_history_shows_each_version_with_machine_and_time_and_diffs_any_two(
    browser: Browser, memory: Memory
) -> None:
    note = await write(memory, "Evolving", "first line")
    for body in ("first line\nsecond line", "first line\nsecond line\nthird line"):
        base = (await browser.json(f"/notes/{note.id}/edit"))["base"]
        response = await browser.post(f"/notes/{note.id}/edit", {"base": base, "title": "Evolving", "body": body})
        assert response.status_code == 303
    history = await browser.json(f"/notes/{note.id}/history")
    versions = history["versions"]
    assert len(versions) == 3
    assert {v["machine"] for v in versions} == {"desktop"}
    assert all(v["timestamp"] for v in versions)
    html = await browser.html(f"/notes/{note.id}/history")
    assert "desktop" in html
    assert 'name="a"' in html
    assert 'name="b"' in html
    newest, oldest = versions[0]["sha"], versions[-1]["sha"]
    diff = await browser.json(f"/notes/{note.id}/diff?a={oldest}&b={newest}")
    added = [line["text"] for line in diff["diff"] if line["kind"] == "add"]
    assert "+second line" in added
    assert "+third line" in added
    default = await browser.json(f"/notes/{note.id}/diff")
    assert default["a"]["sha"] == versions[1]["sha"]
    assert default["b"]["sha"] == newest
    default_added = [line["text"] for line in default["diff"] if line["kind"] == "add"]
    assert "+third line" in default_added
    assert "+second line" not in default_added
    diff_html = await browser.html(f"/notes/{note.id}/diff?a={oldest[:8]}&b={newest[:8]}")
    assert '<span class="d-add">+third line</span>' in diff_html
    version = await browser.json(f"/notes/{note.id}/at/{oldest}")
    assert version["text"].endswith("first line\n")
    assert (await browser.json(f"/notes/{note.id}/diff?a=HEAD~1", status=400))["error"]["status"] == 400
    assert (await browser.json(f"/notes/{note.id}/at/{'0' * 40}", status=400))["error"]["status"] == 400


async def test_a_machine_local_note_has_no_history_and_says_why(browser: Browser, memory: Memory) -> None:
    note = await write(memory, "Only here", scope="machine-local")
    html = await browser.html(f"/notes/{note.id}/history")
    assert "machine-local" in html
    assert "no history" in html


# -- fleet, conflicts, health ---------------------------------------------------------------------


def publish(memory: Memory, name: str, data: Any) -> None:
    fleet = memory.config.layout.memory_dir / ".fleet"
    fleet.mkdir(exist_ok=True)
    (fleet / name).write_text(data if isinstance(data, str) else json.dumps(data))


async def test_fleet_shows_every_machine_that_synced_and_how_far_behind_it_is(browser: Browser, memory: Memory) -> None:
    await write(memory, "First")
    laptop_head = git(memory, "rev-parse", "HEAD").strip()
    await write(memory, "Second")
    await write(memory, "Third")
    head = git(memory, "rev-parse", "HEAD").strip()
    publish(
        memory,
        "desktop.json",
        {
            "machine": "desktop",
            "synced_at": "2026-11-20T10:00:00Z",
            "head": head,
            "notes_written": 12,
            "conflicts": 0,
            "future_field": {"x": 1},
        },
    )
    publish(
        memory,
        "laptop.json",
        {
            "machine": "laptop",
            "synced_at": "2026-11-19T08:00:00Z",
            "head": laptop_head,
            "notes_written": 3,
            "conflicts": ["01JD3W6Q2M8Z4T9K7B5X0R1C2V"],
        },
    )
    publish(memory, "old-pi.json", {"machine": "old-pi"})  # an older version: nothing but its name
    publish(memory, "phone.json", {"machine": "phone", "head": "f" * 40})  # a commit not fetched here yet
    publish(memory, "broken.json", "{not json")
    data = await browser.json("/fleet")
    machines = {m["machine"]: m for m in data["machines"]}
    assert set(machines) == {"desktop", "laptop", "old-pi", "phone", "broken"}
    assert machines["desktop"]["standing"] == "up to date with this machine"
    assert machines["desktop"]["this_machine"]
    assert machines["desktop"]["head_subject"].startswith("anamnesis: write")
    assert machines["laptop"]["behind"] == 2
    assert machines["laptop"]["standing"] == "2 commits behind this machine"
    assert machines["laptop"]["conflicts"] == 1
    assert machines["laptop"]["notes_written"] == 3
    assert machines["old-pi"]["synced_at"] is None
    assert machines["old-pi"]["standing"] == "no commit published"
    assert "not reached this machine" in machines["phone"]["standing"]
    assert "not readable as JSON" in machines["broken"]["problem"]
    html = await browser.html("/fleet")
    assert "2 commits behind this machine" in html
    assert "2026-11-20 10:00 UTC" in html


def conflict_copy(original: Note, copy_id: str, body: str, machine: str = "laptop") -> Note:
    return original.with_changes(
        id=copy_id,
        body=body,
        machine_id=machine,
        tags=(*original.tags, "conflict"),
        extra={"conflict_of": original.id},
    )


async def make_conflict(memory: Memory, title: str) -> tuple[Note, Note]:
    original = await write(memory, title, "Our version.", tags=["topic"])
    copy = conflict_copy(original, original.id + "-laptop", "Their version.")
    await memory.save(copy)
    return original, copy


async def resolve(browser: Browser, copy_id: str, action: str) -> Response:
    pair = next(p for p in (await browser.json("/conflicts"))["conflicts"] if p["copy"]["id"] == copy_id)
    form = {"action": action, "copy_base": pair["copy"]["base"], "original_base": pair["original"]["base"]}
    return await browser.post(f"/conflicts/{copy_id}/resolve", form)


async def test_conflicts_page_shows_both_versions_and_keep_original_drops_the_copy(
    browser: Browser, memory: Memory
) -> None:
    original, copy = await make_conflict(memory, "Contested")
    await write(memory, "Tagged by hand", tags=["conflict"])  # not a sync's copy: not listed
    html = await browser.html("/conflicts")
    assert "Our version." in html
    assert "Their version." in html
    assert "Tagged by hand" not in html
    response = await resolve(browser, copy.id, "keep-original")
    assert response.status_code == 303
    assert not note_file(memory, copy).exists()
    assert (await memory.get(original.id)).body == "Our version."
    assert (await browser.json("/conflicts"))["conflicts"] == []


async def test_keep_copy_puts_the_other_version_in_place(browser: Browser, memory: Memory) -> None:
    original, copy = await make_conflict(memory, "Contested")
    assert (await resolve(browser, copy.id, "keep-copy")).status_code == 303
    kept = await memory.get(original.id)
    assert kept.body == "Their version."
    assert "conflict" not in kept.tags
    assert "topic" in kept.tags
    assert not note_file(memory, copy).exists()
    assert git(memory, "status", "--porcelain") == ""


async def test_keep_both_makes_the_copy_an_ordinary_note(browser: Browser, memory: Memory) -> None:
    original, copy = await make_conflict(memory, "Contested")
    assert (await resolve(browser, copy.id, "keep-both")).status_code == 303
    kept = await memory.get(copy.id)
    assert "conflict" not in kept.tags
    assert "conflict_of" not in kept.extra
    assert (await memory.get(original.id)).body == "Our version."


async def test_merge_by_editing_saves_the_merge_and_drops_the_copy(browser: Browser, memory: Memory) -> None:
    original, copy = await make_conflict(memory, "Contested")
    html = await browser.html(f"/conflicts/{copy.id}/merge")
    assert "Our version." in html
    assert "Their version." in html
    merge = await browser.json(f"/conflicts/{copy.id}/merge")
    response = await browser.post(
        f"/conflicts/{copy.id}/merge",
        {
            "base": merge["base"],
            "copy_base": merge["copy"]["base"],
            "title": "Contested",
            "tags": "topic, conflict",
            "body": "Our version. Their version.",
        },
    )
    assert response.status_code == 303
    merged = await memory.get(original.id)
    assert merged.body == "Our version. Their version."
    assert merged.tags == ("topic",)
    assert not note_file(memory, copy).exists()


async def test_a_conflict_decision_on_versions_that_changed_since_is_refused(browser: Browser, memory: Memory) -> None:
    _original, copy = await make_conflict(memory, "Contested")
    pair = (await browser.json("/conflicts"))["conflicts"][0]
    await memory.save(copy.with_changes(body="Their newer version."))
    response = await browser.post(
        f"/conflicts/{copy.id}/resolve",
        {"action": "keep-original", "copy_base": pair["copy"]["base"], "original_base": pair["original"]["base"]},
    )
    assert response.status_code == 409
    assert note_file(memory, copy).exists()


async def test_health_lists_unparseable_files_with_the_reason_and_the_index_state(
    browser: Browser, memory: Memory
) -> None:
    await write(memory, "Fine note")
    broken = memory.config.layout.memory_dir / "semantic" / "broken.md"
    broken.write_text("no front-matter here\n")
    html = await browser.html("/health")
    assert "memory/semantic/broken.md" in html
    assert "does not start with a &#39;---&#39; front-matter line" in html
    data = await browser.json("/health")
    assert data["index"]["notes"] == 1
    assert data["index"]["problems"] == 1
    assert data["problems"] == [
        {"path": "memory/semantic/broken.md", "reason": "does not start with a '---' front-matter line"}
    ]
    assert data["git"]["branch"] == "main"
    assert data["git"]["uncommitted"] == 1
    assert data["service"]["running"] is False
    broken.unlink()
    reindexed = await browser.post("/health/reindex", json_body={})
    assert reindexed.status_code == 200
    assert (await reindexed.get_json())["problems"] == []
    no_sync = await browser.post("/health/sync", json_body={})
    assert no_sync.status_code == 409


# -- the app as a whole ---------------------------------------------------------------------------


async def test_every_page_answers_html_and_the_same_data_as_json(browser: Browser, memory: Memory) -> None:
    original, copy = await make_conflict(memory, "Contested")
    sha = git(memory, "rev-parse", "HEAD").strip()
    pages = [
        "/",
        "/search?q=version",
        f"/notes/{original.id}",
        f"/notes/{original.id}/edit",
        "/new",
        f"/notes/{copy.id}/history",
        f"/notes/{copy.id}/diff",
        f"/notes/{copy.id}/at/{sha}",
        "/fleet",
        "/conflicts",
        f"/conflicts/{copy.id}/merge",
        "/health",
    ]
    for path in pages:
        html = await browser.html(path)
        assert html.startswith("<!doctype html>"), path
        assert html.rstrip().endswith("</html>"), path
        data = await browser.json(path)
        assert data["csrf_token"], path
        via_query = await browser.get(path + ("&" if "?" in path else "?") + "format=json")
        assert via_query.content_type.startswith("application/json"), path


async def test_static_assets_are_served_from_the_package(browser: Browser) -> None:
    for name, kind in (("app.css", "text/css"), ("app.js", "javascript"), ("favicon.svg", "image/svg+xml")):
        response = await browser.get(f"/static/{name}")
        assert response.status_code == 200, name
        assert kind in response.content_type, name
    assert (await browser.get("/static/../app.py")).status_code == 404


async def test_the_app_opens_its_own_memory_while_it_serves(config: Config, memory: Memory) -> None:
    note = await write(memory, "Seen by a standalone app")
    app = create_app(config)
    async with app.test_app() as running:
        browser = Browser(running.test_client())
        assert note.id in {n["id"] for n in (await browser.json("/"))["notes"]}


async def test_health_says_when_semantic_search_cannot_load(
    browser: Browser, memory: Memory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MODEL_PATH_ENV, str(tmp_path / "gone.onnx"))
    await write(memory, "Fine note")
    assert "cannot load: search is lexical only" in await browser.html("/health")
    semantic = (await browser.json("/health"))["semantic"]
    assert (semantic["state"], semantic["embedded"], semantic["notes"]) == ("unavailable", 0, 1)
    assert "gone.onnx" in semantic["problem"]
