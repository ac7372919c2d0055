"""The web dashboard (Quart): browse, search, read, edit, history, fleet, conflicts and health.

`create_app(config)` builds it; `anamnesis serve` runs it on hypercorn next to the sync loop.
Every page is server-rendered HTML (Jinja2, autoescaped) with CSS and a little JavaScript from
`static/`; the same routes answer JSON for scripts (`Accept: application/json` or `?format=json`).

Writes (`POST`) need the page's origin and the session's CSRF token: a script first GETs any page
as JSON (which carries `csrf_token` and sets the session cookie), then sends the token in
`X-CSRF-Token` with `Origin: <the dashboard's URL>`.

Routes: `/` notes (project, type, scope, tag, superseded, limit, cursor) · `/search?q=` ·
`/notes/<id>` · `/notes/<id>/edit` (GET gives `base`; POST needs it) · `/new` ·
`/notes/<id>/history` · `/notes/<id>/diff?a=&b=` · `/notes/<id>/at/<sha>` · `/fleet` ·
`/conflicts` (+ `/conflicts/<id>/resolve`, `/conflicts/<id>/merge`) · `/health`
(+ `/health/reindex`, `/health/sync`) · `/login` (only when bound beyond loopback).
"""

from anamnesis.dashboard.app import create_app
from anamnesis.dashboard.security import DashboardSettings
from anamnesis.dashboard.state import ServiceStatus

__all__ = ["DashboardSettings", "ServiceStatus", "create_app"]
