"""Errors become pages (or JSON) here, once: the dashboard's edge of the `AnamnesisError` tree.

Core raises `AnamnesisError`s with messages written for people; each maps to a status code
(the dashboard's table in `anamnesis.edges`) and is shown as is (escaped). HTTP errors from
Quart (404 route, 405, 413 oversized form) get the same page. Anything else is a bug: Quart
logs it with its traceback and answers 500.
"""

from __future__ import annotations

import logging

from quart import Quart, Response
from werkzeug.exceptions import HTTPException

from anamnesis.dashboard.responses import page
from anamnesis.edges import HTTP_STATUS, lookup
from anamnesis.errors import AnamnesisError

logger = logging.getLogger(__name__)

TITLES = {
    400: "Not a request this dashboard can answer",
    401: "Access token needed",
    403: "Refused",
    404: "Not found",
    405: "Not allowed",
    409: "Changed since you opened it",
    413: "Too large",
    500: "Something went wrong",
    502: "Sync failed",
    503: "Busy",
}


async def error_response(status: int, message: str) -> Response:
    title = TITLES.get(status, "Error")
    payload = {"error": {"status": status, "title": title, "message": message}}
    return await page("error.html", payload, status)


def install(app: Quart) -> None:
    @app.errorhandler(AnamnesisError)
    async def anamnesis_error(exc: AnamnesisError) -> Response:
        status = lookup(HTTP_STATUS, exc)
        if status >= 500:
            logger.warning("dashboard request failed: %s", exc)
        return await error_response(status, str(exc))

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        message = exc.description or TITLES.get(status, "Error")
        if status == 413:
            message = "The form is larger than a note can be. Shorten it and try again."
        return await error_response(status, message)
