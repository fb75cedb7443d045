"""``/ui``: the memory inspector, a static page that talks to the same ``/v1`` API with a key.

The page is plain HTML, CSS and JavaScript modules committed under ``static/`` and served by
the app itself: no CDN, no web fonts, no build step. It holds no data of its own; every view
reads the API with the key typed into its login form, so it sees exactly what that key may.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from starlette.staticfiles import StaticFiles

UI_URL = "/ui"
STATIC_DIR = Path(__file__).parent / "static"


def install_ui(app: FastAPI) -> None:
    """Serve the inspector at ``/ui/`` (``/ui`` redirects there so relative URLs resolve)."""

    @app.get(UI_URL, include_in_schema=False)
    async def ui_root() -> RedirectResponse:
        return RedirectResponse(UI_URL + "/", status_code=307)

    app.mount(UI_URL, StaticFiles(directory=STATIC_DIR, html=True), name="ui")
