"""The MCP edge's one table from `AnamnesisError`s to the tool errors the model reads."""

from __future__ import annotations

import pytest
from mcp.server.mcpserver.exceptions import ToolError

from anamnesis.errors import (
    AnamnesisError,
    GitError,
    HomeNotInitializedError,
    NoHubError,
    NoteValidationError,
    SyncError,
)
from anamnesis.mcp_server.errors import FIELD_HINTS, fix_message, tool_errors
from tests.test_edges import ERRORS, IDS


@pytest.mark.parametrize("exc", ERRORS, ids=IDS)
def test_every_error_reaches_the_model_with_its_own_words(exc: AnamnesisError) -> None:
    message = fix_message(exc)
    words = f"{exc.field}: {exc.message}" if isinstance(exc, NoteValidationError) else str(exc)
    assert words in message
    with pytest.raises(ToolError) as raised, tool_errors():
        raise exc
    assert str(raised.value) == message
    assert raised.value.__cause__ is exc


def test_the_nearest_row_gives_the_advice() -> None:
    assert fix_message(HomeNotInitializedError("run `anamnesis init`")).startswith("Anamnesis is not set up")
    assert fix_message(NoHubError("no hub")).startswith("Sync failed")
    git = fix_message(GitError(["git", "fetch"], 1, "bad object"))
    assert "anamnesis doctor" in git
    assert not git.startswith("Sync failed")
    assert fix_message(SyncError("stuck")).startswith("Sync failed")


def test_a_bad_field_comes_with_what_to_pass_instead() -> None:
    message = fix_message(NoteValidationError("scope", "is not portable or machine-local"))
    assert message == f"scope: is not portable or machine-local. {FIELD_HINTS['scope']}"
    assert fix_message(NoteValidationError("weird", "no")) == "weird: no."
