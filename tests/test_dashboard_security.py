"""Hostile input against the dashboard: script payloads, path traversal, oversized forms,
forged Host and Origin, missing CSRF tokens, and the access token beyond loopback."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import pytest

from anamnesis.config import Config
from anamnesis.dashboard import DashboardSettings, create_app
from anamnesis.dashboard.render import render_markdown, safe_link
from anamnesis.dashboard.security import CONTENT_SECURITY_POLICY
from anamnesis.errors import ConfigError
from anamnesis.memory import Memory
from anamnesis.notes import MAX_BODY_CHARS
from tests.test_dashboard import ORIGIN, Browser, git, make_app, make_conflict, note_file, publish, write

pytestmark = pytest.mark.anyio

PAYLOADS = (
    "<script>alert('x')</script>",
    '"><img src=x onerror=alert(1)>',
    "<svg/onload=alert(2)>",
    "' onmouseover='alert(3)",
    "javascript:alert(4)",
)


class Audit(HTMLParser):
    """Every element and attribute a page really has (as a browser parses it), and what is wrong."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "script" and not (values.get("src") or "").startswith("/static/"):
            self.problems.append(f"inline or foreign script: {attrs}")
        if tag in ("img", "svg", "iframe", "object", "embed", "b", "base"):
            self.problems.append(f"<{tag}> from a note: {attrs}")
        if tag == "meta" and "http-equiv" in values:
            self.problems.append(f"meta http-equiv: {attrs}")
        for name, value in attrs:
            if name.startswith("on"):
                self.problems.append(f"event handler {name}={value!r} on <{tag}>")
            if name in ("href", "src", "action", "formaction") and (value or "").strip().lower().startswith(
                ("javascript:", "vbscript:", "data:")
            ):
                self.problems.append(f"{name}={value!r} on <{tag}>")


def audit(html: str) -> list[str]:
    parser = Audit()
    parser.feed(html)
    parser.close()
    return parser.problems


@pytest.fixture
def browser(config: Config, memory: Memory) -> Browser:
    return Browser(make_app(config, memory).test_client())


async def test_script_and_event_handler_payloads_never_run_on_any_page(browser: Browser, memory: Memory) -> None:
    assert audit(f"<p>{PAYLOADS[1]}</p>")
    assert audit('<a href="javascript:alert(1)">x</a>')
    hostile = " ".join(PAYLOADS)
    note = await write(
        memory,
        f"Title {PAYLOADS[0]}{PAYLOADS[1]}",
        f"Body {hostile}\n\n<b onclick=alert(5)>bold?</b>\n\n[click](javascript:alert(6)) [ok](https://example.com)",
        tags=list(PAYLOADS),
        project=f"github.com/acme/{PAYLOADS[1]}",
    )
    _original, copy = await make_conflict(memory, f"Conflict {PAYLOADS[2]}")
    publish(memory, "evil.json", {"machine": PAYLOADS[1], "head": PAYLOADS[0], "synced_at": PAYLOADS[3]})
    (memory.config.layout.memory_dir / "semantic" / "broken.md").write_text(f"---\ntitle: {PAYLOADS[0]}\n")
    sha = git(memory, "rev-parse", "HEAD").strip()
    for path in (
        "/",
        f"/?tag={PAYLOADS[1]}",
        f"/?project={PAYLOADS[0]}",
        "/search?q=alert",
        f"/search?q={PAYLOADS[1]}",
        f"/notes/{note.id}",
        f"/notes/{note.id}/edit",
        f"/notes/{note.id}/history",
        f"/notes/{note.id}/diff",
        f"/notes/{copy.id}/at/{sha}",
        "/fleet",
        "/conflicts",
        f"/conflicts/{copy.id}/merge",
        "/health",
    ):
        html = await browser.html(path)
        assert audit(html) == [], path
    page = await browser.html(f"/notes/{note.id}")
    assert "&lt;script&gt;alert(" in page
    assert "&lt;b onclick=alert(5)&gt;" in page
    assert '<a href="https://example.com" rel="nofollow noopener noreferrer">ok</a>' in page
    assert "[click](javascript:alert(6))" in page  # the link is left as text


async def test_a_stale_edit_page_escapes_both_versions(browser: Browser, memory: Memory) -> None:
    note = await write(memory, "Plain", "plain")
    base = (await browser.json(f"/notes/{note.id}/edit"))["base"]
    note_file(memory, note).write_text(note_file(memory, note).read_text().replace("plain\n", f"{PAYLOADS[0]}\n"))
    response = await browser.post(f"/notes/{note.id}/edit", {"base": base, "title": PAYLOADS[1], "body": PAYLOADS[2]})
    html = await response.get_data(as_text=True)
    assert response.status_code == 409
    assert audit(html) == []
    assert "&lt;script&gt;" in html
    assert "&lt;svg/onload=alert(2)&gt;" in html


