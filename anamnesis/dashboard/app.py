"""`create_app(config)`: the dashboard as a Quart app, ready for hypercorn or the test client.

The app either borrows a `Memory` (the service opens one and shares it with its background
tasks) or opens its own while it serves. Everything request-shaped is wired here: the guards,
the error pages, the template filters and one blueprint per group of pages.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from typing import Any

from quart import Quart, request, session

from anamnesis import __version__
from anamnesis.config import Config
from anamnesis.dashboard import browse, conflicts, editing, error_pages, fleet, guard, health, history, reflection
from anamnesis.dashboard.render import highlight, render_markdown
from anamnesis.dashboard.security import CSRF_FIELD, DashboardSettings, csrf_token, session_authenticated
from anamnesis.dashboard.state import EXTENSION_KEY, DashboardState, ServiceStatus
from anamnesis.memory import Memory, open_memory
from anamnesis.notes import NOTE_TYPES, SCOPES

# A note body is at most 64 Ki characters; URL-encoded UTF-8 can triple each of up to 4 bytes.
MAX_REQUEST_BYTES = 1024 * 1024
NAV = (
    ("browse.notes", "Notes"),
    ("browse.search", "Search"),
    ("editing.new_form", "New"),
    ("fleet.fleet", "Fleet"),
    ("conflicts.conflicts", "Conflicts"),
    ("reflection.proposals", "Reflection"),
    ("health.health", "Health"),
)


def create_app(
    config: Config,
    settings: DashboardSettings | None = None,
    *,
    memory: Memory | None = None,
    status: ServiceStatus | None = None,
) -> Quart:
    """The dashboard for `config`'s home; with no `memory`, it opens one while it serves."""
    settings = settings or DashboardSettings()
    app = Quart(__name__, static_folder="static", template_folder="templates")
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SESSION_COOKIE_NAME=settings.session_cookie,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=guard.LOGIN_LIFETIME,
        MAX_CONTENT_LENGTH=MAX_REQUEST_BYTES,
        MAX_FORM_MEMORY_SIZE=MAX_REQUEST_BYTES,
        MAX_FORM_PARTS=100,
        SEND_FILE_MAX_AGE_DEFAULT=3600,
    )
    state = DashboardState(config, settings, status or ServiceStatus(), memory)
    app.extensions[EXTENSION_KEY] = state
    if memory is None:

        @app.while_serving
        async def own_memory() -> AsyncGenerator[None, None]:
            async with open_memory(config) as opened:
                state.memory = opened
                try:
                    yield
                finally:
                    state.memory = None

    guard.install(app)
    error_pages.install(app)
    for module in (browse, editing, history, fleet, conflicts, health, reflection):
        app.register_blueprint(module.bp)
    _templates(app, state)
    return app


def _templates(app: Quart, state: DashboardState) -> None:
    app.jinja_env.filters["markdown"] = render_markdown
    app.jinja_env.filters["highlight"] = highlight
    app.jinja_env.filters["when"] = when
    app.jinja_env.filters["short"] = lambda sha: (sha or "")[:10]
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True

    @app.context_processor
    async def common() -> dict[str, Any]:
        return {
            "csrf_field": CSRF_FIELD,
            "csrf_token": csrf_token(session),
            "nav": NAV,
            "current_endpoint": request.endpoint,
            "machine_id": state.config.machine_id if session_authenticated(state.settings, session) else "",
            "version": __version__,
            "note_types": NOTE_TYPES,
            "scopes": SCOPES,
            "token_required": state.settings.token is not None,
        }


def when(value: str | None) -> str:
    """An ISO-8601 UTC time as people read it: `2026-11-20 10:00 UTC` (the page's script localises it)."""
    if not value:
        return "—"
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
