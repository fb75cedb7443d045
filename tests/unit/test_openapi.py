"""docs/openapi.json is the document the service serves; a route change without it fails here."""

from __future__ import annotations

import json

from service.specs import DOC_PATH, current_document


def test_committed_openapi_is_current() -> None:
    """Regenerate with ``python -m service.specs`` when this fails."""
    assert DOC_PATH.read_text(encoding="utf-8") == current_document(), (
        "docs/openapi.json is stale: run python -m service.specs"
    )


def test_every_route_documents_its_errors_and_bodies() -> None:
    """Each /v1 operation lists 401, 422 and 503 with the one error shape; bodies have schemas."""
    doc = json.loads(DOC_PATH.read_text(encoding="utf-8"))
    schemas = doc["components"]["schemas"]
    for path, ops in doc["paths"].items():
        if not path.startswith("/v1/"):
            continue
        for method, op in ops.items():
            for code in ("401", "422", "503"):
                ref = op["responses"][code]["content"]["application/json"]["schema"]["$ref"]
                assert ref.endswith("/ErrorResponse"), (method, path, code)
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            if body is not None:
                assert body["schema"]["$ref"].rsplit("/", 1)[1] in schemas, (method, path)
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