def test_markdown_keeps_only_safe_links_and_shows_raw_html_as_text() -> None:
    for url in (
        "javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        "java\tscript:alert(1)",
        "vbscript:x",
        "data:text/html,x",
        "file:///etc/passwd",
        " javascript:alert(1)",
    ):
        assert not safe_link(url), url
    for url in ("https://example.com", "http://example.com/a?b=c", "mailto:me@example.com", "#top", "/notes/x", "a/b"):
        assert safe_link(url), url
    html = str(
        render_markdown('<iframe src="https://evil"></iframe>\n\n![x](javascript:alert(1)) ![pic](https://e/p.png)')
    )
    assert "<iframe" not in html
    assert "&lt;iframe" in html
    assert "<img" not in html
    assert '<a class="image-link" href="https://e/p.png" rel="nofollow noopener noreferrer">[image: pic]</a>' in html


async def test_path_traversal_in_ids_and_versions_finds_nothing(browser: Browser, memory: Memory) -> None:
    note = await write(memory, "Real note")
    for path in (
        "/notes/..%2F..%2Fconfig.json",
        "/notes/../config.json",
        "/notes/%2e%2e",
        "/notes/..",
        "/notes/.hidden",
        "/notes/config.json",
        "/notes/-rf",
        f"/notes/{note.id}%00",
        "/notes/%2Fetc%2Fpasswd",
        "/notes/..%5C..%5Cconfig.json",
        f"/notes/{'A' * 300}",
        "/notes/../../index.db/edit",
        "/static/../../config.json",
        "/static/%2e%2e/app.py",
    ):
        response = await browser.get(path)
        text = await response.get_data(as_text=True)
        assert response.status_code in (400, 404), (path, response.status_code)
        assert "machine_id" not in text, path
    for sha in ("--output=/tmp/x", "HEAD", "..", "0123456789abcdef0123456789abcdef01234567:../../config.json"):
        response = await browser.get(f"/notes/{note.id}/diff?a={sha}")
        assert response.status_code == 400, sha
    assert not (memory.config.home / "x").exists()


async def test_an_oversized_form_is_refused_and_nothing_is_written(browser: Browser, memory: Memory) -> None:
    note = await write(memory, "Small note", "small")
    base = (await browser.json(f"/notes/{note.id}/edit"))["base"]
    huge = await browser.post(f"/notes/{note.id}/edit", {"base": base, "title": "t", "body": "x" * 2_000_000})
    assert huge.status_code == 413
    assert "larger than a note can be" in await huge.get_data(as_text=True)
    too_long = await browser.post(
        f"/notes/{note.id}/edit", {"base": base, "title": "t", "body": "x" * (MAX_BODY_CHARS + 1)}
    )
    assert too_long.status_code == 400
    assert note_file(memory, note).read_text().endswith("small\n")
    assert git(memory, "rev-list", "--count", "HEAD").strip() == "2"


async def test_a_forged_host_is_refused_before_anything_else(browser: Browser, memory: Memory) -> None:
    await write(memory, "Private note")
    for host in (
        "evil.example",
        "127.0.0.1:8765.evil.example",
        "127.0.0.1:9999",
        "localhost",
        "127.0.0.1",
        "attacker.com:8765",
        "",
        "127.0.0.1:8765@evil",
    ):
        for path in ("/", "/static/app.css", "/login", "/notes/x"):
            response = await browser.client.get(path, headers={"Host": host})
            text = await response.get_data(as_text=True)
            assert response.status_code == 400, (host, path)
            assert "Private note" not in text
            assert "csrf" not in text.lower()
            assert "desktop" not in text
    write_attempt = await browser.client.post(
        "/new", form={"title": "x", "body": "y"}, headers={"Host": "evil.example", "Origin": "http://evil.example"}
    )
    assert write_attempt.status_code == 400
    for alias in ("localhost:8765", "LOCALHOST:8765", "[::1]:8765", "127.0.0.1:8765"):
        assert (await browser.client.get("/", headers={"Host": alias})).status_code == 200, alias


