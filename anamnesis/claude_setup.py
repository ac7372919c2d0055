"""Wiring Claude Code to this memory: hooks in settings.json, the MCP server in .claude.json.

`plan_setup` computes the new contents of both files without touching them (for `--dry-run`);
`apply` writes them atomically after a timestamped backup, and records what it added in
`state/claude-setup.json` so that `uninstall` removes exactly that and nothing else.

The hook commands hold the absolute path of the installed entry point: Claude Code started
from a GUI often has a bare PATH, and a hook that cannot start silently does nothing.
"""

from __future__ import annotations

import difflib
import json
import os
import shlex
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anamnesis.atomic import atomic_write
from anamnesis.errors import ConfigError

SERVER_NAME = "anamnesis"
READ_ONLY_TOOLS = ("memory_search", "memory_get", "memory_list", "memory_status")
# (event, matcher, hook event argument, settings timeout in seconds, async)
HOOKS: tuple[tuple[str, str | None, str, int, bool], ...] = (
    ("SessionStart", "startup|resume|clear|compact", "session-start", 15, False),
    ("UserPromptSubmit", None, "user-prompt-submit", 10, False),
    ("PreCompact", "manual|auto", "pre-compact", 60, False),
    ("PostCompact", "manual|auto", "post-compact", 60, False),
    # A settings-file timeout is what lifts SessionEnd's shared 1.5 s budget (plugins cannot).
    ("SessionEnd", None, "session-end", 10, False),
    # Starts a detached capture after each turn (the note stays current even if SessionEnd never
    # comes) and prints nothing: Stop output keeps Claude working.
    ("Stop", None, "stop", 10, False),
)
_OLD_RELEASE_MARKERS = ("ANAMNESIS_", "anamnesis inject", "anamnesis sync", "anamnesis capture")


@dataclass(frozen=True, slots=True)
class ClaudePaths:
    """Where Claude Code keeps its settings; `CLAUDE_CONFIG_DIR` moves both files."""

    settings: Path
    state_file: Path

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ClaudePaths:
        base = claude_config_dir(environ)
        if environ.get("CLAUDE_CONFIG_DIR"):
            return cls(settings=base / "settings.json", state_file=base / ".claude.json")
        return cls(settings=base / "settings.json", state_file=base.parent / ".claude.json")


def claude_config_dir(environ: Mapping[str, str]) -> Path:
    """Claude Code's config folder: `CLAUDE_CONFIG_DIR`, else `~/.claude`.

    `~` and `~/…` are the HOME of `environ` (the environment Claude Code runs in, which need not
    be this process's); `~user/…` is that user's home directory, as a shell would expand it.
    """
    home = Path(environ.get("HOME") or Path.home())
    configured = environ.get("CLAUDE_CONFIG_DIR")
    if not configured:
        return home / ".claude"
    if configured == "~" or configured.startswith("~/"):
        return home / configured[2:]
    return Path(os.path.expanduser(configured))


@dataclass(slots=True)
class SetupPlan:
    """New contents for each file that changes, and the record of what we add."""

    files: dict[Path, tuple[str | None, str]] = field(default_factory=dict)  # path → (old, new)
    added_permissions: list[str] = field(default_factory=list)
    replaced_old_hooks: int = 0

    @property
    def changed(self) -> bool:
        return any(old != new for old, new in self.files.values())

    def diff(self) -> str:
        chunks: list[str] = []
        for path, (old, new) in self.files.items():
            if old == new:
                continue
            chunks.extend(
                difflib.unified_diff(
                    (old or "").splitlines(keepends=True),
                    new.splitlines(keepends=True),
                    fromfile=f"{path} (now)",
                    tofile=f"{path} (after)",
                )
            )
        return "".join(chunks)


def entry_command(environ: Mapping[str, str]) -> list[str]:
    """The absolute command that runs this installation of anamnesis."""
    script = Path(sys.executable).parent / "anamnesis"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "anamnesis"]


def _hook_command(entry: list[str], event: str, home_env: str | None) -> str:
    prefix = f"ANAMNESIS_HOME={shlex.quote(home_env)} " if home_env else ""
    return prefix + " ".join(shlex.quote(part) for part in entry) + f" hook {event}"


def _is_ours(command: str) -> bool:
    return "anamnesis" in command and (" hook " in command or any(m in command for m in _OLD_RELEASE_MARKERS))


def _load(path: Path) -> tuple[str | None, dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, {}
    try:
        data = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON (line {exc.lineno}); fix it before running init") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a JSON object")
    return text, data


