"""Every `AnamnesisError` through every edge: CLI, MCP, dashboard and hooks, each by its table.

The classes are found by walking `AnamnesisError.__subclasses__()`, so a new class that one
table forgets fails here, not in front of a user. Each edge is the real one: the CLI's
`run_command` with a parsed command line, the MCP server through `mcp.Client`, the Quart app
with one extra route that raises, and `run_hook` reading a stdin that fails.
"""

from __future__ import annotations

import importlib
import io
import json
import pkgutil
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from markupsafe import escape
from mcp import Client
from mcp.types import TextContent

import anamnesis
from anamnesis.cli import main
from anamnesis.cli.parser import build_parser
from anamnesis.cli.run import run_command
from anamnesis.config import Config
from anamnesis.dashboard import DashboardSettings, create_app
from anamnesis.edges import (
    EXIT_CODES,
    EXIT_STATUS_HELP,
    HOOK_LOG,
    HTTP_STATUS,
    TOOL_MESSAGES,
    hook_log_line,
    lookup,
)
from anamnesis.errors import (
    AnamnesisError,
    CurationRefusedError,
    GitError,
    HomeNotInitializedError,
    NoHubError,
    NoteChangedError,
    NoteFormatError,
    NoteNotFoundError,
    NoteValidationError,
    ProposalDecidedError,
    ProposalNotFoundError,
    ReflectionNotConfiguredError,
)
from anamnesis.hooks import run_hook
from anamnesis.mcp_server import build_server
from anamnesis.memory import Memory
from anamnesis.notes import Note

pytestmark = pytest.mark.anyio

TABLES = {"CLI": EXIT_CODES, "dashboard": HTTP_STATUS, "MCP": TOOL_MESSAGES, "hooks": HOOK_LOG}


class _Decided:
    id = "01JD3W6Q2M8Z4T9K7B5X0R1C2V"
    status = "accepted"


# Classes whose constructor takes more than a message; every other class is built from one.
EXAMPLES: dict[type[AnamnesisError], Callable[[], AnamnesisError]] = {
    NoteNotFoundError: lambda: NoteNotFoundError("01JD3W6Q2M8Z4T9K7B5X0R1C2V"),
    NoteFormatError: lambda: NoteFormatError("front-matter is not a mapping", "memory/semantic/x.md"),
    NoteValidationError: lambda: NoteValidationError("title", "must not be empty"),
    GitError: lambda: GitError(["git", "push"], 128, "fatal: the hub hung up"),
    CurationRefusedError: lambda: CurationRefusedError(1.0, 0.5, Path("eval/eval.jsonl"), k=5),
    ProposalNotFoundError: lambda: ProposalNotFoundError("01JD3W6Q2M8Z4T9K7B5X0R1C2V"),
    ProposalDecidedError: lambda: ProposalDecidedError(_Decided()),
    ReflectionNotConfiguredError: ReflectionNotConfiguredError,
    NoteChangedError: lambda: NoteChangedError(
        Note(id="01JD3W6Q2M8Z4T9K7B5X0R1C2V", type="semantic", title="Yours", body="mine"), None, ""
    ),
}


def _package_modules() -> Iterator[str]:
    for info in pkgutil.walk_packages(anamnesis.__path__, "anamnesis."):
        if not info.name.endswith("__main__"):
            yield info.name


def error_classes() -> list[type[AnamnesisError]]:
    """`AnamnesisError` and every subclass the package defines, once every module is imported."""
    for name in _package_modules():
        importlib.import_module(name)
    found: list[type[AnamnesisError]] = []
    pending = [AnamnesisError]
    while pending:
        cls = pending.pop()
        if cls.__module__.startswith("anamnesis.") and cls not in found:
            found.append(cls)
        pending.extend(cls.__subclasses__())
    return sorted(found, key=lambda c: c.__name__)


def example(cls: type[AnamnesisError]) -> AnamnesisError:
    factory = EXAMPLES.get(cls)
    if factory is not None:
        return factory()
    try:
        return cls(f"the {cls.__name__} example went wrong")
    except TypeError as exc:
        raise AssertionError(f"add {cls.__name__} to EXAMPLES in {__name__}: {exc}") from exc


ERRORS = [example(cls) for cls in error_classes()]
IDS = [type(e).__name__ for e in ERRORS]


# -- the tree and its tables ----------------------------------------------------------------------


def test_every_exception_class_of_the_package_lives_in_errors_py() -> None:
    elsewhere = []
    for name in _package_modules():
        module = importlib.import_module(name)
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, BaseException) and value.__module__ == name:
                elsewhere.append(f"{name}.{value.__name__}")
    assert [e for e in elsewhere if not e.startswith("anamnesis.errors.")] == []


@pytest.mark.parametrize("edge", TABLES)
def test_every_error_class_has_a_row_in_every_edge_table(edge: str) -> None:
    missing = [cls.__name__ for cls in error_classes() if cls not in TABLES[edge]]
    assert missing == [], f"the {edge} table has no row for {missing}: add one in anamnesis/edges.py"


def test_an_error_finds_its_nearest_ancestors_row_when_its_own_is_missing() -> None:
    class UnlistedNotFound(NoteNotFoundError):
        pass

    unlisted = UnlistedNotFound("01JD3W6Q2M8Z4T9K7B5X0R1C2V")
    assert lookup(HTTP_STATUS, unlisted) == 404
    assert "search by words" in lookup(TOOL_MESSAGES, unlisted)


# -- CLI ------------------------------------------------------------------------------------------


class FailingEnviron(Mapping[str, str]):
    """An environment whose every read raises `error`: the first thing a command does fails."""

    def __init__(self, error: AnamnesisError) -> None:
        self.error = error

    def __getitem__(self, key: str) -> str:
        raise self.error

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


