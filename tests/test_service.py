"""`anamnesis serve` for real: hypercorn on 127.0.0.1 port 0, the lock, signals, the watcher, and
`anamnesis service install|uninstall` writing the login units."""

from __future__ import annotations

import contextlib
import http.cookiejar
import json
import os
import plistlib
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import anyio.to_thread
import pytest

from anamnesis.cli.service_cli import launchd_plist, systemd_unit
from anamnesis.config import Config, load_config, read_config_file
from anamnesis.errors import BusyError, ConfigError, HomeNotInitializedError
from anamnesis.index import RefreshReport
from anamnesis.notes import Note, render_note
from anamnesis.service import run_service
from anamnesis.service_settings import (
    ServiceInfo,
    ServiceObserver,
    ServiceOptions,
    cookie_key,
    ensure_token,
    service_options,
)
from anamnesis.service_sync import sync_plan
from tests.hookprobe import probe_hook

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parent.parent
BOUND = 20  # seconds: a bound on waiting, never a measured duration


class Client:
    """urllib with a cookie jar: a script or a browser talking to the real server."""

    def __init__(self) -> None:
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()), _NoRedirect()
        )

    def request(self, url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, str]:
        req = urllib.request.Request(url, data=data, headers=headers or {})
        try:
            with self.opener.open(req, timeout=BOUND) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    async def get(self, url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
        return await anyio.to_thread.run_sync(self.request, url, None, headers)

    async def post_json(self, url: str, body: Any, headers: dict[str, str]) -> tuple[int, str]:
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json", **headers}
        return await anyio.to_thread.run_sync(self.request, url, data, headers)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@asynccontextmanager
async def running_service(config: Config, **options: Any) -> AsyncIterator[tuple[ServiceInfo, dict[str, Any]]]:
    """The service in this process on a free port; stopped (and awaited, within a bound) on exit."""
    ready = anyio.Event()
    stop = anyio.Event()
    seen: dict[str, Any] = {"refreshes": [], "refreshed": anyio.Event(), "syncs": [], "synced": anyio.Event()}

    def on_ready(info: ServiceInfo) -> None:
        seen["info"] = info
        ready.set()

    def on_refresh(report: RefreshReport) -> None:
        seen["refreshes"].append(report)
        if report.changed:
            seen["refreshed"].set()

    def on_sync(ok: bool, message: str) -> None:
        seen["syncs"].append((ok, message))
        seen["synced"].set()

    done = anyio.Event()

    async def serve() -> None:
        observer = ServiceObserver(ready=on_ready, refreshed=on_refresh, synced=on_sync)
        await run_service(config, settings, observer=observer, stop=stop, handle_signals=False)
        done.set()

    settings = ServiceOptions(**{"port": 0, "sync": False, **options})
    async with anyio.create_task_group() as tg:
        tg.start_soon(serve)
        with anyio.fail_after(BOUND):
            await ready.wait()
        try:
            yield seen["info"], seen
        finally:
            stop.set()
            with anyio.fail_after(BOUND):  # it stops by itself once asked
                await done.wait()


async def test_the_service_serves_the_dashboard_on_a_real_socket_and_stops_when_asked(config: Config) -> None:
    async with running_service(config) as (info, _):
        assert info.url.startswith("http://127.0.0.1:")
        assert info.port > 0
        client = Client()
        status, html = await client.get(info.url + "/")
        assert status == 200
        assert "<title>Notes · Anamnesis</title>" in html
        status, _ = await client.get(info.url + "/", {"Host": f"evil.example:{info.port}"})
        assert status == 400
        status, body = await client.get(info.url + "/health", {"Accept": "application/json"})
        health = json.loads(body)
        assert health["service"]["running"] is True
        assert health["service"]["sync_enabled"] is False
        created_status, created = await client.post_json(
            info.url + "/new",
            {"title": "Written over HTTP", "body": "through hypercorn"},
            {"Origin": info.url, "X-CSRF-Token": health["csrf_token"]},
        )
        assert created_status == 201, created
        assert json.loads(created)["note"]["title"] == "Written over HTTP"
    with pytest.raises(ConnectionRefusedError):  # nothing listens on that port any more
        socket.create_connection(("127.0.0.1", info.port), timeout=BOUND).close()
    assert not (config.layout.state_dir / "service.json").exists()
    async with running_service(config) as (again, _):  # and the lock was released
        assert (await Client().get(again.url + "/"))[0] == 200


def _silent_client(port: int, request: bytes) -> bytes:
    """Send part of a request, then nothing: what the server says before it hangs up."""
    with socket.create_connection(("127.0.0.1", port), timeout=BOUND) as conn:
        conn.sendall(request)
        received = b""
        while chunk := conn.recv(65536):  # b"" once the server closes; a timeout fails the test
            received += chunk
        return received


async def _write_request_start(url: str) -> bytes:
    """The start of a real dashboard write (session cookie, Origin, CSRF token) whose promised
    body never comes: the app waits on it, so only a read timeout frees the connection."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    request = urllib.request.Request(url + "/health", headers={"Accept": "application/json"})

    def fetch() -> str:
        with opener.open(request, timeout=BOUND) as response:
            return str(json.loads(response.read())["csrf_token"])

    csrf = await anyio.to_thread.run_sync(fetch)
    cookies = "; ".join(f"{c.name}={c.value}" for c in jar)
    host = url.removeprefix("http://")
    return (
        f"POST /new HTTP/1.1\r\nHost: {host}\r\nOrigin: {url}\r\nCookie: {cookies}\r\n"
        f"X-CSRF-Token: {csrf}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"
    ).encode()


@pytest.mark.parametrize("quiet", ["slow-headers", "half-open-body"])
async def test_a_client_that_goes_quiet_mid_request_is_dropped(config: Config, quiet: str) -> None:
    async with running_service(config, client_timeout=0.5) as (info, _):
        if quiet == "slow-headers":  # slowloris: headers never finished
            start = f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{info.port}\r\nX-Slow: ".encode()
        else:
            start = await _write_request_start(info.url)

        await anyio.to_thread.run_sync(_silent_client, info.port, start)

        assert (await Client().get(info.url + "/"))[0] == 200  # and the dashboard still answers


async def test_a_second_service_on_the_same_home_says_one_is_already_running(config: Config) -> None:
    async with running_service(config) as (info, _):
        with pytest.raises(BusyError, match=f"already running .*{info.url}"):
            await run_service(config, ServiceOptions(port=0), handle_signals=False)
        result = await anyio.run_process(
            [sys.executable, "-m", "anamnesis", "serve", "--port", "0"], check=False, env=_env()
        )
        assert result.returncode == 1
        assert f"already running for {config.home} (dashboard at {info.url})" in result.stderr.decode()


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


async def _first_lines(process: anyio.abc.Process, count: int) -> list[str]:
    assert process.stdout is not None
    buffer = b""
    with anyio.fail_after(BOUND):
        while buffer.count(b"\n") < count:
            buffer += await process.stdout.receive()
    return buffer.decode().splitlines()


@pytest.mark.parametrize(
    "signals",
    [(signal.SIGTERM,), (signal.SIGINT,), (signal.SIGTERM, signal.SIGTERM), (signal.SIGINT, signal.SIGINT)],
    ids=["sigterm", "ctrl-c", "sigterm-twice-as-timeout-sends-it", "ctrl-c-twice"],
)
async def test_the_serve_command_stops_cleanly_on_a_signal(config: Config, signals: tuple[signal.Signals, ...]) -> None:
    command = [sys.executable, "-m", "anamnesis", "serve", "--port", "0"]
    async with await anyio.open_process(command, env=_env()) as process:
        lines = await _first_lines(process, 2)
        url = lines[0].split(" at ", 1)[1].split("/ ", 1)[0]
        assert lines[1].startswith("sync: off: no hub configured")
        assert (await Client().get(url + "/"))[0] == 200
        for signum in signals:
            with contextlib.suppress(ProcessLookupError):  # the second may come after it is gone
                process.send_signal(signum)
        with anyio.fail_after(BOUND):
            code = await process.wait()
        assert code == 0
        assert process.stdout is not None
        rest = b""
        with anyio.fail_after(BOUND):
            async for chunk in process.stdout:
                rest += chunk
        assert b"Anamnesis service stopped." in rest
    assert not (config.layout.state_dir / "service.json").exists()


async def test_the_index_follows_note_files_changed_by_hand(config: Config) -> None:
    async with running_service(config) as (info, seen):
        note = Note(
            id="01JD3W6Q2M8Z4T9K7B5X0R1C2V",
            type="semantic",
            title="Dropped in by hand",
            body="An editor wrote this.",
            machine_id="desktop",
            created_at="2026-11-20T10:00:00Z",
            updated_at="2026-11-20T10:00:00Z",
        )
        (config.layout.memory_dir / "semantic" / f"{note.id}.md").write_text(render_note(note))
        with anyio.fail_after(BOUND):
            await seen["refreshed"].wait()
        assert seen["refreshes"][-1].added == 1
        # The service records what it took in, so hooks find the index in step: no event loop.
        payload = {"cwd": "/tmp", "session_id": "s", "prompt": "what did the editor drop in by hand?"}
        out, loaded = await anyio.to_thread.run_sync(probe_hook, "user-prompt-submit", payload)
        assert note.id in out
        assert not loaded & {"asyncio", "anyio", "aiosqlite"}, loaded
        _status, body = await Client().get(info.url + "/health", {"Accept": "application/json"})
        assert json.loads(body)["service"]["last_refresh_message"] == "1 added, 0 updated, 0 removed"


async def test_the_sync_loop_says_what_it_does_and_waits_for_a_hub(config: Config) -> None:
    assert sync_plan(config, service_options(config, sync=False)) == (None, "off (started with --no-sync)")
    function, note = sync_plan(config, service_options(config))
    assert callable(function)  # the sync engine is installed; with no hub it waits for one
    assert note == "off: no hub configured (anamnesis peer add NAME ssh://user@host/path)"
    with_hub = load_config(config.home, {"ANAMNESIS_GIT_REMOTE": "ssh://me@hub/srv/anamnesis.git"})
    assert sync_plan(with_hub, service_options(with_hub))[1] == "every 1 min with ssh://me@hub/srv/anamnesis.git"
    async with running_service(config, sync=True) as (info, seen):
        assert info.sync_note.startswith("off: no hub configured")
        _, body = await Client().get(info.url + "/health", {"Accept": "application/json"})
        assert json.loads(body)["service"]["sync_enabled"] is False
        assert seen["syncs"] == []


async def test_options_come_from_the_command_line_over_config(config: Config) -> None:
    assert service_options(config) == ServiceOptions(host="127.0.0.1", port=8765)
    raw = read_config_file(config.layout.config_path)
    raw["dashboard"] = {"host": "localhost", "port": 9999}
    raw["sync"] = {"interval": 120}
    config.layout.config_path.write_text(json.dumps(raw))
    configured = load_config(config.home, {})
    assert service_options(configured) == ServiceOptions(host="localhost", port=9999, sync_interval=120.0)
    assert service_options(configured, "127.0.0.1", 0).port == 0
    with pytest.raises(ConfigError, match="not a TCP port"):
        service_options(configured, port=70000)


async def test_beyond_loopback_a_token_is_created_once_and_kept_in_config(config: Config) -> None:
    token, created = ensure_token(config.layout)
    assert created
    assert len(token) >= 32
    again, created_again = ensure_token(config.layout)
    assert (again, created_again) == (token, False)
    raw = read_config_file(config.layout.config_path)
    assert raw["dashboard"]["token"] == token
    assert raw["machine_id"] == "desktop"  # the rest of config.json is kept
    assert config.layout.config_path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(ConfigError, match="needs an access token"):
        await run_service(config, ServiceOptions(host="192.0.2.1", port=0), handle_signals=False)


async def test_the_cookie_key_is_kept_so_open_forms_survive_a_restart(config: Config) -> None:
    key = cookie_key(config.layout)
    assert len(key) == 32
    assert cookie_key(config.layout) == key
    assert (config.layout.state_dir / "dashboard.key").stat().st_mode & 0o777 == 0o600


def _outside_address() -> str | None:
    """An address of this machine that is not loopback, if it has one (no packet is sent)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.254", 9))
        address = probe.getsockname()[0]
    except OSError:
        return None
    finally:
        probe.close()
    return None if address.startswith("127.") or address == "0.0.0.0" else address


async def test_serving_beyond_loopback_prints_the_token_once_and_demands_it(config: Config) -> None:
    address = _outside_address()
    if address is None:
        pytest.skip("this machine has no address beyond loopback")
    command = [sys.executable, "-m", "anamnesis", "serve", "--host", address, "--port", "0", "--no-sync"]
    for run in ("first", "second"):
        async with await anyio.open_process(command, env=_env()) as process:
            lines = await _first_lines(process, 5 if run == "first" else 4)
            token = read_config_file(config.layout.config_path)["dashboard"]["token"]
            text = "\n".join(lines)
            assert "reachable from other machines" in text
            if run == "first":
                assert f"  {token}" in lines
                assert "shown this once" in text
            else:
                assert token not in text
                assert "dashboard.token" in text
            url = next(line for line in lines if line.startswith("Anamnesis dashboard at")).split(" at ", 1)[1]
            url = url.split("/ ", 1)[0]
            assert (await Client().get(url + "/", {"Accept": "application/json"}))[0] == 401
            status, _ = await Client().get(
                url + "/", {"Accept": "application/json", "Authorization": f"Bearer {token}"}
            )
            assert status == 200
            process.send_signal(signal.SIGTERM)
            with anyio.fail_after(BOUND):
                assert await process.wait() == 0


async def test_a_wildcard_address_a_taken_port_or_no_home_is_a_clear_error(config: Config, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not bind every interface"):
        await run_service(config, ServiceOptions(host="0.0.0.0", port=0, token="t" * 32), handle_signals=False)
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        with pytest.raises(ConfigError, match="is taken by another program"):
            await run_service(config, ServiceOptions(port=taken.getsockname()[1]), handle_signals=False)
    finally:
        taken.close()
    elsewhere = load_config(tmp_path / "nowhere", {"ANAMNESIS_MACHINE_ID": "x"})
    with pytest.raises(HomeNotInitializedError, match="anamnesis init"):
        await run_service(elsewhere, ServiceOptions(port=0), handle_signals=False)
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "0"])
async def test_serve_on_every_interface_is_refused_before_a_token_is_made(config: Config, host: str) -> None:
    result = anamnesis("serve", "--host", host, "--port", "0", "--no-sync")

    assert result.returncode != 0
    assert "does not bind every interface" in result.stderr
    assert "token" not in result.stdout.lower()
    assert "dashboard" not in json.loads(config.layout.config_path.read_text(encoding="utf-8"))


