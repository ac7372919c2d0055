"""The MCP tools through `mcp.Client`, in-process, in the current (auto) and legacy handshakes.

Everything is real: notes on disk, the SQLite index, git. The server goes through the index
(aiosqlite), so these tests run on asyncio (the conftest default).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.types import CallToolResult

from anamnesis.config import Config, load_config
from anamnesis.ids import new_ulid
from anamnesis.mcp_server import (
    MAX_WRITE_BODY_CHARS,
    TOOLS_LIST_BUDGET_CHARS,
    build_server,
)
from anamnesis.memory import Memory
from anamnesis.notes import Note, render_note, utc_now

pytestmark = pytest.mark.anyio

PROJECT = "github.com/acme/quotes-api"
OTHER = "github.com/acme/billing"
READ_ONLY = {"memory_search", "memory_get", "memory_list", "memory_status"}
# About 8k tokens at chars/4: no call may return more, whatever the store holds.
MAX_RESPONSE_CHARS = 32_000


@pytest.fixture(params=["auto", "legacy"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def client(config: Config, mode: str) -> AsyncIterator[Client]:
    async with Client(build_server(config, PROJECT), mode=mode, raise_exceptions=True) as connected:
        yield connected


async def call(client: Client, tool: str, **arguments: Any) -> CallToolResult:
    return await client.call_tool(tool, arguments)


async def ok(client: Client, tool: str, **arguments: Any) -> CallToolResult:
    result = await call(client, tool, **arguments)
    assert result.is_error is False, text(result)
    return result


def text(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if block.type == "text")


def data(result: CallToolResult) -> dict[str, Any]:
    assert result.structured_content is not None
    return dict(result.structured_content)


def response_chars(result: CallToolResult) -> int:
    return len(json.dumps(result.model_dump(by_alias=True, mode="json", exclude_none=True), ensure_ascii=False))


async def write(client: Client, title: str, body: str = "", **more: Any) -> str:
    arguments = {"type": "semantic", "title": title, "body": body or f"About {title}.", **more}
    return str(data(await ok(client, "memory_write", **arguments))["id"])


def hand_written(config: Config, *, title: str, body: str, project: str = PROJECT, **more: Any) -> Note:
    """A note put on disk the way a user's editor (or another machine's sync) would."""
    now = utc_now()
    note = Note(
        id=new_ulid(),
        type="semantic",
        title=title,
        body=body,
        project=project,
        machine_id="laptop",
        created_at=now,
        updated_at=now,
        **more,
    )
    path = config.layout.memory_dir / "semantic" / f"{note.id}.md"
    path.write_text(render_note(note), encoding="utf-8")
    return note


# -- the tool list ------------------------------------------------------------------------


async def test_tools_keep_the_0_1_3_names_and_parameters_plus_get_and_paging(client: Client) -> None:
    tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) == READ_ONLY | {"memory_write", "memory_sync"}

    def params(name: str) -> set[str]:
        return set(tools[name].input_schema["properties"])

    assert params("memory_search") == {"query", "project", "type", "scope", "k"}
    assert tools["memory_search"].input_schema["required"] == ["query"]
    assert tools["memory_search"].input_schema["properties"]["k"]["default"] == 8
    assert params("memory_list") == {"project", "type", "scope", "limit", "cursor"}
    assert params("memory_get") == {"id"}
    assert params("memory_write") == {"type", "title", "body", "project", "tags", "scope", "supersedes"}
    assert tools["memory_write"].input_schema["properties"]["scope"]["default"] == "portable"
    assert set(tools["memory_write"].input_schema["required"]) == {"type", "title", "body"}
    assert params("memory_status") == params("memory_sync") == set()


async def test_only_the_reading_tools_are_marked_read_only(client: Client) -> None:
    for tool in (await client.list_tools()).tools:
        assert tool.annotations is not None
        assert tool.annotations.read_only_hint is (tool.name in READ_ONLY), tool.name


async def test_the_whole_tool_list_costs_at_most_1200_tokens(client: Client) -> None:
    listing = (await client.list_tools()).model_dump(by_alias=True, mode="json", exclude_none=True)
    size = len(json.dumps({"tools": listing["tools"]}))
    assert size <= TOOLS_LIST_BUDGET_CHARS == 4_800


async def test_descriptions_tell_the_model_when_to_use_each_tool(client: Client) -> None:
    described = {tool.name: tool.description or "" for tool in (await client.list_tools()).tools}
    assert "memory_get" in described["memory_search"]
    assert "memory_search" in described["memory_get"]
    assert "session" in described["memory_get"]
    assert "supersedes" in described["memory_write"]
    assert "secrets" in described["memory_write"]
    assert all(len(description) > 60 for description in described.values())


# -- writing and finding -------------------------------------------------------------------


async def test_written_note_is_on_disk_in_the_current_project_and_found_by_search(
    client: Client, config: Config
) -> None:
    result = await ok(
        client,
        "memory_write",
        type="procedural",
        title="Configs over scripts",
        body="We always prefer configuration files over ad-hoc scripts in this repo.",
        tags=["convention"],
    )
    note = data(result)
    path = config.layout.memory_dir / "procedural" / f"{note['id']}.md"
    on_disk = path.read_text(encoding="utf-8")
    assert f"project: {PROJECT}" in on_disk
    assert "ad-hoc scripts in this repo." in on_disk
    assert note["project"] == PROJECT
    assert note["id"] in text(result)

    found = await ok(client, "memory_search", query="configuration scripts")
    hits = data(found)["hits"]
    assert [hit["id"] for hit in hits] == [note["id"]]
    assert hits[0]["title"] == "Configs over scripts"
    assert hits[0]["score"] > 0
    assert "**configuration**" in hits[0]["snippet"]
    assert note["id"] in text(found)
    assert "memory_get" in text(found)

    got = await ok(client, "memory_get", id=note["id"].lower())
    assert data(got)["body"] == "We always prefer configuration files over ad-hoc scripts in this repo."
    assert "We always prefer configuration files" in text(got)


async def test_search_covers_this_project_and_global_notes_unless_told_otherwise(client: Client) -> None:
    here = await write(client, "Deploy with blue green switch")
    everywhere = await write(client, "Prefer blue green deploys everywhere", project="global")
    elsewhere = await write(client, "Billing deploys blue green too", project=OTHER)

    async def ids(**arguments: Any) -> set[str]:
        result = await ok(client, "memory_search", query="blue green", **arguments)
        return {hit["id"] for hit in data(result)["hits"]}

    assert await ids() == {here, everywhere}
    assert await ids(project="*") == {here, everywhere, elsewhere}
    assert await ids(project=OTHER) == {elsewhere}
    assert await ids(project="global") == {everywhere}


async def test_writing_to_global_is_an_explicit_choice(client: Client, config: Config) -> None:
    default = data(await ok(client, "memory_write", type="procedural", title="Tabs", body="Use tabs."))
    chosen = data(
        await ok(client, "memory_write", type="procedural", title="Spaces", body="Use spaces.", project="global")
    )
    assert default["project"] == PROJECT
    assert chosen["project"] == "global"
    assert "project: global" in Path(chosen["path"]).read_text(encoding="utf-8")


async def test_list_shows_this_project_newest_first_in_pages(client: Client) -> None:
    written = [await write(client, f"Fact number {n}") for n in range(13)]
    await write(client, "Somewhere else", project=OTHER)
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        arguments: dict[str, Any] = {"limit": 5} | ({"cursor": cursor} if cursor else {})
        page = data(await ok(client, "memory_list", **arguments))
        seen.extend(note["id"] for note in page["notes"])
        cursor = page["next_cursor"]
        pages += 1
        if cursor is None:
            break
    assert pages == 3
    assert seen == list(reversed(written))  # newest first, no repeats, nothing missed
    everything = data(await ok(client, "memory_list", project="*", limit=50))["notes"]
    assert len(everything) == 14


async def test_filters_by_type_and_scope(client: Client) -> None:
    await ok(client, "memory_write", type="procedural", title="Lint rule", body="Run ruff before pushing.")
    local = data(
        await ok(
            client,
            "memory_write",
            type="episodic",
            title="Lint session",
            body="Fixed ruff lint errors.",
            scope="machine-local",
        )
    )
    assert "/local/episodic/" in local["path"]
    found = data(await ok(client, "memory_search", query="ruff", type="episodic"))["hits"]
    assert [hit["id"] for hit in found] == [local["id"]]
    listed = data(await ok(client, "memory_list", scope="machine-local"))["notes"]
    assert [note["id"] for note in listed] == [local["id"]]


async def test_lenient_arguments_a_model_might_send_are_understood(client: Client) -> None:
    old = await write(client, "Old port")
    new = data(
        await ok(
            client,
            "memory_write",
            type="Semantic",
            title="New port",
            body="The API listens on 8081.",
            tags="network, ports",
            supersedes=old,
            project=None,
        )
    )
    assert new["tags"] == ["network", "ports"]
    assert new["supersedes"] == [old]
    # 0.1.3 took user_id/workspace_id and memory_sync(force): such calls still work.
    await ok(client, "memory_search", query="port", user_id="self", workspace_id="personal")
    await ok(client, "memory_sync", force=True)


async def test_writing_reports_similar_notes_so_claude_can_supersede_them(client: Client) -> None:
    first = await write(client, "Postgres connection pool size", body="The pool size is 20.")
    second = data(
        await ok(
            client,
            "memory_write",
            type="semantic",
            title="Postgres connection pool size",
            body="The pool size is 40 since the upgrade.",
        )
    )
    assert [item["id"] for item in second["similar"]] == [first]


async def test_secrets_in_a_written_note_are_redacted_before_it_reaches_disk(client: Client) -> None:
    token = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
    result = await ok(
        client, "memory_write", type="procedural", title="CI token", body=f"The CI uses token {token} for pushes."
    )
    on_disk = Path(data(result)["path"]).read_text(encoding="utf-8")
    assert token not in on_disk
    assert "[REDACTED:" in on_disk
    assert "never store secrets" in data(result)["hint"]


async def test_a_secret_passed_as_the_project_is_redacted_too(client: Client) -> None:
    token = "ghp_" + "Z9y8X7w6V5u4T3s2R1q0P9o8N7m6L5k4J3i2"
    result = await ok(
        client, "memory_write", type="semantic", title="Deploy", body="Deploys on Fridays.", project=token
    )

    on_disk = Path(data(result)["path"]).read_text(encoding="utf-8")
    assert token not in on_disk
    assert token not in data(result)["project"]


async def test_secrets_in_the_title_and_tags_are_redacted_and_the_hint_names_each_kind(client: Client) -> None:
    token, aws = "ghp_" + "Q1w2E3r4T5y6U7i8O9p0A1s2D3f4G5h6J7k8", "AKIA" + "IOSFODNN7EXAMPLE"
    result = await ok(
        client, "memory_write", type="semantic", title=f"Token {token}", body=f"Bucket key {aws}.", tags=["ci", token]
    )

    on_disk = Path(data(result)["path"]).read_text(encoding="utf-8")
    assert token not in on_disk
    assert aws not in on_disk
    assert token not in data(result)["title"] + "".join(data(result)["tags"])
    assert "(github-token, aws-access-key-id)" in data(result)["hint"]
    assert "never store secrets" in text(result)


async def test_a_note_without_secrets_is_written_as_given_and_says_nothing_of_them(client: Client) -> None:
    body = "Passwords live in the team's vault; the deploy key is rotated monthly."
    result = await ok(client, "memory_write", type="semantic", title="Where secrets live", body=body)

    assert body in Path(data(result)["path"]).read_text(encoding="utf-8")
    assert "secret" not in data(result).get("hint", "").lower()


@pytest.mark.parametrize(
    "fields",
    [{"title": "nul\x00title"}, {"tags": ["ok", "x\ud800"]}, {"project": "acme\udfff"}, {"project": "p" * 100_000}],
    ids=["nul-title", "surrogate-tag", "surrogate-project", "long-project"],
)
async def test_a_write_the_store_cannot_hold_is_refused_before_any_file_is_written(
    client: Client, memory: Memory, fields: dict[str, Any]
) -> None:
    head = await memory.head()
    arguments = {"type": "semantic", "title": "Deploy", "body": "Deploys on Fridays."} | fields

    result = await call(client, "memory_write", **arguments)

    assert result.is_error is True
    assert sorted(memory.config.home.glob("*/*/*.md")) == []
    assert await memory.head() == head


# -- correcting a memory -------------------------------------------------------------------


async def test_superseded_note_leaves_search_but_stays_in_history(client: Client, memory: Memory) -> None:
    old = await write(client, "Test command", body="Run the tests with make test.")
    result = await ok(
        client,
        "memory_write",
        type="semantic",
        title="Test command",
        body="Run the tests with pytest -q; make test is gone.",
        supersedes=[old],
    )
    new = data(result)["id"]
    assert old in text(result)

    hits = data(await ok(client, "memory_search", query="tests"))["hits"]
    assert [hit["id"] for hit in hits] == [new]
    listed = data(await ok(client, "memory_list"))["notes"]
    assert [note["id"] for note in listed] == [new]

    retired = await ok(client, "memory_get", id=old)
    assert data(retired)["superseded_by"] == [new]
    assert new in data(retired)["hint"]
    assert new in text(retired)
    assert "make test" in text(retired)
    assert len(await memory.history(old)) == 1


# -- errors the model can fix --------------------------------------------------------------

INVALID = [
    pytest.param("memory_write", {"type": "idea", "title": "T", "body": "B"}, "procedural", id="unknown-type"),
    pytest.param("memory_write", {"type": "semantic", "title": "  ", "body": "B"}, "title", id="empty-title"),
    pytest.param(
        "memory_write",
        {"type": "semantic", "title": "T", "body": "x" * (MAX_WRITE_BODY_CHARS + 1)},
        "split it into several notes",
        id="body-too-long",
    ),
    pytest.param("memory_write", {"type": "semantic", "title": "T", "body": " "}, "body is empty", id="empty-body"),
    pytest.param(
        "memory_write",
        {"type": "semantic", "title": "T", "body": "B", "scope": "cloud"},
        "machine-local",
        id="unknown-scope",
    ),
    pytest.param(
        "memory_write",
        {"type": "semantic", "title": "T", "body": "B", "project": "*"},
        "cannot be written",
        id="write-to-all-projects",
    ),
    pytest.param(
        "memory_write",
        {"type": "semantic", "title": "T", "body": "B", "supersedes": ["01JD3W6Q2M8Z4T9K7B5X0R1C2V"]},
        "memory_search",
        id="unknown-supersedes",
    ),
    pytest.param("memory_get", {"id": "01JD3W6Q2M8Z4T9K7B5X0R1C2V"}, "memory_search", id="unknown-id"),
    pytest.param("memory_get", {"id": "../../config"}, "memory_search", id="path-like-id"),
    pytest.param("memory_list", {"cursor": "not-a-cursor"}, "without a cursor", id="bad-cursor"),
    pytest.param("memory_list", {"limit": 0}, "between 1 and 50", id="zero-limit"),
    pytest.param("memory_search", {"query": "x", "k": 0}, "between 1 and 50", id="zero-k"),
    pytest.param("memory_search", {"query": "x", "type": "facts"}, "semantic", id="search-unknown-type"),
    pytest.param("memory_search", {}, "query", id="missing-query"),
]


@pytest.mark.parametrize(("tool", "arguments", "hint"), INVALID)
async def test_invalid_calls_are_tool_errors_that_say_how_to_fix_them(
    client: Client, config: Config, tool: str, arguments: dict[str, Any], hint: str
) -> None:
    result = await call(client, tool, **arguments)
    assert result.is_error is True
    assert hint in text(result)
    assert "Traceback" not in text(result)
    assert not list((config.layout.memory_dir / "semantic").glob("*.md"))


async def test_a_home_that_was_never_initialized_is_explained_not_crashed(anamnesis_home: Path, mode: str) -> None:
    config = load_config(anamnesis_home, {"ANAMNESIS_MACHINE_ID": "desktop"})
    async with Client(build_server(config, PROJECT), mode=mode) as client:
        assert len((await client.list_tools()).tools) == 6
        result = await call(client, "memory_search", query="anything")
    assert result.is_error is True
    assert "anamnesis init" in text(result)


# -- bounded responses ---------------------------------------------------------------------


async def test_every_response_stays_bounded_even_for_huge_notes(client: Client, config: Config) -> None:
    tags = tuple(f"tag-{n}-" + "x" * 50 for n in range(32))
    for n in range(60):
        hand_written(
            config,
            title=f"Huge note {n} " + "w" * 150,
            body=("giant " + "y" * 5_000 + " ") * 12,
            tags=tags,
            project=PROJECT + "/" + "p" * 200,
        )
    project = PROJECT + "/" + "p" * 200
    search = await ok(client, "memory_search", query="giant", k=50, project=project)
    listed = await ok(client, "memory_list", limit=50, project=project)
    status = await ok(client, "memory_status")
    some_id = data(listed)["notes"][0]["id"]
    got = await ok(client, "memory_get", id=some_id)
    for result in (search, listed, status, got):
        assert response_chars(result) <= MAX_RESPONSE_CHARS
    assert data(got)["truncated"] is True
    assert data(got)["body_chars"] > 60_000
    assert data(got)["path"] in text(got)
    assert data(got)["path"] in data(got)["hint"]
    assert data(search)["hits"]
    assert len(data(search)["hits"]) + data(search)["omitted"] == 50
    assert "narrow the search" in data(search)["hint"]
    assert data(status)["total"] == 60


async def test_list_cut_short_by_the_budget_continues_where_it_stopped(client: Client, config: Config) -> None:
    for n in range(50):
        hand_written(
            config, title=f"Long title {n:02d} " + "t" * 180, body="b", tags=tuple(f"{n}-" + "g" * 38 for _ in range(8))
        )
    seen: list[str] = []
    cursor: str | None = None
    while True:
        page = data(await ok(client, "memory_list", limit=50, **({"cursor": cursor} if cursor else {})))
        seen.extend(note["id"] for note in page["notes"])
        if (cursor := page["next_cursor"]) is None:
            break
    assert len(seen) == len(set(seen)) == 50


# -- concurrency ---------------------------------------------------------------------------


async def test_parallel_calls_on_one_server_all_succeed(client: Client) -> None:
    seed = await write(client, "Parallel seed note", body="Searchable parallel content.")
    results: list[CallToolResult] = []

    async def run(tool: str, arguments: dict[str, Any]) -> None:
        results.append(await call(client, tool, **arguments))

    async with anyio.create_task_group() as tg:
        for n in range(8):
            written = {"type": "semantic", "title": f"Parallel write {n}", "body": "Written in parallel content."}
            tg.start_soon(run, "memory_write", written)
        for _ in range(12):
            tg.start_soon(run, "memory_search", {"query": "parallel content"})
            tg.start_soon(run, "memory_get", {"id": seed})
            tg.start_soon(run, "memory_list", {})
        tg.start_soon(run, "memory_status", {})
    assert [text(r) for r in results if r.is_error] == []
    listed = data(await ok(client, "memory_list", limit=50))["notes"]
    assert len(listed) == 9


async def test_two_sessions_on_one_store_see_each_others_notes(config: Config, mode: str) -> None:
    async with (
        Client(build_server(config, PROJECT), mode=mode) as first,
        Client(build_server(config, PROJECT), mode=mode) as second,
    ):
        written: dict[str, list[str]] = {"first": [], "second": []}

        async def writes(name: str, client: Client) -> None:
            for n in range(4):
                written[name].append(await write(client, f"Shared {name} note {n}", body="Shared store content."))

        async with anyio.create_task_group() as tg:
            tg.start_soon(writes, "first", first)
            tg.start_soon(writes, "second", second)
        for client in (first, second):
            hits = data(await ok(client, "memory_search", query="shared store content", k=20))["hits"]
            assert {hit["id"] for hit in hits} == set(written["first"]) | set(written["second"])


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_search_finds_what_was_meant_once_the_session_has_embedded_its_writes(client: Client) -> None:
    billing = await write(
        client, "Nightly export outage", "The nightly billing export died because the S3 credentials expired."
    )
    await write(client, "Commit style", "Commit messages use the imperative mood.")
    with anyio.fail_after(60):  # the server loads the model after its first call, then embeds in the background
        while (semantic := data(await ok(client, "memory_status"))["semantic"])["embedded"] < 2:
            assert semantic["state"] != "unavailable", semantic
            await anyio.sleep(0.05)
    hits = data(await ok(client, "memory_search", query="why did the invoices job fail", k=2))["hits"]
    assert hits[0]["id"] == billing