async def test_a_write_needs_the_dashboards_origin(browser: Browser, memory: Memory) -> None:
    for origin in (
        None,
        "null",
        "http://evil.example",
        "http://127.0.0.1:8765.evil.example",
        "https://127.0.0.1:8765",
        "http://localhost:8765",
        "http://127.0.0.1:9999",
    ):
        response = await browser.post("/new", {"title": "Forged", "body": "x"}, origin=origin)
        assert response.status_code == 403, origin
    assert (await browser.json("/"))["notes"] == []
    assert (await browser.post("/new", {"title": "Genuine", "body": "x"}, origin=ORIGIN)).status_code == 303


async def test_a_write_needs_the_sessions_csrf_token(browser: Browser, memory: Memory, config: Config) -> None:
    missing = await browser.post("/new", {"title": "No token", "body": "x"}, csrf=False)
    assert missing.status_code == 403
    assert "expired" in await missing.get_data(as_text=True)
    wrong = await browser.post("/new", {"title": "Wrong token", "body": "x", "csrf_token": "A" * 43})
    assert wrong.status_code == 403
    as_json = await browser.post("/new", json_body={"title": "JSON no token", "body": "x"}, csrf=False)
    assert as_json.status_code == 403
    # A token from another browser's session is worthless in this one.
    other = Browser(make_app(config, memory).test_client())
    stolen = await other.csrf()
    assert stolen != await browser.csrf()
    assert (await browser.post("/new", {"title": "Stolen", "body": "x", "csrf_token": stolen})).status_code == 403
    # A session cookie signed with another key (planted by another service on this host) is ignored.
    forged = Browser(
        create_app(config, DashboardSettings(port=8765, secret_key=b"k" * 32), memory=memory).test_client()
    )
    planted_token = await forged.csrf()
    browser.client.cookie_jar.clear()
    for cookie in forged.client.cookie_jar:
        browser.client.cookie_jar.set_cookie(cookie)
    assert (
        await browser.post("/new", {"title": "Planted", "body": "x", "csrf_token": planted_token})
    ).status_code == 403
    assert (await browser.json("/"))["notes"] == []


async def test_every_response_carries_a_strict_csp_and_no_caching_of_private_pages(
    browser: Browser, memory: Memory
) -> None:
    note = await write(memory, "Note")
    for path in ("/", f"/notes/{note.id}", "/search?q=x", "/nope", "/static/app.css", "/notes/bad..id", "/health"):
        response = await browser.get(path)
        headers = response.headers
        assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY, path
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["X-Frame-Options"] == "DENY"
        if not path.startswith("/static/"):
            assert headers["Cache-Control"] == "no-store", path
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
    assert "default-src 'none'" in CONTENT_SECURITY_POLICY
    html = await browser.html("/")
    assert "<script>" not in html
    assert " style=" not in html
    assert " onclick=" not in html
    first = Browser(make_app(memory.config, memory).test_client())
    set_cookie = (await first.get("/")).headers["Set-Cookie"]
    assert "HttpOnly" in set_cookie
    assert "SameSite=Lax" in set_cookie
    assert set_cookie.startswith("anamnesis-8765=")


def test_binding_beyond_loopback_needs_a_token_and_a_wildcard_is_refused() -> None:
    with pytest.raises(ConfigError, match="needs an access token"):
        DashboardSettings(host="100.101.102.103")
    for wildcard in ("0.0.0.0", "::", ""):
        with pytest.raises(ConfigError, match="does not bind every interface"):
            DashboardSettings(host=wildcard, token="t" * 32)
    assert DashboardSettings(host="localhost").loopback
    assert DashboardSettings(host="::1").allowed_hosts >= {"[::1]:8765", "localhost:8765", "127.0.0.1:8765"}
    tailnet = DashboardSettings(host="desktop.tail.ts.net", address="100.101.102.103", token="t" * 32)
    assert tailnet.allowed_hosts == {"desktop.tail.ts.net:8765", "100.101.102.103:8765"}


TOKEN = "s3cret-token-for-the-phone-0123456789"
TAILNET = "100.101.102.103:8765"


@pytest.fixture
def phone(config: Config, memory: Memory) -> Browser:
    settings = DashboardSettings(host="100.101.102.103", port=8765, token=TOKEN)
    return Browser(create_app(config, settings, memory=memory).test_client(), host=TAILNET)


async def test_beyond_loopback_every_page_needs_the_token(phone: Browser, memory: Memory) -> None:
    note = await write(memory, "Private note")
    for path in ("/", f"/notes/{note.id}", "/search?q=private", "/health", "/fleet"):
        response = await phone.get(path)
        assert response.status_code == 303, path
        assert response.headers["Location"].startswith("/login?next="), path
        assert "Private note" not in await response.get_data(as_text=True)
        as_json = await phone.get(path, {"Accept": "application/json"})
        assert as_json.status_code == 401, path
    assert (await phone.get("/static/app.css")).status_code == 200  # the login page needs its stylesheet
    assert (await phone.get("/?token=wrong")).status_code == 401
    assert (await phone.get("/", {"Authorization": "Bearer wrong"})).status_code == 401
    login = await phone.html("/login?next=/health")
    assert "Access token" in login
    assert "desktop" not in login
    refused = await phone.post("/login?next=/health", {"token": "wrong"}, origin=f"http://{TAILNET}")
    assert refused.status_code == 401


