"""The dashboard's guards: Host, Origin, CSRF token, access token, and the headers on every response.

The dashboard holds someone's private notes and can rewrite them, and a browser will happily
send requests to 127.0.0.1 on behalf of any web page it visits. So:

- DNS rebinding: a request whose `Host` is not a name this server was bound under is refused,
  before routing, for every path (static files too);
- CSRF: a state-changing request needs an `Origin` equal to this server's own origin *and* the
  session's CSRF token (form field `csrf_token` or header `X-CSRF-Token`); the session cookie
  is signed, so another service on the same host (cookies ignore ports) cannot plant one;
- beyond loopback (a tailnet address, to read the memory from a phone) every request needs the
  access token: once per device via `?token=` or the login form (then a signed cookie), or an
  `Authorization: Bearer` header from a script;
- every response carries a strict Content-Security-Policy (scripts and styles from /static only,
  nothing inline, no frames, no outside connections) and no caching of private pages.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any

from anamnesis.errors import ConfigError

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
WILDCARD_ADDRESSES = ("0.0.0.0", "::", "")  # noqa: S104 - listed to be refused

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "manifest-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), interest-cohort=()",
}


@dataclass(frozen=True, slots=True)
class DashboardSettings:
    """Where the dashboard is reachable and what it demands of a request.

    `host` is the name the user bound (and types in the browser); `address` the IP the socket
    is bound to, when it differs (a host name was given). `token` is required beyond loopback.
    `secret_key` signs the session cookie; keep it stable so open forms survive a restart.
    """

    host: str = "127.0.0.1"
    port: int = 8765
    token: str | None = None
    secret_key: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)
    address: str | None = None

    def __post_init__(self) -> None:
        check_bind(self.host, self.address)
        if not self.loopback and not self.token:
            raise ConfigError("a dashboard bound beyond loopback needs an access token")

    @property
    def loopback(self) -> bool:
        return is_loopback(self.address or self.host)

    @property
    def url(self) -> str:
        return f"http://{_url_host(self.host)}:{self.port}"

    @property
    def allowed_hosts(self) -> frozenset[str]:
        """Every `Host` header value this server answers to (lower case)."""
        names = {_url_host(self.host)}
        if self.address:
            names.add(_url_host(self.address))
        if self.loopback:
            names.update(LOOPBACK_NAMES)
        allowed = {f"{name}:{self.port}" for name in names}
        if self.port == 80:
            allowed |= names
        return frozenset(a.lower() for a in allowed)

    @property
    def session_cookie(self) -> str:
        # Cookies are shared by every port of a host: one name per port keeps two homes apart.
        return f"anamnesis-{self.port}"


def check_bind(host: str, address: str | None = None) -> None:
    """Refuse to listen on every interface (`host` as given, `address` as it resolved)."""
    if host.strip() in WILDCARD_ADDRESSES or (address or "x") in WILDCARD_ADDRESSES:
        raise ConfigError(
            "the dashboard does not bind every interface: give one address, e.g. --host 127.0.0.1 "
            "or your tailnet address"
        )


def is_loopback(host: str) -> bool:
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _url_host(host: str) -> str:
    name = host.strip().lower()
    if ":" in name and not name.startswith("["):
        return f"[{name}]"
    return name


def host_allowed(settings: DashboardSettings, host_header: str | None) -> bool:
    return host_header is not None and host_header.strip().lower() in settings.allowed_hosts


def origin_allowed(host_header: str, origin: str | None) -> bool:
    """True when `origin` is exactly this server's origin (as the request's Host names it)."""
    return origin is not None and origin.strip().lower() == f"http://{host_header.strip().lower()}"


def csrf_token(session: MutableMapping[str, Any]) -> str:
    """The session's CSRF token, created on first use."""
    token = session.get("csrf")
    if not isinstance(token, str) or len(token) < 32:
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def csrf_valid(session: MutableMapping[str, Any], supplied: str | None) -> bool:
    expected = session.get("csrf")
    if not isinstance(expected, str) or not supplied:
        return False
    return hmac.compare_digest(expected.encode(), supplied.encode())


def token_valid(settings: DashboardSettings, supplied: str | None) -> bool:
    if not settings.token or not supplied:
        return False
    return hmac.compare_digest(settings.token.encode(), supplied.strip().encode())


def session_grant(settings: DashboardSettings) -> str:
    """What a logged-in session holds: bound to the token, so a new token logs every device out."""
    assert settings.token is not None
    return hmac.new(settings.secret_key, settings.token.encode(), hashlib.sha256).hexdigest()


def session_authenticated(settings: DashboardSettings, session: MutableMapping[str, Any]) -> bool:
    if settings.token is None:
        return True
    granted = session.get("auth")
    return isinstance(granted, str) and hmac.compare_digest(granted, session_grant(settings))


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


# What a redirect target may hold: a path and query in printable ASCII, nothing a browser would
# strip or reinterpret (tab, CR and LF are removed by URL parsers, so `/\t/evil.example` turns
# into `//evil.example`; a backslash reads as a slash).
_SAFE_PATH_CHARS = frozenset(chr(c) for c in range(0x21, 0x7F)) - {"\\"}


def same_origin_path(target: str | None) -> str:
    """`target` when it is a path on this dashboard; "/" for anything else (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    if not set(target) <= _SAFE_PATH_CHARS:
        return "/"
    return target.rstrip("?") or "/"
