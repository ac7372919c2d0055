"""A real headless Chromium (Debian's, driven by Playwright; no browser download) uses the real
`anamnesis serve`: browses, searches, edits a note, sees the edit on disk and in its history.

Every page is saved as a screenshot, desktop and phone, under tests/artifacts/. In CI (CI=true)
a missing chromium or playwright fails the run; elsewhere the test is skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from anamnesis.config import Config
from anamnesis.curation.proposals import Proposal, ProposalStore
from anamnesis.ids import new_ulid
from anamnesis.memory import Memory, NoteDraft
from anamnesis.notes import Note, render_note, utc_now

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
BOUND = 30  # seconds: a bound on waiting, never a measured duration
MS = BOUND * 1000


def _browser_or_skip() -> tuple[Any, str]:
    """Playwright's async API and the chromium to drive, or a skip (a failure in CI) saying what is missing."""
    executable = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    try:
        from playwright import async_api
    except ImportError:
        async_api = None
    missing = []
    if executable is None:
        missing.append("chromium (apt-get install chromium)")
    if async_api is None:
        missing.append("playwright for Python (pip install -e '.[test]')")
    if missing:
        message = "the browser test needs " + " and ".join(missing)
        if os.environ.get("CI") == "true":
            pytest.fail(message + "; CI must provide it", pytrace=False)
        pytest.skip(message)
    assert executable is not None
    return async_api, executable