async def test_the_token_once_per_device_opens_the_dashboard(phone: Browser, memory: Memory) -> None:
    note = await write(memory, "Private note")
    granted = await phone.get(f"/notes/{note.id}?token={TOKEN}&x=1")
    assert granted.status_code == 303
    assert granted.headers["Location"] == f"/notes/{note.id}?x=1"  # the token leaves the address bar
    assert "Max-Age" in granted.headers["Set-Cookie"] or "Expires" in granted.headers["Set-Cookie"]
    assert "Private note" in await phone.html(f"/notes/{note.id}")
    assert (
        await phone.post("/new", {"title": "From the phone", "body": "x"}, origin=f"http://{TAILNET}")
    ).status_code == 303


async def test_the_login_form_and_bearer_token_open_the_dashboard(
    phone: Browser, config: Config, memory: Memory
) -> None:
    await write(memory, "Private note")
    response = await phone.post("/login?next=/search%3Fq%3Dprivate", {"token": TOKEN}, origin=f"http://{TAILNET}")
    assert response.status_code == 303
    assert response.headers["Location"] == "/search?q=private"
    assert "Private note" in await phone.html("/search?q=private")
    script = Browser(phone.client.app.test_client(), host=TAILNET)  # type: ignore[attr-defined]
    data = await script.get("/", {"Accept": "application/json", "Authorization": f"Bearer {TOKEN}"})
    assert data.status_code == 200
    assert (await data.get_json())["notes"][0]["title"] == "Private note"


# Browsers drop tab, CR and LF from a URL: `/\t/evil.example` becomes `//evil.example`.
OFF_SITE_TARGETS = (
    "https://evil.example/",
    "//evil.example/x",
    "/\\evil.example",
    "javascript:alert(1)",
    "/%09/evil.example",
    "/%0a/evil.example",
    "/%0d%0a/evil.example",
    "/%5c/evil.example",
    "/%20/evil.example",
)


async def test_login_never_redirects_off_the_dashboard(phone: Browser) -> None:
    for target in OFF_SITE_TARGETS:
        response = await phone.post(f"/login?next={target}", {"token": TOKEN}, origin=f"http://{TAILNET}")
        assert response.status_code == 303, target
        assert response.headers["Location"] == "/", target


async def test_login_on_loopback_never_redirects_off_the_dashboard(browser: Browser) -> None:
    for target in OFF_SITE_TARGETS:
        response = await browser.get(f"/login?next={target}")
        assert response.status_code == 303, target
        assert response.headers["Location"] == "/", target


async def test_a_new_token_logs_every_device_out(config: Config, memory: Memory) -> None:
    first = DashboardSettings(host="100.101.102.103", port=8765, token=TOKEN, secret_key=b"k" * 32)
    phone = Browser(create_app(config, first, memory=memory).test_client(), host=TAILNET)
    assert (await phone.get(f"/?token={TOKEN}")).status_code == 303
    assert (await phone.get("/")).status_code == 200
    rotated = DashboardSettings(
        host="100.101.102.103", port=8765, token="another-token-0123456789", secret_key=b"k" * 32
    )
    again = Browser(create_app(config, rotated, memory=memory).test_client(), host=TAILNET)
    for cookie in phone.client.cookie_jar:
        again.client.cookie_jar.set_cookie(cookie)
    assert (await again.get("/")).status_code == 303


async def test_a_json_api_client_can_read_and_write_with_origin_and_csrf_header(
    browser: Browser, memory: Memory
) -> None:
    session = await browser.get("/?format=json")
    token = json.loads(await session.get_data(as_text=True))["csrf_token"]
    created = await browser.client.post(
        "/new",
        json={"title": "Scripted", "body": "x", "type": "procedural"},
        headers={"Host": "127.0.0.1:8765", "Origin": ORIGIN, "X-CSRF-Token": token},
    )
    assert created.status_code == 201
    note_id = (await created.get_json())["note"]["id"]
    assert (await memory.get(note_id)).type == "procedural"
    not_an_object = await browser.post("/new", json_body=["title"])
    assert not_an_object.status_code == 400