@pytest.mark.parametrize("error", ERRORS, ids=IDS)
def test_cli_says_what_failed_in_one_line_and_exits_with_a_documented_code(error: AnamnesisError) -> None:
    out, err = io.StringIO(), io.StringIO()
    args = build_parser().parse_args(["list"])

    code = run_command(args, FailingEnviron(error), out, err)

    assert code == lookup(EXIT_CODES, error) != 0
    assert f"\n  {code} " in EXIT_STATUS_HELP
    assert err.getvalue() == f"anamnesis: error: {error}\n"
    assert out.getvalue() == ""


@pytest.mark.parametrize("error", ERRORS, ids=IDS)
def test_cli_with_json_gets_the_failure_as_json_too(error: AnamnesisError) -> None:
    out, err = io.StringIO(), io.StringIO()
    args = build_parser().parse_args(["list", "--json"])

    code = run_command(args, FailingEnviron(error), out, err)

    assert code == lookup(EXIT_CODES, error)
    assert json.loads(out.getvalue()) == {"ok": False, "error": str(error), "error_type": type(error).__name__}
    assert "Traceback" not in err.getvalue()


def test_cli_help_documents_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--help"])

    assert done.value.code == 0
    shown = capsys.readouterr().out
    assert EXIT_STATUS_HELP in shown
    for code in {*EXIT_CODES.values(), 0, 2, 130}:
        assert f"\n  {code} " in shown


def test_cli_entry_turns_a_real_failure_into_its_line_and_code(
    anamnesis_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["get", "01JD3W6Q2M8Z4T9K7B5X0R1C2V"])  # before `anamnesis init`

    failure = capsys.readouterr()
    assert code == EXIT_CODES[HomeNotInitializedError]
    assert failure.err == f"anamnesis: error: no Anamnesis home at {anamnesis_home}; run `anamnesis init` first " + (
        "(or set ANAMNESIS_HOME to the home you meant)\n"
    )
    assert failure.out == ""


# -- MCP ------------------------------------------------------------------------------------------


async def test_mcp_turns_every_error_into_a_tool_error_with_its_message(config: Config) -> None:
    raised: list[AnamnesisError] = []

    async def failing_sync(memory: Memory) -> Mapping[str, Any]:
        raise raised[-1]

    async with Client(build_server(config, "github.com/acme/api", sync=failing_sync)) as client:
        for error in ERRORS:
            raised.append(error)
            result = await client.call_tool("memory_sync", {})
            text = "\n".join(b.text for b in result.content if isinstance(b, TextContent))
            if isinstance(error, NoHubError):  # nothing failed: the tool says how to add a hub
                assert result.is_error is False, text
                assert "No hub is configured" in text
                continue
            assert result.is_error is True, (type(error).__name__, text)
            assert lookup(TOOL_MESSAGES, error).format(exc=error, hint="").strip() in text
            assert str(error) in text
            assert "Traceback" not in text


# -- dashboard ------------------------------------------------------------------------------------


@pytest.mark.parametrize("error", ERRORS, ids=IDS)
async def test_dashboard_answers_every_error_with_its_status_and_an_error_page(
    config: Config, memory: Memory, error: AnamnesisError
) -> None:
    app = create_app(config, DashboardSettings(host="127.0.0.1", port=8765), memory=memory)

    async def failing() -> str:
        raise error

    app.add_url_rule("/failing", "failing", failing)
    client = app.test_client()

    page = await client.get("/failing", headers={"Host": "127.0.0.1:8765"})
    asked_json = await client.get("/failing", headers={"Host": "127.0.0.1:8765", "Accept": "application/json"})

    status = lookup(HTTP_STATUS, error)
    assert page.status_code == status
    assert page.content_type.startswith("text/html")
    html = await page.get_data(as_text=True)
    assert str(escape(str(error))) in html
    assert "Traceback" not in html
    assert asked_json.status_code == status
    assert (await asked_json.get_json())["error"]["message"] == str(error)


# -- hooks ----------------------------------------------------------------------------------------


class FailingStdin(io.StringIO):
    """Claude Code's stdin, failing as it is read."""

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error

    def read(self, size: int | None = -1) -> str:
        raise self.error


@pytest.mark.parametrize("error", ERRORS, ids=IDS)
def test_a_hook_exits_0_prints_nothing_and_logs_one_line(anamnesis_home: Path, error: AnamnesisError) -> None:
    out = io.StringIO()

    code = run_hook("session-start", FailingStdin(error), out, {"ANAMNESIS_HOME": str(anamnesis_home)})

    assert (code, out.getvalue()) == (0, "")
    [line] = (anamnesis_home / "state" / "hooks.log").read_text().splitlines()
    assert "session-start pid=" in line
    assert f"{type(error).__name__}: {' '.join(str(error).split())}"[:400] in line
    assert "bug" not in line


def test_a_bug_in_a_hook_is_logged_as_a_bug_with_where_it_was_raised(anamnesis_home: Path) -> None:
    out = io.StringIO()

    code = run_hook("session-start", FailingStdin(RuntimeError("oops")), out, {"ANAMNESIS_HOME": str(anamnesis_home)})

    assert (code, out.getvalue()) == (0, "")
    line = (anamnesis_home / "state" / "hooks.log").read_text()
    assert "bug: RuntimeError: oops (at " in line
    assert "test_edges.py:" in line


def test_a_hook_log_line_names_the_next_step_where_there_is_one() -> None:
    from anamnesis.errors import IndexStateError

    assert hook_log_line(IndexStateError("schema 3, expected 4")).endswith(
        "`anamnesis reindex --full` rebuilds the index"
    )
