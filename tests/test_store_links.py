"""Links in the store (left by a sync before the hub check existed, or made by hand) are never
followed: no read, write or scan reaches outside the home through them, and doctor lists them.

Every surface that reads a note is tried: `Memory.get` (the CLI), MCP `memory_get` and the
dashboard, with a real home, index, git repository, `mcp.Client` and Quart test client.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from mcp import Client

from anamnesis.config import Config
from anamnesis.dashboard import DashboardSettings, create_app
from anamnesis.doctor import run_doctor
from anamnesis.errors import UnsafePathError
from anamnesis.ids import new_ulid
from anamnesis.mcp_server import build_server
from anamnesis.memory import Memory, NoteDraft
from anamnesis.search import SearchFilters

pytestmark = pytest.mark.anyio
STOLEN = "---\nid: {id}\ntype: {type}\ntitle: Stolen\n---\nthe root password is hunter2\n"


def outside_dir(config: Config) -> Path:
    outside = config.home.parent / "outside"
    outside.mkdir(exist_ok=True)
    return outside


async def test_a_linked_note_file_is_refused_by_every_reader_and_listed_by_doctor(
    config: Config, memory: Memory
) -> None:
    note_id = new_ulid()
    target = outside_dir(config) / "secret.txt"
    target.write_text(STOLEN.format(id=note_id, type="semantic"))
    link = config.layout.memory_dir / "semantic" / f"{note_id}.md"
    link.symlink_to(target)

    with pytest.raises(UnsafePathError, match="symbolic link"):
        await memory.get(note_id)

    async with Client(build_server(config, "global"), raise_exceptions=True) as client:
        result = await client.call_tool("memory_get", {"id": note_id})
    shown = "\n".join(block.text for block in result.content if block.type == "text")
    assert result.is_error is True
    assert "hunter2" not in shown

    app = create_app(config, DashboardSettings(host="127.0.0.1", port=8765), memory=memory)
    response = await app.test_client().get(f"/notes/{note_id}", headers={"Host": "127.0.0.1:8765"})
    assert response.status_code in (400, 404)
    assert "hunter2" not in await response.get_data(as_text=True)

    await memory.reindex()
    assert await memory.search("hunter2", SearchFilters()) == []
    findings = await run_doctor(config)
    assert any(f.is_error and f"semantic/{note_id}.md" in f.message and "symbolic link" in f.message for f in findings)
    assert target.read_text() == STOLEN.format(id=note_id, type="semantic")  # nothing written through it


async def test_a_linked_type_directory_is_never_written_read_or_scanned_through(config: Config, memory: Memory) -> None:
    outside = outside_dir(config)
    (outside / "planted.md").write_text(STOLEN.format(id="planted", type="procedural"))
    procedural = config.layout.memory_dir / "procedural"
    shutil.rmtree(procedural)
    procedural.symlink_to(outside, target_is_directory=True)

    with pytest.raises(UnsafePathError, match="procedural"):
        await memory.write(NoteDraft(type="procedural", title="Convention", body="configs over scripts"))
    assert sorted(p.name for p in outside.iterdir()) == ["planted.md"]

    await memory.reindex(full=True)
    assert await memory.search("hunter2", SearchFilters()) == []
    kept = await memory.write(NoteDraft(type="semantic", title="Elsewhere", body="other types still work"))
    assert (await memory.get(kept.id)).title == "Elsewhere"
    findings = await run_doctor(config)
    assert any(f.is_error and "memory/procedural" in f.message and "symbolic link" in f.message for f in findings)


async def test_doctor_names_a_note_whose_id_is_not_its_file_name_and_the_file_name_wins(
    config: Config, memory: Memory
) -> None:
    name, written = new_ulid(), new_ulid()
    (config.layout.memory_dir / "semantic" / f"{name}.md").write_text(
        f"---\nid: {written}\ntype: semantic\ntitle: Renamed\n---\nbody\n"
    )

    findings = await run_doctor(config)

    assert any(f.level == "warning" and name in f.message and written in f.message for f in findings)
    assert (await memory.get(name)).id == name
    with pytest.raises(Exception, match="no note"):
        await memory.get(written)


async def test_a_file_name_that_is_not_an_id_is_reported_not_indexed_under_another_name(
    config: Config, memory: Memory
) -> None:
    written = new_ulid()
    (config.layout.memory_dir / "semantic" / "my notes.md").write_text(
        f"---\nid: {written}\ntype: semantic\ntitle: Hand named\n---\nzeppelin\n"
    )

    report = await memory.reindex()

    assert [p.path for p in report.problems] == ["memory/semantic/my notes.md"]
    assert f"rename the file to {written}.md" in report.problems[0].reason
    assert await memory.search("zeppelin", SearchFilters()) == []
