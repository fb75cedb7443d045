"""The OpenAPI document: request bodies documented from :mod:`service.schemas`, error shapes.

Routes read their bodies themselves (:mod:`service.body`), so FastAPI cannot see their models;
:func:`body_of` documents one, and :func:`build_openapi` adds its schema to the components.
``python -m service.specs`` rewrites ``docs/openapi.json``; a test fails when it is stale.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from service.schemas import ErrorResponse

_REQUEST_MODELS: dict[str, type[BaseModel]] = {}
DOC_PATH = Path(__file__).resolve().parents[1] / "docs" / "openapi.json"
DESCRIPTION = (
    "Long-term memory for chatbots. Every route is one `MemoryClient` method; errors have one "
    'shape (`{"error": {"type", "message", "field"?}}`). Authenticate with '
    "`Authorization: Bearer <key>` (`memlane keys create`). See docs/http.md."
)
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in {
        400: "malformed JSON, bad encoding, or not a JSON object",
        401: "missing, unknown or revoked API key",
        404: "no such user or memory (or one of another tenant)",
        413: "request body over service.max_body_bytes",
        422: "a field is invalid: `field` names it, `message` says why (as InvalidInput)",
        429: "this key's rate limit; see Retry-After",
        503: "Redis, the store or the embedder is unavailable; see Retry-After",
    }.items()
}


def body_of(model: type[BaseModel], media_type: str = "application/json") -> dict[str, Any]:
    """``openapi_extra`` documenting ``model`` as a route's request body."""
    _REQUEST_MODELS[model.__name__] = model
    ref = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": True, "content": {media_type: {"schema": ref}}}}


def raw_body(media_type: str, description: str) -> dict[str, Any]:
    """``openapi_extra`` for a body that is not JSON (JSONL import)."""
    content = {media_type: {"schema": {"type": "string"}}}
    return {"requestBody": {"required": True, "description": description, "content": content}}


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document, request body schemas included."""
    doc = get_openapi(
        title=app.title, version=app.version, description=DESCRIPTION, routes=app.routes
    )
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for name, model in sorted(_REQUEST_MODELS.items()):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for sub, definition in schema.pop("$defs", {}).items():
            schemas.setdefault(sub, definition)
        schemas[name] = schema
    doc["components"]["schemas"] = dict(sorted(schemas.items()))
    return doc


def render(doc: dict[str, Any]) -> str:
    """The committed form: sorted keys, two-space indent, a final newline."""
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def current_document() -> str:
    """The document of an app built from default settings (no connection is made)."""
    from memlane import load_settings
    from service.app import create_app

    return render(build_openapi(create_app(load_settings(environ={}))))


def main() -> int:
    """Rewrite docs/openapi.json."""
    DOC_PATH.write_text(current_document(), encoding="utf-8")
    print(f"wrote {DOC_PATH}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    # Run as service.specs, not __main__: the routes register their bodies in that module.
    from service.specs import main as _main

    sys.exit(_main())
