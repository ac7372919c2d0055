"""`anamnesis hook <event>`: Claude Code's lifecycle hooks (stdin JSON → core → stdout).

Hooks are sacred: they never break, slow or block the user's session. So every path here
fails open — garbage on stdin, no home, a locked database, a bug: exit 0, nothing on stdout
but well-formed protocol output, one line in `state/hooks.log`. Never exit 2 (it blocks the
user's prompt, compaction or stop), never a traceback. Each event has a deadline well under
Claude Code's. This module never imports mcp, quart or asyncssh (each costs 0.5–2.5 s).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, TextIO

EVENTS = ("session-start", "user-prompt-submit", "pre-compact", "post-compact", "session-end", "stop")
MAX_STDIN_BYTES = 4 * 1024 * 1024
HOOK_BUSY_TIMEOUT_MS = 300  # shorter than every freshness bound, so a lock is seen and logged
DEADLINES = {  # seconds; Claude Code allows far more, the user should never feel us
    "session-start": 4.0,
    "user-prompt-submit": 2.0,
    "pre-compact": 8.0,
    "post-compact": 8.0,
    "session-end": 1.0,
    "stop": 1.0,  # only starts a detached capture
}
FRESHNESS_BOUND = 1.0  # at most this long catching up on hand edits before answering
HOOK_LOCK_TIMEOUT = 0.5  # a capture that cannot take the write lock gives way; the next event retries
IN_HOOK_CAPTURE_BYTES = 2 * 1024 * 1024  # more unread transcript than this is captured detached
_EVENT_NAMES = {"session-start": "SessionStart", "user-prompt-submit": "UserPromptSubmit"}
_SAFE_SESSION = re.compile(r"[A-Za-z0-9_-]{1,128}")

Handler = Callable[[Any, dict[str, Any], Mapping[str, str]], Awaitable[str | None]]


def run_hook(event: str, stdin: TextIO, stdout: TextIO, environ: Mapping[str, str]) -> int:
    """Handle one hook event. Always returns 0; output only when there is context to give."""
    started = time.monotonic()
    log_dir: Path | None = None
    try:
        from anamnesis.config import home_from_env

        home = home_from_env(environ)
        log_dir = home / "state"
        if event not in EVENTS:
            _log(log_dir, event, f"unknown hook event {event!r}; known: {', '.join(EVENTS)}")
            return 0
        payload = _read_payload(stdin)
        if payload is None:
            _log(log_dir, event, "stdin was not a JSON object; ignored")
            return 0
        if not (home / "memory").is_dir():
            return 0  # not initialized: nothing to give, nothing to capture
        if event == "stop":
            # Print nothing (Stop output keeps Claude working) and return at once: the capture
            # runs detached, so it survives even when Claude Code exits without SessionEnd
            # (some versions skip SessionEnd in -p mode and kill async hooks at teardown).
            _detach_capture(payload, environ, "stop", "--no-sync", "--no-llm")
            return 0
        output = _dispatch(event, payload, environ)
        if output:
            stdout.write(output)
            stdout.flush()
    except BaseException as exc:
        if log_dir is not None:
            from anamnesis.edges import hook_log_line  # the hooks' table; only paid for on failure

            _log(log_dir, event, hook_log_line(exc))
    finally:
        elapsed = time.monotonic() - started
        if log_dir is not None and elapsed > DEADLINES.get(event, 1.0):
            _log(log_dir, event, f"slow: {elapsed:.2f} s")
    return 0


def _read_payload(stdin: TextIO) -> dict[str, Any] | None:
    try:
        text = stdin.read(MAX_STDIN_BYTES)
        payload = json.loads(text)
    except (ValueError, OSError, UnicodeDecodeError):
        return None
    return payload if isinstance(payload, dict) else None


def _dispatch(event: str, payload: dict[str, Any], environ: Mapping[str, str]) -> str | None:
    from anamnesis.config import home_from_env, load_config

    config = load_config(home_from_env(environ), environ)
    if event in _CONTEXT_HOOKS:
        return _CONTEXT_HOOKS[event](config, payload, environ)
    import anyio

    handler = _HANDLERS[event]

    async def main() -> str | None:
        with anyio.move_on_after(DEADLINES[event]):
            return await handler(config, payload, environ)
        return None

    return anyio.run(main)


def project_of(payload: Mapping[str, Any], environ: Mapping[str, str]) -> str:
    from anamnesis.project import resolve_project

    cwd = payload.get("cwd") or environ.get("CLAUDE_PROJECT_DIR") or os.getcwd()
    home = environ.get("HOME")
    return resolve_project(Path(str(cwd)), Path(home) if home else None)


def _session_start(config: Any, payload: dict[str, Any], environ: Mapping[str, str]) -> str | None:
    from anamnesis.context import DEFAULT_BUDGET, session_context_plan
    from anamnesis.errors import AnamnesisError

    arriving = None
    try:
        arriving = _sync_if_due(config, environ)
    except (OSError, AnamnesisError) as exc:  # the context matters more than an early sync
        _log(config.layout.state_dir, "session-start", f"no sync started: {exc}")
    budget = config.hooks.context_budget or DEFAULT_BUDGET
    project = project_of(payload, environ)
    context = _read(config, "session-start", lambda: session_context_plan(project, budget), FRESHNESS_BOUND)
    if context is None:
        return None
    _remember_shown(config, payload, context.shown_ids, reset=True)
    text = "\n\n".join(part for part in (context.text, arriving) if part)
    return _additional_context("session-start", text)


def _user_prompt_submit(config: Any, payload: dict[str, Any], environ: Mapping[str, str]) -> str | None:
    from anamnesis.context import prompt_context_plan

    if not config.hooks.user_prompt_context:
        return None
    prompt = str(payload.get("prompt") or "")
    if not prompt.strip():
        return None
    shown = _shown(config, payload)
    project = project_of(payload, environ)
    context = _read(
        config, "user-prompt-submit", lambda: prompt_context_plan(project, prompt, shown), FRESHNESS_BOUND / 2
    )
    if context is None:
        return None
    if context.shown_ids:
        _remember_shown(config, payload, context.shown_ids)
    return _additional_context("user-prompt-submit", context.text)


def _read(config: Any, event: str, make_plan: Callable[[], Any], bound: float) -> Any:
    """What a read plan answers, from the index as the files stand now.

    When the index is already in step with the note directories (the common case) a plain
    `sqlite3` connection answers: no asyncio, anyio or aiosqlite is imported, a third of the
    hook's time. Otherwise the full path takes in what changed (for at most `bound` seconds)
    and answers; None when even that ran out of time.
    """
    answered = _read_in_step(config, make_plan)
    if answered is not None:
        return answered
    import anyio

    from anamnesis.memory import open_memory

    async def catch_up_and_read() -> Any:
        with anyio.move_on_after(DEADLINES[event]):
            async with open_memory(config, busy_timeout_ms=HOOK_BUSY_TIMEOUT_MS) as memory:
                await _catch_up(memory, bound)
                return await memory.run(make_plan())
        return None

    return anyio.run(catch_up_and_read)


def _read_in_step(config: Any, make_plan: Callable[[], Any]) -> Any:
    """The plan's answer on a plain sqlite3 connection, or None when the index is not in step
    with the note directories (or not there, or of another schema): then the full path runs."""
    import sqlite3

    from anamnesis.queries import answer_in_step
    from anamnesis.store import NoteStore

    path = config.layout.index_path
    if not path.is_file():
        return None
    stamp = NoteStore(config.layout).directory_stamp
    try:
        return answer_in_step(path, HOOK_BUSY_TIMEOUT_MS / 1000, stamp, make_plan())
    except sqlite3.Error as exc:
        _log(config.layout.state_dir, "read", f"answered the long way: {exc}")
        return None


async def _catch_up(memory: Any, bound: float) -> None:
    """Take in hand edits for at most `bound` seconds; a busy index is answered from as it is."""
    import anyio

    from anamnesis.errors import BusyError

    with anyio.move_on_after(bound):
        try:
            await memory.ensure_fresh(quick=True)
        except BusyError as exc:
            _log(memory.config.layout.state_dir, "refresh", f"answered from the index as it was: {exc}")


_CAPTURE_SOURCES = {"pre-compact": "precompact", "post-compact": "postcompact", "session-end": "session-end"}


def _capture_handler(event: str) -> Handler:
    """Capture the session into its episodic note (heuristic, in the hook: fast and incremental).

    The model summary and the sync are slow, so at session end they run in a detached
    `anamnesis capture` process that outlives the hook (SessionEnd hooks get 1.5 s).
    """

    async def capture(config: Any, payload: dict[str, Any], environ: Mapping[str, str]) -> str | None:
        from anamnesis.capture.session import capture_session
        from anamnesis.memory import open_memory

        session_id = str(payload.get("session_id") or "")
        transcript = payload.get("transcript_path")
        if not session_id or not isinstance(transcript, str):
            return None
        if event == "session-end" and _unread_bytes(config, session_id, transcript) > IN_HOOK_CAPTURE_BYTES:
            # Too much to read within SessionEnd's budget: the detached capture does all of it.
            _detach_capture(payload, environ, "session-end")
            return None
        summary = payload.get("compact_summary")
        async with open_memory(config, busy_timeout_ms=HOOK_BUSY_TIMEOUT_MS) as memory:
            await capture_session(
                memory,
                transcript,
                session_id,
                project_of(payload, environ),
                _CAPTURE_SOURCES[event],
                cursor_dir=config.layout.state_dir / "capture",
                compact_summary=summary if isinstance(summary, str) else None,
                lock_timeout=HOOK_LOCK_TIMEOUT,
            )
        if event == "session-end" and (config.reflection.configured or config.has_hub):
            _detach_capture(payload, environ, "session-end")
        elif event != "session-end":
            from anamnesis.autosync import push_soon

            push_soon(config, environ)  # to the hub within seconds; nothing without a hub or with a service
        return None  # no capture event's output is context: print nothing

    return capture


def _detach_capture(payload: Mapping[str, Any], environ: Mapping[str, str], source: str, *options: str) -> None:
    """Start `anamnesis capture` for the payload's session in a process that outlives the hook."""
    session_id, transcript = payload.get("session_id"), payload.get("transcript_path")
    if isinstance(session_id, str) and session_id and isinstance(transcript, str) and transcript:
        _detach(
            [
                "capture",
                "--session-id",
                session_id,
                "--transcript",
                transcript,
                "--project",
                project_of(payload, environ),
                "--source",
                source,
                *options,
            ],
            environ,
        )


