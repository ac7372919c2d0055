"""Already there when you sit down: how fast a note travels, and what the first session pays for it.

    python bench/bench_fresh.py                 # 10 rounds, a 60 s idle window
    python bench/bench_fresh.py --rounds 20 --idle 120

Two machines (own homes, own keys) sync through an asyncssh hub in this process (tests/hubserver.py:
real `git upload-pack`/`receive-pack` behind it). Measures, each beside a floor from the same run:

- one check of the hub's main over an open connection (the service's ref check), beside the
  same question asked with `git ls-remote` over that connection and a fresh SSH handshake;
- both services running (`anamnesis serve`, real processes): a note written on the desktop is
  found by the laptop's search: p50 and p95 (target p95 ≤ 15 s);
- the services' idle cost: CPU seconds and hub round trips per hour, from /proc and the hub;
- the laptop wakes with no service and a session starts at once: the SessionStart hook's time
  and whether its context holds the desktop's note, beside the floor of a hook with no sync due
  plus one in-process sync that fetches the change (target: ≤ 1.5 s over that floor); with
  nothing new, beside the hook with no sync due (target: within 150 ms of it; `python -c
  "import sqlite3"` is printed as the Python floor).
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]

import anyio  # noqa: E402
import anyio.to_thread  # noqa: E402
from common import Table, machine_line, p50, p95  # noqa: E402

from anamnesis.gitrepo import BRANCH  # noqa: E402
from anamnesis.sync.peers import parse_hub_url, sync_settings  # noqa: E402
from anamnesis.sync.ssh import HubLinkMux, ask_hub_main, connect_hub  # noqa: E402
from anamnesis.sync.wiring import run_sync  # noqa: E402
from tests.hubserver import Hub, HubStats, Machine, make_machine, public_line, running_hub  # noqa: E402
from tests.ports import unused_port  # noqa: E402

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
CHECK_INTERVAL = 5.0  # the default; the bench runs what users run


def env_for(machine: Machine) -> dict[str, str]:
    return {**ENV, "ANAMNESIS_HOME": str(machine.home)}


# -- an OpenSSH hub ------------------------------------------------------------------------------


class OpenSSHHub:
    """Debian's sshd on a loopback port, each key restricted to git with git-shell (peers/README.md).

    Quacks like tests/hubserver.Hub where `make_machine` and this bench need it; `stats.sessions`
    counts the exec channels sshd logs, so hub round trips are counted the same way.
    """

    def __init__(self, root: Path) -> None:
        from anamnesis.sync.sshlib import asyncssh

        self.root = root
        self.dir = root / "sshd"
        self.dir.mkdir(parents=True, mode=0o700)
        self.host_key = asyncssh.generate_private_key("ssh-ed25519")
        self.host_key.write_private_key(str(self.dir / "host_ed25519"))
        (self.dir / "host_ed25519").chmod(0o600)
        self.authorized = self.dir / "authorized_keys"
        self.authorized.write_text("")
        self.authorized.chmod(0o600)
        self.port = 0
        self.stats = HubStats()

    def url(self) -> str:
        return f"ssh://{getpass.getuser()}@127.0.0.1:{self.port}{self.root}/memory.git"

    def repo(self) -> Path:
        return self.root / "memory.git"

    def authorize(self, key: Any) -> None:
        with self.authorized.open("a") as handle:
            handle.write(f'restrict,command="git-shell -c \\"$SSH_ORIGINAL_COMMAND\\"" {public_line(key)}\n')

    @asynccontextmanager
    async def running(self) -> AsyncIterator[OpenSSHHub]:
        await anyio.run_process(["git", "init", "-q", "--bare", str(self.repo())])
        await anyio.run_process(["git", "--git-dir", str(self.repo()), "symbolic-ref", "HEAD", "refs/heads/main"])
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        self.port = unused_port()
        (self.dir / "sshd_config").write_text(
            f"ListenAddress 127.0.0.1\nPort {self.port}\nHostKey {self.dir / 'host_ed25519'}\n"
            f"PidFile {self.dir / 'sshd.pid'}\nAuthorizedKeysFile {self.authorized}\nUsePAM no\nStrictModes no\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
            "AcceptEnv GIT_PROTOCOL\nLogLevel VERBOSE\n"
        )
        process = await anyio.open_process(["/usr/sbin/sshd", "-D", "-e", "-f", str(self.dir / "sshd_config")])
        listening = anyio.Event()

        async def read_log() -> None:
            assert process.stderr is not None
            buffered = b""
            async for chunk in process.stderr:
                buffered += chunk
                *lines, buffered = buffered.split(b"\n")
                for line in lines:
                    if b"Server listening" in line:
                        listening.set()
                    if b"Starting session:" in line:
                        self.stats.sessions.append(("command", 0))

        async with anyio.create_task_group() as group:
            group.start_soon(read_log)
            with anyio.fail_after(20):
                await listening.wait()
            try:
                yield self
            finally:
                process.terminate()
                with anyio.move_on_after(10):
                    await process.wait()
                group.cancel_scope.cancel()


# -- one ref check ------------------------------------------------------------------------------


async def ref_check_costs(machine: Machine, hub: Hub, rounds: int) -> dict[str, float]:
    config = machine.config
    settings = sync_settings(config)
    target = parse_hub_url(hub.url())
    shakes = []
    for _ in range(rounds):
        start = time.perf_counter()
        conn, _client = await connect_hub(config.layout, settings, target)
        shakes.append(time.perf_counter() - start)
        conn.close()
        await conn.wait_closed()
    conn, _client = await connect_hub(config.layout, settings, target)
    async with conn:
        checks, cpu = [], []
        for _ in range(rounds * 4):
            start, cpu_start = time.perf_counter(), time.process_time()
            await ask_hub_main(conn, target, 10)
            checks.append(time.perf_counter() - start)
            cpu.append(time.process_time() - cpu_start)
        ls_remote = []
        async with HubLinkMux(conn, target).serving() as mux:
            for _ in range(rounds):
                start = time.perf_counter()
                await anyio.run_process(
                    ["git", "-C", str(machine.memory_dir), "ls-remote", "hub", f"refs/heads/{BRANCH}"],
                    env={**os.environ, **mux.env()},
                )
                ls_remote.append(time.perf_counter() - start)
    return {
        "check": p50(checks),
        "check_cpu": p50(cpu),
        "ls_remote": p50(ls_remote),
        "handshake": p50(shakes),
    }


# -- services -----------------------------------------------------------------------------------


class Service:
    """`anamnesis serve` for one machine, as a real process; its dashboard answers searches."""

    def __init__(self, machine: Machine) -> None:
        self.machine = machine
        self.process: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "anamnesis", "serve", "--port", "0"],
            env=env_for(self.machine),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        match = re.search(r"(http://\S+?)/? ", line)
        if not match:
            raise SystemExit(f"the service did not start: {line!r}")
        self.url = match.group(1)

    def finds(self, words: str) -> bool:
        query = urllib.parse.urlencode({"q": words})
        request = urllib.request.Request(f"{self.url}/search?{query}", headers={"Accept": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            hits = json.loads(response.read())["hits"]
        return bool(hits)

    def cpu_seconds(self) -> float:
        assert self.process is not None
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)


async def until(condition: Any, bound: float) -> float:
    """Seconds until `condition()` (blocking; run in a thread) is true; raises after `bound`."""
    start = time.perf_counter()
    with anyio.fail_after(bound):
        while not await anyio.to_thread.run_sync(condition):
            await anyio.sleep(0.05)
    return time.perf_counter() - start


async def travel_times(desktop: Machine, laptop_service: Service, rounds: int) -> list[float]:
    samples = []
    for i in range(rounds):
        word = f"zebra{i}quokka{time.time_ns()}"
        await desktop.write(f"Travelling note {i}", f"The unusual word {word} marks it.")
        samples.append(await until(lambda w=word: laptop_service.finds(w), 120))
    return samples


async def idle_cost(services: list[Service], hub: Hub, window: float) -> tuple[float, float]:
    """(CPU seconds per hour of all services, hub round trips per hour) over an idle window."""
    cpu_before = sum(s.cpu_seconds() for s in services)
    sessions_before = len(hub.stats.sessions)
    await anyio.sleep(window)
    cpu = sum(s.cpu_seconds() for s in services) - cpu_before
    trips = len(hub.stats.sessions) - sessions_before
    per_hour = 3600 / window / len(services)
    return cpu * per_hour, trips * per_hour


# -- session start ------------------------------------------------------------------------------


def hook_session_start(machine: Machine) -> tuple[float, str]:
    payload = json.dumps({"session_id": "bench", "cwd": "/tmp", "hook_event_name": "SessionStart", "source": "startup"})
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "anamnesis", "hook", "session-start"],
        input=payload,
        capture_output=True,
        text=True,
        env=env_for(machine),
        check=True,
    )
    elapsed = time.perf_counter() - start
    return elapsed, result.stdout


def python_floor() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import sqlite3"], check=True)
    return time.perf_counter() - start


def make_stale(machine: Machine) -> None:
    for name in ("sync.json", "sync-requested", "hub-heard.json"):
        path = machine.home / "state" / name
        if path.exists():
            os.utime(path, (1, 1))


async def settle(machine: Machine) -> None:
    """Wait until the detached sync a hook started (after `make_stale`) has ended its cycle."""
    record = machine.home / "state" / "sync.json"
    await until(lambda: record.stat().st_mtime > 1, 120)


async def session_start_costs(desktop: Machine, laptop: Machine, rounds: int) -> dict[str, Any]:
    floors, idle, nothing, news, fetch_floor, held = [], [], [], [], [], 0
    for i in range(rounds):
        floors.append(await anyio.to_thread.run_sync(python_floor))
        idle.append((await anyio.to_thread.run_sync(hook_session_start, laptop))[0])  # a sync is recent
        make_stale(laptop)
        nothing.append((await anyio.to_thread.run_sync(hook_session_start, laptop))[0])
        await settle(laptop)
        # The floor: one in-process sync (handshake, fetch, merge, index) that brings one change in.
        await desktop.write(f"Floor note {i}", "Measured by an in-process sync.", type="procedural", project="global")
        assert (await desktop.sync()).ok
        start = time.perf_counter()
        assert (await run_sync(laptop.config)).pulled == 1
        fetch_floor.append(time.perf_counter() - start)
        # The laptop slept while the desktop wrote; a session starts the moment it wakes.
        title = f"Desktop convention number {i} {time.time_ns()}"
        await desktop.write(title, "Written while the laptop slept.", type="procedural", project="global")
        assert (await desktop.sync()).ok
        make_stale(laptop)
        elapsed, out = await anyio.to_thread.run_sync(hook_session_start, laptop)
        news.append(elapsed)
        held += title in (json.loads(out)["hookSpecificOutput"]["additionalContext"] if out else "")
        await settle(laptop)
    return {
        "python": p50(floors),
        "idle": p50(idle),
        "nothing": p50(nothing),
        "news": p50(news),
        "news_p95": p95(news),
        "fetch_floor": p50(fetch_floor),
        "held": held,
        "rounds": rounds,
    }


# -- main ---------------------------------------------------------------------------------------


async def main(rounds: int, idle_window: float, openssh: bool) -> int:
    os.environ.pop("SSH_AUTH_SOCK", None)
    with tempfile.TemporaryDirectory(prefix="anamnesis-bench-fresh-") as scratch:
        base = Path(scratch)
        os.environ["HOME"] = str(base)
        ENV["HOME"] = str(base)
        ENV.pop("SSH_AUTH_SOCK", None)
        hubs: contextlib.AbstractAsyncContextManager[Any] = (
            OpenSSHHub(base / "hubroot").running() if openssh else running_hub(base / "hubroot")
        )
        async with hubs as hub:
            desktop = await make_machine(base, "desktop", hub)
            laptop = await make_machine(base, "laptop", hub)
            for machine in (desktop, laptop):
                machine.set_sync(connect_timeout=15, keepalive_interval=15, git_timeout=300, lock_wait=10)
                await machine.write("Seed", "the first note")
                assert (await machine.sync()).ok
            assert (await desktop.sync()).ok

            kind = "OpenSSH sshd, git-shell account" if openssh else "asyncssh hub in this process"
            table = Table(f"fresh sync over loopback SSH, {kind} ({machine_line()})")
            costs = await ref_check_costs(laptop, hub, rounds)
            table.add("one ref check of the hub's main (open connection)", costs["check"], costs["handshake"], None)
            table.add("  its CPU in this process (client, + hub if in-process)", costs["check_cpu"], None, None)
            table.add("  the same with git ls-remote over the connection", costs["ls_remote"], None, None)
            table.add("  one SSH handshake (the floor column above)", costs["handshake"], None, None)

            session = await session_start_costs(desktop, laptop, rounds)
            table.add("python -c 'import sqlite3' (Python floor)", session["python"], None, None)
            table.add("session start, sync recent (no wait)", session["idle"], session["python"], None)
            table.add(
                "session start, sync due, nothing new", session["nothing"], session["idle"], session["idle"] + 0.150
            )
            floor = session["idle"] + session["fetch_floor"]
            table.add("  in-process sync fetching one note (floor part)", session["fetch_floor"], None, None)
            table.add("session start, sync due, news (p50)", session["news"], floor, floor + 1.5)
            table.add("session start, sync due, news (p95)", session["news_p95"], floor, floor + 1.5)
            table.add_text(
                "  first context holds the desktop's note",
                f"{session['held']}/{session['rounds']}",
                target=f"{session['rounds']}/{session['rounds']}",
                verdict="ok" if session["held"] == session["rounds"] else "MISS",
            )
            table.misses += session["held"] != session["rounds"]

            services = [Service(desktop), Service(laptop)]
            for service in services:
                await anyio.to_thread.run_sync(service.start)
            try:
                await anyio.sleep(2 * CHECK_INTERVAL)  # both have run their first cycle
                travel = await travel_times(desktop, services[1], rounds)
                table.add("note on desktop found on laptop, both services (p50)", p50(travel), None, None)
                table.add("note on desktop found on laptop, both services (p95)", p95(travel), None, 15.0)
                await anyio.sleep(2 * CHECK_INTERVAL)
                cpu, trips = await idle_cost(services, hub, idle_window)
                table.add_text("service idle CPU per hour (per machine)", f"{cpu:.1f} s")
                table.add_text("service idle hub round trips per hour (per machine)", f"{trips:.0f}")
            finally:
                for service in services:
                    await anyio.to_thread.run_sync(service.stop)
            table.print()
    return 1 if table.misses else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10, help="samples per measure (default 10)")
    parser.add_argument("--idle", type=float, default=60.0, help="seconds of idle services measured (default 60)")
    parser.add_argument("--openssh", action="store_true", help="hub: Debian's sshd on loopback (git-shell account)")
    arguments = parser.parse_args()
    sys.exit(anyio.run(main, arguments.rounds, arguments.idle, arguments.openssh, backend="asyncio"))
