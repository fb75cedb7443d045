"""``/ui``: the memory inspector, a static page that talks to the same ``/v1`` API with a key.

The page is plain HTML, CSS and JavaScript modules committed under ``static/`` and served by
the app itself: no CDN, no web fonts, no build step. It holds no data of its own; every view
reads the API with the key typed into its login form, so it sees exactly what that key may.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

UI_URL = "/ui"
STATIC_DIR = Path(__file__).parent / "static"
# The page loads only its own files and talks only to its own origin: a script injected
# through some future bug could neither load code from elsewhere nor send data away.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


class UiFiles(StaticFiles):
    """The page's files, each with the headers that keep it to its own origin."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        """The file (or 404), with CSP, nosniff and no referrer."""
        response = await super().get_response(path, scope)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response


def install_ui(app: FastAPI) -> None:
    """Serve the inspector at ``/ui/`` (``/ui`` redirects there so relative URLs resolve)."""

    @app.get(UI_URL, include_in_schema=False)
    async def ui_root() -> RedirectResponse:
        return RedirectResponse(UI_URL + "/", status_code=307)

    app.mount(UI_URL, UiFiles(directory=STATIC_DIR, html=True), name="ui")