@pytest.fixture
async def served(config: Config, memory: Memory) -> AsyncIterator[str]:
    """`anamnesis serve` in a subprocess on a free port; its URL."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    command = [sys.executable, "-m", "anamnesis", "serve", "--port", "0", "--no-sync"]
    async with await anyio.open_process(command, env=env) as process:
        assert process.stdout is not None
        buffer = b""
        with anyio.fail_after(BOUND):
            while b"\n" not in buffer:
                buffer += await process.stdout.receive()
        url = buffer.decode().split(" at ", 1)[1].split("/ ", 1)[0]
        try:
            yield url
        finally:
            process.terminate()
            with anyio.fail_after(BOUND):
                await process.wait()


async def seed(memory: Memory) -> dict[str, Note]:
    notes = {
        "migrations": await memory.write(
            NoteDraft(
                type="procedural",
                title="Run database migrations before deploying",
                body="We run `alembic upgrade head` in CI **before** the deploy step.\n\n"
                "- never by hand on production\n- one migration per pull request",
                project="github.com/acme/quotes-api",
                tags=("deploy", "database"),
            )
        ),
        "postgres": await memory.write(
            NoteDraft(
                type="semantic",
                title="Quotes are stored in Postgres 16",
                body="The quotes service uses Postgres 16 with the `pg_trgm` extension for search.",
                project="github.com/acme/quotes-api",
                tags=("database",),
            )
        ),
        "session": await memory.write(
            NoteDraft(
                type="episodic",
                title="Session: fixed the flaky pricing test",
                body="The pricing test depended on the wall clock; it now takes a frozen time.",
                project="github.com/acme/billing",
            )
        ),
        "hostile": await memory.write(
            NoteDraft(
                type="semantic",
                title="<script>document.title='pwned'</script> hostile title",
                body="<img src=x onerror=\"document.title='pwned'\"> [click](javascript:document.title='pwned')",
                tags=("<b>tag</b>",),
            )
        ),
        "prefs": await memory.write(
            NoteDraft(type="procedural", title="Prefer configuration files over scripts", body="Configs over scripts.")
        ),
    }
    original = notes["postgres"]
    copy = original.with_changes(
        id=original.id + "-laptop",
        body="The quotes service uses Postgres 15 (the laptop's older note).",
        machine_id="laptop",
        tags=(*original.tags, "conflict"),
        extra={"conflict_of": original.id},
    )
    await memory.save(copy)
    fleet = memory.config.layout.memory_dir / ".fleet"
    fleet.mkdir()
    head = subprocess.run(
        ["git", "-C", str(memory.config.layout.memory_dir), "rev-parse", "HEAD~2"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (fleet / "laptop.json").write_text(
        json.dumps(
            {
                "machine": "laptop",
                "synced_at": "2026-11-21T18:30:00Z",
                "head": head,
                "notes_written": 41,
                "conflicts": 1,
            }
        )
    )
    (fleet / "pi.json").write_text(json.dumps({"machine": "pi"}))
    (memory.config.layout.memory_dir / "semantic" / "broken.md").write_text("title: no front-matter\n")
    # A reflection proposal waiting for review, cited from the session note.
    await ProposalStore.of(memory.config.layout).save(
        [
            Proposal(
                id=new_ulid(),
                project="github.com/acme/quotes-api",
                type="procedural",
                title="Warm the quotes cache before load tests",
                body="Run `make warm-cache` first, or p99 latency doubles.",
                tags=("testing",),
                source_ids=(notes["session"].id,),
                sent_ids=(notes["session"].id,),
                model="openai/gpt-test",
                created_at=utc_now(),
            )
        ]
    )
    return notes


async def test_a_person_browses_searches_and_edits_in_a_real_browser(
    served: str, memory: Memory, config: Config
) -> None:
    async_api, chromium = _browser_or_skip()
    notes = await seed(memory)
    ARTIFACTS.mkdir(exist_ok=True)
    problems: list[str] = []
    async with async_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(viewport=DESKTOP)
            page = await context.new_page()
            page.set_default_timeout(MS)
            page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: problems.append(str(e)))

            async def shot(name: str) -> None:
                await page.screenshot(path=str(ARTIFACTS / f"desktop-{name}.png"), full_page=True)

            # Browse: newest first, counts per type and project, a filter by project.
            await page.goto(served + "/")
            assert await page.title() == "Notes · Anamnesis"
            titles = await page.locator(".note-row .note-title").all_inner_texts()
            assert titles[0] == "Prefer configuration files over scripts"
            assert "Run database migrations before deploying" in titles
            assert "UTC" not in await page.locator(".note-row time").first.inner_text()  # app.js ran, under the CSP
            await shot("notes")
            await page.get_by_role("link", name="github.com/acme/quotes-api").first.click()
            await page.wait_for_url("**/?project=github.com/acme/quotes-api")
            assert "Session: fixed the flaky pricing test" not in await page.locator(".notes").inner_text()
            await page.select_option("select[name=type]", "procedural")  # auto-submits
            await page.wait_for_url("**type=procedural**")
            assert await page.locator(".note-row").count() == 1

            # The hostile note is text, not markup: no script ran.
            await page.goto(served + f"/notes/{notes['hostile'].id}")
            assert await page.title() != "pwned"
            assert "<script>" in await page.locator("h1").inner_text()
            assert await page.locator(".markdown img").count() == 0

            # Search from the header box.
            await page.goto(served + "/")
            await page.fill(".quick-search input", "how do we deploy migrations")
            await page.press(".quick-search input", "Enter")
            await page.wait_for_url("**/search?q=**")
            assert await page.locator(".hit mark").count() > 0
            first_hit = page.locator(".hit .note-title").first
            assert await first_hit.inner_text() == "Run database migrations before deploying"
            await shot("search")

            # Read the note, then edit it.
            await first_hit.click()
            await page.wait_for_url(f"**/notes/{notes['migrations'].id}")
            assert await page.locator(".markdown strong").inner_text() == "before"
            assert await page.locator(".markdown li").count() == 2
            await shot("note")
            await page.get_by_role("link", name="Edit").click()
            await page.wait_for_url("**/edit")
            await page.fill(
                "textarea[name=body]",
                "We run `alembic upgrade head` in CI before deploying.\n\n"
                "Added in the browser: roll back with `alembic downgrade -1`.",
            )
            await page.fill("input[name=tags]", "deploy, database, rollback")
            await shot("edit")
            await page.get_by_role("button", name="Save").click()
            await page.wait_for_url(f"**/notes/{notes['migrations'].id}")
            assert "roll back with" in await page.locator(".markdown").inner_text()

            # The edit is on disk and in git, as this machine.
            path = memory.note_file(notes["migrations"].with_changes(type="procedural"))
            on_disk = path.read_text()
            assert "Added in the browser: roll back with `alembic downgrade -1`." in on_disk
            assert "tags: [deploy, database, rollback]" in on_disk
            log = subprocess.run(
                ["git", "-C", str(memory.config.layout.memory_dir), "log", "-1", "--format=%an|%s", "--", str(path)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            assert log.startswith("desktop|anamnesis: edit procedural")

            # …and in the note's history, with a diff of the two versions.
            await page.get_by_role("link", name="History").click()
            await page.wait_for_url("**/history")
            rows = page.locator("table.versions tbody tr")
            assert await rows.count() == 2
            assert await rows.first.locator(".machine-name").inner_text() == "desktop"
            assert "edit procedural" in await rows.first.inner_text()
            await shot("history")
            await page.get_by_role("button", name="Compare the two versions").click()
            await page.wait_for_url("**/diff?**")
            added = " ".join(await page.locator(".diff .d-add").all_inner_texts())
            assert "+Added in the browser: roll back with `alembic downgrade -1`." in added
            await shot("diff")

            # A stale edit: the file changes on disk while the form is open. Nothing is overwritten.
            await page.goto(served + f"/notes/{notes['prefs'].id}/edit")
            prefs_path = memory.note_file(notes["prefs"].with_changes(type="procedural"))
            theirs = notes["prefs"].with_changes(body="Configs over scripts, said the laptop.", machine_id="laptop")
            prefs_path.write_text(render_note(theirs))
            await page.fill("textarea[name=body]", "My stale edit.")
            await page.get_by_role("button", name="Save").click()
            await page.wait_for_selector(".compare .other")
            assert "Configs over scripts, said the laptop." in await page.locator(".compare .other").inner_text()
            assert await page.locator("textarea[name=body]").input_value() == "My stale edit."
            assert prefs_path.read_text() == render_note(theirs)
            await shot("stale-edit")

            for name, path_ in (
                ("new", "/new"),
                ("fleet", "/fleet"),
                ("conflicts", "/conflicts"),
                ("health", "/health"),
                ("reflection", "/reflection"),
            ):
                await page.goto(served + path_)
                await shot(name)
            await page.goto(served + "/fleet")
            fleet_text = await page.locator("table.fleet").inner_text()
            assert "laptop" in fleet_text
            assert "3 commits behind this machine" in fleet_text  # two at seeding, one edit since
            await page.goto(served + "/health")
            assert "memory/semantic/broken.md" in await page.locator("table.problems").inner_text()

            # Resolve the conflict in the browser: keep both (no confirm dialog for that one).
            await page.goto(served + "/conflicts")
            await page.get_by_role("button", name="Keep both").click()
            await page.wait_for_url("**/conflicts")
            assert "No conflict copies are waiting" in await page.locator("main").inner_text()

            # Accept the reflection proposal: it becomes a note with its provenance.
            await page.goto(served + "/reflection")
            assert "Warm the quotes cache before load tests" in await page.locator("main").inner_text()
            async with page.expect_navigation():
                await page.get_by_role("button", name="Accept", exact=True).click()
            written = await memory.search("warm quotes cache load tests")
            assert [h.title for h in written][:1] == ["Warm the quotes cache before load tests"]
            assert (await memory.get(written[0].id)).prov_source == "reflection"

            # The same pages on a phone-sized screen.
            phone = await browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
            small = await phone.new_page()
            small.set_default_timeout(MS)
            small.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
            for name, path_ in (
                ("notes", "/"),
                ("search", "/search?q=database"),
                ("note", f"/notes/{notes['migrations'].id}"),
                ("edit", f"/notes/{notes['migrations'].id}/edit"),
                ("history", f"/notes/{notes['migrations'].id}/history"),
                ("fleet", "/fleet"),
                ("health", "/health"),
                ("reflection", "/reflection"),
            ):
                await small.goto(served + path_)
                width = await small.evaluate("document.documentElement.scrollWidth")
                assert width <= PHONE["width"], (name, width)  # nothing runs off the side of a phone
                await small.screenshot(path=str(ARTIFACTS / f"phone-{name}.png"), full_page=True)
        finally:
            await browser.close()
    assert [p for p in problems if "Content Security Policy" in p or "Refused" in p] == []
    assert [p for p in problems if "status of 409" not in p] == []  # the stale edit's answer, on purpose
