"""The JSON schema of each prompt's output, sent as ``response_format: json_schema``.

Keyed by the name a pipeline gives ``complete_json`` (the prompt's name). The schemas shape the
output (grammar-constrained servers such as llama.cpp and vLLM decode by them) but stay loose:
extra properties are allowed and only what a reply cannot do without is required, because the
pipelines' parsers validate every field themselves and the prompts may grow fields. A provider
that refuses ``json_schema`` gets ``json_object`` instead (:mod:`memlane.llm.formats`).
"""

from __future__ import annotations

from typing import Any

_TEXT_OR_NULL: dict[str, Any] = {"type": ["string", "null"]}
_STRINGS: dict[str, Any] = {"type": "array", "items": {"type": "string"}}
_INTEGERS: dict[str, Any] = {"type": "array", "items": {"type": "integer"}}


def _object(required: list[str], **properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required}


def _list_of(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": item}


_RELATION = {"type": "string", "enum": ["duplicate", "contradiction", "distinct"]}
_DECISIONS = _object(
    ["decisions"],
    decisions=_list_of(_object(["pair", "relation"], pair={"type": "integer"}, relation=_RELATION)),
)

OUTPUT_SCHEMAS: dict[str, dict[str, Any]] = {
    "extract": _object(
        ["observations", "links"],
        observations=_list_of(
            _object(
                ["content"],
                content={"type": "string"},
                event_time=_TEXT_OR_NULL,
                time_granularity=_TEXT_OR_NULL,
                keywords=_STRINGS,
                importance={"type": "number"},
                source_turns=_INTEGERS,
                about={"type": "string"},
                subject=_TEXT_OR_NULL,
            )
        ),
        links=_list_of(
            _object(
                ["observation", "memory_id", "relation"],
                observation={"type": "integer"},
                memory_id={"type": "string"},
                relation={"type": "string"},
            )
        ),
    ),
    "arbitrate": _DECISIONS,
    "maintain": _DECISIONS,
    "reflect": _object(
        ["insights"],
        insights=_list_of(
            _object(
                ["subject", "content"],
                subject={"type": "string"},
                content={"type": "string"},
                observations=_INTEGERS,
                keywords=_STRINGS,
            )
        ),
    ),
}