# -- service install | uninstall ----------------------------------------------------------------------


def anamnesis(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "anamnesis", *args],
        capture_output=True,
        text=True,
        env=_env(**env),
        timeout=60,
        check=False,
    )


async def test_service_install_writes_a_systemd_user_unit_and_uninstall_removes_it(
    config: Config, tmp_path: Path
) -> None:
    xdg = tmp_path / "xdg"
    unit = xdg / "systemd" / "user" / "anamnesis.service"
    dry = anamnesis("service", "install", "--platform", "systemd", "--dry-run", XDG_CONFIG_HOME=str(xdg))
    assert dry.returncode == 0
    assert f"would write {unit}" in dry.stdout
    assert "would run: systemctl --user enable --now anamnesis.service" in dry.stdout
    assert not unit.exists()
    installed = anamnesis("service", "install", "--platform", "systemd", "--no-start", XDG_CONFIG_HOME=str(xdg))
    assert installed.returncode == 0, installed.stderr
    text = unit.read_text()
    assert "\nExecStart=" in text
    assert text.split("\nExecStart=", 1)[1].split("\n", 1)[0].endswith('"serve"')
    assert f'Environment="ANAMNESIS_HOME={config.home}"' in text
    assert "WantedBy=default.target" in text
    assert "KillSignal=SIGTERM" in text
    assert "systemctl --user enable --now anamnesis.service" in installed.stdout
    again = anamnesis("service", "install", "--platform", "systemd", "--no-start", XDG_CONFIG_HOME=str(xdg))
    assert "Unchanged:" in again.stdout
    removed = anamnesis("service", "uninstall", "--platform", "systemd", XDG_CONFIG_HOME=str(xdg))
    assert removed.returncode == 0
    assert not unit.exists()
    assert (
        "nothing to remove"
        in anamnesis("service", "uninstall", "--platform", "systemd", XDG_CONFIG_HOME=str(xdg)).stdout
    )


