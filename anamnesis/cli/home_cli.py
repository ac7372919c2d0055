"""The commands that wire a home in and out: `init` (the home, Claude Code's settings, renaming
this machine) and `uninstall` (Claude Code's settings only; notes stay)."""

from __future__ import annotations

import argparse
from pathlib import Path

import anyio.to_thread

from anamnesis.cli.io import IO
from anamnesis.cli.output import print_json
from anamnesis.config import Config, load_config
from anamnesis.errors import ConfigError
from anamnesis.home import init_home
from anamnesis.memory import open_memory


async def init(config: Config, args: argparse.Namespace, io: IO) -> int:
    from anamnesis import claude_setup

    paths = claude_setup.ClaudePaths.from_env(io.environ)
    home_env = io.environ.get("ANAMNESIS_HOME")
    plan = (
        None
        if args.no_claude
        else claude_setup.plan_setup(
            paths, claude_setup.entry_command(io.environ), str(config.home) if home_env else None
        )
    )
    if args.dry_run:
        if plan is None or not plan.changed:
            io.out.write("Claude Code settings: nothing would change.\n")
        else:
            io.out.write(plan.diff())
        return 0
    machine_id = args.machine_id or config.machine_id
    await _rename_if_asked(config, args.machine_id, io)
    report = await init_home(config.layout, machine_id)
    config = load_config(config.home, io.environ)
    async with open_memory(config) as memory:
        await memory.reindex()
    backups: list[Path] = []
    if plan is not None and plan.changed:
        backups = await anyio.to_thread.run_sync(
            claude_setup.apply, plan, config.layout.state_dir / "claude-setup.json"
        )
        report.created.append(f"Claude Code wiring in {paths.settings} and {paths.state_file}")
    if args.json:
        print_json(
            io.out,
            {
                "home": report.home,
                "machine_id": report.machine_id,
                "created": report.created,
                "backups": [str(b) for b in backups],
            },
        )
    elif report.changed:
        io.out.write(f"Anamnesis home ready at {report.home} (machine {report.machine_id}). Done:\n")
        for item in report.created:
            io.out.write(f"  {item}\n")
        for backup in backups:
            io.out.write(f"  backup: {backup}\n")
        if plan is not None and plan.replaced_old_hooks:
            io.out.write(f"  replaced {plan.replaced_old_hooks} hook(s) of anamnesis-memory 0.1.3\n")
        io.out.write('Next: anamnesis write --type procedural --title "..." "what to remember"\n')
    else:
        io.out.write(f"Already initialized at {report.home} (machine {report.machine_id}); nothing changed.\n")
    return 0


async def _rename_if_asked(config: Config, wanted: str | None, io: IO) -> str | None:
    """`init --machine-id NEW` on a home that has another name renames this machine: config,
    and the fleet file it published under the old name (committed; the next sync sends it)."""
    from anamnesis.config import clean_machine_id
    from anamnesis.home import rename_machine
    from anamnesis.sync.fleet import install_id, retire_fleet_file

    if not wanted or not config.layout.config_path.is_file() or clean_machine_id(wanted) == config.machine_id:
        return None
    if io.environ.get("ANAMNESIS_MACHINE_ID"):
        raise ConfigError("ANAMNESIS_MACHINE_ID is set and names this machine; unset it to rename it here")
    layout = config.layout
    old = await anyio.to_thread.run_sync(rename_machine, layout, wanted)
    install = await anyio.to_thread.run_sync(install_id, layout)
    retired = await anyio.to_thread.run_sync(retire_fleet_file, layout.memory_dir, old, install)
    if retired is not None:
        async with open_memory(load_config(config.home, io.environ)) as memory:
            await memory.commit_pending(f"anamnesis: {old} is now {clean_machine_id(wanted)}")
    io.out.write(f"Renamed this machine from {old} to {clean_machine_id(wanted)}; the next sync tells the fleet.\n")
    return old


async def uninstall(config: Config, args: argparse.Namespace, io: IO) -> int:
    from anamnesis import claude_setup

    paths = claude_setup.ClaudePaths.from_env(io.environ)
    record = config.layout.state_dir / "claude-setup.json"
    plan = claude_setup.plan_uninstall(paths, record)
    if not plan.changed:
        io.out.write("Nothing of Anamnesis is wired into Claude Code; nothing changed.\n")
        return 0
    if args.dry_run:
        io.out.write(plan.diff())
        return 0
    backups = await anyio.to_thread.run_sync(claude_setup.apply, plan, record)
    await anyio.to_thread.run_sync(lambda: record.unlink(missing_ok=True))
    io.out.write(f"Removed the Anamnesis hooks and MCP server from Claude Code ({paths.settings}).\n")
    for backup in backups:
        io.out.write(f"  backup: {backup}\n")
    io.out.write(f"Your notes are untouched in {config.home}.\n")
    return 0
