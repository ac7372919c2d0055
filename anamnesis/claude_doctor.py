"""Doctor checks of the Claude Code wiring: each written hook runs, and the MCP server starts.

A typo in a hook command silently disables the hook in Claude Code, so the only real check is
to run each command as written, with a sample payload, the way Claude Code will.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

import anyio

from anamnesis.claude_setup import SERVER_NAME, ClaudePaths, registered_server, written_hook_commands
from anamnesis.config import Config
from anamnesis.doctor import Check, Finding

HOOK_CHECK_TIMEOUT = 30.0
MCP_CHECK_TIMEOUT = 60.0
EXPECTED_TOOLS = {"memory_search", "memory_get", "memory_list", "memory_status", "memory_write", "memory_sync"}


def claude_checks(environ: Mapping[str, str]) -> list[Check]:
    paths = ClaudePaths.from_env(environ)

    async def check_hooks(config: Config) -> list[Finding]:
        commands = written_hook_commands(paths)
        if not commands:
            return [Finding("warning", "hooks", f"no Anamnesis hooks in {paths.settings}", "run `anamnesis init`")]
        findings = []
        for event, command in sorted(commands.items()):
            findings.append(await _run_hook(event, command, config, environ))
        return findings

    async def check_mcp(config: Config) -> list[Finding]:
        server = registered_server(paths)
        if server is None:
            return [
                Finding(
                    "warning", "mcp", f"no '{SERVER_NAME}' MCP server in {paths.state_file}", "run `anamnesis init`"
                )
            ]
        return [await _start_server(server, environ)]

    return [check_hooks, check_mcp]


async def _run_hook(event: str, command: str, config: Config, environ: Mapping[str, str]) -> Finding:
    payload = json.dumps(
        {
            "session_id": "anamnesis-doctor",
            "cwd": str(config.home),
            "prompt": "doctor check",
            "hook_event_name": event,
            "source": "startup",
        }
    )
    # What Claude Code gives a hook when launched from a GUI: a bare PATH.
    env = {"HOME": environ.get("HOME", ""), "PATH": "/usr/bin:/bin"}
    if "CLAUDE_CONFIG_DIR" in environ:
        env["CLAUDE_CONFIG_DIR"] = environ["CLAUDE_CONFIG_DIR"]
    log = config.layout.state_dir / "hooks.log"
    seen = log.stat().st_size if log.exists() else 0
    try:
        with anyio.fail_after(HOOK_CHECK_TIMEOUT):
            result = await anyio.run_process(["/bin/sh", "-c", command], input=payload.encode(), env=env, check=False)
    except TimeoutError:
        late = f"{event}: did not finish within {HOOK_CHECK_TIMEOUT:g} s"
        return Finding("error", "hooks", late, "run `anamnesis init`")
    except OSError as exc:
        return Finding("error", "hooks", f"{event}: cannot run: {exc}", "run `anamnesis init`")
    out = result.stdout.decode(errors="replace").strip()
    if result.returncode != 0:
        err = result.stderr.decode(errors="replace").strip().splitlines()
        return Finding(
            "error",
            "hooks",
            f"{event}: exit {result.returncode}: {err[-1] if err else ''}",
            "run `anamnesis init` to rewrite the hooks with this installation's path",
        )
    if out:
        try:
            json.loads(out)
        except ValueError:
            return Finding("error", "hooks", f"{event}: printed something that is not hook JSON: {out[:80]}")
    # Hooks fail open, so an internal failure shows only as a line in the log.
    if log.exists() and log.stat().st_size > seen:
        with log.open("rb") as handle:
            handle.seek(seen)
            logged = handle.read().decode(errors="replace").strip().splitlines()
        failures = [line for line in logged if f" {event} " in line and "slow:" not in line]
        if failures:
            return Finding(
                "error",
                "hooks",
                f"{event} ran but failed inside: {failures[-1][:300]}",
                "see state/hooks.log; `anamnesis reindex` or reinstalling may help",
            )
    return Finding("ok", "hooks", f"{event} runs and answers correctly")


async def _start_server(server: Mapping[str, object], environ: Mapping[str, str]) -> Finding:
    from mcp import Client, StdioServerParameters  # heavy: only imported by doctor

    command = str(server.get("command", ""))
    args = [str(a) for a in server.get("args", []) or []]  # type: ignore[attr-defined]
    extra = server.get("env")
    env = {
        **{k: v for k, v in environ.items() if k in ("HOME", "PATH", "CLAUDE_CONFIG_DIR")},
        **({str(k): str(v) for k, v in extra.items()} if isinstance(extra, Mapping) else {}),
    }
    params = StdioServerParameters(command=command, args=args, env=env, cwd=os.getcwd())
    try:
        with anyio.fail_after(MCP_CHECK_TIMEOUT):
            async with Client(params) as client:
                names = {tool.name for tool in (await client.list_tools()).tools}
    except TimeoutError:
        return Finding("error", "mcp", f"the MCP server did not list its tools within {MCP_CHECK_TIMEOUT:g} s")
    except Exception as exc:
        return Finding(
            "error",
            "mcp",
            f"the MCP server `{command} {' '.join(args)}` failed to start: {exc}",
            "run `anamnesis init`; check `anamnesis mcp` by hand",
        )
    missing = EXPECTED_TOOLS - names
    if missing:
        return Finding("error", "mcp", f"the MCP server lacks tools: {', '.join(sorted(missing))}")
    return Finding("ok", "mcp", f"the MCP server starts and lists {len(names)} tools")