def _unread_bytes(config: Any, session_id: str, transcript: str) -> int:
    """How much of the transcript no earlier capture has read (the whole file if none has)."""
    from anamnesis.capture.session import read_offset

    try:
        size = os.path.getsize(transcript)
    except OSError:
        return 0
    return size - read_offset(config.layout.state_dir / "capture", session_id)


def _sync_if_due(config: Any, environ: Mapping[str, str]) -> str | None:
    """When no sync ran within the interval, start one and wait a bounded moment for the hub's news
    (`freshstart`); a line for the context when news is still arriving, else None."""
    from anamnesis.freshstart import sync_at_start

    return sync_at_start(config, environ, config.start_wait)


def _detach(arguments: list[str], environ: Mapping[str, str]) -> None:
    """Start `anamnesis ARGUMENTS` in its own session, so it survives Claude Code's exit."""
    from anamnesis.autosync import spawn

    spawn(arguments, environ)


_HANDLERS: dict[str, Handler] = {event: _capture_handler(event) for event in _CAPTURE_SOURCES}
# The context hooks run without an event loop as long as the index is in step (see `_read`).
_CONTEXT_HOOKS: dict[str, Callable[[Any, dict[str, Any], Mapping[str, str]], str | None]] = {
    "session-start": _session_start,
    "user-prompt-submit": _user_prompt_submit,
}