async def test_service_install_writes_a_launchd_agent_that_runs_serve_at_login(config: Config) -> None:
    plist_path = Path(os.environ["HOME"]) / "Library" / "LaunchAgents" / "dev.anamnesis.serve.plist"
    installed = anamnesis("service", "install", "--platform", "launchd", "--no-start")
    assert installed.returncode == 0, installed.stderr
    agent = plistlib.loads(plist_path.read_bytes())
    assert agent["Label"] == "dev.anamnesis.serve"
    assert agent["ProgramArguments"][-1] == "serve"
    assert Path(agent["ProgramArguments"][0]).is_absolute()
    assert agent["RunAtLoad"] is True
    assert agent["EnvironmentVariables"]["ANAMNESIS_HOME"] == str(config.home)
    assert agent["StandardErrorPath"] == str(config.layout.state_dir / "service.log")
    assert "launchctl bootstrap gui/" in installed.stdout
    assert anamnesis("service", "uninstall", "--platform", "launchd").returncode == 0
    assert not plist_path.exists()


def test_the_files_in_deploy_are_what_service_install_writes() -> None:
    systemd = systemd_unit(["/usr/local/bin/anamnesis"], {"PATH": "/usr/local/bin:/usr/bin:/bin"})
    assert (REPO / "deploy" / "anamnesis.service").read_text() == systemd
    launchd = launchd_plist(
        ["/usr/local/bin/anamnesis"],
        {"PATH": "/opt/homebrew/bin:/usr/local/bin:/usr/bin:/bin"},
        "/Users/you/.anamnesis/state/service.log",
    )
    assert (REPO / "deploy" / "dev.anamnesis.serve.plist").read_text() == launchd
    assert 'ExecStart="/usr/local/bin/anamnesis" "serve"' in systemd
    tricky = systemd_unit(["/opt/my apps/bin/anamnesis"], {"PATH": '/a"b:$HOME:100%'})
    assert 'ExecStart="/opt/my apps/bin/anamnesis" "serve"' in tricky
    assert 'Environment="PATH=/a\\"b:$$HOME:100%%"' in tricky