def _dump(data: Mapping[str, Any]) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _without_our_hooks(hooks: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """Every hook group minus the commands that are ours (this release's or 0.1.3's)."""
    removed = 0
    cleaned: dict[str, Any] = {}  # event → groups, in the order the user had them
    for event, groups in hooks.items():
        if not isinstance(groups, list):
            cleaned[event] = groups
            continue
        kept_groups = []
        for group in groups:
            if not isinstance(group, dict) or not isinstance(group.get("hooks"), list):
                kept_groups.append(group)
                continue
            kept = [h for h in group["hooks"] if not (isinstance(h, dict) and _is_ours(str(h.get("command", ""))))]
            removed += len(group["hooks"]) - len(kept)
            if kept:
                kept_groups.append({**group, "hooks": kept})
        if kept_groups:
            cleaned[event] = kept_groups
    return cleaned, removed


def _all_commands(hooks: Mapping[str, Any]) -> list[str]:
    commands = []
    for groups in hooks.values():
        for group in groups if isinstance(groups, list) else []:
            for handler in group.get("hooks", []) if isinstance(group, dict) else []:
                if isinstance(handler, dict):
                    commands.append(str(handler.get("command", "")))
    return commands


def plan_setup(paths: ClaudePaths, entry: list[str], home_env: str | None) -> SetupPlan:
    plan = SetupPlan()
    old_settings_text, settings = _load(paths.settings)
    existing = dict(settings.get("hooks") or {})
    plan.replaced_old_hooks = sum(
        1 for command in _all_commands(existing) if _is_ours(command) and " hook " not in command
    )
    hooks, _ = _without_our_hooks(existing)
    for event, matcher, argument, timeout, is_async in HOOKS:
        handler: dict[str, Any] = {
            "type": "command",
            "command": _hook_command(entry, argument, home_env),
            "timeout": timeout,
        }
        if is_async:
            handler["async"] = True
        group: dict[str, Any] = {"hooks": [handler]}
        if matcher:
            group = {"matcher": matcher, **group}
        hooks.setdefault(event, []).append(group)
    settings["hooks"] = hooks
    permissions = dict(settings.get("permissions") or {})
    allow = list(permissions.get("allow") or [])
    for tool in READ_ONLY_TOOLS:
        rule = f"mcp__{SERVER_NAME}__{tool}"
        if rule not in allow:
            allow.append(rule)
            plan.added_permissions.append(rule)
    permissions["allow"] = allow
    settings["permissions"] = permissions
    plan.files[paths.settings] = (old_settings_text, _dump(settings))

    old_state_text, state = _load(paths.state_file)
    servers = dict(state.get("mcpServers") or {})
    server: dict[str, Any] = {"type": "stdio", "command": entry[0], "args": [*entry[1:], "mcp"], "env": {}}
    if home_env:
        server["env"] = {"ANAMNESIS_HOME": home_env}
    servers[SERVER_NAME] = server
    state["mcpServers"] = servers
    plan.files[paths.state_file] = (old_state_text, _dump(state))
    return plan


def apply(plan: SetupPlan, record: Path) -> list[Path]:
    """Write every changed file (after a backup); the backups made. Records what was added."""
    backups = []
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for path, (old, new) in plan.files.items():
        if old == new:
            continue
        if old is not None:
            backup = path.with_name(f"{path.name}.anamnesis-{stamp}.bak")
            atomic_write(backup, old, mode=0o600)  # a copy of a file that may hold a token
            backups.append(backup)
        atomic_write(path, new, mode=None)  # Claude Code's file keeps the mode its owner gave it
    previous = _read_record(record)
    added = sorted(set(previous.get("permissions", [])) | set(plan.added_permissions))
    atomic_write(record, _dump({"permissions": added, "server": SERVER_NAME}))
    return backups


def _read_record(record: Path) -> dict[str, Any]:
    try:
        data = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def plan_uninstall(paths: ClaudePaths, record: Path) -> SetupPlan:
    """Remove our hooks, our MCP server entry and the permissions init added; nothing else."""
    plan = SetupPlan()
    added = set(_read_record(record).get("permissions", []))
    old_settings_text, settings = _load(paths.settings)
    if old_settings_text is not None:
        hooks, _ = _without_our_hooks(dict(settings.get("hooks") or {}))
        if hooks:
            settings["hooks"] = hooks
        else:
            settings.pop("hooks", None)
        permissions = dict(settings.get("permissions") or {})
        if "allow" in permissions:
            permissions["allow"] = [rule for rule in permissions["allow"] if rule not in added]
            if not permissions["allow"]:
                permissions.pop("allow")
        if permissions:
            settings["permissions"] = permissions
        else:
            settings.pop("permissions", None)
        plan.files[paths.settings] = (old_settings_text, _dump(settings))
    old_state_text, state = _load(paths.state_file)
    if old_state_text is not None and SERVER_NAME in (state.get("mcpServers") or {}):
        servers = dict(state["mcpServers"])
        if "anamnesis" in " ".join(
            [str(servers[SERVER_NAME].get("command", "")), *map(str, servers[SERVER_NAME].get("args", []))]
        ):
            servers.pop(SERVER_NAME)
        state["mcpServers"] = servers
        plan.files[paths.state_file] = (old_state_text, _dump(state))
    return plan


def written_hook_commands(paths: ClaudePaths) -> dict[str, str]:
    """The hook commands of ours found in settings.json, by hook event argument (for doctor)."""
    _, settings = _load(paths.settings)
    return {
        command.rsplit(" hook ", 1)[1].strip(): command
        for command in _all_commands(settings.get("hooks") or {})
        if _is_ours(command) and " hook " in command
    }


def registered_server(paths: ClaudePaths) -> dict[str, Any] | None:
    _, state = _load(paths.state_file)
    server = (state.get("mcpServers") or {}).get(SERVER_NAME)
    return server if isinstance(server, dict) else None