def _additional_context(event: str, text: str) -> str | None:
    if not text:
        return None
    return json.dumps({"hookSpecificOutput": {"hookEventName": _EVENT_NAMES[event], "additionalContext": text}}) + "\n"


def _session_file(config: Any, payload: Mapping[str, Any]) -> Path | None:
    session = str(payload.get("session_id") or "")
    if not session:
        return None
    if not _SAFE_SESSION.fullmatch(session):
        import hashlib  # rare (an odd session id), and 2.6 ms to import on every hook

        session = hashlib.sha256(session.encode()).hexdigest()[:32]
    path: Path = config.layout.state_dir / "sessions" / f"{session}.json"
    return path


def _shown(config: Any, payload: Mapping[str, Any]) -> set[str]:
    path = _session_file(config, payload)
    if path is None:
        return set()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {str(i) for i in data.get("shown", [])}
    except (OSError, ValueError, AttributeError):
        return set()


def _remember_shown(config: Any, payload: Mapping[str, Any], ids: list[str], reset: bool = False) -> None:
    path = _session_file(config, payload)
    if path is None:
        return
    from anamnesis.atomic import atomic_write

    shown = set() if reset else _shown(config, payload)
    shown.update(ids)
    # What this session was already shown: a cache, so no fsync on the prompt's path (a crash
    # loses it and a note is shown twice), but never read half-written.
    atomic_write(path, json.dumps({"shown": sorted(shown), "updated": time.time()}), durable=False)


def _log(state_dir: Path, event: str, message: str) -> None:
    """One line in state/hooks.log; never raises (a hook must not fail because logging did)."""
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        line = f"{stamp} {event} pid={os.getpid()} {' '.join(message.split())[:500]}\n"
        with open(state_dir / "hooks.log", "a", encoding="utf-8") as handle:
            handle.write(line)
    except OSError:
        pass