async def test_the_service_syncs_with_the_hub_and_the_dashboard_shows_the_fleet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.hubserver import make_machine, running_hub

    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    async with running_hub(tmp_path / "hubroot") as hub:
        laptop = await make_machine(tmp_path, "laptop", hub)
        desktop = await make_machine(tmp_path, "desktop", hub)
        await laptop.write("Written on the laptop", "The desktop's service pulls this in its first cycle.")
        assert (await laptop.sync()).ok
        async with running_service(desktop.config, sync=True) as (info, seen):
            assert info.sync_note == f"every 1 min with {hub.url()}"
            with anyio.fail_after(BOUND):
                await seen["synced"].wait()
            assert seen["syncs"][0][0] is True, seen["syncs"]
            client = Client()
            _, body = await client.get(info.url + "/search?q=laptop", {"Accept": "application/json"})
            assert [hit["title"] for hit in json.loads(body)["hits"]] == ["Written on the laptop"]
            _, body = await client.get(info.url + "/fleet", {"Accept": "application/json"})
            fleet = {m["machine"]: m for m in json.loads(body)["machines"]}
            assert set(fleet) == {"laptop", "desktop"}
            assert fleet["desktop"]["this_machine"] is True
            # "Sync now" on the health page runs another cycle at once.
            await laptop.write("A second laptop note", "Fetched when the user presses Sync now.")
            assert (await laptop.sync()).ok
            seen["synced"] = anyio.Event()
            _, body = await client.get(info.url + "/health", {"Accept": "application/json"})
            health = json.loads(body)
            assert health["service"]["sync_enabled"] is True
            status, _ = await client.post_json(
                info.url + "/health/sync", {}, {"Origin": info.url, "X-CSRF-Token": health["csrf_token"]}
            )
            assert status == 202
            with anyio.fail_after(BOUND):
                await seen["synced"].wait()
            _, body = await client.get(info.url + "/search?q=second+laptop+note", {"Accept": "application/json"})
            assert json.loads(body)["hits"][0]["title"] == "A second laptop note"
