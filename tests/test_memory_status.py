"""`Memory.state()`: one typed status, with the sync record, that `anamnesis status` reports as is."""

from __future__ import annotations

import json
import sys

import anyio
import pytest

from anamnesis.config import Config
from anamnesis.memory import Memory, NoteDraft
from anamnesis.sync.fleet import SyncState, state_path

pytestmark = pytest.mark.anyio


async def test_status_says_how_many_notes_where_git_stands_and_how_the_last_sync_went(
    config: Config, memory: Memory
) -> None:
    await memory.write(NoteDraft(type="procedural", title="Tabs", body="Indent with tabs.", project="acme/api"))
    await memory.write(NoteDraft(type="semantic", title="Port", body="It listens on 8080.", scope="machine-local"))
    SyncState(
        last_attempt="2027-01-15T09:00:00Z",
        last_ok="2027-01-15T08:00:00Z",
        last_error="the hub did not answer",
        consecutive_failures=1,
        withheld_paths=["memory/semantic/leaky.md"],
    ).save(state_path(config.layout))

    state = await memory.state()

    assert (state.total, state.by_type, state.by_scope) == (
        2,
        {"procedural": 1, "semantic": 1},
        {"machine-local": 1, "portable": 1},
    )
    assert state.by_project == {"acme/api": 1, "global": 1}
    assert state.git.head == await memory.head()
    assert state.git.uncommitted == 0
    assert state.sync.last_ok == "2027-01-15T08:00:00Z"
    assert state.sync.last_error == "the hub did not answer"  # still failing: shown
    assert state.sync.withheld == ("memory/semantic/leaky.md",)

    shown = await anyio.run_process([sys.executable, "-m", "anamnesis", "status", "--json"])  # this home
    reported = json.loads(shown.stdout)
    assert reported == {**state.as_json(), "semantic": reported["semantic"]}  # the same facts
    assert reported["sync"]["withheld"] == ["memory/semantic/leaky.md"]


async def test_a_sync_that_failed_once_and_then_succeeded_shows_no_error(config: Config, memory: Memory) -> None:
    SyncState(last_ok="2027-01-15T08:00:00Z", last_error="old trouble", consecutive_failures=0).save(
        state_path(config.layout)
    )
    assert (await memory.state()).sync.last_error is None
