"""``/docs``: the Swagger UI page, with its script, style and icon served by the app itself.

FastAPI's own page loads Swagger UI from a CDN, so it was blank offline and behind a firewall.
The files come from the ``swagger-ui-bundle-v2`` package (Swagger UI 5, which renders the
OpenAPI 3.1 document FastAPI writes; the older ``swagger-ui-bundle`` ships 4.15, which cannot).
Only the three files the page uses are served, and the online validator badge (an image from
the validator's host) is off, so the page makes no request outside the service.
"""

from __future__ import annotations

from fastapi import FastAPI, HTTPException, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from swagger_ui_bundle import swagger_ui_path

DOCS_URL = "/docs"
ASSETS_URL = "/docs/assets"
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}


def install_docs(app: FastAPI, openapi_url: str, title: str) -> None:
    """Serve the Swagger UI page at ``/docs`` and its files under ``/docs/assets/``."""

    @app.get(DOCS_URL, include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        root = str(request.scope.get("root_path", "")).rstrip("/")
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=title,
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon-32x32.png",
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get(ASSETS_URL + "/{name}", include_in_schema=False)
    async def asset(name: str) -> FileResponse:
        if name not in ASSETS:
            raise HTTPException(404, f"no asset {name!r}")
        path = swagger_ui_path / name
        return FileResponse(str(path), media_type=ASSETS[name])
