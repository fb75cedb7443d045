"""The structured-output rule: which errors refuse a format, what comes next, what is sent."""

from __future__ import annotations

import pytest

from memlane.config import load_settings
from memlane.config_sections import LLMSettings
from memlane.errors import ConfigError
from memlane.llm.formats import (
    OutputFormat,
    Refusal,
    next_format,
    provider_id,
    refusal,
    response_format,
)
from pipelines.prompts.schemas import OUTPUT_SCHEMAS

LLAMA = 'response_format type must be one of "text" or "json_object", but got: json_schema'


def test_formats_step_down_schema_object_text() -> None:
    """json_schema -> json_object -> text, and nothing after text."""
    assert next_format(OutputFormat.JSON_SCHEMA) is OutputFormat.JSON_OBJECT
    assert next_format(OutputFormat.JSON_OBJECT) is OutputFormat.TEXT
    assert next_format(OutputFormat.TEXT) is None


@pytest.mark.parametrize(
    ("fmt", "status", "message", "kind"),
    [
        (OutputFormat.JSON_SCHEMA, 500, LLAMA, Refusal.NAMED),  # llama.cpp's server
        (OutputFormat.JSON_SCHEMA, 400, "Invalid parameter: 'response_format'", Refusal.NAMED),
        (OutputFormat.JSON_OBJECT, 422, "json_object is not supported", Refusal.NAMED),
        (OutputFormat.JSON_SCHEMA, 400, "bad request", Refusal.SUSPECTED),
        (OutputFormat.JSON_SCHEMA, 422, "", Refusal.SUSPECTED),
        (OutputFormat.JSON_SCHEMA, 500, "upstream exploded", Refusal.NONE),  # transient
        (OutputFormat.JSON_SCHEMA, 429, "response_format rate", Refusal.NONE),
        (OutputFormat.JSON_SCHEMA, 503, "json_schema backend down", Refusal.NONE),
        (OutputFormat.JSON_SCHEMA, None, "timeout", Refusal.NONE),
        (OutputFormat.TEXT, 400, "response_format", Refusal.NONE),  # nothing was asked
    ],
)
def test_only_400_422_500_can_refuse_and_an_unnamed_500_never_does(
    fmt: OutputFormat, status: int | None, message: str, kind: Refusal
) -> None:
    """Named 400/422/500 refuse; unnamed 400/422 are suspected; the rest are ordinary errors."""
    assert refusal(fmt, status, message) is kind


def test_the_request_field_of_each_format() -> None:
    """A schema is sent non-strict under its name; json_object without one; text sends none."""
    schema = OUTPUT_SCHEMAS["extract"]
    sent = response_format(OutputFormat.JSON_SCHEMA, "extract", schema)
    assert sent == {
        "type": "json_schema",
        "json_schema": {"name": "extract", "schema": schema, "strict": False},
    }
    assert response_format(OutputFormat.JSON_SCHEMA, "x", None) == {"type": "json_object"}
    assert response_format(OutputFormat.JSON_OBJECT, "extract", schema) == {"type": "json_object"}
    assert response_format(OutputFormat.TEXT, "extract", schema) is None


def test_a_provider_is_its_base_url_and_model() -> None:
    """Same endpoint and model: one id; another model or endpoint: another id."""
    a = provider_id("http://127.0.0.1:8080/v1", "qwen")
    assert a == provider_id("http://127.0.0.1:8080/v1/", "qwen")
    assert a != provider_id("http://127.0.0.1:8080/v1", "llama")
    assert a != provider_id("http://127.0.0.1:8081/v1", "qwen")


def test_every_prompt_has_an_output_schema() -> None:
    """Extraction, arbitration, reflection and maintenance are asked for with a schema."""
    assert set(OUTPUT_SCHEMAS) == {"extract", "arbitrate", "reflect", "maintain"}
    assert all(s["type"] == "object" and s["required"] for s in OUTPUT_SCHEMAS.values())


def test_the_first_format_follows_response_format_and_the_old_json_mode() -> None:
    """json_schema by default; json_mode: false means text; the two cannot disagree."""
    assert LLMSettings().first_format is OutputFormat.JSON_SCHEMA
    assert LLMSettings(json_mode=False).first_format is OutputFormat.TEXT
    assert LLMSettings(response_format="json_object").first_format is OutputFormat.JSON_OBJECT
    conflict = r"llm\.json_mode: false contradicts llm\.response_format"
    with pytest.raises(ConfigError, match=conflict):
        load_settings(environ={}, llm={"json_mode": False, "response_format": "json_schema"})
