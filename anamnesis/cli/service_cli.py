"""Commands of the service layer: `serve`, and `service install|uninstall` (start at login).

`serve` runs the service in the foreground (what the login units start). `service install`
writes a systemd user unit (Linux) or a launchd agent (macOS) that runs `anamnesis serve` at
login with this installation's absolute path, then enables it; `uninstall` stops and removes it.
The units are rendered here, and the examples in `deploy/` are these renderings (a test keeps
them equal), because a wheel does not ship `deploy/`.
"""

from __future__ import annotations

import argparse
import logging
import os
import plistlib
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio.to_thread

if TYPE_CHECKING:  # the parser imports this module; the command's own imports wait until it runs
    from anamnesis.cli.io import IO
    from anamnesis.config import Config

CommandFactory = Callable[..., argparse.ArgumentParser]

SYSTEMD_UNIT = "anamnesis.service"
LAUNCHD_LABEL = "dev.anamnesis.serve"
PLATFORMS = ("systemd", "launchd")


def register(sub: Any, command: CommandFactory) -> None:
    """Add this layer's commands with `command(sub, name, summary, details, example, handler)`."""
    serve = command(
        sub,
        "serve",
        "run the dashboard and the background sync until stopped",
        """
        Serves the dashboard at http://127.0.0.1:8765 (browse, search, edit, history, fleet,
        conflicts, health, reflection proposals), syncs with the hub every minute when one is configured, and
        refreshes the index when note files change. Ctrl-C or SIGTERM stops it. One per home.
        Binding an address other than loopback (for example your tailnet address, to read
        the memory from a phone) needs an access token: it is created, printed once, and kept
        in config.json as dashboard.token. Defaults come from config.json's "dashboard" block
        (host, port) and "sync" block (interval, in seconds).
        """,
        """
        anamnesis serve
        anamnesis serve --host 100.101.102.103 --port 8765
        """,
        "serve",
    )
    serve.add_argument("--host", help="address or name to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="TCP port (default 8765; 0 picks a free one)")
    serve.add_argument("--no-sync", action="store_true", help="serve the dashboard only; no sync loop")

    service = command(
        sub,
        "service",
        "start the service at login (systemd user unit or launchd agent)",
        """
        `service install` writes ~/.config/systemd/user/anamnesis.service (Linux) or
        ~/Library/LaunchAgents/dev.anamnesis.serve.plist (macOS) to run `anamnesis serve` at
        login, then enables and starts it (--no-start writes the file only). `service
        uninstall` stops it and removes the file. ANAMNESIS_HOME, when set, is recorded in it.
        """,
        """
        anamnesis service install
        anamnesis service uninstall
        """,
        "service_status",
    )
    actions = service.add_subparsers(title="service commands", metavar="ACTION", dest="service_action", required=True)
    for name, summary, handler in (
        ("install", "write the login unit and start the service", "service_install"),
        ("uninstall", "stop the service and remove the login unit", "service_uninstall"),
    ):
        action = actions.add_parser(name, help=summary, description=summary)
        action.set_defaults(handler=handler)
        action.add_argument("--platform", choices=PLATFORMS, help="unit kind (default: launchd on macOS, else systemd)")
        action.add_argument("--dry-run", action="store_true", help="show what would be written or run; change nothing")
        if name == "install":
            action.add_argument("--no-start", action="store_true", help="write the unit file only")


# -- serve ------------------------------------------------------------------------------------


async def serve(config: Config, args: argparse.Namespace, io: IO) -> int:
    from anamnesis.dashboard.security import is_loopback
    from anamnesis.service import run_service
    from anamnesis.service_http import check_listen_address
    from anamnesis.service_settings import ServiceInfo, ServiceObserver, ensure_token, service_options

    logging.basicConfig(stream=io.err, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    options = service_options(config, args.host, args.port, sync=not args.no_sync)
    await check_listen_address(options)
    if not is_loopback(options.host):
        token, created = await anyio.to_thread.run_sync(ensure_token, config.layout)
        options = replace(options, token=token)
        io.out.write(f"{options.host} is reachable from other machines, so the dashboard asks for an access token.\n")
        if created:
            io.out.write(f"Access token (shown this once; kept in {config.layout.config_path} as dashboard.token):\n")
            io.out.write(f"  {token}\n")
        else:
            io.out.write(f"Its access token is in {config.layout.config_path} (dashboard.token).\n")
        io.out.write("Open the dashboard with ?token=<token> once on each device, or send Authorization: Bearer.\n")

    def ready(info: ServiceInfo) -> None:
        io.out.write(f"Anamnesis dashboard at {info.url}/ (Ctrl-C stops it)\n")
        io.out.write(f"sync: {info.sync_note}\n")
        io.out.flush()

    await run_service(config, options, observer=ServiceObserver(ready=ready))
    io.out.write("Anamnesis service stopped.\n")
    return 0


# -- service install | uninstall ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Unit:
    """One login unit: where it goes, what it holds, and the commands that (de)activate it."""

    platform: str
    path: Path
    text: str
    activate: list[list[str]]
    deactivate: list[list[str]]


def systemd_quote(word: str) -> str:
    """One argument of a systemd `ExecStart=` or `Environment=` line."""
    escaped = word.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    return f'"{escaped}"'


def systemd_unit(command: Sequence[str], environment: Mapping[str, str]) -> str:
    exec_line = " ".join(systemd_quote(part) for part in [*command, "serve"])
    env_lines = "".join(f"Environment={systemd_quote(f'{k}={v}')}\n" for k, v in environment.items())
    return (
        "# Written by `anamnesis service install`; `anamnesis service uninstall` removes it.\n"
        "[Unit]\n"
        "Description=Anamnesis: memory dashboard and sync for Claude Code\n"
        "After=network-online.target\n"
        "Wants=network-online.target\n"
        "\n"
        "[Service]\n"
        "Type=exec\n"
        f"ExecStart={exec_line}\n"
        f"{env_lines}"
        "Restart=on-failure\n"
        "RestartSec=10\n"
        "KillSignal=SIGTERM\n"
        "TimeoutStopSec=10\n"
        "\n"
        "[Install]\n"
        "WantedBy=default.target\n"
    )


def launchd_plist(command: Sequence[str], environment: Mapping[str, str], log_path: str) -> str:
    plist = {
        "Label": LAUNCHD_LABEL,
        "ProgramArguments": [*command, "serve"],
        "EnvironmentVariables": dict(environment),
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},
        "ThrottleInterval": 10,
        "ExitTimeOut": 10,
        "StandardOutPath": log_path,
        "StandardErrorPath": log_path,
    }
    return plistlib.dumps(plist, sort_keys=False).decode("utf-8")


def unit_for(platform: str, config: Config, environ: Mapping[str, str]) -> Unit:
    from anamnesis.claude_setup import entry_command

    command = entry_command(environ)
    environment = {"PATH": environ.get("PATH") or os.defpath}
    if environ.get("ANAMNESIS_HOME"):
        environment["ANAMNESIS_HOME"] = str(config.home)
    home = Path(environ.get("HOME") or Path.home())
    if platform == "launchd":
        path = home / "Library" / "LaunchAgents" / f"{LAUNCHD_LABEL}.plist"
        log = str(config.layout.state_dir / "service.log")
        domain = f"gui/{os.getuid()}"
        return Unit(
            platform,
            path,
            launchd_plist(command, environment, log),
            activate=[["launchctl", "bootstrap", domain, str(path)]],
            deactivate=[["launchctl", "bootout", f"{domain}/{LAUNCHD_LABEL}"]],
        )
    config_home = Path(environ.get("XDG_CONFIG_HOME") or home / ".config")
    path = config_home / "systemd" / "user" / SYSTEMD_UNIT
    return Unit(
        platform,
        path,
        systemd_unit(command, environment),
        activate=[["systemctl", "--user", "daemon-reload"], ["systemctl", "--user", "enable", "--now", SYSTEMD_UNIT]],
        deactivate=[["systemctl", "--user", "disable", "--now", SYSTEMD_UNIT]],
    )


def _platform(args: argparse.Namespace) -> str:
    return str(args.platform or ("launchd" if sys.platform == "darwin" else "systemd"))


def _run_all(commands: list[list[str]], io: IO) -> bool:
    """Run each command; False (having said why) when one is missing or fails."""
    for argv in commands:
        if shutil.which(argv[0]) is None:
            io.err.write(f"anamnesis: {argv[0]} is not available here; run it yourself: {' '.join(argv)}\n")
            return False
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        if result.returncode != 0:
            io.err.write(f"anamnesis: `{' '.join(argv)}` failed: {(result.stderr or result.stdout).strip()}\n")
            return False
    return True


async def service_install(config: Config, args: argparse.Namespace, io: IO) -> int:
    unit = unit_for(_platform(args), config, io.environ)
    if args.dry_run:
        io.out.write(f"would write {unit.path}:\n{unit.text}")
        if not args.no_start:
            io.out.write("".join(f"would run: {' '.join(argv)}\n" for argv in unit.activate))
        return 0

    def write() -> bool:
        unit.path.parent.mkdir(parents=True, exist_ok=True)
        changed = not unit.path.exists() or unit.path.read_text(encoding="utf-8") != unit.text
        if changed:
            unit.path.write_text(unit.text, encoding="utf-8")
        return changed

    changed = await anyio.to_thread.run_sync(write)
    io.out.write(f"{'Wrote' if changed else 'Unchanged:'} {unit.path}\n")
    if args.no_start:
        io.out.write("Start it now and at every login with:\n")
        io.out.write("".join(f"  {' '.join(argv)}\n" for argv in unit.activate))
        return 0
    if not await anyio.to_thread.run_sync(_run_all, unit.activate, io):
        io.err.write("anamnesis: the unit is written but not running; start it with the command above.\n")
        return 1
    io.out.write("The Anamnesis service runs now and at every login (dashboard at http://127.0.0.1:8765/).\n")
    return 0


async def service_uninstall(config: Config, args: argparse.Namespace, io: IO) -> int:
    unit = unit_for(_platform(args), config, io.environ)
    if not unit.path.exists():
        io.out.write(f"No login unit at {unit.path}; nothing to remove.\n")
        return 0
    if args.dry_run:
        io.out.write("".join(f"would run: {' '.join(argv)}\n" for argv in unit.deactivate))
        io.out.write(f"would remove {unit.path}\n")
        return 0
    stopped = await anyio.to_thread.run_sync(_run_all, unit.deactivate, io)
    await anyio.to_thread.run_sync(unit.path.unlink)
    io.out.write(f"Removed {unit.path}{'' if stopped else ' (stop the running service yourself)'}.\n")
    return 0


async def service_status(config: Config, args: argparse.Namespace, io: IO) -> int:
    """Only reached when argparse let `service` through without an action."""
    io.err.write("anamnesis: service needs an action: install or uninstall\n")
    return 2
