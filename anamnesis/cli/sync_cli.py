"""Commands of the sync layer, registered into the main parser by `register`:
`peer add|list|remove` and `sync`. Each handler reads its arguments, calls `anamnesis.sync`,
and prints text or `--json`; errors reach the CLI's one error handler.
"""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio.to_thread

from anamnesis.cli.io import IO
from anamnesis.cli.output import print_json
from anamnesis.config import Config

if TYPE_CHECKING:
    from anamnesis.sync import SyncReport
    from anamnesis.sync.hostkeys import HostKeyProbe

CommandFactory = Callable[..., argparse.ArgumentParser]


def _action(
    actions: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    summary: str,
    details: str,
    example: str,
    handler: str,
) -> argparse.ArgumentParser:
    parser = actions.add_parser(
        name,
        help=summary,
        description=f"{summary}\n\n{textwrap.dedent(details).strip()}" if details else summary,
        epilog="example:\n" + textwrap.indent(textwrap.dedent(example).strip(), "  "),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(handler=handler)
    return parser


def register(sub: Any, command: CommandFactory) -> None:
    """Add this layer's commands with `command(sub, name, summary, details, example, handler)`."""
    peer = command(
        sub,
        "peer",
        "add, list or remove the hub this machine syncs with",
        """
        A hub is a bare git repository on any machine you reach over SSH (a home server on
        Tailscale, say). It runs no Anamnesis code: see peers/README.md for a git-only account.
        """,
        "anamnesis peer add homeserver ssh://anamnesis@homeserver/~/memory.git",
        "peer_list",
    )
    actions = peer.add_subparsers(title="peer commands", metavar="ACTION", dest="peer_action", required=True)
    add = _action(
        actions,
        "add",
        "connect to a hub, trust its host key, create its repository, and sync",
        """
        Shows the hub's SSH host key fingerprint and asks before trusting it; in scripts pass
        --fingerprint (compare with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the
        hub). Creates the bare repository when it is missing (no force pushes, no deletes,
        fsck on receive), records the peer in config.json and runs the first sync. A second
        machine adding the same hub starts from what is there and merges its own notes in.
        Your ~/.ssh/config, keys and agent are used, and a key in ~/.anamnesis/ssh/ if present.
        """,
        """
        anamnesis peer add homeserver ssh://anamnesis@homeserver/~/memory.git
        anamnesis peer add nas ssh://me@nas.tailnet.ts.net:2222/srv/anamnesis.git --fingerprint SHA256:3Xb…
        """,
        "peer_add",
    )
    add.add_argument("name", help="a short name for the hub (also the git remote's name), e.g. homeserver")
    add.add_argument("url", help="ssh://[user@]host[:port]/path/to/memory.git (or user@host:path)")
    add.add_argument("--fingerprint", help="trust the host key only if it is this one (SHA256:…); for scripts")
    add.add_argument("--yes", "-y", action="store_true", help="trust a new host key without asking (it is shown)")
    add.add_argument("--no-sync", action="store_true", help="record the peer but do not run the first sync")
    add.add_argument("--json", action="store_true", help="print JSON")

    list_ = _action(
        actions,
        "list",
        "show the hubs and when this machine last synced",
        "",
        "anamnesis peer list --json",
        "peer_list",
    )
    list_.add_argument("--json", action="store_true", help="print JSON")

    remove = _action(
        actions,
        "remove",
        "stop syncing with a hub (the hub and your notes are untouched)",
        "",
        "anamnesis peer remove homeserver",
        "peer_remove",
    )
    remove.add_argument("name", help="the peer's name, as `anamnesis peer list` shows it")

    sync = command(
        sub,
        "sync",
        "sync notes with your hub now",
        """
        Commits what changed here, fetches the hub, merges (a note changed on two machines in
        ways that do not merge is kept twice: the newer in place, the other tagged
        `conflict`), and pushes, never forced. A note that still holds a secret is not pushed;
        the output names it. The service and the session hooks run this on their own; exit
        status 1 means the hub could not be synced (your notes are safe here).
        """,
        "anamnesis sync --json",
        "sync",
    )
    sync.add_argument("--json", action="store_true", help="print the report as JSON")
    sync.add_argument("--quiet", "-q", action="store_true", help="print nothing unless it fails")
    # For writers when no service runs: wait until memory/ is quiet this long; one waiting push at a time.
    sync.add_argument("--settle", type=float, metavar="SECONDS", help=argparse.SUPPRESS)
    # For SessionStart: one word per line (news, none, done, failed) as the sync goes.
    sync.add_argument("--progress", action="store_true", help=argparse.SUPPRESS)


# -- handlers ------------------------------------------------------------------------------------


async def peer_add(config: Config, args: argparse.Namespace, io: IO) -> int:
    from anamnesis.sync.wiring import add_peer

    talk = io.err if args.json else io.out  # with --json, stdout carries only the JSON

    async def ask(probe: HostKeyProbe) -> bool:
        talk.write(f"The hub presents this {probe.algorithm} host key:\n    {probe.fingerprint}\n")
        if args.yes:
            talk.write("Trusting it (--yes).\n")
            return True
        talk.write(
            "Compare it with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` run on the hub.\nTrust this key? [y/N] "
        )
        talk.flush()
        answer = await anyio.to_thread.run_sync(io.stdin.readline)
        return answer.strip().lower() in ("y", "yes")

    interactive = args.yes or io.stdin.isatty()
    result = await add_peer(
        config,
        args.name,
        args.url,
        confirm=ask if interactive else None,
        fingerprint=args.fingerprint,
        first_sync=not args.no_sync,
    )
    if args.json:
        print_json(
            io.out,
            {
                "name": result.peer.name,
                "url": result.peer.url,
                "host_key": result.fingerprint,
                "newly_trusted": result.newly_trusted,
                "created_repo": result.created_repo,
                "replaced": result.replaced.url if result.replaced else None,
                "sync": result.report.as_dict() if result.report else None,
                "sync_error": str(result.sync_error) if result.sync_error else None,
            },
        )
    else:
        trust = "now trusted" if result.newly_trusted else "already trusted"
        io.out.write(f"Host key {result.algorithm} {result.fingerprint}: {trust}.\n")
        io.out.write(
            "Created the hub's repository (no force pushes, no deletes, fsck on receive).\n"
            if result.created_repo
            else "The hub's repository is there.\n"
        )
        if result.replaced:
            io.out.write(f"Peer {result.peer.name} was {result.replaced.url}; now {result.peer.url}.\n")
        io.out.write(f"Recorded peer {result.peer.name} ({result.peer.url}).\n")
        if result.report is not None:
            _write_report(io, result.report)
    if result.sync_error is not None:
        io.err.write(f"anamnesis: error: the first sync failed: {result.sync_error}\n")
        return 1
    return 0


async def peer_list(config: Config, args: argparse.Namespace, io: IO) -> int:
    from anamnesis.sync import fleet_status, list_peers

    peers = list_peers(config)
    fleet = await fleet_status(config)
    if args.json:
        print_json(
            io.out,
            {
                "peers": [
                    {"name": p.name, "url": p.url, "host_key": p.host_key, "added_at": p.added_at} for p in peers
                ],
                "last_ok": fleet.last_ok,
                "last_error": fleet.last_error,
            },
        )
        return 0
    if not peers:
        io.out.write("No hub yet. Add one: anamnesis peer add NAME ssh://user@host/path/to/memory.git\n")
        return 0
    for peer in peers:
        key = f"  host key {peer.host_key}" if peer.host_key else ""
        io.out.write(f"{peer.name}  {peer.url}{key}\n")
    io.out.write(f"last sync: {fleet.last_ok or 'never'}\n")
    if fleet.name_clash:
        io.out.write(f"warning: {fleet.name_clash}\n")
    if fleet.last_error:
        io.out.write(f"last error: {fleet.last_error}\n")
    return 0


async def peer_remove(config: Config, args: argparse.Namespace, io: IO) -> int:
    from anamnesis.sync import remove_peer

    removed = await remove_peer(config, args.name)
    io.out.write(f"Removed peer {removed.name} ({removed.url}). The hub and your notes are untouched.\n")
    return 0


async def sync(config: Config, args: argparse.Namespace, io: IO) -> int:
    from anamnesis.sync.wiring import run_sync

    if args.progress:
        code = await _sync_reporting(config)
        await _upkeep_in_background(config)
        return code
    if args.settle is not None and not await _settled(config, args.settle):
        return 0  # another push is already waiting, and carries what this one would have
    report = await run_sync(config)
    if args.json:
        shown = report.as_dict()
        if not report.ok:
            shown["error"] = "; ".join(f"{hub.name}: {hub.error}" for hub in report.hubs if hub.error)
        print_json(io.out, shown)
    elif not args.quiet:
        _write_report(io, report)
    if args.quiet:
        await _upkeep_in_background(config)
    return 0 if report.ok else 1


async def _upkeep_in_background(config: Config) -> None:
    """`--quiet` and `--progress` are how hooks and writers start a sync in the background: keep
    the store in shape there too (at most hourly; see `anamnesis.upkeep`)."""
    from anamnesis.upkeep import run_upkeep

    await run_upkeep(config)


async def _sync_reporting(config: Config) -> int:
    """`sync --progress`: one word per line on stdout as the sync goes (see `anamnesis.freshstart`)."""
    import contextlib
    import os

    from anamnesis.errors import AnamnesisError
    from anamnesis.sync.live import sync_reporting

    def tell(word: str) -> None:
        with contextlib.suppress(OSError):  # the hook stopped listening: carry on with the sync
            os.write(1, (" ".join(word.split()) + "\n").encode())

    try:
        report = await sync_reporting(config, tell)
    except AnamnesisError:
        return 1
    return 0 if report.ok else 1


async def _settled(config: Config, quiet: float) -> bool:
    """Wait until memory/ has not changed for `quiet` seconds (at most a minute), holding the
    pending-push lock; False when another process already holds it."""
    from anamnesis.autosync import PENDING_LOCK
    from anamnesis.locks import release_file_lock, try_file_lock
    from anamnesis.sync.live import memory_stamp

    fd = try_file_lock(config.layout.state_dir / PENDING_LOCK)
    if fd is None:
        return False
    try:
        with anyio.move_on_after(60):
            stamp = await anyio.to_thread.run_sync(memory_stamp, config.layout)
            while True:
                await anyio.sleep(quiet)
                now = await anyio.to_thread.run_sync(memory_stamp, config.layout)
                if now == stamp:
                    break
                stamp = now
    finally:
        release_file_lock(fd)
    return True


async def sync_now(config: Config, io: IO) -> int:
    """A sync after another command (e.g. capture): one line on success, the error otherwise."""
    from anamnesis.errors import AnamnesisError
    from anamnesis.sync.wiring import run_sync

    try:
        report = await run_sync(config)
    except AnamnesisError as exc:
        io.err.write(f"anamnesis: sync failed (notes are safe here): {exc}\n")
        return 1
    io.out.write(f"Synced: {report.summary()}.\n")
    for withheld in report.withheld:
        io.err.write(f"Not pushed: {withheld.describe()}.\n")
    if report.name_clash:
        io.err.write(f"Warning: {report.name_clash}.\n")
    return 0 if report.ok else 1


def _write_report(io: IO, report: SyncReport) -> None:
    for hub in report.hubs:
        if hub.error:
            io.err.write(f"anamnesis: error: {hub.name}: {hub.error}\n")
            continue
        notes = f"{hub.pulled} note{'s' if hub.pulled != 1 else ''}"
        pushed = "sent this machine's changes" if hub.pushed else "nothing to send"
        io.out.write(f"Synced with {hub.name} ({hub.url}): received {notes}, {pushed}.\n")
    for conflict in report.conflicts:
        whose = "this machine's" if conflict.kept == "local" else "the hub's"
        io.out.write(
            f"Conflict: {conflict.path} was changed on two machines; kept {whose} newer version in place, "
            f"the other is note {conflict.copy_id or conflict.copy_path} (tagged conflict) for you to decide.\n"
        )
    for path in report.kept_edits:
        io.out.write(f"Kept the edited {path}: another machine had deleted it.\n")
    for withheld in report.withheld:
        io.err.write(f"Not pushed: {withheld.describe()}.\n")
    if report.name_clash:
        io.err.write(f"Warning: {report.name_clash}.\n")
