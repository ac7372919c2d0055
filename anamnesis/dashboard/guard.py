"""The checks every request passes before its view runs, the headers every response leaves with,
and the login page for a dashboard bound beyond loopback.

Order matters: Host first (a rebinding page must learn nothing, not even a login form), then the
access token, then, for a write, the Origin and the CSRF token. The rules themselves live in
`security`; this module applies them to Quart requests.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from urllib.parse import urlencode

from quart import Blueprint, Quart, Response, redirect, request, session, url_for

from anamnesis.dashboard.error_pages import error_response
from anamnesis.dashboard.responses import page, wants_json
from anamnesis.dashboard.security import (
    CSRF_FIELD,
    CSRF_HEADER,
    SAFE_METHODS,
    SECURITY_HEADERS,
    bearer_token,
    csrf_valid,
    host_allowed,
    origin_allowed,
    same_origin_path,
    session_authenticated,
    session_grant,
    token_valid,
)
from anamnesis.dashboard.state import dashboard

logger = logging.getLogger(__name__)

LOGIN_LIFETIME = timedelta(days=30)
OPEN_PATHS = ("/static/", "/login")

bp = Blueprint("access", __name__)


def install(app: Quart) -> None:
    app.before_request(_guard)
    app.after_request(_headers)
    app.register_blueprint(bp)


async def _guard() -> Response | None:
    settings = dashboard().settings
    host = request.headers.get("Host")
    if not host_allowed(settings, host):
        # Plain text, nothing rendered: a rebinding page could read whatever this says.
        logger.warning("refused a request for host %r (DNS rebinding?)", (host or "")[:100])
        return Response("This dashboard does not answer to that host name.\n", 400, content_type="text/plain")
    if settings.token is not None and not request.path.startswith(OPEN_PATHS):
        refused = await _require_login()
        if refused is not None:
            return refused
    if request.method not in SAFE_METHODS:
        if not origin_allowed(request.host, request.headers.get("Origin")):
            return await error_response(403, "Refused: this change did not come from a page of this dashboard.")
        supplied = request.headers.get(CSRF_HEADER)
        if supplied is None and request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            supplied = (await request.form).get(CSRF_FIELD)
        if not csrf_valid(session, supplied):
            return await error_response(
                403, "Refused: the form has expired or did not come from this dashboard. Reload the page and try again."
            )
    return None


async def _require_login() -> Response | None:
    settings = dashboard().settings
    bearer = bearer_token(request.headers.get("Authorization"))
    if bearer is not None:
        return None if token_valid(settings, bearer) else await error_response(401, "The access token is wrong.")
    if session_authenticated(settings, session):
        return None
    offered = request.args.get("token")
    if offered is not None and request.method == "GET":
        if not token_valid(settings, offered):
            return await error_response(401, "The access token is wrong.")
        _grant()
        rest = [(k, v) for k, v in request.args.items(multi=True) if k != "token"]
        return redirect(request.path + ("?" + urlencode(rest) if rest else ""), 303)  # type: ignore[return-value]
    if wants_json():
        return await error_response(401, "This dashboard needs its access token (Authorization: Bearer …).")
    return redirect(url_for("access.login", next=same_origin_path(request.full_path)), 303)  # type: ignore[return-value]


def _grant() -> None:
    session["auth"] = session_grant(dashboard().settings)
    session.permanent = True


async def _headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if not request.path.startswith("/static/"):
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/login", methods=["GET", "POST"])
async def login() -> Response:
    state = dashboard()
    next_path = same_origin_path(request.args.get("next"))
    if state.settings.token is None or session_authenticated(state.settings, session):
        return redirect(next_path, 303)  # type: ignore[return-value]
    if request.method == "POST":
        form = await request.form
        if token_valid(state.settings, form.get("token")):
            _grant()
            return redirect(next_path, 303)  # type: ignore[return-value]
        return await page("login.html", {"error": "That token is not this dashboard's.", "next": next_path}, 401)
    return await page("login.html", {"error": None, "next": next_path}, 401 if wants_json() else 200)
